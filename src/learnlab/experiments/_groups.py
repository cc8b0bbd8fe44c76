"""Ensemble groups: runs that share every shape are trained together as one stacked model.

Runs whose configs differ only in fields declared ``per_member`` (learning rate,
optimizer hyperparameters, seeds, parameterization, thresholds, probes, ...; see
:func:`learnlab._spec_base.member_fields`) land in one group. A group is capped by
``max_members`` and by a memory budget estimated from the validated config, and large
groups are split so that every worker of a pool gets work. Runs of equal data (task and
data seed) are put next to each other first, so that they share their data in a group.
"""

from __future__ import annotations

import functools
import json
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from learnlab._spec_base import member_fields
from learnlab.experiments._expand import Run
from learnlab.experiments._facts import PlanFacts
from learnlab.experiments._spec import RunConfig

__all__ = [
    "form_groups",
    "batch_groups",
    "group_key",
    "member_bytes",
    "member_memory",
    "memory_problems",
    "machine_memory",
    "member_paths",
    "DEFAULT_MAX_MEMBERS",
    "DEFAULT_MEMORY_BUDGET",
]

DEFAULT_MAX_MEMBERS = 64
DEFAULT_MEMORY_BUDGET = 2 * 2**30  # bytes per group


@functools.cache
def member_paths() -> tuple[str, ...]:
    """Dotted paths of the run config's per-member fields (``train.lr``, ``task.target.seed``)."""
    return tuple(member_fields(RunConfig))


@functools.cache
def _member_path_parts() -> list[tuple[str, ...]]:
    return [tuple(p.split(".")) for p in member_paths()]


def group_key(config: dict) -> str:
    """Runs with equal keys share every shape and can be trained as one stacked model."""
    return json.dumps(_without(config, _member_path_parts()), sort_keys=True)


def _without(node: dict, paths: list[tuple[str, ...]]) -> dict:
    """A copy of ``node`` without the given paths (only the dicts along them are copied)."""
    out = dict(node)
    below: dict[str, list[tuple[str, ...]]] = {}
    for path in paths:
        if len(path) == 1:
            out.pop(path[0], None)
        else:
            below.setdefault(path[0], []).append(path[1:])
    for key, rest in below.items():
        if isinstance(out.get(key), dict):
            out[key] = _without(out[key], rest)
    return out


def member_bytes(run: RunConfig, facts: PlanFacts | None = None) -> int:
    """Rough bytes one member needs: parameters x 4 (weights, grads, two optimizer moments),
    activations of a batch (kept for backward), its fixed data and an evaluation chunk.

    Read off the validated config: an MLP's d x width x depth, a CNN's convolutions over
    its image, a user model's own parameter count (``facts`` builds it once).
    """
    return sum(n for n, _, _ in member_memory(run, facts))


def member_memory(run: RunConfig, facts: PlanFacts | None = None) -> list[tuple[int, str, dict[str, Any]]]:
    """:func:`member_bytes` by part: (bytes, what, {config key: value} that set its size)."""
    m, t, task = run.model, run.train, run.task
    size = 8 if t.dtype == "float64" else 4
    d = _input_dim(task)
    outputs = _outputs(task)
    d_key = {"task.inputs.d": d} if getattr(task, "inputs", None) is not None else {"task.dataset": task.dataset}
    shape: dict[str, Any] = {"model.width": m.width, "model.depth": m.depth}
    if m.user:
        facts = facts if facts is not None else PlanFacts()
        params = max(1, facts.user_model(m.model_dump(mode="json"), task.model_dump(mode="json"), t.dtype).size)
        features = max(1, int(math.sqrt(params)))  # a width-like size for its activations
        activations = 3 * t.batch_size * features * 3
        shape = {"model": "a user model"}
    elif m.name == "cnn":
        channels, height, width = m.image_shape or (1, 1, d)
        k2 = m.kernel_size**2
        params = channels * k2 * m.width + (m.depth - 1) * m.width * m.width * k2 + m.width * outputs
        params += m.depth * m.width + outputs
        activations = 3 * t.batch_size * m.width * height * width * m.depth  # every conv's map, kept for backward
        shape |= {"model.kernel_size": m.kernel_size, "model.image_shape": m.image_shape}
    else:  # an MLP, or a residual MLP whose hidden layers are its depth * block_depth branch layers (+ read-in)
        hidden = m.n_layers - 1
        params = d * m.width + (hidden - 1) * m.width * m.width + m.width * outputs + hidden * m.width + outputs
        activations = 3 * t.batch_size * m.width * m.n_layers
        if m.name == "resmlp":
            shape["model.block_depth"] = m.block_depth
    n_test = task.n_test or 10_000
    data = (n_test + (task.n_train or 0)) * (d + outputs)
    eval_chunk = 2 * 4096 * max(m.width, 1) if not m.user else 0
    parts = [
        (size * 4 * params, "parameters (weights, gradients, two optimizer moments)", {**shape, **d_key}),
        (size * activations, "activations of a batch", {"train.batch_size": t.batch_size, **shape}),
        (
            size * data,
            "the fixed training and test sets",
            {"task.n_train": task.n_train, "task.n_test": n_test, **d_key},
        ),
        (size * eval_chunk, "an evaluation chunk", {"model.width": m.width}),
    ]
    if "grid" in t.eval_sets:  # held whole: grid_points ** d points
        parts.append(
            (size * t.grid_points**d * (d + outputs), "the grid eval set", {"train.grid_points": t.grid_points})
        )
    return parts


def memory_problems(run: RunConfig, available: int, facts: PlanFacts | None = None) -> list[tuple[str, str]]:
    """A spec problem, naming the key that makes it big, if one run needs more than ``available`` bytes."""
    parts = member_memory(run, facts)
    total = sum(n for n, _, _ in parts)
    if total <= available:
        return []
    n, what, keys = max(parts, key=lambda part: part[0])
    key = _dominant(keys)
    others = ", ".join(f"{k}={v}" for k, v in keys.items() if k != key and v is not None)
    return [
        (
            key,
            f"one run needs ~{_gib(total)} ({_gib(n)} of it for {what}, with {others or 'the rest of the spec'}); "
            f"this machine has {_gib(available)}: lower {key} (or what goes with it)",
        )
    ]


_TYPICAL = {"model.width": 256, "model.depth": 2, "task.inputs.d": 100, "train.batch_size": 64, "task.n_train": 10_000}
_TYPICAL |= {"task.n_test": 10_000, "model.kernel_size": 3, "train.grid_points": 1001}


def _dominant(keys: dict[str, Any]) -> str:
    """The key whose value is furthest above a typical one (the one to lower)."""
    numeric = {k: v for k, v in keys.items() if isinstance(v, int) and k in _TYPICAL}
    if not numeric:
        return next(iter(keys))
    return max(numeric, key=lambda k: numeric[k] / _TYPICAL[k])


def _gib(n: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n / 2**10:.3g} KiB"


def machine_memory() -> int:
    """Bytes of memory this process may use: physical memory, or a lower cgroup limit."""
    import os

    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as fh:
                limit = fh.read().strip()
        except OSError:
            continue
        if limit.isdigit():
            total = min(total, int(limit))
    return total


def _input_dim(task) -> int:
    inputs = getattr(task, "inputs", None)
    if inputs is not None:
        return int(inputs.d)
    from learnlab.tasks import DATASETS

    return int(math.prod(DATASETS[task.dataset].shape))


def _outputs(task) -> int:
    target = getattr(task, "target", None)
    if target is not None:
        return int(getattr(target, "outputs", None) or 1)
    from learnlab.tasks import DATASETS

    groups = 2 if task.binarize else len(task.classes) if task.classes else DATASETS[task.dataset].classes
    return 1 if groups == 2 else groups


def form_groups(
    runs: Sequence[Run | dict],
    *,
    max_members: int = DEFAULT_MAX_MEMBERS,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    workers: int = 1,
    groupable: Callable[[Run], bool] | None = None,
    facts: PlanFacts | None = None,
) -> list[list[Run]]:
    """Partition runs into groups that can be stacked, in the order of first appearance.

    Args:
        runs: the runs (or resolved config dicts).
        max_members: largest group (1 = every run alone).
        memory_budget: bytes a group may use (estimated by :func:`member_bytes`).
        workers: the executor's parallelism; big groups are split into at least this many.
        groupable: predicate on a run; runs for which it is False run alone.
        facts: the plan's facts (user models are built once).

    Returns:
        Groups (lists of runs); every run appears in exactly one group.
    """
    buckets: dict[str, list[Run]] = defaultdict(list)
    order: list[str] = []
    for run in map(Run.of, runs):
        key = group_key(run.config) if (groupable is None or groupable(run)) else f"alone:{len(order)}"
        if run.extends is not None:  # runs continuing shorter runs stack with those resuming at the same step
            key += f"@{run.extends[1]}"
        if key not in buckets:
            order.append(key)
        buckets[key].append(run)
    groups = []
    for key in order:
        bucket = buckets[key]
        cap = max(1, min(max_members, memory_budget // max(1, member_bytes(bucket[0].validated(), facts))))
        if cap > 1:  # stable: the plan's order among runs of equal data
            bucket = sorted(bucket, key=_data_identity)
        n_groups = max(math.ceil(len(bucket) / cap), min(workers, len(bucket)))
        size = math.ceil(len(bucket) / n_groups)
        groups += [bucket[i : i + size] for i in range(0, len(bucket), size)]
    return groups


def _data_identity(run: Run) -> str:
    """What a run's training data depend on: its task section and data seed (``task.data_seed``, else
    its seed). Runs with the same identity (an lr grid at one seed) put in one group share one data
    stream and one copy of each evaluation set, drawn once per step for all of them, so a bucket is
    ordered by it before it is cut into groups (a 100-lr x 100-seed sweep cut in plan order put 64
    seeds, 64 streams, in every group)."""
    task = run.config.get("task", {})
    seed = task.get("data_seed") if isinstance(task, dict) else None
    return json.dumps([task, run.config.get("seed") if seed is None else seed], sort_keys=True, default=str)


def batch_groups(groups: list[list], runs_per_task: int) -> list[list[list]]:
    """Consecutive groups packed into tasks of about ``runs_per_task`` runs (a group is never split):
    a Ray task's or a SLURM array task's groups, trained one after another."""
    tasks: list[list[list]] = []
    current: list[list] = []
    size = 0
    for group in groups:
        current.append(group)
        size += len(group)
        if size >= runs_per_task:
            tasks.append(current)
            current, size = [], 0
    if current:
        tasks.append(current)
    return tasks
