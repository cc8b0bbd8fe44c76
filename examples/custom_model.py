"""Your own model in a learnlab sweep, from a script (a notebook works the same way).

A residual MLP defined right here is swept over widths and learning rates on a
single-index task; runs that share all shapes are stacked with torch.func and trained as
one model. Then the summary and a self-contained HTML report.

    python examples/custom_model.py --out runs/custom
    python examples/custom_model.py --out runs/custom --steps 50   # a quick look
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import learnlab


class ResidualMLP(nn.Module):
    """x -> Linear -> [h + tanh(Linear(h))] * blocks -> Linear."""

    def __init__(self, d: int, outputs: int, width: int = 128, blocks: int = 2):
        super().__init__()
        self.read_in = nn.Linear(d, width)
        self.blocks = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.read_out = nn.Linear(width, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.read_in(x)
        for block in self.blocks:
            h = h + torch.tanh(block(h))
        return self.read_out(h)


def spec(steps: int) -> dict:
    return {
        "name": "custom_model",
        "seed": 0,
        "task": {
            "inputs": {"name": "gaussian", "d": 32},
            "target": {"name": "single_index", "link": "He_3", "seed": 1},
            "n_test": 2048,
        },
        "model": {"name": ResidualMLP, "options": {"width": 128, "blocks": 2}},  # the class itself
        "train": {
            "optimizer": "adam",
            "lr": 1e-3,
            "batch_size": 128,
            "steps": steps,
            "eval_every": max(1, steps // 10),
            "thresholds": [0.5],
        },
        "sweep": {"grid": {"model.options.width": [64, 256], "train.lr": [3e-4, 1e-3, 3e-3]}, "seeds": 2},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/custom")
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    store = learnlab.sweep(spec(args.steps), out=args.out)  # auto: stacked where shapes agree
    print(learnlab.analysis.summary_table(store).to_string(index=False))
    print("report:", learnlab.analysis.report(store, f"{args.out}/report.html"))


if __name__ == "__main__":  # a process pool re-imports this file; keep the sweep under the guard
    main()
