"""The ``ray`` executor: groups of runs as Ray core tasks on a local instance or a cluster.

Not one Tune trial per run (Tune's per-trial overhead was ~1.3 s locally in seed 001):
consecutive groups are batched into a few tasks per CPU, each task trains its groups one
after another with :func:`run_group` and returns their results. The driver collects tasks
as they finish (``ray.wait``) and alone writes the store. A task whose node dies is
retried by Ray (``max_retries``) on another node; one that still fails is recorded as
failed, so the sweep goes on.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator

from learnlab.experiments._runner import run_group
from learnlab.experiments._store import RunResult

__all__ = ["RayExecutor", "check_reachable", "batch_groups"]

TASKS_PER_CPU = 4  # enough tasks to balance load, few enough that per-task overhead stays small
CONNECT_TIMEOUT_S = 3.0


def _import_ray():
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - CI installs the extra
        raise ImportError(
            "the ray executor needs Ray: pip install 'learnlab[ray]'"
        ) from exc
    return ray


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast if a ``host:port`` or ``ray://host:port`` Ray address does not answer.

    ``auto`` and ``local`` are left to ``ray.init``.

    Raises:
        ValueError: naming the address, if it is malformed or nothing listens there
            within ``timeout`` seconds.
    """
    if address in ("auto", "local"):
        return
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(
            f"Ray address {address!r} is not of the form host:port, ray://host:port or auto"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ValueError(
            f"cannot reach a Ray cluster at {address!r} ({exc}); start one with "
            f"`ray start --head` or check --ray-address"
        ) from None


def batch_groups(groups: list[list[dict]], runs_per_task: int) -> list[list[list[dict]]]:
    """Consecutive groups packed into tasks of about ``runs_per_task`` runs (never split)."""
    tasks, current, size = [], [], 0
    for group in groups:
        current.append(group)
        size += len(group)
        if size >= runs_per_task:
            tasks.append(current)
            current, size = [], 0
    if current:
        tasks.append(current)
    return tasks


def _run_task(groups: list[list[dict]], threads: int) -> list[list[RunResult]]:
    """Body of one Ray task: train its groups one after another with ``threads`` torch threads."""
    import torch

    torch.set_num_threads(threads)
    return [run_group(group) for group in groups]


class RayExecutor:
    """Runs groups of runs as Ray core tasks; yields each task's groups as it finishes.

    Args:
        workers: CPUs of the local Ray instance this executor starts (default: cores);
            ignored when joining a cluster or when Ray is already initialised.
        address: a Ray cluster to join (``host:port`` of its head, ``ray://host:port``
            for Ray Client, or ``auto``); ``None`` starts a private local instance
            (session files in a temporary folder, removed at the end; token
            authentication off unless ``RAY_AUTH_MODE`` says otherwise).
        num_cpus: CPUs each task reserves; also its torch threads.
        num_gpus: GPUs each task reserves (Ray sets ``CUDA_VISIBLE_DEVICES`` for it).
        runs_per_task: runs batched into one task (default: about
            ``TASKS_PER_CPU`` tasks per CPU slot of the cluster).
        max_retries: times Ray re-runs a task whose worker or node died.

    Raises:
        ImportError: if Ray is not installed.
        ValueError: for an unreachable or malformed ``address`` (within seconds).
    """

    def __init__(self, workers: int | None = None, address: str | None = None, num_cpus: float = 1,
                 num_gpus: float = 0, runs_per_task: int | None = None, max_retries: int = 3, **_):
        self._ray = _import_ray()
        if num_cpus <= 0 or num_gpus < 0:
            raise ValueError(f"num_cpus must be > 0 and num_gpus >= 0; got {num_cpus}, {num_gpus}")
        if runs_per_task is not None and runs_per_task < 1:
            raise ValueError(f"runs_per_task must be >= 1; got {runs_per_task}")
        if address is not None:
            check_reachable(address)
        self.workers, self.address = workers, address
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self.runs_per_task, self.max_retries = runs_per_task, max_retries

    def run(self, groups: list[list[dict]]) -> Iterator[list[RunResult]]:
        if not groups:
            return
        ray = self._ray
        owned = not ray.is_initialized()  # shut down only what this executor started
        session_dir = self._connect() if owned else None
        pending: dict = {}
        try:
            remote = ray.remote(_run_task).options(
                num_cpus=self.num_cpus, num_gpus=self.num_gpus,
                max_retries=self.max_retries, retry_exceptions=False,
            )
            threads = max(1, int(self.num_cpus))
            for task in batch_groups(groups, self._runs_per_task(groups)):
                pending[remote.remote(task, threads)] = task
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    task = pending.pop(ref)
                    yield from self._collect(ref, task)
        finally:
            _cancel(ray, pending)
            if owned:
                ray.shutdown()
            if session_dir:
                shutil.rmtree(session_dir, ignore_errors=True)

    def _connect(self) -> str | None:
        """``ray.init`` a new local instance (returns its session folder) or join ``address``."""
        ray = self._ray
        if self.address not in (None, "local"):
            ray.init(address=self.address, log_to_driver=False)
            return None
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # else 2.60 writes a token under ~
        session_dir = tempfile.mkdtemp(prefix="learnlab-ray-")
        try:
            ray.init(address="local", num_cpus=self.workers or os.cpu_count() or 1,
                     include_dashboard=False, log_to_driver=False, _temp_dir=session_dir)
        except BaseException:
            shutil.rmtree(session_dir, ignore_errors=True)
            raise
        return session_dir

    def _runs_per_task(self, groups: list[list[dict]]) -> int:
        if self.runs_per_task is not None:
            return self.runs_per_task
        cpus = self._ray.cluster_resources().get("CPU", 1.0)
        slots = max(1, int(cpus // self.num_cpus))
        runs = sum(len(g) for g in groups)
        return max(1, math.ceil(runs / (TASKS_PER_CPU * slots)))

    def _collect(self, ref, task: list[list[dict]]) -> Iterator[list[RunResult]]:
        """A finished task's results, or every run of it failed with Ray's reason."""
        ray = self._ray
        try:
            results = ray.get(ref)
        except ray.exceptions.RayError as exc:
            reason = f"ray task failed after {self.max_retries} retries: {type(exc).__name__}: {exc}"
            results = [_failed(group, reason) for group in task]
        yield from results


def _cancel(ray, refs) -> None:
    """Stop tasks still queued or running (the sweep was interrupted); best effort."""
    for ref in refs:
        try:
            ray.cancel(ref, force=True)
        except Exception:  # noqa: BLE001 - the task may have just finished or Ray be gone
            pass


def _failed(group: list[dict], reason: str) -> list[RunResult]:
    from learnlab.experiments._expand import run_id

    return [RunResult(run_id(c), "failed", error=reason) for c in group]
