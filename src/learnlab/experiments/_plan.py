"""A plan: the validated spec, its runs, their groups and the executor that will run them.

``plan()`` does every check and every decision once; ``learnlab run --dry-run`` prints the
plan, and :func:`learnlab.sweep` executes that same object (nothing is validated or
scheduled again), so what the dry run shows is what runs.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from learnlab.experiments._devices import resolve_device
from learnlab.experiments._errors import SpecError
from learnlab.experiments._executors import EXECUTORS
from learnlab.experiments._expand import Run, expand
from learnlab.experiments._facts import PlanFacts
from learnlab.experiments._groups import DEFAULT_MAX_MEMBERS, DEFAULT_MEMORY_BUDGET, form_groups
from learnlab.experiments._spec import Spec, load_spec
from learnlab.experiments._store import DONE_STATUSES, Store, db_path

__all__ = ["Plan", "plan", "EXECUTOR_NAMES"]

EXECUTOR_NAMES = ("auto", *EXECUTORS)


@dataclass
class Plan:
    """What a sweep will do.

    Attributes:
        spec: the validated spec.
        runs: every run of the sweep, in order.
        groups: the runs to train, in groups trained as one stacked model (runs already
            done in ``out`` when the plan was made are not in them).
        executor: ``serial``, ``processes``, ``ensemble`` or ``ray`` (never ``auto``).
        reason: why this executor, or why nothing stacks (empty if there is nothing to say).
        source: the spec's file, if it came from one.
        out: the output folder the plan was made for (None: given to ``sweep``).
        done: ids of runs already finished (or diverged) in ``out``.
        workers: processes (or Ray CPUs) of a pool executor.
        options: executor options (``devices``, ``address`` for ray).
        facts: user models and dataset sizes found while planning.
    """

    spec: Spec
    runs: list[Run]
    groups: list[list[Run]]
    executor: str
    reason: str = ""
    source: str | None = None
    out: Path | None = None
    done: frozenset[str] = frozenset()
    workers: int | None = None
    options: dict = field(default_factory=dict)
    facts: PlanFacts = field(default_factory=PlanFacts, repr=False)

    @property
    def todo(self) -> list[Run]:
        """The runs the groups hold, in group order."""
        return [run for group in self.groups for run in group]

    def group_of(self) -> dict[str, int]:
        """run id -> index of its group (runs already done have none)."""
        return {run.run_id: k for k, group in enumerate(self.groups) for run in group}

    def summary(self) -> str:
        """One line: runs, how many are done, groups and their sizes, the executor and why."""
        sizes = [len(g) for g in self.groups]
        shown = ", ".join(map(str, sizes[:20])) + (", ..." if len(sizes) > 20 else "")
        done = f", {len(self.done)} already done" if self.done else ""
        groups = f"{len(self.todo)} to run in {len(sizes)} groups (sizes {shown})" if sizes else "nothing to run"
        why = f" ({self.reason})" if self.reason else ""
        return f"{len(self.runs)} runs{done}; {groups}; executor: {self.executor}{why}"

    def __str__(self) -> str:
        return f"Plan of {self.spec.name!r}: {self.summary()}"


def plan(
    spec: str | Path | dict | Spec,
    overrides: list[str] | None = None,
    *,
    out: str | Path | None = None,
    executor: str = "auto",
    workers: int | None = None,
    max_members: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    devices: list[str] | None = None,
    address: str | None = None,
    **executor_options,
) -> Plan:
    """Validate a spec with overrides, expand it, and decide how its runs will be executed.

    Args:
        spec: YAML path, dict or :class:`Spec`.
        overrides: ``key=value`` strings with dotted keys.
        out: the output folder it will run into: runs already finished there are left out
            of the groups (and counted in ``Plan.done``).
        executor: ``auto`` (default: ``ensemble`` when some runs share all shapes, else
            ``processes``), ``serial``, ``processes``, ``ensemble`` or ``ray``.
        workers: processes (or Ray CPUs) for the pool executors (default: cores).
        max_members: largest stacked group (default 64 for ``ensemble``, 1 otherwise).
        memory_budget: bytes a stacked group may use.
        devices: spread groups over these devices (``["cuda:0", "cuda:1"]``); overrides
            ``train.device``.
        address: a Ray cluster to join (``executor="ray"`` only).
        **executor_options: passed to the executor's constructor (for ``ray``: ``num_cpus``,
            ``num_gpus``, ``runs_per_task``, ``max_retries``).

    Raises:
        SpecError: listing every problem of the spec (nothing is written).
        ValueError: an unknown executor, a device this machine lacks, a Ray address that does
            not answer, or options that do not fit the executor.
        ImportError: ``executor="ray"`` without Ray installed.
    """
    if executor not in EXECUTOR_NAMES:
        raise ValueError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTOR_NAMES)}")
    if address is not None and executor != "ray":
        raise ValueError(f"a Ray address needs executor 'ray' (got {executor!r})")
    if workers is not None and workers < 1 or max_members is not None and max_members < 1:
        raise ValueError(f"workers and max_members must be >= 1; got {workers}, {max_members}")
    source = None if isinstance(spec, (dict, Spec)) else str(spec)
    facts = PlanFacts()
    validated, raw = load_spec(spec, overrides)
    runs = expand(validated, raw, source=source, facts=facts)
    if executor != "ray":  # a Ray cluster has devices of its own
        problems = []
        for dev in sorted({r.config["train"]["device"] for r in runs}):
            try:
                resolve_device(dev)
            except ValueError as exc:
                problems.append(("train.device", str(exc)))
        if problems:
            raise SpecError(problems, source=source)
    for dev in devices or []:
        try:
            resolve_device(dev)
        except ValueError as exc:
            raise ValueError(f"devices: {exc}") from None
    if address is not None:
        from learnlab.experiments._ray import check_reachable

        check_reachable(address)  # within seconds: ValueError naming the address, ImportError without Ray
    done = _done(runs, out)
    todo = [r for r in runs if r.run_id not in done]
    chosen, groups, reason = _schedule(todo, executor, workers, max_members, memory_budget, facts)
    options = {k: v for k, v in (("devices", devices), ("address", address)) if v} | executor_options
    return Plan(
        validated,
        runs,
        groups,
        chosen,
        reason,
        source,
        Path(out) if out is not None else None,
        frozenset(done),
        workers,
        options,
        facts,
    )


def _done(runs: list[Run], out: str | Path | None) -> set[str]:
    """Ids of runs whose results are already in ``out``."""
    if out is None or not db_path(out).is_file():
        return set()
    with Store(out) as store:
        status = store.statuses()
    return {r.run_id for r in runs if status.get(r.run_id) in DONE_STATUSES}


def _schedule(
    runs: list[Run],
    executor: str,
    workers: int | None,
    max_members: int | None,
    memory_budget: int,
    facts: PlanFacts,
) -> tuple[str, list[list[Run]], str]:
    """(executor, groups, reason): ``auto`` picks ``ensemble`` when some runs share all shapes
    (stacking beats a process pool for them, see benchmarks/sweep.py), else ``processes``;
    ``serial`` and the pools train every run alone unless ``max_members`` > 1."""
    stackable = _Stackable(facts)
    reason = ""
    if executor == "auto":
        trial = form_groups(
            runs,
            max_members=max_members or DEFAULT_MAX_MEMBERS,
            memory_budget=memory_budget,
            groupable=stackable,
            facts=facts,
        )
        if any(len(g) > 1 for g in trial):
            executor, reason = "ensemble", "auto: runs share all shapes, so they train stacked in one process"
        elif stackable.rejected:
            executor = "processes"
            reason = "auto: the model cannot be stacked (see the warning), so a process pool runs them"
        else:
            executor, reason = "processes", "auto: no two runs share all shapes, so a process pool runs them"
    if max_members is None:
        max_members = DEFAULT_MAX_MEMBERS if executor == "ensemble" else 1
    pool = (workers or os.cpu_count() or 1) if executor in ("processes", "ray") else 1
    groups = form_groups(
        runs,
        max_members=max_members,
        memory_budget=memory_budget,
        workers=pool,
        groupable=stackable if max_members > 1 else None,
        facts=facts,
    )
    if executor == "ensemble" and len(groups) > 1 and all(len(g) == 1 for g in groups) and not reason:
        if max_members == 1:
            why = "max_members is 1"
        elif stackable.rejected:
            why = "the model cannot be stacked (see the warning)"
        else:
            why = "no two runs share all shapes"
        reason = f"{why}: each run is a group of one"
    return executor, groups, reason


class _Stackable:
    """A ``groupable`` predicate: False for runs of a user model that ``torch.func`` cannot
    stack (one warning per model, naming the reason); True otherwise."""

    def __init__(self, facts: PlanFacts):
        self.facts, self.rejected = facts, False
        self._warned: set[str] = set()

    def __call__(self, run: Run) -> bool:
        config = run.validated()
        if not config.model.user:
            return True
        model, task = config.model.model_dump(mode="json"), config.task.model_dump(mode="json")
        problem = self.facts.user_model(model, task, config.train.dtype).stack_problem
        if problem is None:
            return True
        self.rejected = True
        if config.model.name not in self._warned:
            self._warned.add(config.model.name)
            warnings.warn(
                f"model {config.model.name}: torch.func cannot stack it ({problem}); its runs train one at a "
                "time (serially, or spread over the pool's workers)",
                UserWarning,
                stacklevel=4,
            )
        return False
