"""Executors run groups of runs and yield their results as they finish.

The driver alone writes the store; executors only compute.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from learnlab._callables import payload, refs_in
from learnlab._worker import Warned, Worker, forwarded_warnings, init_worker
from learnlab.experiments._expand import Run
from learnlab.experiments._store import RunResult

__all__ = ["Executor", "SerialExecutor", "ProcessExecutor", "EXECUTORS", "make_executor"]


def run_group(*args, **kwargs) -> list[RunResult]:
    """:func:`learnlab.experiments._runner.run_group`, imported when a group runs (it needs torch,
    which planning does not)."""
    from learnlab.experiments._runner import run_group as run

    return run(*args, **kwargs)


class Executor(Protocol):
    """Runs groups of runs (a plan's groups); yields each group's results when it finishes.

    Executors are built as ``cls(workers, out=..., **options)``; ``out`` is the sweep's
    output folder, handed to :func:`run_group` for checkpoints, artifacts and loggers.
    ``on_result``, if an executor can, is called (in the driver's thread) with each run's
    result as soon as that run is over, before its group ends; a group's yielded results may
    repeat those (the driver keeps the first of each run).
    """

    def run(
        self, groups: list[list[Run]], on_result: Callable[[RunResult], object] | None = None
    ) -> Iterator[list[RunResult]]: ...


class SerialExecutor:
    """One group after another in this process (``serial``: groups of one; ``ensemble``: stacked groups)."""

    def __init__(self, workers: int | None = None, out=None, devices: Sequence[str] | None = None, **_):
        self.workers, self.out = 1, out
        self.devices: Sequence[str | None] = devices or [None]

    def run(self, groups, on_result=None):
        for k, group in enumerate(groups):  # callables are registered in this process already
            yield run_group(group, self.out, None, self.devices[k % len(self.devices)], on_result)


def _run_in_worker(group: list[Run], out, device) -> list[RunResult]:
    """A pool task: one group, each run's result (and each warning) sent to the driver as it comes."""
    queue = Worker.results
    if queue is None:
        return run_group(group, out, None, device)
    with forwarded_warnings(queue.put):
        return run_group(group, out, None, device, queue.put)


def _drain(results) -> Iterator[list[RunResult]]:
    """What workers sent so far: runs' results (yielded) and warnings (raised again here)."""
    while not results.empty():
        item = results.get()
        if isinstance(item, Warned):
            item.warn()
        else:
            yield [item]


class ProcessExecutor:
    """A pool of ``workers`` spawned processes, each limited to ``threads`` torch threads.

    ``workers * threads <= cores``, so the machine is never oversubscribed. With
    ``devices`` (``--devices cuda:0,cuda:1``) groups are spread over them round-robin. A worker
    that dies takes only its own group down (recorded as failed); the others go on.
    """

    def __init__(self, workers: int | None = None, out=None, devices: Sequence[str] | None = None, **_):
        cores = os.cpu_count() or 1
        self.workers = max(1, workers or cores)
        self.threads = max(1, cores // self.workers)
        self.out = out
        self.devices: Sequence[str | None] = devices or [None]

    def run(self, groups, on_result=None):
        if not groups:
            return
        workers = min(self.workers, len(groups))
        ctx = mp.get_context("spawn")
        shipped = payload(set().union(*(refs_in(r.config) for g in groups for r in g)))
        results = ctx.SimpleQueue()  # runs' results as they end, before their groups do
        pool = ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=init_worker, initargs=(self.threads, shipped, os.getpid(), results)
        )
        try:
            devices = self.devices
            pending = {
                pool.submit(_run_in_worker, g, self.out, devices[k % len(devices)]): g for k, g in enumerate(groups)
            }
            while pending:
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                yield from _drain(results)
                for future in done:
                    group = pending.pop(future, None)
                    if group is None:  # already re-run serially after the pool broke
                        continue
                    try:
                        yield future.result()
                    except BrokenProcessPool as exc:
                        yield _failed(group, f"worker process died: {exc}")
                        for other in list(pending):  # the pool is unusable: re-run them serially
                            yield run_group(pending.pop(other), self.out, None, None, on_result)
            yield from _drain(results)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            results.close()


def _failed(group: list[Run], reason: str) -> list[RunResult]:
    return [RunResult(r.run_id, "failed", error=reason) for r in group]


# name -> "module:attr" of the executor class (imported lazily: ray and submitit are optional extras).
EXECUTORS = {
    "serial": "learnlab.experiments._executors:SerialExecutor",
    "ensemble": "learnlab.experiments._executors:SerialExecutor",
    "processes": "learnlab.experiments._executors:ProcessExecutor",
    "ray": "learnlab.experiments._ray:RayExecutor",
    "slurm": "learnlab.experiments._slurm:SlurmExecutor",
}


def make_executor(name: str, workers: int | None = None, **options) -> Executor:
    """Build an executor by name; ``options`` go to its constructor (e.g. ``address`` for ray)."""
    import importlib

    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; valid: {', '.join(EXECUTORS)}")
    module, attr = EXECUTORS[name].split(":")
    cls = getattr(importlib.import_module(module), attr)
    return cls(workers, **options)
