"""Loss per learning rate: learnlab vs seed 004's deep-copy method vs the forward-pass floor.

MLP d = 200 -> 1024 -> 1024 -> 1 (1.26M parameters), SGD, step batch 256, eval batch 1024,
100 learning rates (log-spaced 1e-4 .. 1). Side by side in one process, interleaved, best
of ``--rounds`` (the least disturbed run on a shared machine; medians are printed too):

* deepcopy: seed 004's method (dscamiss/learning-rate-utils), rewritten here: one gradient,
  ``copy.deepcopy`` of the model's and optimizer's state dicts, then per learning rate set
  every group's lr, ``optimizer.step()``, evaluate, ``load_state_dict`` both back.
* learnlab: ``learnlab.lr.loss_per_learning_rate``.
* floor: 100 forward passes (with the loss) of the eval batch, which any method must do.

Goals: learnlab <= 1.15 x floor and >= 1.7 x faster than deepcopy. The last line printed is
one JSON object (``over_floor``, ``speedup_vs_deepcopy``, timings, agreement).

    .venv/bin/python benchmarks/lr_probe.py [--rounds 5] [--device cpu] [--threads N]
"""

from __future__ import annotations

from learnlab._cpu import tune_cpu

tune_cpu()  # OpenMP's spin and the allocator as the learnlab command has them, before torch loads OpenMP

import argparse
import copy
import json
import statistics
import time

import torch
from torch import nn

from learnlab.lr import loss_per_learning_rate

D, WIDTH, STEP_BATCH, EVAL_BATCH, N_LRS = 200, 1024, 256, 1024, 100


def build(device: str):
    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(D, WIDTH), nn.ReLU(), nn.Linear(WIDTH, WIDTH), nn.ReLU(), nn.Linear(WIDTH, 1))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) / p.shape[-1] ** 0.5)
    model = model.to(device)
    x = torch.randn(STEP_BATCH, D, generator=gen).to(device)
    y = torch.randn(STEP_BATCH, 1, generator=gen).to(device)
    ex = torch.randn(EVAL_BATCH, D, generator=gen).to(device)
    ey = torch.randn(EVAL_BATCH, 1, generator=gen).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, optimizer, (x, y, ex, ey)


def deepcopy_method(model, criterion, optimizer, x, y, ex, ey, lrs):
    """Seed 004's loop, evaluating on (ex, ey)."""
    optimizer.zero_grad()
    criterion(model(x), y).backward()
    model_state = copy.deepcopy(model.state_dict())
    optimizer_state = copy.deepcopy(optimizer.state_dict())
    training = model.training
    model.eval()
    losses = torch.zeros(len(lrs), dtype=torch.float64)
    for i, lr in enumerate(lrs):
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        with torch.no_grad():
            losses[i] = criterion(model(ex), ey).item()
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optimizer_state)
    model.train(training)
    return losses


def floor(model, criterion, ex, ey, n):
    with torch.no_grad():
        out = torch.stack([criterion(model(ex), ey) for _ in range(n)])
    return out.cpu()


def timed(fn, device):
    """(wall seconds, CPU seconds of this process, output)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, optimizer, (x, y, ex, ey) = build(args.device)
    criterion = nn.MSELoss()
    lrs = torch.logspace(-4, 0, N_LRS, dtype=torch.float64)
    methods = {
        "floor": lambda: floor(model, criterion, ex, ey, N_LRS),
        "deepcopy": lambda: deepcopy_method(model, criterion, optimizer, x, y, ex, ey, lrs.tolist()),
        "learnlab": lambda: loss_per_learning_rate(model, x, y, criterion, optimizer, lrs, eval_x=ex, eval_y=ey),
    }
    for fn in methods.values():  # warm-up
        fn()
    times = {name: [] for name in methods}
    cpu_times = {name: [] for name in methods}
    outputs = {}
    for _ in range(args.rounds):
        for name, fn in methods.items():
            seconds, cpu, outputs[name] = timed(fn, args.device)
            times[name].append(seconds)
            cpu_times[name].append(cpu)
    best = {name: min(t) for name, t in times.items()}
    median = {name: statistics.median(t) for name, t in times.items()}
    best_cpu = {name: min(t) for name, t in cpu_times.items()}
    ref, ours = outputs["deepcopy"], outputs["learnlab"]
    agreement = float(((ours - ref).abs() / ref.abs().clamp_min(1e-30)).max())
    print(
        f"loss per learning rate: MLP {D}->{WIDTH}->{WIDTH}->1, SGD, step batch {STEP_BATCH}, "
        f"eval batch {EVAL_BATCH}, {N_LRS} lrs, device {args.device}, threads {torch.get_num_threads()}, "
        f"best of {args.rounds}"
    )
    print(f"{'method':<10}{'best s':>10}{'median s':>10}{'x floor':>10}{'cpu s':>10}{'cpu x floor':>12}")
    for name in methods:
        print(
            f"{name:<10}{best[name]:>10.3f}{median[name]:>10.3f}{best[name] / best['floor']:>10.3f}"
            f"{best_cpu[name]:>10.3f}{best_cpu[name] / best_cpu['floor']:>12.3f}"
        )
    print(f"max relative difference learnlab vs deepcopy: {agreement:.2e}")
    result = {
        "over_floor": round(best["learnlab"] / best["floor"], 4),
        "speedup_vs_deepcopy": round(best["deepcopy"] / best["learnlab"], 4),
        "median_over_floor": round(median["learnlab"] / median["floor"], 4),
        "median_speedup_vs_deepcopy": round(median["deepcopy"] / median["learnlab"], 4),
        "cpu_over_floor": round(best_cpu["learnlab"] / best_cpu["floor"], 4),
        "cpu_speedup_vs_deepcopy": round(best_cpu["deepcopy"] / best_cpu["learnlab"], 4),
        "seconds": {k: round(v, 4) for k, v in best.items()},
        "cpu_seconds": {k: round(v, 4) for k, v in best_cpu.items()},
        "threads": torch.get_num_threads(),
        "max_relative_difference": agreement,
        "device": args.device,
        "goals": {"over_floor": 1.15, "speedup_vs_deepcopy": 1.7},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
