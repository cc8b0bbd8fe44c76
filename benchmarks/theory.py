"""Theory beside experiment: learnlab.theory next to the loops one would write by hand.

Section ``kernels``: the NNGP and NTK Gram matrices of n = 10,000 points (d = 10, inputs on the
sphere of radius sqrt(d)) for a depth-5 relu MLP (ntk row, torch init, biases, width 1024: the
constants), float64, by ``learnlab.theory.nngp`` / ``ntk`` with x2 = None (the symmetric Gram
matrix), side by side in one process with a naive per-pair Python loop: for each pair (i, j) the
same recursion in scalar ``math`` (the arc-cosine duals layer by layer), with the layer constants
written out from the model's ``Scaling``. The loop runs on a ``--sub`` x ``--sub`` subsample
(60 x 60 = 3,600 pairs); the table gives seconds per Gram entry of each (best of ``--rounds``,
learnlab's and the loop's alternating), the loop's time extrapolated to the full n x n, the ratio,
and the largest relative difference on the subsample.

Every section is a function returning (table lines, figures); the last line printed is one JSON
object {"device": ..., "threads": ..., "<section>": {figures}, ...}.

    .venv/bin/python benchmarks/theory.py [--n 10000] [--sub 60] [--rounds 2] [--device cpu|cuda]
    [--threads N] [--sections kernels]
"""

from __future__ import annotations

from learnlab._cpu import tune_cpu

tune_cpu()  # OpenMP's spin and the allocator as the learnlab command has them, before torch loads OpenMP

import argparse
import json
import math
import time
from collections.abc import Callable

import torch

from learnlab.models import MLP, scaling_of
from learnlab.theory import nngp, ntk

D, DEPTH, WIDTH = 10, 5, 1024
MODEL = {"width": WIDTH, "depth": DEPTH, "param": "ntk", "activation": "relu", "bias": True}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def layer_constants() -> list[tuple[float, float, float, float]]:
    """(sigma^2, sigma_b^2, g^2, g_b^2) per layer, written out from the model's Scaling (docs/theory.md)."""
    model = MLP(D, WIDTH, DEPTH, param="ntk")
    scaling = scaling_of(model)
    v_draw = 1 / 3  # torch init: U(-1, 1)
    out = []
    for slot in scaling.slots:
        m, s = float(scaling.weight_multiplier(slot)[0]), float(scaling.init_std(slot)[0])
        m_b, s_b = float(scaling.bias_multiplier(slot)[0]), float(scaling.bias_std(slot)[0])
        out.append((slot.fan_in * (m * s) ** 2 * v_draw, (m_b * s_b) ** 2 * v_draw, slot.fan_in * m * m, m_b * m_b))
    return out


def naive_kernel(layers, x1: list[list[float]], x2: list[list[float]], with_ntk: bool) -> list[list[float]]:
    """The NNGP (or the NTK), pair by pair, layer by layer, in plain Python (Cho & Saul 2009's
    arc-cosine duals)."""
    d = len(x1[0])
    out = [[0.0] * len(x2) for _ in x1]
    for i, a in enumerate(x1):
        for j, b in enumerate(x2):
            s0, sb0, g0, gb0 = layers[0]
            dot = sum(u * v for u, v in zip(a, b)) / d
            k11 = s0 * sum(u * u for u in a) / d + sb0
            k22 = s0 * sum(v * v for v in b) / d + sb0
            k12 = s0 * dot + sb0
            t12 = g0 * dot + gb0
            for sigma2, sigma2_b, g2, g2_b in layers[1:]:
                cos = max(-1.0, min(1.0, k12 / math.sqrt(k11 * k22)))
                theta = math.acos(cos)
                e_phi = math.sqrt(k11 * k22) * (math.sin(theta) + (math.pi - theta) * cos) / (2 * math.pi)
                if with_ntk:
                    t12 = g2 * e_phi + g2_b + sigma2 * (math.pi - theta) / (2 * math.pi) * t12
                k12 = sigma2 * e_phi + sigma2_b
                k11 = sigma2 * k11 / 2 + sigma2_b
                k22 = sigma2 * k22 / 2 + sigma2_b
            out[i][j] = t12 if with_ntk else k12
    return out


def timed(fn, device: torch.device):
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - start, out


def kernels(args, device: torch.device) -> tuple[list[str], dict]:
    """Section ``kernels``: learnlab's Gram matrices vs the naive per-pair loop (best of ``--rounds``)."""
    x = torch.randn(args.n, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = (x / x.norm(dim=1, keepdim=True) * D**0.5).to(device)
    sub, sub_list, layers = x[: args.sub], x[: args.sub].cpu().tolist(), layer_constants()
    figures: dict = {"n": args.n, "subsample": args.sub, "depth": DEPTH, "d": D, "rounds": args.rounds}
    lines = [
        f"kernels: NNGP and NTK Gram matrices, {args.n:,} x {args.n:,} points, d = {D}, depth-{DEPTH} relu MLP "
        f"(ntk row, biases), float64, device {device}, threads {torch.get_num_threads()}, best of {args.rounds}; "
        f"naive loop on {args.sub} x {args.sub}",
        f"{'kernel':<8}{'learnlab s':>12}{'us / entry':>12}{'naive us / entry':>18}{'naive s (extrap.)':>19}"
        f"{'speed-up':>11}{'max rel diff':>14}",
    ]
    for name, kernel in (("nngp", nngp), ("ntk", ntk)):
        kernel(MODEL, sub)  # warm-up
        seconds = naive_seconds = math.inf
        for _ in range(args.rounds):
            took, gram = timed(lambda kernel=kernel: kernel(MODEL, x), device)
            assert gram.shape == (args.n, args.n)
            del gram
            seconds = min(seconds, took)
            took, naive = timed(lambda ntk_=name == "ntk": naive_kernel(layers, sub_list, sub_list, ntk_), device)
            naive_seconds = min(naive_seconds, took)
        reference = torch.tensor(naive, dtype=torch.float64)
        diff = float(((kernel(MODEL, sub).cpu() - reference).abs() / reference.abs()).max())
        per_entry, naive_entry = seconds / args.n**2, naive_seconds / args.sub**2
        row = {
            "seconds": round(seconds, 4),
            "us_per_entry": round(per_entry * 1e6, 6),
            "naive_us_per_entry": round(naive_entry * 1e6, 3),
            "naive_extrapolated_seconds": round(naive_entry * args.n**2, 1),
            "speedup": round(naive_entry / per_entry, 1),
            "max_relative_difference": diff,
        }
        figures[name] = row
        lines.append(
            f"{name:<8}{seconds:>12.2f}{row['us_per_entry']:>12.4f}{row['naive_us_per_entry']:>18.2f}"
            f"{row['naive_extrapolated_seconds']:>19.0f}{row['speedup']:>11.0f}{diff:>14.1e}"
        )
    return lines, figures


SECTIONS: dict[str, Callable[[argparse.Namespace, torch.device], tuple[list[str], dict]]] = {"kernels": kernels}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="points of the Gram matrices")
    parser.add_argument("--sub", type=int, default=60, help="points of the naive loop's subsample")
    parser.add_argument("--rounds", type=int, default=2, help="best of this many timings")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    result: dict = {"device": str(device), "threads": torch.get_num_threads()}
    for name in args.sections.split(","):
        lines, figures = SECTIONS[name](args, device)
        print("\n".join(lines), flush=True)
        result[name] = figures
    print(json.dumps(result))


if __name__ == "__main__":
    main()
