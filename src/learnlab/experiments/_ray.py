"""The ``ray`` executor: groups of runs as Ray core tasks on a local instance or a cluster.

Not one Tune trial per run (Tune's per-trial overhead was ~1.3 s locally in seed 001):
consecutive groups are batched into a few tasks per CPU, each task trains its groups one
after another with :func:`run_group` and returns their results. The driver collects tasks
as they finish (``ray.wait``) and alone writes the store. A task whose node dies is
retried by Ray (``max_retries``) on another node; one that still fails is recorded as
failed, so the sweep goes on.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator

from learnlab._callables import install, payload, refs_in
from learnlab._worker import Warned, forwarded_warnings
from learnlab.experiments._expand import Run
from learnlab.experiments._groups import batch_groups
from learnlab.experiments._runner import run_group
from learnlab.experiments._store import RunResult

__all__ = ["RayExecutor", "batch_groups", "check_reachable"]

TASKS_PER_CPU = 4  # enough tasks to balance load, few enough that per-task overhead stays small
CONNECT_TIMEOUT_S = 3.0


def _import_ray():
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - CI installs the extra
        raise ImportError("the ray executor needs Ray: pip install 'learnlab[ray]'") from exc
    return ray


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast unless a Ray cluster answers at ``host:port`` (or ``ray://host:port``).

    A TCP connect, then for a head's ``host:port`` one GCS request (``GetClusterId``),
    each within ``timeout`` seconds: ``ray.init`` itself retries for ~20 s and more.
    ``auto`` and ``local`` are left to ``ray.init``.

    Raises:
        ImportError: if Ray is not installed.
        ValueError: naming the address, if it is malformed or no Ray cluster answers.
    """
    _import_ray()
    if address in ("auto", "local"):
        return
    client = address.startswith("ray://")
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"Ray address {address!r} is not of the form host:port, ray://host:port or auto")
    hint = "start one with `ray start --head` or check --ray-address"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ValueError(f"cannot reach a Ray cluster at {address!r} ({exc}); {hint}") from None
    if not client:
        problem = _gcs_problem(f"{host}:{port}", timeout)
        if problem:
            raise ValueError(f"no Ray cluster answers at {address!r} ({problem}); {hint}")


def _gcs_problem(address: str, timeout: float) -> str | None:
    """Why the Ray head (GCS) at ``address`` does not answer, or None if it does."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    with grpc.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)]) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        try:
            stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:  # a Ray head with token auth
                return None
            return f"{exc.code().name}: {exc.details()}"
    return None


def _run_task(
    groups: list[list[Run]],
    threads: int,
    out: str | None,
    callables: dict[str, bytes] | None,
    device: str | None = None,
) -> tuple[list[list[RunResult]], list[Warned]]:
    """Body of one Ray task: train its groups one after another with ``threads`` torch threads.

    ``callables`` are the cloudpickled functions the configs name (``callable:`` references
    to notebook or ``__main__`` code), registered in this worker before anything is built.
    Returns the groups' results and the warnings raised meanwhile (the driver raises them again).
    """
    import torch

    from learnlab._cpu import tune_cpu

    tune_cpu()
    torch.set_num_threads(threads)
    install(callables)
    warned: list[Warned] = []
    with forwarded_warnings(warned.append):
        return [run_group(group, out, None, device) for group in groups], warned


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
        num_gpus: GPUs each task reserves (Ray sets ``CUDA_VISIBLE_DEVICES`` for it);
            when 0 and some run has ``train.device: cuda``, each task reserves one (and
            when all do, runs use the task's own GPU whatever ``cuda:N`` they name).
        runs_per_task: runs batched into one task (default: about
            ``TASKS_PER_CPU`` tasks per CPU slot of the cluster).
        max_retries: times Ray re-runs a task whose worker or node died.
        out: the sweep's output folder, for checkpoints and artifacts (on a cluster,
            a path every node can write, e.g. a shared file system).
        devices: only ``["cpu"]`` (run everything on CPU); Ray itself places GPU tasks.

    Raises:
        ImportError: if Ray is not installed.
        ValueError: for an unreachable or malformed ``address`` (within seconds).
    """

    def __init__(
        self,
        workers: int | None = None,
        address: str | None = None,
        num_cpus: float = 1,
        num_gpus: float = 0,
        runs_per_task: int | None = None,
        max_retries: int = 3,
        out=None,
        devices: list[str] | None = None,
        **_,
    ):
        self._ray = _import_ray()
        if devices and set(devices) != {"cpu"}:
            raise ValueError(
                f"devices {devices} name this machine's GPUs, but Ray places tasks itself: set "
                "train.device: cuda (each task then reserves num_gpus=1 and sees its GPU as cuda:0)"
            )
        self.device = "cpu" if devices else None
        if num_cpus <= 0 or num_gpus < 0:
            raise ValueError(f"num_cpus must be > 0 and num_gpus >= 0; got {num_cpus}, {num_gpus}")
        if runs_per_task is not None and runs_per_task < 1:
            raise ValueError(f"runs_per_task must be >= 1; got {runs_per_task}")
        if address is not None:
            check_reachable(address)
        self.workers, self.address = workers, address
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self.runs_per_task, self.max_retries = runs_per_task, max_retries
        self.out = None if out is None else str(out)

    def run(self, groups: list[list[Run]], on_result=None) -> Iterator[list[RunResult]]:
        """Each task's groups' results as the task finishes (``on_result`` is not used: results
        cross the cluster with their task)."""
        if not groups:
            return
        ray = self._ray
        owned = not ray.is_initialized()  # shut down only what this executor started
        session_dir = self._connect() if owned else None
        pending: dict = {}
        try:
            cuda = [_on_cuda(r.config) for g in groups for r in g] if self.device is None else [False]
            num_gpus = self.num_gpus or (1 if any(cuda) else 0)
            device = "cuda" if all(cuda) else self.device  # a task sees only its GPUs: cuda:N is its cuda:0
            remote = ray.remote(_run_task).options(
                num_cpus=self.num_cpus,
                num_gpus=num_gpus,
                max_retries=self.max_retries,
                retry_exceptions=False,
            )
            if session_dir:
                self._check_fits(num_gpus)
            threads = max(1, int(self.num_cpus))
            shipped = payload(set().union(*(refs_in(r.config) for g in groups for r in g)))
            callables = ray.put(shipped) if shipped else None  # once into the object store
            for task in batch_groups(groups, self._runs_per_task(groups)):
                pending[remote.remote(task, threads, self.out, callables, device)] = task
            waiting = list(pending)
            while waiting:
                done, waiting = ray.wait(waiting, num_returns=1)
                for ref in done:
                    yield from self._collect(ref, pending.pop(ref))
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
            ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
            return None
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # else 2.60 writes a token under ~
        session_dir = tempfile.mkdtemp(prefix="learnlab-ray-")
        try:
            # no dashboard and no metrics agent: nothing reads them, and they cost ~1-1.5 s of start-up
            ray.init(
                address="local",
                num_cpus=self.workers or os.cpu_count() or 1,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
                _temp_dir=session_dir,
                _system_config={"enable_metrics_collection": False},
            )
        except BaseException:
            shutil.rmtree(session_dir, ignore_errors=True)
            raise
        return session_dir

    def _check_fits(self, num_gpus: float) -> None:
        """On a local instance (fixed resources) a task that can never be placed is an error, not a hang."""
        have = self._ray.cluster_resources()
        for name, need in (("CPU", self.num_cpus), ("GPU", num_gpus)):
            if need > have.get(name, 0):
                raise ValueError(
                    f"each Ray task asks for {name.lower()}s = {need}, but the local Ray "
                    f"instance has {have.get(name, 0):g}; lower num_{name.lower()}s or join a cluster"
                )

    def _runs_per_task(self, groups: list[list[Run]]) -> int:
        if self.runs_per_task is not None:
            return self.runs_per_task
        cpus = self._ray.cluster_resources().get("CPU", 1.0)
        slots = max(1, int(cpus // self.num_cpus))
        runs = sum(len(g) for g in groups)
        return max(1, math.ceil(runs / (TASKS_PER_CPU * slots)))

    def _collect(self, ref, task: list[list[Run]]) -> Iterator[list[RunResult]]:
        """A finished task's results, or every run of it failed with Ray's reason."""
        ray = self._ray
        try:
            results, warned = ray.get(ref)
        except ray.exceptions.RayError as exc:
            reason = f"ray task failed after {self.max_retries} retries: {type(exc).__name__}: {exc}"
            results, warned = [_failed(group, reason) for group in task], []
        for warning in warned:
            warning.warn()
        yield from results


def _on_cuda(config: dict) -> bool:
    return str(config["train"].get("device", "cpu")).startswith("cuda")


def _cancel(ray, refs) -> None:
    """Stop tasks still queued or running (the sweep was interrupted); best effort."""
    for ref in refs:
        try:
            ray.cancel(ref, force=True)
        except Exception:  # noqa: BLE001 - the task may have just finished or Ray be gone
            pass


def _failed(group: list[Run], reason: str) -> list[RunResult]:
    return [RunResult(r.run_id, "failed", error=reason) for r in group]
