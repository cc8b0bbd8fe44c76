"""The driver: execute a plan, commit each result as it arrives, resume what is not done."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from learnlab._seeds import SEEDING
from learnlab.experiments._executors import make_executor
from learnlab.experiments._folder import FolderLock, check_folder
from learnlab.experiments._groups import DEFAULT_MEMORY_BUDGET
from learnlab.experiments._plan import Plan, check_belongs, plan
from learnlab.experiments._spec import Spec
from learnlab.experiments._store import DONE_STATUSES, RunResult, Store, db_path

__all__ = ["sweep"]


def sweep(
    spec: str | Path | dict | Spec | Plan,
    overrides: list[str] | None = None,
    *,
    out: str | Path | None = None,
    executor: str = "auto",
    workers: int | None = None,
    max_members: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    extend: bool = False,
    append: bool = False,
    on_result: Callable[[RunResult, int, int], None] | None = None,
    progress: bool | None = None,
    **executor_options,
) -> Store:
    """Run every run of a spec (or of a :class:`Plan`) not yet done in ``out``; return the store.

    Given a spec, it is planned first (see :func:`learnlab.plan`); given a plan, that plan
    is executed as it is: its groups and executor, nothing validated or scheduled again.
    Runs that finished in ``out`` since the plan was made are skipped.

    Args:
        spec: YAML path, dict, :class:`Spec`, or a :class:`Plan`.
        overrides: ``key=value`` strings (a spec only).
        out: output folder; ``out/results.db`` is created or resumed (a plan made with
            ``out`` runs there).
        executor: ``auto`` (default), ``serial``, ``processes``, ``ensemble``, ``ray`` or ``slurm``.
        workers: processes (or Ray CPUs) for the pool executors (default: cores).
        max_members: largest stacked group (default 64 for ``ensemble``, 1 otherwise).
        memory_budget: bytes a stacked group may use.
        extend: continue runs from shorter runs of their configs in ``out`` (see :func:`learnlab.plan`).
        append: add this spec's runs to a folder that holds another spec's (see :func:`learnlab.plan`).
        on_result: called as (result, done, total) after each result is committed (a run's result
            is committed as soon as the run is over, also when it leaves a stack early).
        progress: a progress bar of runs (``tqdm.auto``: a widget in a notebook); default: on
            when stderr is a terminal or in a notebook.
        **executor_options: ``devices`` (a list such as ``["cuda:0", "cuda:1"]``; groups
            are spread over them), ``address`` for ``ray``, ``slurm`` (a dict of
            ``sweep.slurm`` keys) and ``detach`` for ``slurm`` (see :func:`learnlab.plan`).

    The folder has one writer at a time: ``sweep`` holds an OS lock on it while it writes
    (released by the OS however the process ends); readers are never blocked. A finished or
    diverged result is final: no later attempt overwrites, relabels or deletes it.

    Raises:
        SpecError: before anything is written, if the spec is invalid.
        FolderBusy: another process is writing to ``out`` (its pid, host and start are named).
        StoreError: ``out`` cannot be used (a file, not writable, a damaged store, another
            spec's runs without ``append``); nothing in it is changed.
        ValueError: before anything is written, for options that do not fit.
    """
    from learnlab._cpu import tune_cpu

    tune_cpu()
    if isinstance(spec, Plan):
        p = spec
        _check_plan_arguments(
            p, overrides, executor, workers, max_members, memory_budget, extend, append, executor_options
        )
        if p.out is not None and out is not None and Path(out).resolve() != p.out.resolve():
            raise ValueError(f"the plan was made for out={str(p.out)!r}; got out={str(out)!r}")
        out = out if out is not None else p.out
    else:
        p = plan(
            spec,
            overrides,
            out=out,
            executor=executor,
            workers=workers,
            max_members=max_members,
            memory_budget=memory_budget,
            extend=extend,
            append=append,
            **executor_options,
        )
    if out is None:
        raise ValueError("sweep needs an output folder: pass out=... (or plan(..., out=...))")
    ex = make_executor(p.executor, p.workers, out=Path(out), **p.options)  # fails before anything is written
    out = check_folder(out, write=True)
    with FolderLock(out):
        # checked again under the lock: what another writer finished since the plan was made is left out
        groups = _still_to_do(p, out)
        store = Store(out, create=True)
        try:
            _execute(p, store, out, ex, groups, on_result, progress)
        except BaseException:
            store.close()
            raise
    return store


def _execute(p: Plan, store: Store, out: Path, ex, groups: list[list], on_result, progress) -> None:
    """Run the groups, committing each result as it arrives (the folder's lock is held)."""
    if store.meta("seeding") is None:
        store.set_meta("seeding", SEEDING)
    store.add_runs((r.run_id, p.spec.name, r.config) for r in p.runs)
    _copy_early_endings(p, store, out)
    total = sum(len(g) for g in groups)
    committed: set[str] = set()
    outstanding = {r.run_id for g in groups for r in g}
    bar = _progress_bar(total, p.spec.name, progress)

    def commit(result: RunResult) -> None:
        if result.run_id in committed:  # an executor may hand a run's result twice
            return
        store.record(result)
        committed.add(result.run_id)
        outstanding.discard(result.run_id)
        if bar is not None:
            bar.update(1)
        if on_result is not None:
            on_result(result, len(committed), total)

    try:
        for results in ex.run(groups, on_result=commit):
            for result in results:
                commit(result)
    except BaseException as exc:
        if getattr(exc, "nothing_started", False):  # e.g. SLURM refused the first submission: no run was touched
            raise
        store.set_status(sorted(outstanding), "interrupted", "the sweep was interrupted before this run finished")
        if isinstance(exc, KeyboardInterrupt):
            print(interrupted_message(len(committed), total, out), file=sys.stderr)
            if p.executor == "slurm":
                print(
                    f"Its SLURM jobs keep running (learnlab status {out} lists them): the same command collects "
                    "their results; scancel stops them.",
                    file=sys.stderr,
                )
        raise
    finally:
        if bar is not None:
            bar.close()


def interrupted_message(done: int, total: int, out: Path) -> str:
    """What a stopped sweep says: how many runs are stored, and how to go on."""
    return (
        f"interrupted: {done} of {total} runs finished and are stored in {out}; the others are marked "
        "interrupted. Run the same command again to resume: finished runs are not run again."
    )


def _progress_bar(total: int, name: str, progress: bool | None):
    if progress is None:
        progress = sys.stderr.isatty() or "ipykernel" in sys.modules
    if not progress or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"{name}: runs", unit="run")


def _still_to_do(p: Plan, out: Path) -> list[list]:
    """The plan's groups without the runs done in ``out`` by now (groups are not re-formed)."""
    if not db_path(out).is_file():
        return p.groups
    with Store(out) as store:
        store.verify()
        store.check_seeding()
        check_belongs(p.runs, store, p.append)
        status = store.statuses()
    groups = [[r for r in g if status.get(r.run_id) not in DONE_STATUSES] for g in p.groups]
    return [g for g in groups if g]


def _copy_early_endings(p: Plan, store: Store, out: Path) -> None:
    """Runs whose shorter run of the same config ended early take its result (and files)."""
    status = store.statuses()
    for target, source in p.copies.items():
        if status.get(target) in DONE_STATUSES:
            continue
        for name in ("artifacts/{}.pt", "checkpoints/{}.pt"):
            path = out / name.format(source)
            if path.is_file():
                shutil.copyfile(path, out / name.format(target))
        store.copy_run(source, target)


def _check_plan_arguments(
    p: Plan, overrides, executor, workers, max_members, memory_budget, extend, append, options
) -> None:
    """A plan fixes the spec, the executor and the groups: say so if they are given again."""
    given = {
        "overrides": bool(overrides),
        "extend": extend,
        "append": append,
        "executor": executor != "auto" and executor != p.executor,
        "workers": workers is not None and workers != p.workers,
        "max_members": max_members is not None,
        "memory_budget": memory_budget != DEFAULT_MEMORY_BUDGET,
        **{k: True for k in options},
    }
    named = [k for k, v in given.items() if v]
    if named:
        raise ValueError(
            f"sweep(plan, ...) runs the plan as it was made; {', '.join(named)} belong to plan(...): "
            "make a new plan with them"
        )
