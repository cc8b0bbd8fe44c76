"""Sweep executors side by side: serial, processes, ensemble (and ray when installed).

The 64-run sweep of issues 6/7: MLPs d = 30 -> 128 -> 128 -> 1 (depth 2), batch 64,
500 SGD steps, 16 learning rates x 4 seeds, online Gaussian inputs, a degree-2
Hermite target. Every executor runs the same spec into a fresh folder in this one
process run; we print wall times, ratios, the ensemble's achieved GFLOP/s and its
fraction of a torch.mm peak measured here, and check that the ensemble's final test
losses equal the serial ones.

Beside them, ``handwritten``: the same 64 models as one batched-matmul ensemble written
out by hand (baddbmm forward, autograd backward, per-member SGD, one Gaussian batch per
seed shared by its 16 learning rates as in the sweep, no bookkeeping at all): the
eager-PyTorch ceiling that the ensemble executor, a full sweep with stores, metrics and
early exit, is measured against (``ensemble_over_handwritten``, and that ceiling's own
fraction of the peak).

One-time imports are paid before any timing: the first torch.optim optimizer of a process
imports torch._dynamo (~1.5 s here), which the hand-written loop never does.

``--seeds`` sets the sweep's size (16 learning rates x seeds: 4 -> 64 runs, 16 -> 256); on a
GPU (``--device cuda``) serial and ensemble run there and the process pool stays on the CPU.

``compiled`` is the ensemble executor with ``train.compile: true`` (torch.compile of the stack's
forward pass and loss; its compile time, ~5 s, is inside its wall time).

``autograd`` is the ensemble executor with the MLP's gradients taken by autograd instead of
``learnlab.models._mlp_grad`` (the same bits, checked: ``fused_equals_autograd``), to show
what computing them without autograd's graph gains (``fused_over_autograd``).

``--loss hinge`` (or ``logistic``) runs the same sweep on sparse parity instead: inputs on the
hypercube {-1, +1}^30, the label x_0 x_1, the parity literature's loss; the hand-written loop
(mean square on the Gaussian task) is then not run, and ``fused_over_autograd`` is the figure
of interest (those losses' gradients with respect to the outputs come from their closed forms,
``learnlab.train._losses.OUTPUT_GRADS``, the network's from the fused pass).

``--model resmlp`` runs the sweep on residual MLPs instead (read-in 30 -> 128, two residual
blocks of one 128 x 128 layer, read-out 128 -> 1; no layer norm), against a hand-written
residual loop of the same shapes.

Usage: python benchmarks/sweep.py [--steps 500] [--seeds 4] [--device cpu] [--loss mse]
       [--model mlp|resmlp] [--executors serial,processes,ensemble,autograd,compiled,ray]
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

from learnlab._cpu import tune_cpu

tune_cpu()  # OpenMP's spin and the allocator as the learnlab command has them, before torch loads OpenMP

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch

import learnlab.train._loop as loop_module
from learnlab.experiments import sweep

D, WIDTH, DEPTH, BATCH = 30, 128, 2, 64


def spec(steps: int, seeds: int = 4, compile: bool = False, loss: str = "mse", model: str = "mlp") -> dict:
    if loss == "mse":
        task = {"inputs": {"name": "gaussian", "d": D}, "target": {"name": "hermite", "monomial": {0: 1, 1: 1}}}
    else:  # sparse parity, as the parity literature trains it
        task = {"inputs": {"name": "hypercube", "d": D}, "target": {"name": "parity", "indices": [[0, 1]]}}
    return {
        "name": "bench-sweep",
        "seed": 0,
        "task": {**task, "n_test": 1024},
        "model": {"name": model, "width": WIDTH, "depth": DEPTH, "param": "sp"},
        "train": {"optimizer": "sgd", "batch_size": BATCH, "steps": steps, "eval_every": 100, "loss": loss}
        | {"compile": compile},
        "sweep": {"grid": {"train.lr": np.geomspace(1e-3, 0.3, 16).round(6).tolist()}, "seeds": seeds},
    }


def hidden_layers(model: str) -> int:
    """The w x w layers: depth - 1 of an MLP's, one per residual block of a ResMLP's."""
    return DEPTH if model == "resmlp" else DEPTH - 1


def train_flops(runs: int, steps: int, model: str = "mlp") -> float:
    """Forward 2*B*(d*w + hidden*w^2 + w) multiply-adds per step; backward twice that."""
    per_step = 2 * BATCH * (D * WIDTH + hidden_layers(model) * WIDTH * WIDTH + WIDTH)
    return 3 * per_step * steps * runs


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def mm_peak(n: int = 1024, repeats: int = 20, device: str = "cpu") -> float:
    """GFLOP/s of float32 torch.mm on the device (all threads), best of a few."""
    if torch.device(device).type == "cuda":
        n, repeats = 8192, 20
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(3):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b)
        _sync(device)
        best = min(best, (time.perf_counter() - t0) / repeats)
    return 2 * n**3 / best / 1e9


def handwritten(steps: int, seeds: int = 4, device: str = "cpu", model: str = "mlp") -> float:
    """Wall seconds of the bare stacked training of the sweep's 64 models (see the docstring)."""
    lrs = torch.tensor(np.geomspace(1e-3, 0.3, 16).round(6).tolist() * seeds, device=device).view(-1, 1, 1)
    members = lrs.shape[0]
    gens = [torch.Generator().manual_seed(1000 + e) for e in range(members)]
    dims = [D] + [WIDTH] * (hidden_layers(model) + 1) + [1]
    weights = [
        torch.stack([torch.randn(i, o, generator=g) / i**0.5 for g in gens]).to(device).requires_grad_()
        for i, o in zip(dims[:-1], dims[1:])
    ]
    biases = [torch.zeros(members, 1, o, device=device, requires_grad=True) for o in dims[1:]]
    test_x = torch.randn(members, 1024, D, device=device)
    dgens = [torch.Generator(device=device).manual_seed(2000 + s) for s in range(seeds)]
    rates = members // seeds  # member e: learning rate e % rates, seed e // rates

    def forward(x):
        h = x
        for l, (w, b) in enumerate(zip(weights, biases)):
            h = torch.baddbmm(b, h, w)
            h = h.relu() if l < DEPTH else h
        return h

    def residual(x):  # read-in, blocks h + W relu(h), read-out of relu(h)
        h = torch.baddbmm(biases[0], x, weights[0])
        for w, b in zip(weights[1:-1], biases[1:-1]):
            h = h + torch.baddbmm(b, h.relu(), w)
        return torch.baddbmm(biases[-1], h.relu(), weights[-1])

    forward = residual if model == "resmlp" else forward

    _sync(device)
    start = time.perf_counter()
    for t in range(steps + 1):
        if t % 100 == 0:
            with torch.no_grad():
                (forward(test_x) - test_x[..., :1] * test_x[..., 1:2]).pow(2).mean((1, 2))
        if t == steps:
            break
        x = torch.stack([torch.randn(BATCH, D, generator=g, device=device) for g in dgens])
        y = (x[..., :1] * x[..., 1:2]).repeat_interleave(rates, dim=0)
        loss = (forward(x.repeat_interleave(rates, dim=0)) - y).pow(2).mean((1, 2))
        grads = torch.autograd.grad(loss.sum(), weights + biases)
        with torch.no_grad():
            for p, g in zip(weights + biases, grads):
                p.addcmul_(g, lrs, value=-1)
    _sync(device)
    return time.perf_counter() - start


def run(
    executor: str, steps: int, workers: int | None, seeds: int, device: str, loss: str, model: str = "mlp"
) -> tuple[float, dict]:
    compiled = executor == "compiled"  # the ensemble with train.compile: true
    plain = executor == "autograd"  # the ensemble with autograd's gradients
    executor = "ensemble" if compiled or plain else executor
    options = {"devices": [device]} if executor in ("serial", "ensemble") and device != "cpu" else {}
    with tempfile.TemporaryDirectory() as out:
        fused = loop_module.supports
        if plain:
            loop_module.supports = lambda model: False
        try:
            t0 = time.perf_counter()
            store = sweep(
                spec(steps, seeds, compiled, loss, model), out=out, executor=executor, workers=workers, **options
            )
            wall = time.perf_counter() - t0
        finally:
            loop_module.supports = fused
        runs = store.runs().set_index("run_id")
        store.close()
        assert (runs["status"] != "failed").all(), runs.loc[runs["status"] == "failed", "error"].iloc[0]
        return wall, runs["test/mse"].to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--executors", default="serial,processes,ensemble,autograd,compiled,ray")
    parser.add_argument("--seeds", type=int, default=4, help="runs = 16 learning rates x seeds")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--loss", default="mse", choices=["mse", "hinge", "logistic"])
    parser.add_argument("--model", default="mlp", choices=["mlp", "resmlp"])
    args = parser.parse_args()
    executors = args.executors.split(",")
    if "ray" in executors:
        try:
            import ray  # noqa: F401
        except ImportError:
            executors.remove("ray")
    cores = os.cpu_count() or 1
    torch.optim.SGD([torch.zeros(1, requires_grad=True)])  # one-time imports (torch._dynamo), not timed
    walls, finals = {}, {}
    for name in executors:
        workers = cores if name in ("processes", "ray") else None
        walls[name], finals[name] = run(name, args.steps, workers, args.seeds, args.device, args.loss, args.model)
    hand = None  # the hand-written loop is the mean square's ceiling
    if args.loss == "mse":
        hand = min(handwritten(args.steps, args.seeds, args.device, args.model) for _ in range(2))  # best of two
    peak = mm_peak(device=args.device)
    n_runs = len(finals[executors[0]])
    flops = train_flops(n_runs, args.steps, args.model)
    print(
        f"{n_runs} runs x {args.steps} steps, {args.model}, d={D}, width={WIDTH}, depth={DEPTH}, batch={BATCH}, "
        f"{cores} cores, device {args.device}, loss {args.loss}"
    )
    print(f"{'executor':<10} {'wall s':>8} {'serial/x':>9} {'GFLOP/s':>8} {'of peak':>8}")
    for name, wall in walls.items():
        gflops = flops / wall / 1e9
        print(f"{name:<10} {wall:8.2f} {walls.get('serial', wall) / wall:9.2f} {gflops:8.1f} {gflops / peak:8.1%}")
    if hand is not None:
        gflops = flops / hand / 1e9
        print(
            f"{'handwritten':<10} {hand:8.2f} {walls.get('serial', hand) / hand:9.2f} {gflops:8.1f} "
            f"{gflops / peak:8.1%}   (bare batched-matmul loop, the eager ceiling)"
        )
    print(f"torch.mm peak: {peak:.1f} GFLOP/s")
    figures = {f"{k}_s": round(v, 3) for k, v in walls.items()}
    if hand is not None:
        figures["handwritten_s"] = round(hand, 3)
    if "ensemble" in walls:
        ens = walls["ensemble"]
        figures["peak_fraction"] = round(flops / ens / 1e9 / peak, 4)
        figures["ensemble_gflops"] = round(flops / ens / 1e9, 2)
        if "serial" in walls:
            figures["ensemble_over_serial"] = round(walls["serial"] / ens, 3)
            diff = max(
                abs(finals["serial"][r] - finals["ensemble"][r]) / abs(finals["serial"][r])
                for r in finals["serial"]
                if np.isfinite(finals["serial"][r])
            )
            figures["max_rel_diff_final_test_mse"] = float(f"{diff:.3g}")
        if hand is not None:
            figures["ensemble_over_handwritten"] = round(hand / ens, 3)
            figures["handwritten_peak_fraction"] = round(flops / hand / 1e9 / peak, 4)
        if "autograd" in walls:  # the same sweep with autograd's gradients
            figures["fused_over_autograd"] = round(walls["autograd"] / ens, 3)
            figures["fused_equals_autograd"] = all(
                a == b or (np.isnan(a) and np.isnan(b))
                for a, b in ((finals["autograd"][r], finals["ensemble"][r]) for r in finals["ensemble"])
            )
        if "compiled" in walls:  # the ensemble with train.compile: true (compile time included)
            comp = walls["compiled"]
            if hand is not None:
                figures["compiled_over_handwritten"] = round(hand / comp, 3)
            figures["compiled_peak_fraction"] = round(flops / comp / 1e9 / peak, 4)
            figures["compiled_over_ensemble"] = round(ens / comp, 3)
        if "processes" in walls:
            figures["ensemble_over_processes"] = round(walls["processes"] / ens, 3)
    if "ray" in walls and "processes" in walls:
        figures["ray_over_processes"] = round(walls["ray"] / walls["processes"], 3)
    figures["mm_peak_gflops"] = round(peak, 1)
    figures["runs"] = n_runs
    figures["device"] = args.device
    figures["loss"] = args.loss
    figures["model"] = args.model
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
