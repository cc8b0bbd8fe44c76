"""How long should idle OpenMP threads spin? PyTorch's default, ``PASSIVE`` and learnlab's setting.

Each workload runs in a fresh process (OpenMP reads its settings when torch loads it), under:

* ``default``: nothing set (GNU OpenMP spins ~300,000 times before it sleeps);
* ``passive``: ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep at once);
* ``learnlab``: what ``learnlab._cpu.tune_cpu`` sets before torch is imported, as the
  ``learnlab`` command and every worker have it (on Linux ``GOMP_SPINCOUNT=1000``).

Workloads (2 intra-op threads each; the glibc allocator tuned in all, as in a run):

* ``evaluation``: learnlab's evaluation of 10^6 points through the README tour's network
  (d = 30 -> 512 -> 1, metrics mse and linf), median of 5 after one that draws the set;
* ``stack``: 300 SGD steps of a stack of 64 MLPs 20 -> 128 -> 128 -> 1 at batch 32;
* ``two stacks``: two ``stack`` processes at once, sharing the cores (the mean of their times).

The settings are interleaved, ``--rounds`` times, and the medians printed. ``default`` is left out
of ``two stacks`` unless ``--with-default-shared`` (it takes 10-40x as long there).

Usage: python benchmarks/openmp_wait.py [--rounds 3] [--with-default-shared] [--device cpu]
The last line is one JSON object (``learnlab_over_passive`` per workload: < 1 is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

SETTINGS = ("default", "passive", "learnlab")
OPENMP_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "LEARNLAB_TUNE_CPU")

WORKER = r"""
import os, statistics, sys, time
setting, workload = sys.argv[1], sys.argv[2]
if setting == "passive":
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
elif setting == "learnlab":
    from learnlab._cpu import tune_cpu
    tune_cpu()
import torch
from torch import nn
from learnlab._cpu import tune_allocator
tune_allocator()
torch.set_num_threads(2)
if workload == "evaluation":
    import learnlab
    from learnlab.models._user import as_stack
    from learnlab.train._evaluation import evaluate, streamed_source
    task = learnlab.make_task({"inputs": {"name": "gaussian", "d": 30},
                               "target": {"name": "hermite", "monomial": {0: 2, 3: 1}}})
    torch.manual_seed(0)
    net = as_stack(nn.Sequential(nn.Linear(30, 512), nn.ReLU(), nn.Linear(512, 1)))
    sources = [streamed_source(task, 10**6, 7, dtype=torch.float32, device="cpu")]
    evaluate(net, sources, ["mse", "linf"])
    times = []
    for _ in range(5):
        start = time.perf_counter()
        evaluate(net, sources, ["mse", "linf"])
        times.append(time.perf_counter() - start)
    print(statistics.median(times))
else:
    from learnlab.models import MLP, build_optimizer
    members = 64
    model = MLP(20, 128, 2, 1, generators=[torch.Generator().manual_seed(s) for s in range(members)])
    opt = build_optimizer(model, "sgd", lr=0.01)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(members, 32, 20, generator=g), torch.randn(members, 32, 1, generator=g)
    def step():
        opt.zero_grad(set_to_none=True)
        (model(x) - y).pow(2).mean().backward()
        opt.step()
    for _ in range(20):
        step()
    start = time.perf_counter()
    for _ in range(300):
        step()
    print(time.perf_counter() - start)
"""


def _launch(setting: str, workload: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in OPENMP_VARIABLES}
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, setting, workload], env=env, stdout=subprocess.PIPE, text=True
    )


def _seconds(procs: list[subprocess.Popen]) -> float:
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a worker failed: {[p.returncode for p in procs]}")
    return statistics.mean(float(o.strip().splitlines()[-1]) for o in outs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--with-default-shared", action="store_true")
    parser.add_argument("--device", default="cpu", choices=["cpu"], help="OpenMP's settings concern the CPU alone")
    args = parser.parse_args()
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for setting in SETTINGS:
            for workload in ("evaluation", "stack"):
                times.setdefault((workload, setting), []).append(_seconds([_launch(setting, workload)]))
            if setting != "default" or args.with_default_shared:
                pair = [_launch(setting, "stack"), _launch(setting, "stack")]
                times.setdefault(("two stacks", setting), []).append(_seconds(pair))
    median = {k: statistics.median(v) for k, v in times.items()}
    workloads = ("evaluation", "stack", "two stacks")
    print(
        f"device cpu: OpenMP wait settings, 2 threads per process, {os.cpu_count()} CPUs, "
        f"medians of {args.rounds} rounds (s)"
    )
    print(f"{'setting':<10}" + "".join(f"{w:>13}" for w in workloads))
    for setting in SETTINGS:
        cells = [f"{median[(w, setting)]:>13.3f}" if (w, setting) in median else f"{'-':>13}" for w in workloads]
        print(f"{setting:<10}" + "".join(cells))
    ratios = {w: round(median[(w, "learnlab")] / median[(w, "passive")], 3) for w in workloads}
    print("learnlab / passive: " + ", ".join(f"{w} {r}" for w, r in ratios.items()))
    figures = {f"{w}_{s}_s".replace(" ", "_"): round(v, 4) for (w, s), v in median.items()}
    result = {"benchmark": "openmp_wait", "device": "cpu", "rounds": args.rounds, "learnlab_over_passive": ratios}
    print(json.dumps({**result, **figures}))


if __name__ == "__main__":
    main()
