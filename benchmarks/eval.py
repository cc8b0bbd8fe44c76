"""Evaluation of a 10^6-point set: learnlab's ``evaluate`` vs the best chunked plain-PyTorch forward.

Two cases, both d = 30 Gaussian inputs with the README tour's Hermite target x0^2 x3, the set of
``--points`` (10^6) fresh points that ``eval_sets: [large]`` evaluates, metrics mse and linf:

* tour: the README tour's ``nn.Sequential(Linear(30, 512), ReLU, Linear(512, 1))``, one member,
  as ``learnlab.train`` wraps it;
* stack16: a stack of 16 learnlab MLPs (width 512, depth 1) sharing the set (an lr sweep).

Side by side in one process, interleaved, best of ``--rounds``:

* learnlab: ``learnlab.train._evaluation.evaluate`` on the members' sources as the training loop
  builds them (after its first call, which draws the set once; that call is timed separately);
* floor: the same network(s) on the pre-drawn set under ``torch.no_grad()``, in chunks of 512 ..
  8,192 rows, the fastest chunk size by median time (plain ``nn.Sequential`` calls; for the stack
  one ``baddbmm`` per layer on the shared chunk expanded to 16 members), forward only, no metrics.
  Each ratio compares best with best over the same number of rounds: the best of every chunk's
  rounds together (15 tries against learnlab's 3) picked the luckiest of them on a noisy VM;
* unchunked: the tour's network on all points at once (the stack's would need 32 GB).

Goal: eval_over_floor <= 1.2 (the worse of the two cases). The last line is one JSON object.

    .venv/bin/python benchmarks/eval.py [--rounds 5] [--points 1000000] [--device cpu]
"""

from __future__ import annotations

from learnlab._cpu import tune_cpu

tune_cpu()  # OpenMP's spin and the allocator as the learnlab command has them, before torch loads OpenMP

import argparse
import json
import statistics
import time

import torch
from torch import nn

import learnlab
from learnlab.models import MLP
from learnlab.models._user import as_stack
from learnlab.train._eval_rows import chunk_rows, tuned_rows
from learnlab.train._evaluation import evaluate, streamed_source

D, WIDTH, MEMBERS = 30, 512, 16
METRICS = ["mse", "linf"]
FLOOR_CHUNKS = (512, 1024, 2048, 4096, 8192)


def timed(fn, device: torch.device) -> tuple[float, object]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def stack_floor(model: MLP, x: torch.Tensor, chunk: int) -> torch.Tensor:
    """The stack's forward by hand: h = relu(x W1 m1 + b1 m1b), out = h W2 m2 + b2 m2b, per chunk."""
    layers = []
    for l in range(model.depth + 1):
        w = model.weights[l] * getattr(model, f"mult_{l}").view(-1, 1, 1)
        b = model.biases[l] * getattr(model, f"bias_mult_{l}").view(-1, 1, 1)
        layers.append((w.detach(), b.detach()))
    last = None
    with torch.no_grad():
        for start in range(0, x.shape[0], chunk):
            h = x[start : start + chunk].expand(model.members, -1, -1)
            for l, (w, b) in enumerate(layers):
                h = torch.baddbmm(b, h, w)
                if l < model.depth:
                    h = h.relu_()
            last = h
    assert last is not None
    return last


def plain_floor(net: nn.Module, x: torch.Tensor, chunk: int) -> torch.Tensor:
    last = None
    with torch.no_grad():
        for start in range(0, x.shape[0], chunk):
            last = net(x[start : start + chunk])
    assert last is not None
    return last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--points", type=int, default=10**6)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    task = learnlab.make_task(
        {"inputs": {"name": "gaussian", "d": D}, "target": {"name": "hermite", "monomial": {0: 2, 3: 1}}}
    )
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(D, WIDTH), nn.ReLU(), nn.Linear(WIDTH, 1)).to(device)
    tour = as_stack(net)
    gens = [torch.Generator().manual_seed(s) for s in range(MEMBERS)]
    stack = MLP(D, WIDTH, 1, 1, generators=gens, device=device)

    def sources(members: int):
        return [streamed_source(task, args.points, 7, dtype=torch.float32, device=device) for _ in range(members)]

    tour_sources, stack_sources = sources(1), sources(MEMBERS)
    first = {
        "tour": timed(lambda: evaluate(tour, tour_sources, METRICS), device)[0],
        "stack16": timed(lambda: evaluate(stack, stack_sources, METRICS), device)[0],
    }
    x = tour_sources[0].materialized()[0]  # the set itself, drawn once
    methods = {
        ("tour", "learnlab"): lambda: evaluate(tour, tour_sources, METRICS),
        ("tour", "unchunked"): lambda: plain_floor(net, x, x.shape[0]),
        ("stack16", "learnlab"): lambda: evaluate(stack, stack_sources, METRICS),
    }
    for c in FLOOR_CHUNKS:
        methods[("tour", f"floor@{c}")] = lambda c=c: plain_floor(net, x, c)
        methods[("stack16", f"floor@{c}")] = lambda c=c: stack_floor(stack, x, c)
    for fn in methods.values():  # warm-up
        fn()
    times: dict[tuple[str, str], list[float]] = {k: [] for k in methods}
    for _ in range(args.rounds):
        for key, fn in methods.items():
            times[key].append(timed(fn, device)[0])
    best = {k: min(v) for k, v in times.items()}
    median = {k: statistics.median(v) for k, v in times.items()}
    # the floor's outputs agree with the model's (the stack's forward by hand is the same network)
    with torch.no_grad():
        probe = x[:1024].expand(MEMBERS, -1, -1)
        agreement = float((stack(probe) - stack_floor(stack, x[:1024], 1024)).abs().max())

    print(
        f"evaluation of {args.points:,} points, d = {D}, width {WIDTH}, metrics {METRICS}, device {device}, "
        f"threads {torch.get_num_threads()}, best of {args.rounds}; learnlab's rows per pass (default -> "
        f"tuned on the first evaluation): tour {chunk_rows(tour, 1, device)} -> {tuned_rows(tour, 1, device)}, "
        f"stack16 {chunk_rows(stack, MEMBERS, device)} -> {tuned_rows(stack, MEMBERS, device)}"
    )
    print(f"{'case':<9}{'method':<14}{'best s':>9}{'median s':>10}")
    figures: dict[str, dict] = {}
    for case in ("tour", "stack16"):
        floors = {k[1]: best[k] for k in best if k[0] == case and k[1].startswith("floor@")}
        floor_name = min(floors, key=lambda name: (median[(case, name)], floors[name]))  # the fastest chunk
        for key in sorted(k for k in methods if k[0] == case):
            mark = "  <- floor" if key[1] == floor_name else ""
            print(f"{case:<9}{key[1]:<14}{best[key]:>9.3f}{median[key]:>10.3f}{mark}")
        ours, floor = best[(case, "learnlab")], floors[floor_name]
        figures[case] = {
            "learnlab_s": round(ours, 4),
            "floor_s": round(floor, 4),
            "floor_chunk": int(floor_name.split("@")[1]),
            "eval_over_floor": round(ours / floor, 3),
            "median_eval_over_floor": round(median[(case, "learnlab")] / median[(case, floor_name)], 3),
            "first_eval_s": round(first[case], 4),
            "rows_per_pass": tuned_rows(tour, 1, device) if case == "tour" else tuned_rows(stack, MEMBERS, device),
        }
        if (case, "unchunked") in best:
            figures[case]["unchunked_s"] = round(best[(case, "unchunked")], 4)
            figures[case]["unchunked_over_learnlab"] = round(best[(case, "unchunked")] / ours, 3)
        print(f"{case:<9}learnlab / floor = {ours / floor:.3f}; first evaluation (draws the set): {first[case]:.3f} s")
    print(f"stack's forward by hand vs the model: max |difference| {agreement:.1e}")
    result = {
        "eval_over_floor": max(f["eval_over_floor"] for f in figures.values()),
        "cases": figures,
        "points": args.points,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "forward_agreement": agreement,
        "goals": {"eval_over_floor": 1.2},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
