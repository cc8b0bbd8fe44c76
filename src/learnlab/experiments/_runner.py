"""Build and train one group of runs (a single run is a group of one)."""

from __future__ import annotations

import copy
import hashlib
import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from learnlab._callables import install
from learnlab._seeds import derive_seed
from learnlab.experiments._expand import run_id
from learnlab.experiments._spec import RunConfig
from learnlab.experiments._store import RunResult
from learnlab.models import build_model, build_optimizer
from learnlab.tasks import make_task
from learnlab.train import LoopSettings, Member, fit
from learnlab.train._checkpoint import Checkpointer
from learnlab.train._loggers import make_loggers
from learnlab.train._members import loop_settings, make_member
from learnlab.train._threads import step_threads

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
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' is not available on this machine")
    return dev


# Config keys that may differ between members of one stacked model.
MEMBER_KEYS = {
    "seed": None,
    "model": ("param", "init_seed", "gamma"),
    "train": (
        "lr",
        "momentum",
        "weight_decay",
        "betas",
        "eps",
        "thresholds",
        "threshold_metric",
        "relative_thresholds",
        "ema",
        "stop_at_thresholds",
        "diverge_factor",
        "checkpoint_every",
        "save_final",
        "loggers",
    ),
    "task": ("noise", "target.seed"),  # a dotted key is nested: the seed of a teacher or index target
}


def group_key(config: dict) -> str:
    """Runs with equal keys share every shape and can be trained as one stacked model."""
    shared = {k: v for k, v in config.items() if k not in MEMBER_KEYS or MEMBER_KEYS[k] is not None}
    for section, keys in MEMBER_KEYS.items():
        if keys is None or section not in shared:
            continue
        shared[section] = copy.deepcopy(shared[section])
        for key in keys:
            *path, last = key.split(".")
            node = shared[section]
            for part in path:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.pop(last, None)
    return json.dumps(shared, sort_keys=True)


@dataclass
class Built:
    """A group of runs ready to train: stacked model, optimizer, one Member per run, shared settings."""

    runs: list[RunConfig]
    ids: list[str]
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    members: list[Member]
    tasks: list
    settings: LoopSettings


def build_group(configs: list[dict], ids: list[str] | None = None, device: str | None = None) -> Built:
    """Build the stacked model, optimizer, tasks, data streams and eval sets of runs sharing all shapes.

    Every random draw comes from generators seeded by ``derive_seed(seed, run_id, role)``
    (roles ``init``, ``data``, ``test``, ``large``), or ``model.init_seed`` for the initial draw.
    ``device`` (from ``--devices``) overrides ``train.device``.
    """
    ids = ids or [run_id(c) for c in configs]
    runs = [RunConfig.model_validate(c) for c in configs]
    first = runs[0]
    dtype, device = DTYPES[first.train.dtype], resolve_device(device or first.train.device)
    members, init_generators, tasks, cache = [], [], [], {}
    for rid, run in zip(ids, runs):
        key = json.dumps(run.task.model_dump(mode="json"), sort_keys=True)
        task = cache[key] if key in cache else cache.setdefault(key, make_task(run.task))  # shared targets
        tasks.append(task)
        seed = run.model.init_seed if run.model.init_seed is not None else derive_seed(run.seed, rid, "init")
        init_generators.append(torch.Generator().manual_seed(seed))
        members.append(
            make_member(
                task, run.train, lambda role, r=run, i=rid: derive_seed(r.seed, i, role), dtype=dtype, device=device
            )
        )
    model = build_model(
        [r.model for r in runs], tasks[0].d, tasks[0].outputs, generators=init_generators, dtype=dtype, device=device
    )
    t = first.train
    optimizer = build_optimizer(
        model,
        t.optimizer,
        lr=[r.train.lr for r in runs],
        momentum=[r.train.momentum for r in runs],
        weight_decay=[r.train.weight_decay for r in runs],
        betas=[tuple(r.train.betas) for r in runs],
        eps=[r.train.eps for r in runs],
    )
    sample = members[0].stream.sample  # the fixed training set of an offline task (or None)
    settings = loop_settings(t, None if sample is None else sample[0].shape[0])
    return Built(runs, ids, model, optimizer, members, tasks, settings)


def build_run(config: dict) -> Built:
    """Build one run (a group of one): ``built.model`` takes (batch, d) like any module."""
    return build_group([config])


def run_group(
    configs: list[dict], out: str | Path | None = None, callables: dict | None = None, device: str | None = None
) -> list[RunResult]:
    """Train runs sharing all shapes as one stacked model; never raises.

    Args:
        configs: resolved run configs (one group).
        out: the sweep's output folder, for checkpoints, artifacts and loggers (optional).
        callables: cloudpickled notebook callables the configs reference (from the driver).
        device: run on this device instead of ``train.device`` (the executors' ``--devices``).

    A run that cannot be built or crashes is returned with status ``failed`` and the
    traceback, so a sweep goes on.
    """
    started = time.time()
    ids = [run_id(c) for c in configs]
    loggers = []
    try:
        install(callables)
        built = build_group(configs, ids, device)
        out = Path(out) if out is not None else None
        for member, rid, cfg in zip(built.members, ids, configs):
            member.history.sinks = make_loggers(cfg["train"]["loggers"], out, rid, cfg)
            loggers += member.history.sinks
        checkpoint = _checkpointer(built, out)
        with step_threads(built.model, built.runs[0].train.batch_size) as on_step:
            histories = fit(
                built.model, built.optimizer, built.members, built.settings, on_step=on_step, checkpoint=checkpoint
            )
        artifacts = _save_outputs(built, out)
        if checkpoint is not None:
            checkpoint.remove()
    except Exception:  # noqa: BLE001 - recorded as the runs' outcome
        err = traceback.format_exc()
        return [RunResult(rid, "failed", error=err, started=started, finished=time.time()) for rid in ids]
    finally:
        for logger in loggers:
            logger.close()
    finished = time.time()
    return [
        RunResult(
            rid,
            h.status,
            error=h.reason,
            step=h.step,
            started=started,
            finished=finished,
            final=h.final,
            thresholds={repr(float(c)): s for c, s in h.thresholds.items()},
            metrics=[(s, name, v) for name, rows in h.metrics.items() for s, v in rows],
            artifacts=artifacts.get(rid),
        )
        for rid, h in zip(ids, histories)
    ]


def _checkpointer(built: Built, out: Path | None) -> Checkpointer | None:
    every = [r.train.checkpoint_every for r in built.runs if r.train.checkpoint_every]
    if out is None or not every:
        return None
    name = hashlib.sha256(",".join(sorted(built.ids)).encode()).hexdigest()[:16]
    return Checkpointer(out / "checkpoints" / f"group-{name}.pt", min(every))


def _save_outputs(built: Built, out: Path | None) -> dict[str, str]:
    """Probe tensors to artifacts/<run_id>.pt, final weights to checkpoints/<run_id>.pt if asked."""
    paths = {}
    if out is None:
        return paths
    for rid, member in zip(built.ids, built.members):
        if member.final_state is not None:  # train.save_final: this member's slice of the state_dict
            path = out / "checkpoints" / f"{rid}.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(member.final_state, path)
        if member.artifacts:
            path = out / "artifacts" / f"{rid}.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({k: [(s, v) for s, v in rows] for k, rows in member.artifacts.items()}, path)
            paths[rid] = str(path.relative_to(out))
    return paths
