"""How fast are tasks generated, next to a training step?

For every input x target pair that fits together (d = 200; power_law with cutoff_mode
40000; sine is 1-d so it runs at d = 1) this prints samples/s (batches of 4096) and the
ratio of generating one step's batch (256 samples) to one SGD step of a width-1024,
depth-3 MLP at that batch (d -> 1024 -> 1024 -> 1024 -> 1): what generation adds to each
step of training. Goal: every ratio <= 0.05 (``max_gen_over_step``).

On the CPU the power-law rows are also timed with the compiled trie evaluator switched off (the
matrix-product plan that GPUs run), side by side: ``plan_over_kernel``.

Last, the same for ``torch.randn(batch, 200)`` alone: no Gaussian input at d = 200 can be
drawn faster than that on the device, so it bounds what the goal can mean there.

Usage: python benchmarks/tasks.py [--device cpu|cuda] [--repeats 11]
The last line is one JSON object with the figures (key ``max_gen_over_step``).
"""

from __future__ import annotations

from learnlab._cpu import tune_cpu

tune_cpu()  # OpenMP's spin and the allocator as the learnlab command has them, before torch loads OpenMP

import argparse
import json
import statistics
import time

import torch

import learnlab.tasks._polynomial as polynomial
from learnlab.models import MLP, build_optimizer
from learnlab.tasks import make_task
from learnlab.tasks._polynomial_kernel import available

D, BATCH, STEP_BATCH = 200, 4096, 256
INPUTS = {
    "gaussian": {"name": "gaussian", "d": D},
    "power_law_gaussian": {"name": "power_law_gaussian", "d": D, "alpha": 2.0, "offset": 6},
    "hypercube": {"name": "hypercube", "d": D},
    "sphere": {"name": "sphere", "d": D},
    "box": {"name": "box", "d": D},
}
TARGETS = {
    "parity": {"name": "parity", "indices": [[0, 1, 2]]},
    "staircase": {"name": "staircase", "degree": 8},
    "hermite": {
        "name": "hermite",
        "terms": [{"monomial": {0: 2, 3: 1}, "coef": 0.6}, {"monomial": {1: 5}, "coef": 0.8}],
    },
    "single_index": {"name": "single_index", "coefficients": [0, 0, 0.5, 0.5, 0.5, 0.5]},
    "multi_index": {"name": "multi_index", "r": 4, "link": "product"},
    "teacher": {"name": "teacher", "widths": [32, 32, 32, 32, 32], "seed": 4},
    "sine": {"name": "sine", "f": 5},
    "power_law": {"name": "power_law", "cutoff_mode": 40000},
}


def _fits(inputs: str, target: str) -> bool:
    if target in ("parity", "staircase"):
        return inputs == "hypercube"
    if target == "power_law":
        return inputs in ("gaussian", "power_law_gaussian")
    if target == "sine":
        return inputs == "box"
    return True


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def reference_step(device):
    """One SGD step (forward, backward, update) of the reference MLP at batch 256, as a closure."""
    gen = torch.Generator().manual_seed(0)
    model = MLP(D, 1024, 3, 1, generators=[gen], device=device)
    opt = build_optimizer(model, "sgd", lr=0.01)
    x = torch.randn(1, STEP_BATCH, D, device=device)
    y = torch.randn(1, STEP_BATCH, 1, device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        (model(x) - y).pow(2).mean().backward()
        opt.step()

    return step


def _timed(fn, device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def gen_over_step(generate, step, repeats: int, device) -> tuple[float, float]:
    """(median generation seconds, median of generation / step time) with the two timed
    back to back in every repeat, so a machine whose load drifts affects both alike."""
    generate(), step()  # warm-up: compiles index tensors, caches weights on the device
    pairs = [(_timed(generate, device), _timed(step, device)) for _ in range(repeats)]
    return statistics.median(g for g, _ in pairs), statistics.median(g / s for g, s in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=11)  # pairs per row: the median of 11 rides out a noisy VM
    args = parser.parse_args()
    device = torch.device(args.device)
    step = reference_step(device)
    step_s = statistics.median(_timed(step, device) for _ in range(args.repeats + 1))
    rows = []
    for iname, inputs in INPUTS.items():
        for tname, target in TARGETS.items():
            if not _fits(iname, tname):
                continue
            section = {"inputs": {**inputs, "d": 1} if tname == "sine" else inputs, "target": target}
            task = make_task(section)
            gen = torch.Generator(device=device).manual_seed(0)
            repeats = 3 if tname == "power_law" and device.type == "cpu" else args.repeats
            seconds, _ = gen_over_step(
                lambda task=task, gen=gen: task.sample(BATCH, gen, device=device), step, repeats, device
            )
            step_gen, ratio = gen_over_step(
                lambda task=task, gen=gen: task.sample(STEP_BATCH, gen, device=device), step, args.repeats, device
            )
            plan = None
            if tname == "power_law" and polynomial.KERNEL and available() and device.type == "cpu":
                polynomial.KERNEL = False  # the matrix-product plan, side by side
                plan = gen_over_step(
                    lambda task=task, gen=gen: task.sample(STEP_BATCH, gen, device=device), step, args.repeats, device
                )
                polynomial.KERNEL = True
            rows.append(
                {
                    "plan_step_gen_ms": None if plan is None else 1e3 * plan[0],
                    "inputs": iname,
                    "target": tname,
                    "d": task.d,
                    "samples_per_s": BATCH / seconds,
                    "gen_ms": 1e3 * seconds,
                    "step_gen_ms": 1e3 * step_gen,
                    "gen_over_step": ratio,
                }
            )
    print(
        f"device {device}, threads {torch.get_num_threads()}; samples/s and gen ms at batch {BATCH}; "
        f"gen/step: {STEP_BATCH} samples vs the reference step (MLP 1024 x 3, batch {STEP_BATCH}): "
        f"{1e3 * step_s:.2f} ms"
    )
    print(f"{'inputs':<20}{'target':<14}{'d':>5}{'samples/s':>14}{'gen ms':>10}{'step gen ms':>12}{'gen/step':>10}")
    for r in rows:
        flag = "" if r["gen_over_step"] <= 0.05 else "  > 0.05"
        print(
            f"{r['inputs']:<20}{r['target']:<14}{r['d']:>5}{r['samples_per_s']:>14.3g}"
            f"{r['gen_ms']:>10.2f}{r['step_gen_ms']:>12.3f}{r['gen_over_step']:>10.4f}{flag}"
        )
    floor = gen_over_step(
        lambda: torch.randn(BATCH, D, generator=torch.Generator(device=device).manual_seed(0), device=device),
        step,
        args.repeats,
        device,
    )
    step_floor = gen_over_step(
        lambda: torch.randn(STEP_BATCH, D, generator=torch.Generator(device=device).manual_seed(0), device=device),
        step,
        args.repeats,
        device,
    )
    print(
        f"{'floor: randn alone':<34}{D:>5}{BATCH / floor[0]:>14.3g}{1e3 * floor[0]:>10.2f}"
        f"{1e3 * step_floor[0]:>12.3f}{step_floor[1]:>10.4f}"
    )
    for r in rows:
        if r["plan_step_gen_ms"] is not None:
            print(
                f"{r['inputs']}/{r['target']}: the compiled trie evaluator {r['step_gen_ms']:.3f} ms, "
                f"the matrix-product plan {r['plan_step_gen_ms']:.3f} ms per {STEP_BATCH} samples (with the inputs)"
            )
    worst = max(rows, key=lambda r: r["gen_over_step"])
    print(
        json.dumps(
            {
                "benchmark": "tasks",
                "device": str(device),
                "threads": torch.get_num_threads(),
                "batch": BATCH,
                "step_batch": STEP_BATCH,
                "d": D,
                "step_ms": 1e3 * step_s,
                "max_gen_over_step": worst["gen_over_step"],
                "worst": f"{worst['inputs']}/{worst['target']}",
                "randn_floor_over_step": round(step_floor[1], 5),
                "rows": {f"{r['inputs']}/{r['target']}": round(r["gen_over_step"], 5) for r in rows},
                "plan_over_kernel": {
                    f"{r['inputs']}/{r['target']}": round(r["plan_step_gen_ms"] / r["step_gen_ms"], 3)
                    for r in rows
                    if r["plan_step_gen_ms"] is not None
                },
            }
        )
    )


if __name__ == "__main__":
    main()
