"""The start of a process-pool worker: it ends with its driver, from its first moments on.

A spawned worker takes 1-3 s to import torch and learnlab. Whatever it imports before its
initializer runs is imported while nothing watches the driver, so the initializer lives
here, in a module that imports nothing heavy: it binds the worker's life to the driver's
first, and only then imports torch. Also here: warnings a worker raises, carried to the
driver (which shows them as its own).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Worker", "init_worker", "bind_to", "Warned", "forwarded_warnings"]

WATCH_EVERY_S = 0.2  # the fallback watch's period: a dead driver is noticed within it


class Worker:
    """What a pool worker process is given when it starts: the queue its runs' results go to as
    each run ends (a queue reaches a process only when it starts, never through ``submit``)."""

    results = None


def init_worker(threads: int, callables: dict | None = None, driver: int | None = None, results=None) -> None:
    """A pool worker's initializer: bound to ``driver`` first, then torch with ``threads`` threads."""
    if driver is not None:
        bind_to(driver)
    from learnlab._cpu import tune_cpu

    tune_cpu()  # before torch is imported: OpenMP reads its settings then
    import torch

    from learnlab._callables import install

    Worker.results = results
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    install(callables)


def bind_to(driver: int, every: float = WATCH_EVERY_S) -> None:
    """End this process (``os._exit``) as soon as ``driver``, the process that started it, is gone.

    A pool worker waits for work on a queue whose write end it holds itself, so it never
    sees the driver go and would live on, orphaned, with its torch threads. Whatever it
    was computing is lost anyway: only the driver writes the store, and a re-run redoes it.

    On Linux the kernel ends it: ``PR_SET_PDEATHSIG`` sends SIGKILL when the parent dies
    (strictly, when the parent's *thread* that started this process ends: a pool's workers
    are started by the thread that submits to it, which runs the pool until its end). If
    the driver died before that was set, this process exits here. Elsewhere, and as a
    fallback, a thread checks every ``every`` seconds that the parent is the same.
    """
    _die_with_parent()
    parent = os.getppid()  # the driver (spawn), or the start method's server (forkserver)
    if parent != driver and not _alive(driver):  # it died during our start-up
        os._exit(1)
    threading.Thread(target=_exit_with, args=(driver, parent, every), daemon=True, name="learnlab-driver-watch").start()


def _die_with_parent() -> None:
    """Ask Linux for SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no libc symbol: the watch thread does the job
        pass


def _exit_with(driver: int, parent: int, every: float) -> None:
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


@dataclass(frozen=True)
class Warned:
    """A warning raised in a worker, to be raised again in the driver."""

    category: type[Warning]
    text: str

    @classmethod
    def of(cls, message: Warning | str, category: type[Warning]) -> Warned:
        try:  # a class the driver cannot import (defined in a worker) goes as a UserWarning
            pickle.loads(pickle.dumps(category))
        except Exception:  # noqa: BLE001 - whatever pickling raises
            return cls(UserWarning, f"{category.__name__}: {message}")
        return cls(category, str(message))

    def warn(self) -> None:
        warnings.warn(self.text, self.category, stacklevel=2)


@contextlib.contextmanager
def forwarded_warnings(send: Callable[[Warned], object]):
    """Inside, each warning shown (as the filters say) is handed to ``send`` instead of printed."""

    def show(message, category, *_, **__) -> None:
        send(Warned.of(message, category))

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield
