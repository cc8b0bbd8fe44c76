"""How much does learnlab's training loop cost over a bare PyTorch loop?

Both sides train the same model on the same kind of data: a learnlab MLP
d = 200 -> 1024 -> 1024 -> 1024 -> 1 (standard parameterization, float32; lr 0.002, stable at this width) on online
Gaussian inputs with target y = h_1(x_0) h_1(x_1) = x_0 x_1, batch 256, 300 SGD steps,
the test MSE on 2048 points at steps 0, 100, 200 and 300, the train loss read every 10
steps. The learnlab side is ``learnlab.train(model, task, ...)`` (task sampling, the
loop, its per-member optimizer, evaluation, logging); the bare side is the loop a user
would write with ``torch.randn``, ``torch.optim.SGD`` and ``F.mse_loss``.

Each measurement runs in a fresh process (``--worker``) that first does a short
untimed warm-up (one-time imports and allocations), then times the whole run. Sides
alternate for ``--repeats`` rounds and medians of wall time are compared
(``loop_over_bare``); the ratio of process CPU times is reported too
(``loop_over_bare_cpu``: with ``--threads 1`` it is robust to other load on the machine). Throughput counts matmul
FLOPs only: a training step does 2 B fan_in fan_out per layer forward, the same for the
weight gradient, and again for the input gradient of every layer but the first; an
evaluation does 2 n_test fan_in fan_out per layer. ``peak_fraction`` divides the
learnlab loop's GFLOP/s by the best GFLOP/s of a float32 ``torch.mm`` (n = 2048) measured
in a fresh process on the same device (``peak_fraction_cpu``: the same per CPU second,
meaningful with ``--threads 1``).

Usage: python benchmarks/train_step.py [--device cpu|cuda] [--repeats 3] [--threads N]
The last line is one JSON object (keys ``loop_over_bare``, ``peak_fraction``, ...).
Goal: loop_over_bare <= 1.05.
"""

from __future__ import annotations

from learnlab._cpu import tune_cpu

tune_cpu()  # OpenMP's spin and the allocator as the learnlab command has them, before torch loads OpenMP

import argparse
import json
import math
import statistics
import subprocess
import sys
import time

D, WIDTH, DEPTH, BATCH, STEPS, EVAL_EVERY, LOG_EVERY, N_TEST, LR = 200, 1024, 3, 256, 300, 100, 10, 2048, 0.002
TASK = {
    "inputs": {"name": "gaussian", "d": D},
    "target": {"name": "hermite", "monomial": {0: 1, 1: 1}},
    "n_test": N_TEST,
}


def matmul_flops(steps: int = STEPS, evals: int = STEPS // EVAL_EVERY + 1) -> float:
    dims = [D] + [WIDTH] * DEPTH + [1]
    layers = list(zip(dims[:-1], dims[1:]))
    step = sum(2 * BATCH * fi * fo * (2 if l == 0 else 3) for l, (fi, fo) in enumerate(layers))
    evaluation = sum(2 * N_TEST * fi * fo for fi, fo in layers)
    return steps * step + evals * evaluation


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _model(device):
    import torch

    from learnlab.models import MLP

    return MLP(D, WIDTH, DEPTH, 1, generators=[torch.Generator().manual_seed(0)], device=device)


def run_learnlab(device, steps: int) -> None:
    import learnlab

    history = learnlab.train(
        _model(device),
        TASK,
        optimizer="sgd",
        lr=LR,
        steps=steps,
        batch_size=BATCH,
        eval_every=EVAL_EVERY,
        log_every=LOG_EVERY,
        progress=False,
    )
    if history.status != "finished" or history.step != steps:  # a diverged run would time less work
        raise RuntimeError(f"the learnlab run did not finish: {history.status} at {history.step} ({history.reason})")


def run_bare(device, steps: int) -> None:
    import torch
    import torch.nn.functional as F

    model = _model(device)
    gen = torch.Generator(device=device).manual_seed(1)
    test_x = torch.randn(N_TEST, D, generator=gen, device=device)
    test_y = (test_x[:, 0] * test_x[:, 1]).unsqueeze(1)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    log = []
    for t in range(steps + 1):
        if t % EVAL_EVERY == 0 or t == steps:
            with torch.no_grad():
                log.append(F.mse_loss(model(test_x), test_y).item())
        if t == steps:
            break
        x = torch.randn(BATCH, D, generator=gen, device=device)
        y = (x[:, 0] * x[:, 1]).unsqueeze(1)
        loss = F.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if t % LOG_EVERY == 0:
            log.append(loss.item())
    if not all(math.isfinite(v) for v in log):  # NaNs would time a different computation
        raise RuntimeError("the bare run diverged")


def measure_peak(device) -> dict:
    """Best GFLOP/s of a float32 (2048 x 2048) @ (2048 x 2048) torch.mm, per wall second and per CPU second."""
    import torch

    n = 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    reps = 50 if device.type == "cuda" else 3
    torch.mm(a, b)
    best = {"gflops": 0.0, "cpu_gflops": 0.0}
    for _ in range(5):
        _sync(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(reps):
            torch.mm(a, b)
        _sync(device)
        flops = 2 * n**3 * reps / 1e9
        best["gflops"] = max(best["gflops"], flops / (time.perf_counter() - start))
        best["cpu_gflops"] = max(best["cpu_gflops"], flops / (time.process_time() - cpu_start))
    return best


def worker(side: str, device_name: str, threads: int | None) -> dict:
    import torch

    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device_name)
    if side == "peak":
        return measure_peak(device)
    run = run_learnlab if side == "learnlab" else run_bare
    run(device, 5)  # warm-up: imports (torch.optim pulls in torch._dynamo), allocator, kernels
    _sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    run(device, STEPS)
    _sync(device)
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start}


def _spawn(side: str, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", side, "--device", args.device]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _alternate(args) -> tuple[dict, dict]:
    """Wall and CPU seconds of each side, ``args.repeats`` fresh processes each, alternating."""
    wall, cpu = {"learnlab": [], "bare": []}, {"learnlab": [], "bare": []}
    for r in range(args.repeats):
        for side in ("bare", "learnlab") if r % 2 else ("learnlab", "bare"):
            got = _spawn(side, args)
            wall[side].append(got["seconds"])
            cpu[side].append(got["cpu_seconds"])
            print(
                f"repeat {r + 1}/{args.repeats}  {side:8s} wall {got['seconds']:8.3f} s  "
                f"cpu {got['cpu_seconds']:8.3f} s",
                flush=True,
            )
    return wall, cpu


def _summary(args, wall: dict, cpu: dict, peaks: dict) -> dict:
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    gflop = matmul_flops() / 1e9
    return {
        "device": args.device,
        "threads": args.threads,
        "steps": STEPS,
        "repeats": args.repeats,
        "loop_over_bare": med["learnlab"] / med["bare"],
        "peak_fraction": gflop / med["learnlab"] / peaks["gflops"],
        "loop_over_bare_cpu": med_cpu["learnlab"] / med_cpu["bare"],
        "peak_fraction_cpu": gflop / med_cpu["learnlab"] / peaks["cpu_gflops"],
        "bare_peak_fraction": gflop / med["bare"] / peaks["gflops"],
        "learnlab_s": med["learnlab"],
        "bare_s": med["bare"],
        "learnlab_cpu_s": med_cpu["learnlab"],
        "bare_cpu_s": med_cpu["bare"],
        "learnlab_times": wall["learnlab"],
        "bare_times": wall["bare"],
        "learnlab_cpu_times": cpu["learnlab"],
        "bare_cpu_times": cpu["bare"],
        "learnlab_gflops": gflop / med["learnlab"],
        "bare_gflops": gflop / med["bare"],
        "mm_peak_gflops": peaks["gflops"],
        "mm_peak_cpu_gflops": peaks["cpu_gflops"],
        "goal": 1.05,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process (default: torch's)")
    parser.add_argument("--worker", choices=["learnlab", "bare", "peak"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.device, args.threads)))
        return
    wall, cpu = _alternate(args)
    r = _summary(args, wall, cpu, _spawn("peak", args))
    print(
        f"learnlab loop {r['learnlab_s']:.3f} s, bare loop {r['bare_s']:.3f} s (wall, medians of {args.repeats}): "
        f"ratio {r['loop_over_bare']:.3f} (goal <= 1.05)"
    )
    print(
        f"process CPU time: learnlab {r['learnlab_cpu_s']:.3f} s, bare {r['bare_cpu_s']:.3f} s: "
        f"ratio {r['loop_over_bare_cpu']:.3f}"
    )
    print(
        f"matmul throughput {r['learnlab_gflops']:.1f} GFLOP/s = {r['peak_fraction']:.2f} of torch.mm's "
        f"{r['mm_peak_gflops']:.1f} GFLOP/s (bare loop: {r['bare_peak_fraction']:.2f}); per CPU second "
        f"{r['peak_fraction_cpu']:.2f} of torch.mm's"
    )
    print(json.dumps(r))


if __name__ == "__main__":
    main()
