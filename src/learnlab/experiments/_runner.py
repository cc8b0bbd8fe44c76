"""Build and train one group of runs (a single run is a group of one)."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass

import torch

from learnlab.experiments._expand import derive_seed, run_id
from learnlab.experiments._spec import RunConfig
from learnlab.experiments._store import RunResult
from learnlab.models import MLP, build_optimizer
from learnlab.tasks import BatchStream, make_task
from learnlab.train import Member, ThresholdTracker, fit

__all__ = ["Built", "build_group", "build_run", "run_group", "resolve_device", "group_key"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda if available, else mps, else cpu; others are checked to exist."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise ValueError(f"device {device!r} is not available on this machine")
    return dev


def group_key(config: dict) -> str:
    """Runs with equal keys share every shape and can be trained as one stacked model."""
    import json

    model = {k: v for k, v in config["model"].items() if k not in ("param", "init_seed")}
    train = {k: config["train"][k] for k in ("batch_size", "steps", "eval_every", "log_every", "dtype",
                                             "device", "optimizer", "betas", "eps", "loss")}
    task = {"inputs": config["task"]["inputs"], "target": config["task"]["target"]["name"],
            "n_train": config["task"]["n_train"], "n_test": config["task"]["n_test"]}
    return json.dumps({"model": model, "train": train, "task": task}, sort_keys=True)


def run_group(configs: list[dict]) -> list[RunResult]:
    """Train runs sharing all shapes as one stacked model; never raises.

    A run that cannot be built or crashes is returned with status ``failed`` and
    the traceback, so a sweep goes on.
    """
    started = time.time()
    ids = [run_id(c) for c in configs]
    try:
        histories = _train(configs, ids)
    except Exception:  # noqa: BLE001 - recorded as the runs' outcome
        err = traceback.format_exc()
        return [RunResult(rid, "failed", error=err, started=started, finished=time.time()) for rid in ids]
    finished = time.time()
    results = []
    for rid, h in zip(ids, histories):
        metrics = [(s, name, v) for name, rows in h.metrics.items() for s, v in rows]
        results.append(RunResult(
            rid, h.status, error=h.reason, step=h.step, started=started, finished=finished,
            final=h.final, thresholds={repr(float(c)): s for c, s in h.thresholds.items()}, metrics=metrics,
        ))
    return results


@dataclass
class Built:
    """A group of runs ready to train: the stacked model, its optimizer, one Member per run."""

    runs: list[RunConfig]
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    members: list[Member]
    tasks: list


def build_group(configs: list[dict], ids: list[str] | None = None) -> Built:
    """Build the stacked model, optimizer, tasks and data streams of runs sharing all shapes.

    Every random draw comes from generators seeded by ``derive_seed(seed, run_id, role)``
    (roles ``init``, ``data``, ``test``), or ``model.init_seed`` for the initial draw.
    """
    ids = ids or [run_id(c) for c in configs]
    runs = [RunConfig.model_validate(c) for c in configs]
    first = runs[0]
    dtype, device = DTYPES[first.train.dtype], resolve_device(first.train.device)
    members, init_generators, tasks = [], [], []
    for rid, run in zip(ids, runs):
        task = make_task(run.task)
        tasks.append(task)
        init_seed = run.model.init_seed if run.model.init_seed is not None else derive_seed(run.seed, rid, "init")
        init_generators.append(torch.Generator().manual_seed(init_seed))
        data_gen = torch.Generator(device=device).manual_seed(derive_seed(run.seed, rid, "data"))
        test_gen = torch.Generator(device=device).manual_seed(derive_seed(run.seed, rid, "test"))
        members.append(Member(
            stream=BatchStream(task, run.train.batch_size, data_gen, dtype=dtype, device=device),
            test=task.test_sample(test_gen, dtype=dtype, device=device),
            tracker=ThresholdTracker(run.train.thresholds, run.train.ema),
            stop_at_thresholds=run.train.stop_at_thresholds,
        ))
    m = first.model
    model = MLP(
        tasks[0].d, m.width, m.depth, tasks[0].outputs, activation=m.activation, bias=m.bias,
        param=[r.model.parameterization_arg() for r in runs], base_width=m.base_width,
        generators=init_generators, dtype=dtype, device=device,
    )
    optimizer = build_optimizer(
        model, first.train.optimizer, lr=[r.train.lr for r in runs],
        momentum=[r.train.momentum for r in runs], weight_decay=[r.train.weight_decay for r in runs],
        betas=first.train.betas, eps=first.train.eps,
    )
    return Built(runs, model, optimizer, members, tasks)


def build_run(config: dict) -> Built:
    """Build one run (a group of one): ``built.model`` takes (batch, d) like any module."""
    return build_group([config])


def _train(configs: list[dict], ids: list[str]):
    built = build_group(configs, ids)
    t = built.runs[0].train
    return fit(built.model, built.optimizer, built.members,
               steps=t.steps, eval_every=t.eval_every, log_every=t.log_every)
