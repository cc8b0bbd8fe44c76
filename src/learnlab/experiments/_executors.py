"""Executors run groups of runs and yield their results as they finish.

The driver alone writes the store; executors only compute.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from learnlab._callables import install, payload, refs_in
from learnlab.experiments._expand import Run
from learnlab.experiments._runner import run_group
from learnlab.experiments._store import RunResult

__all__ = ["Executor", "SerialExecutor", "ProcessExecutor", "EXECUTORS", "make_executor"]


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


class _Worker:
    """What a pool worker process is given when it starts: the queue its runs' results go to as
    each run ends (a queue reaches a process only when it starts, never through ``submit``)."""

    results = None


def _init_worker(threads: int, callables: dict | None = None, driver: int | None = None, results=None) -> None:
    import torch

    from learnlab._cpu import tune_cpu

    tune_cpu()
    _Worker.results = results
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    install(callables)
    if driver is not None:
        threading.Thread(target=_exit_with, args=(driver,), daemon=True, name="learnlab-driver-watch").start()


def _run_in_worker(group: list[Run], out, device) -> list[RunResult]:
    """A pool task: one group, each run's result sent to the driver as the run ends."""
    queue = _Worker.results
    return run_group(group, out, None, device, queue.put if queue is not None else None)


def _exit_with(driver: int, every: float = 0.5) -> None:
    """End this worker once its driver is gone (killed with ``kill -9``, say).

    A pool worker waits for work on a queue whose write end it holds itself, so it never
    sees the driver go and would live on, orphaned, with its torch threads. Whatever it
    was computing is lost anyway: only the driver writes the store, and a re-run redoes it.
    """
    parent = os.getppid()  # the driver (spawn) or the start method's server (forkserver)
    while os.getppid() == parent and _alive(driver):
        time.sleep(every)
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's (a reused pid): keep going
        return True
    return True


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
            workers, mp_context=ctx, initializer=_init_worker, initargs=(self.threads, shipped, os.getpid(), results)
        )
        try:
            devices = self.devices
            pending = {
                pool.submit(_run_in_worker, g, self.out, devices[k % len(devices)]): g for k, g in enumerate(groups)
            }
            while pending:
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                while not results.empty():
                    yield [results.get()]
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
            while not results.empty():
                yield [results.get()]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            results.close()


def _failed(group: list[Run], reason: str) -> list[RunResult]:
    return [RunResult(r.run_id, "failed", error=reason) for r in group]


# name -> "module:attr" of the executor class (imported lazily: ray is an optional extra).
EXECUTORS = {
    "serial": "learnlab.experiments._executors:SerialExecutor",
    "ensemble": "learnlab.experiments._executors:SerialExecutor",
    "processes": "learnlab.experiments._executors:ProcessExecutor",
    "ray": "learnlab.experiments._ray:RayExecutor",
}


def make_executor(name: str, workers: int | None = None, **options) -> Executor:
    """Build an executor by name; ``options`` go to its constructor (e.g. ``address`` for ray)."""
    import importlib

    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; valid: {', '.join(EXECUTORS)}")
    module, attr = EXECUTORS[name].split(":")
    cls = getattr(importlib.import_module(module), attr)
    return cls(workers, **options)
