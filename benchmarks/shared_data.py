"""A learning-rate sweep whose runs share their data: one draw per seed, or one per run?

Runs that differ only in the learning rate draw the same batches (paired comparisons), so a
stack trains them on one stream per seed, drawn once per step and repeated. This runs one
sweep (16 learning rates x 2 seeds, power-law inputs with the 40,000-term power-law target,
d = 200, width 256, batch 256) twice in this process: as learnlab runs it (``shared``), and
with every member drawing its own stream from its own generator as before (``unshared``),
checks that both store the same numbers, and prints the wall times and their ratio.

Usage: python benchmarks/shared_data.py [--steps 200] [--device cpu]
The last line is one JSON object with the figures (key ``unshared_over_shared``).
"""

from __future__ import annotations

from learnlab._cpu import tune_cpu

tune_cpu()  # OpenMP's spin and the allocator as the learnlab command has them, before torch loads OpenMP

import argparse
import json
import tempfile
import time
from unittest import mock

import torch

import learnlab.train._members as members
from learnlab.experiments import sweep


def spec(steps: int, device: str) -> dict:
    return {
        "name": "bench-shared-data",
        "seed": 0,
        "task": {
            "inputs": {"name": "power_law_gaussian", "d": 200, "alpha": 2.0, "offset": 6},
            "target": {"name": "power_law", "cutoff_mode": 40000},
            "n_test": 1024,
        },
        "model": {"width": 256, "depth": 2, "param": "sp"},
        "train": {"optimizer": "sgd", "batch_size": 256, "steps": steps, "eval_every": 100, "device": device},
        "sweep": {"grid": {"train.lr": [round(0.001 * 1.5**i, 6) for i in range(16)]}, "seeds": 2},
    }


def run(steps: int, device: str, shared: bool):
    make_member = members.make_member

    def own_stream(*args, streams=None, **kwargs):  # every member draws its own stream, as before
        return make_member(*args, **kwargs)

    patch = mock.patch("learnlab.experiments._build.make_member", own_stream) if not shared else mock.MagicMock()
    with patch, tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        store = sweep(spec(steps, device), out=out, executor="ensemble")
        wall = time.perf_counter() - start
        table = store.metrics()  # ordered by run, metric, step
        store.close()
    return wall, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.optim.SGD([torch.zeros(1, requires_grad=True)])  # one-time imports (torch._dynamo), not timed
    walls: dict[str, list[float]] = {"shared": [], "unshared": []}
    tables = {}
    for _ in range(2):  # alternated, best of two each
        for name in ("unshared", "shared"):
            wall, tables[name] = run(args.steps, args.device, name == "shared")
            walls[name].append(wall)
    same = tables["shared"].equals(tables["unshared"])
    best = {k: min(v) for k, v in walls.items()}
    print(f"32 runs (16 lrs x 2 seeds) x {args.steps} steps, power-law target (40,000 terms), device {args.device}")
    print(f"{'data':<10}{'wall s':>9}")
    for name, wall in best.items():
        print(f"{name:<10}{wall:>9.2f}")
    print(f"unshared / shared: {best['unshared'] / best['shared']:.2f}x; the same metric rows: {same}")
    print(
        json.dumps(
            {
                "benchmark": "shared_data",
                "device": args.device,
                "shared_s": round(best["shared"], 3),
                "unshared_s": round(best["unshared"], 3),
                "unshared_over_shared": round(best["unshared"] / best["shared"], 3),
                "same_metrics": bool(same),
            }
        )
    )


if __name__ == "__main__":
    main()
