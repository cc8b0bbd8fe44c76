"""Eigenlearning learning curves: learnlab's vectorised solver vs a naive per-n loop.

The curve is 50 values of n (log-spaced, 10 .. 5,000) for three spectra:

* hypercube d = 20: exp(2 <x, x'> / d) per Walsh degree (21 eigenspaces, 2^20 modes, from
  ``hypercube_spectrum``), target power 0.6^k per degree;
* power law, 10,000 modes (the size of a Nystrom spectrum of 10,000 samples) and 100,000
  modes: lambda_i = i^-1.5, v_i^2 = i^-1.2;

each at ridge 0 and 1e-3. Side by side in one process, interleaved, best of ``--repeats``:

* learnlab: ``learnlab.theory.eigenlearning(eigenvalues, n=ns, ...)``, all n at once.
* loop: what one writes by hand: for each n, ``scipy.optimize.brentq`` on
  sum_i m_i lambda_i / (lambda_i + kappa) + ridge / kappa = n, then L_i, E_0, test and train
  MSE with numpy sums over the modes.

Both compute the same equations; the table reports the speed-up (loop / learnlab) and the
largest relative difference of kappa and of the test MSE between the two.

Usage: python benchmarks/theory_eigenlearning.py [--repeats 5]
The last line is one JSON object (``speedup`` per row, ``min_speedup``, ``max_relative_difference``).
"""

from __future__ import annotations

from learnlab._cpu import tune_cpu

tune_cpu()  # OpenMP's spin and the allocator as the learnlab command has them, before torch loads OpenMP

import argparse
import json
import time

import numpy as np
import torch

from learnlab.theory import eigenlearning, hypercube_spectrum

NS = np.logspace(1, np.log10(5000), 50)


def spectra(device: str = "cpu") -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """name -> (eigenvalues, multiplicities, target power per entry)."""
    d = 20
    cube = hypercube_spectrum(lambda a, b: torch.exp(2 * a @ b.T / d), d, device=device)
    power = 0.6 ** np.arange(d + 1)
    out = {"hypercube d=20": (cube.eigenvalues, cube.multiplicities, power / power.sum())}
    for modes in (10_000, 100_000):
        i = np.arange(1, modes + 1, dtype=np.float64)
        out[f"power law {modes:,}"] = (i**-1.5, np.ones(modes), i**-1.2)
    return out


def loop(lam, mult, power, ns, ridge):
    """The per-n loop: (kappa, test MSE, train MSE) per n, each by its own root find."""
    try:
        from scipy.optimize import brentq
    except ImportError as exc:  # a dev dependency
        raise SystemExit("this benchmark's reference loop needs scipy: pip install -e '.[dev]'") from exc
    out = []
    for n in ns:

        def excess(kappa, n=n):
            return (mult * lam / (lam + kappa)).sum() + ridge / kappa - n

        hi = ((mult * lam).sum() + ridge) / n  # excess(hi) <= 0
        lo = hi
        while excess(lo) <= 0:
            lo /= 10
        kappa = brentq(excess, lo, hi, xtol=1e-300, rtol=1e-15, maxiter=500)
        learn = lam / (lam + kappa)
        e0 = n / (n - (mult * learn**2).sum())
        test = e0 * ((1 - learn) ** 2 * power).sum()
        out.append((kappa, test, (ridge / (n * kappa)) ** 2 * test))
    return np.array(out)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def measure(lam, mult, power, ridge: float, repeats: int) -> dict:
    """Best-of-``repeats`` seconds of both methods, interleaved, and how far apart their results are."""
    methods = {
        "learnlab": lambda: eigenlearning(lam, None, NS, ridge=ridge, multiplicity=mult, power=power),
        "loop": lambda: loop(lam, mult, power, NS, ridge),
    }
    for fn in methods.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in methods}
    outputs = {}
    for _ in range(repeats):
        for key, fn in methods.items():
            seconds, outputs[key] = timed(fn)
            times[key].append(seconds)
    ours, ref = outputs["learnlab"], outputs["loop"]
    diff = max(float(np.abs(ours.kappa / ref[:, 0] - 1).max()), float(np.abs(ours.test_mse / ref[:, 1] - 1).max()))
    best = {k: min(v) for k, v in times.items()}
    return {
        "learnlab_ms": 1e3 * best["learnlab"],
        "loop_ms": 1e3 * best["loop"],
        "speedup": best["loop"] / best["learnlab"],
        "difference": diff,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--device",
        default="cpu",
        help="where the kernels are evaluated for the spectra (eigenlearning itself is numpy)",
    )
    args = parser.parse_args()
    rows = []
    for name, (lam, mult, power) in spectra(args.device).items():
        for ridge in (0.0, 1e-3):
            row = measure(lam, mult, power, ridge, args.repeats)
            rows.append({"spectrum": name, "entries": len(lam), "ridge": ridge, **row})
    print(
        f"eigenlearning curve: {len(NS)} values of n from {NS[0]:.0f} to {NS[-1]:.0f}, best of {args.repeats}, "
        f"spectra on {args.device}"
    )
    print(f"{'spectrum':<18}{'entries':>9}{'ridge':>8}{'learnlab ms':>13}{'loop ms':>10}{'speedup':>9}{'rel diff':>10}")
    for r in rows:
        print(
            f"{r['spectrum']:<18}{r['entries']:>9}{r['ridge']:>8.0e}{r['learnlab_ms']:>13.2f}{r['loop_ms']:>10.2f}"
            f"{r['speedup']:>9.1f}{r['difference']:>10.1e}"
        )
    print(
        json.dumps(
            {
                "benchmark": "theory_eigenlearning",
                "device": args.device,
                "n_values": len(NS),
                "speedup": {f"{r['spectrum']}/ridge={r['ridge']:g}": round(r["speedup"], 3) for r in rows},
                "min_speedup": round(min(r["speedup"] for r in rows), 3),
                "max_relative_difference": max(r["difference"] for r in rows),
                "seconds": {
                    f"{r['spectrum']}/ridge={r['ridge']:g}": [
                        round(r["learnlab_ms"] / 1e3, 5),
                        round(r["loop_ms"] / 1e3, 5),
                    ]
                    for r in rows
                },
            }
        )
    )


if __name__ == "__main__":
    main()
