"""The driver: validate, expand, skip what is done, group, run the rest, commit each result."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from learnlab.experiments._errors import SpecError
from learnlab.experiments._executors import EXECUTORS, make_executor
from learnlab.experiments._expand import Run, expand
from learnlab.experiments._groups import DEFAULT_MAX_MEMBERS, DEFAULT_MEMORY_BUDGET, form_groups
from learnlab.experiments._runner import resolve_device
from learnlab.experiments._spec import Spec, load_spec
from learnlab.experiments._store import DONE_STATUSES, RunResult, Store, _db_path
from learnlab.experiments._user_models import user_model_facts
from learnlab.models._spec import MODEL_NAMES

__all__ = ["plan", "sweep", "Plan", "schedule"]


class Plan:
    """A validated spec expanded into runs."""

    def __init__(self, spec: Spec, runs: list[Run], source: str | None):
        self.spec, self.runs, self.source = spec, runs, source


def plan(spec: str | Path | dict | Spec, overrides: list[str] | None = None, *, check_devices: bool = True) -> Plan:
    """Validate a spec (file, dict or Spec) with overrides and expand it; SpecError on any problem.

    ``check_devices`` checks that every ``train.device`` exists on this machine (not
    wanted when a Ray cluster, with devices of its own, runs the sweep).
    """
    source = None if isinstance(spec, (dict, Spec)) else str(spec)
    validated, raw = load_spec(spec, overrides)
    runs = expand(validated, raw, source=source)
    problems = []
    for dev in sorted({r.config["train"]["device"] for r in runs}) if check_devices else []:
        try:
            resolve_device(dev)
        except ValueError as exc:
            problems.append(("train.device", str(exc)))
    if problems:
        raise SpecError(problems, source=source)
    return Plan(validated, runs, source)


@dataclass
class Schedule:
    """How a sweep will be executed: the executor chosen and the groups of runs."""

    executor: str
    groups: list[list[dict]]
    reason: str


def schedule(
    configs: list[dict],
    executor: str = "auto",
    *,
    workers: int | None = None,
    max_members: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> Schedule:
    """Choose the executor and form groups.

    ``serial`` and ``processes``/``ray`` train every run alone unless ``max_members`` > 1
    (then their workers train stacked groups); ``ensemble`` stacks compatible runs in this
    process; ``auto`` picks ``ensemble`` when some runs share all shapes (stacking is
    faster than a process pool for them, see benchmarks/sweep.py) and ``processes`` otherwise.
    """
    if executor not in ("auto", *EXECUTORS):
        raise ValueError(f"unknown executor {executor!r}; valid: auto, {', '.join(EXECUTORS)}")
    reason = ""
    stackable = _user_models_stackable()
    if executor == "auto":
        stacked = form_groups(
            configs, max_members=max_members or DEFAULT_MAX_MEMBERS, memory_budget=memory_budget, groupable=stackable
        )
        if any(len(g) > 1 for g in stacked):
            executor, reason = "ensemble", "auto: runs share all shapes, so they train stacked in one process"
        elif stackable.rejected:
            executor = "processes"
            reason = "auto: the model cannot be stacked (see the warning), so a process pool runs them"
        else:
            executor, reason = "processes", "auto: no two runs share all shapes, so a process pool runs them"
    if max_members is None:
        max_members = DEFAULT_MAX_MEMBERS if executor == "ensemble" else 1
    pool = workers or 1 if executor in ("processes", "ray") else 1
    if executor in ("processes", "ray") and workers is None:
        import os

        pool = os.cpu_count() or 1
    groups = form_groups(
        configs,
        max_members=max_members,
        memory_budget=memory_budget,
        workers=pool,
        groupable=stackable if max_members > 1 else None,
    )
    if executor == "ensemble" and all(len(g) == 1 for g in groups) and len(groups) > 1:
        if max_members == 1:
            why = "max_members is 1"
        elif stackable.rejected:
            why = "the model cannot be stacked (see the warning)"
        else:
            why = "no two runs share all shapes"
        reason = reason or f"{why}: each run is a group of one"
    return Schedule(executor, groups, reason)


def _user_models_stackable() -> Callable[[dict], bool]:
    """A ``groupable`` predicate: False for runs of a user model that ``torch.func`` cannot
    stack (with one warning per model naming the reason); True otherwise."""
    warned: set[str] = set()

    def stackable(config: dict) -> bool:
        model = config["model"]
        if model["name"] in MODEL_NAMES:
            return True
        problem = user_model_facts(model, config["task"], config["train"]["dtype"]).stack_problem
        if problem is not None:
            stackable.rejected = True
            if model["name"] not in warned:
                warned.add(model["name"])
                warnings.warn(
                    f"model {model['name']}: torch.func cannot stack it ({problem}); its runs train "
                    "one at a time (serially, or spread over the pool's workers)",
                    UserWarning,
                    stacklevel=3,
                )
        return problem is None

    stackable.rejected = False
    return stackable


def sweep(
    spec: str | Path | dict | Spec,
    overrides: list[str] | None = None,
    *,
    out: str | Path,
    executor: str = "auto",
    workers: int | None = None,
    max_members: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    on_result: Callable[[RunResult, int, int], None] | None = None,
    **executor_options,
) -> Store:
    """Run every run of a spec not yet done in ``out`` and return the store.

    Args:
        spec: YAML path, dict or :class:`Spec`.
        overrides: ``key=value`` strings.
        out: output folder; ``out/results.db`` is created or resumed.
        executor: ``auto`` (default), ``serial``, ``processes``, ``ensemble`` or ``ray``.
        workers: processes (or Ray CPUs) for the pool executors (default: cores).
        max_members: largest stacked group (default 64 for ``ensemble``, 1 otherwise).
        memory_budget: bytes a stacked group may use.
        on_result: called as (result, done, total) after each result is committed.
        **executor_options: passed to the executor: ``devices`` (a list such as
            ``["cuda:0", "cuda:1"]``; groups are spread over them), ``address`` for ``ray``.

    Raises:
        SpecError: before anything is written, if the spec is invalid.
    """
    p = plan(spec, overrides, check_devices=executor != "ray")  # a Ray cluster has its own devices
    for dev in executor_options.get("devices") or []:
        resolve_device(dev)  # ValueError before anything is written
    existing = Store(out) if _db_path(out).is_file() else None
    status = existing.statuses() if existing is not None else {}
    if existing is not None:
        existing.close()
    todo = [r for r in p.runs if status.get(r.run_id) not in DONE_STATUSES]
    plan_ = schedule(
        [r.config for r in todo], executor, workers=workers, max_members=max_members, memory_budget=memory_budget
    )
    ex = make_executor(plan_.executor, workers, out=Path(out), **executor_options)  # fails before writing
    store = Store(out, create=True)
    store.add_runs((r.run_id, p.spec.name, r.config) for r in p.runs)
    total, done = len(todo), 0
    outstanding = {r.run_id for r in todo}
    try:
        for results in ex.run(plan_.groups):
            for result in results:
                store.record(result)
                outstanding.discard(result.run_id)
                done += 1
                if on_result is not None:
                    on_result(result, done, total)
    except BaseException:
        store.set_status(sorted(outstanding), "interrupted", "the sweep was interrupted before this run finished")
        raise
    return store
