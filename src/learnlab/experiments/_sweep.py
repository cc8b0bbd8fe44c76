"""The driver: validate, expand, skip what is done, run the rest, commit each result."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from learnlab.experiments._executors import make_executor
from learnlab.experiments._expand import Run, expand
from learnlab.experiments._runner import resolve_device
from learnlab.experiments._spec import Spec, load_spec
from learnlab.experiments._errors import SpecError
from learnlab.experiments._store import DONE_STATUSES, RunResult, Store

__all__ = ["plan", "sweep", "Plan"]


class Plan:
    """A validated spec expanded into runs."""

    def __init__(self, spec: Spec, runs: list[Run], source: str | None):
        self.spec, self.runs, self.source = spec, runs, source


def plan(spec: str | Path | dict | Spec, overrides: list[str] | None = None) -> Plan:
    """Validate a spec (file, dict or Spec) with overrides and expand it; SpecError on any problem."""
    source = None if isinstance(spec, (dict, Spec)) else str(spec)
    validated, raw = load_spec(spec, overrides)
    runs = expand(validated, raw, source=source)
    devices = {r.config["train"]["device"] for r in runs}
    problems = []
    for dev in sorted(devices):
        try:
            resolve_device(dev)
        except ValueError as exc:
            problems.append(("train.device", str(exc)))
    if problems:
        raise SpecError(problems, source=source)
    return Plan(validated, runs, source)


def sweep(
    spec: str | Path | dict | Spec,
    overrides: list[str] | None = None,
    *,
    out: str | Path,
    executor: str = "processes",
    workers: int | None = None,
    on_result: Callable[[RunResult, int, int], None] | None = None,
    **executor_options,
) -> Store:
    """Run every run of a spec not yet done in ``out`` and return the store.

    Args:
        spec: YAML path, dict or :class:`Spec`.
        overrides: ``key=value`` strings.
        out: output folder; ``out/results.db`` is created or resumed.
        executor: ``serial`` or ``processes``.
        workers: processes for the ``processes`` executor (default: cores).
        on_result: called as (result, done, total) after each result is committed.
        **executor_options: passed to the executor (e.g. ``address`` for ``ray``).

    Raises:
        SpecError: before anything is written, if the spec is invalid.
    """
    p = plan(spec, overrides)
    ex = make_executor(executor, workers, **executor_options)
    store = Store(out, create=True)
    store.add_runs((r.run_id, p.spec.name, r.config) for r in p.runs)
    status = store.statuses()
    todo = [r for r in p.runs if status.get(r.run_id) not in DONE_STATUSES]
    total, done = len(todo), 0
    outstanding = {r.run_id for r in todo}
    try:
        for results in ex.run([[r.config] for r in todo]):
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
