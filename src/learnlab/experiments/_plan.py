"""A plan: the validated spec, its runs, their groups and the executor that will run them.

``plan()`` does every check and every decision once; ``learnlab run --dry-run`` prints the
plan, and :func:`learnlab.sweep` executes that same object (nothing is validated or
scheduled again), so what the dry run shows is what runs.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

from learnlab._devices import check_device
from learnlab._errors import SpecError
from learnlab._seeds import canonical_json
from learnlab.experiments._executors import EXECUTORS
from learnlab.experiments._expand import Run, expand
from learnlab.experiments._facts import PlanFacts
from learnlab.experiments._folder import StoreError, check_folder
from learnlab.experiments._groups import (
    DEFAULT_MAX_MEMBERS,
    DEFAULT_MEMORY_BUDGET,
    form_groups,
    group_key,
    machine_memory,
    memory_problems,
)
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
        executor: ``serial``, ``processes``, ``ensemble``, ``ray`` or ``slurm`` (never ``auto``).
        reason: why this executor, or why nothing stacks (empty if there is nothing to say).
        source: the spec's file, if it came from one.
        out: the output folder the plan was made for (None: given to ``sweep``).
        done: ids of runs already finished (or diverged) in ``out``.
        workers: processes (or Ray CPUs) of a pool executor.
        options: executor options (``devices``, ``address`` for ray).
        facts: user models and dataset sizes found while planning.
        copies: run id -> a shorter run of its config that ended early (diverged, or stopped
            at its thresholds): its result is this run's too (``extend``).
        from_scratch: run id -> why it does not extend a shorter run (``extend``).
        append: ``out`` may hold other runs than these (``append`` or ``extend``).
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
    copies: dict[str, str] = field(default_factory=dict)
    from_scratch: dict[str, str] = field(default_factory=dict)
    append: bool = False

    @property
    def extending(self) -> list[Run]:
        """The runs that continue a shorter run's saved state."""
        return [run for run in self.todo if run.extends is not None]

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
        if self.executor == "slurm" and self.groups:
            from learnlab.experiments._slurm import array_tasks

            tasks = len(array_tasks(self.groups, self.options.get("runs_per_job")))
            why += f"; as SLURM array tasks: {tasks} (a job's groups train one after another)"
        line = f"{len(self.runs)} runs{done}; {groups}; executor: {self.executor}{why}"
        return line + self.extension_summary()

    def extension_summary(self) -> str:
        """What --extend found: runs continuing shorter ones, copied, or run from scratch (and why)."""
        if not (self.extending or self.copies or self.from_scratch):
            return ""
        parts = [f"{len(self.extending)} continue a shorter run's saved state"]
        if self.copies:
            parts.append(f"{len(self.copies)} take the result of a shorter run that ended early")
        if self.from_scratch:
            reasons: dict[str, int] = {}
            for why in self.from_scratch.values():
                reasons[why] = reasons.get(why, 0) + 1
            parts.append("; ".join(f"{n} run from scratch: {why}" for why, n in reasons.items()))
        return "\nextend: " + "; ".join(parts)

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
    extend: bool = False,
    append: bool = False,
    slurm: dict | None = None,
    detach: bool = False,
    **executor_options,
) -> Plan:
    """Validate a spec with overrides, expand it, and decide how its runs will be executed.

    Args:
        spec: YAML path, dict or :class:`Spec`.
        overrides: ``key=value`` strings with dotted keys.
        out: the output folder it will run into: runs already finished there are left out
            of the groups (and counted in ``Plan.done``).
        executor: ``auto`` (default: ``ensemble`` when some runs share all shapes, else
            ``processes``; ``slurm`` when ``out`` holds SLURM jobs not yet collected), ``serial``,
            ``processes``, ``ensemble``, ``ray`` or ``slurm``.
        workers: processes (or Ray CPUs) for the pool executors (default: cores).
        max_members: largest stacked group (default 64 for ``ensemble`` and ``slurm``, 1 otherwise).
        memory_budget: bytes a stacked group may use.
        devices: spread groups over these devices (``["cuda:0", "cuda:1"]``); overrides
            ``train.device``.
        address: a Ray cluster to join (``executor="ray"`` only).
        slurm: what each SLURM job asks for (``executor="slurm"``; keys of a spec's
            ``sweep.slurm`` section, which these override: ``partition``, ``time``, ``cpus``,
            ``gpus``, ``mem``, ``qos``, ``account``, ``max_jobs``, ``runs_per_job``,
            ``max_requeues``, ``setup``, ``sbatch``).
        detach: submit the SLURM jobs and return; a later sweep of the same spec into the
            same ``out`` collects them (``auto`` then picks ``slurm`` by itself).
        extend: continue each run from a shorter run of the same config (differing only in
            ``train.steps``) finished in ``out`` with ``train.save_final`` (its saved state), so a
            longer run costs only its extra steps and equals one run from scratch; a shorter run
            that ended early (diverged, or stopped at its thresholds) already is the longer
            run's result. Runs with no such shorter run run from scratch (``Plan.from_scratch``
            says why). Extending adds runs to ``out``, so it implies ``append``.
        append: add this spec's runs to an ``out`` that holds other runs (another spec's, or
            this spec with other values). Without it such a folder is refused: a folder
            belongs to one spec, so that its summaries and figures are of one spec's runs.
        **executor_options: passed to the executor's constructor (for ``ray``: ``num_cpus``,
            ``num_gpus``, ``runs_per_task``, ``max_retries``).

    Raises:
        SpecError: listing every problem of the spec (nothing is written).
        StoreError: ``out`` is a file, holds a damaged store, or holds another spec's runs
            (without ``append``).
        ValueError: an unknown executor, a device this machine lacks, a Ray address that does
            not answer, no SLURM reachable or SLURM refusing the jobs' options (its own
            message), or options that do not fit the executor.
        ImportError: ``executor="ray"`` without Ray installed (``slurm`` without submitit).
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
    available = machine_memory()
    too_big = memory_problems(validated, available, facts)  # the base alone, before expanding
    if too_big:
        raise SpecError(too_big, source=source)
    runs = expand(validated, raw, source=source, facts=facts)
    too_big = _memory_problems(runs, available, facts)
    if too_big:
        raise SpecError(too_big, source=source)
    slurm_given = bool(slurm) or detach
    done = _done(runs, out, append or extend)
    collecting = executor == "auto" and out is not None and _slurm_jobs_open(Path(out), runs, done)
    if collecting:
        executor = "slurm"  # jobs of an earlier --detach (or of a stopped driver) are collected first
    if slurm_given and executor != "slurm":
        raise ValueError(f"SLURM options (slurm=..., --slurm-*, --detach) need executor 'slurm' (got {executor!r})")
    if executor not in ("ray", "slurm"):  # a cluster has devices of its own
        problems = []
        for dev in sorted({r.config["train"]["device"] for r in runs}):
            try:
                check_device(dev)
            except ValueError as exc:
                problems.append(("train.device", str(exc)))
        if problems:
            raise SpecError(problems, source=source)
    for dev in devices or []:
        try:
            check_device(dev)
        except ValueError as exc:
            raise ValueError(f"devices: {exc}") from None
    if address is not None:
        from learnlab.experiments._ray import check_reachable

        check_reachable(address)  # within seconds: ValueError naming the address, ImportError without Ray
    _warn_implicit_base_width(runs)
    todo = [r for r in runs if r.run_id not in done]
    copies: dict[str, str] = {}
    from_scratch: dict[str, str] = {}
    if extend:
        if out is None:
            raise ValueError("extend needs the output folder whose shorter runs it continues (out=...)")
        todo, copies, from_scratch = _extensions(todo, Path(out))
    chosen, groups, reason = _schedule(
        [r for r in todo if r.run_id not in copies], executor, workers, max_members, memory_budget, facts
    )
    options = {k: v for k, v in (("devices", devices), ("address", address)) if v} | executor_options
    if chosen == "slurm":
        cuda = not devices and any(str(r.config["train"].get("device", "cpu")).startswith("cuda") for r in todo)
        folder = Path(out) if out is not None else None
        options |= _slurm_options(validated, slurm, folder, source, collecting, cuda)
        options |= {"detach": detach, "job_name": f"learnlab-{validated.name}"}
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
        copies,
        from_scratch,
        append or extend,
    )


def _slurm_jobs_open(out: Path, runs: list[Run], done: set[str]) -> bool:
    """Whether ``out`` holds SLURM jobs not collected yet for some of these runs that are not done."""
    from learnlab.experiments._slurm import Ledger

    ours = {r.run_id for r in runs} - done
    return any(rid in ours for job in Ledger(out).open_jobs() for rid in job.runs)


def _slurm_options(
    spec: Spec, given: dict | None, out: Path | None, source: str | None, collecting: bool, cuda: bool
) -> dict:
    """The jobs' SLURM options: an earlier submission's when ``auto`` collects its jobs (what is
    submitted again asks for the same), else the spec's ``sweep.slurm``; then ``given``; one GPU
    per job when runs are on cuda and no count is given. Checked with SLURM itself
    (``sbatch --test-only``) within seconds."""
    from pydantic import ValidationError

    from learnlab._errors import problems_from_validation
    from learnlab.experiments._slurm import Ledger, check_reachable, check_submittable, options_from
    from learnlab.experiments._spec import SlurmSpec

    if out is None:
        raise ValueError("the slurm executor needs an output folder every node of the cluster can reach (out=...)")
    options = Ledger(out).options if collecting else spec.sweep.slurm.model_dump(exclude_unset=True)
    if given:
        try:
            SlurmSpec(**given)
        except ValidationError as err:
            raise SpecError(problems_from_validation(err, SlurmSpec, prefix="slurm"), source=source) from None
        options |= given
    if cuda and not options.get("gpus"):
        options["gpus"] = 1
    try:
        check_reachable()
    except ValueError as exc:
        if not collecting:
            raise
        raise type(exc)(
            f"{out} holds SLURM jobs not collected yet, so learnlab would collect them, but: {exc}. Run this on "
            "the cluster, or name another --executor to train the runs here"
        ) from None
    check_submittable(options_from(options), f"learnlab-{spec.name}")
    return {k: v for k, v in options.items() if v is not None}


def _memory_problems(runs: list[Run], available: int, facts: PlanFacts) -> list[tuple[str, str]]:
    """Runs (one per shape) that would not fit this machine's memory, as spec problems."""
    problems: dict[tuple[str, str], None] = {}
    seen: set[str] = set()
    for run in runs:
        key = group_key(run.config)
        if key not in seen:
            seen.add(key)
            problems.update(dict.fromkeys(memory_problems(run.validated(), available, facts)))
    return list(problems)


def _warn_implicit_base_width(runs: list[Run]) -> None:
    """One BaseWidthWarning per width-dependent row (and optimizer, depth) used at widths > 1 without
    an explicit base_width, spelled out at its largest width."""
    from learnlab.models import BaseWidthWarning, base_width_note

    widths: dict[tuple[str, str, int], tuple[str | dict, set[int]]] = {}
    for run in runs:
        config = run.validated()
        model = config.model
        if model.user or "base_width" in model.model_fields_set or model.width == 1:
            continue
        param = model.parameterization_arg()
        key = (canonical_json(param), config.train.optimizer, model.depth)
        widths.setdefault(key, (param, set()))[1].add(model.width)
    for (_, optimizer, depth), (param, sizes) in widths.items():
        note = base_width_note(param, max(sizes), depth, optimizer)
        if note is not None:
            others = f" (runs at widths {', '.join(map(str, sorted(sizes)))})" if len(sizes) > 1 else ""
            warnings.warn(note + others, BaseWidthWarning, stacklevel=3)


def _extensions(todo: list[Run], out: Path) -> tuple[list[Run], dict[str, str], dict[str, str]]:
    """(todo with ``extends`` set where a saved state continues them, copies, from_scratch reasons)."""
    from learnlab.experiments._runner import state_path

    shorter: dict[str, list[tuple[int, str, str, int | None]]] = {}
    if db_path(out).is_file():
        with Store(out) as store:
            for rid, (config, status, step) in store.outcomes().items():
                steps = config["train"].get("steps")
                if status in DONE_STATUSES and steps is not None:
                    shorter.setdefault(_without_steps(config), []).append((steps, rid, status, step))
    runs, copies, from_scratch = [], {}, {}
    for run in todo:
        train = run.config["train"]
        steps = train.get("steps")
        candidates = sorted(c for c in shorter.get(_without_steps(run.config), []) if steps and c[0] < steps)
        if steps is None:
            from_scratch[run.run_id] = "train.steps is not set (only runs of train.steps extend)"
        elif train["schedule"]["name"] in ("cosine", "exponential"):
            from_scratch[run.run_id] = "its schedule depends on train.steps, so a shorter run is not its prefix"
        elif not candidates:
            from_scratch[run.run_id] = "no shorter run of its config in the store"
        else:
            k, source, status, step = candidates[-1]  # the longest one
            if status == "diverged" or (step is not None and step < k):
                copies[run.run_id] = source  # it ended early: the longer run ends there too
            elif state_path(out, source).is_file():
                run = replace(run, extends=(source, k))
            else:
                from_scratch[run.run_id] = "the shorter run kept no state (set train.save_final: true)"
        runs.append(run)
    return runs, copies, from_scratch


def _without_steps(config: dict) -> str:
    return canonical_json({**config, "train": {k: v for k, v in config["train"].items() if k != "steps"}})


def _done(runs: list[Run], out: str | Path | None, append: bool) -> set[str]:
    """Ids of runs whose results are already in ``out`` (StoreError if it is another spec's)."""
    if out is None:
        return set()
    check_folder(out, write=True, create=False)
    if not db_path(out).is_file():
        return set()
    with Store(out) as store:
        store.verify()  # a damaged store is said now, before a sweep takes the folder
        store.check_seeding()
        check_belongs(runs, store, append)
        status = store.statuses()
    return {r.run_id for r in runs if status.get(r.run_id) in DONE_STATUSES}


def check_belongs(runs: list[Run], store: Store, append: bool) -> None:
    """StoreError if ``store`` holds runs that are not among these (unless ``append``).

    A folder belongs to one spec: its summaries, figures and reports are of that spec's runs.
    Resuming a spec finds its own runs there, and a spec grown in place (more seeds, more
    grid values) finds some of its own: both are this spec's folder.
    """
    there = set(store.statuses())
    ours = {r.run_id for r in runs}
    foreign = len(there - ours)
    if append or not foreign:
        return
    names = ", ".join(sorted(store.names())) or "none"
    raise StoreError(
        f"{store.path.parent} holds runs of another spec (spec names there: {names}): {foreign} of its "
        f"{len(there)} runs are not among this spec's {len(ours)} (with its overrides). A folder belongs to one "
        "spec: use another --out, or --append (append=True) to add these runs to it (the summary and figure "
        "of the run then show this spec's runs; learnlab status and report show all of the folder's)"
    )


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
        max_members = DEFAULT_MAX_MEMBERS if executor in ("ensemble", "slurm") else 1
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
