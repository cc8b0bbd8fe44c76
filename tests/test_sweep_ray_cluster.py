"""The ray executor on a 2-node ``ray.cluster_utils.Cluster``: a worker node dies mid-sweep."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from learnlab.experiments import sweep

pytest.importorskip("ray")  # the optional extra learnlab[ray]

pytestmark = pytest.mark.slow

# Each run takes a noticeable time, so the killed node is surely mid-task.
SPEC = {
    "name": "cluster",
    "seed": 3,
    "task": {"inputs": {"name": "gaussian", "d": 8}, "target": {"name": "hermite", "monomial": {0: 2}}, "n_test": 256},
    "model": {"width": 32, "depth": 2},
    "train": {"lr": 0.05, "batch_size": 32, "steps": 2000, "eval_every": 100},
    "sweep": {"grid": {"train.lr": [0.01, 0.02, 0.05, 0.1]}, "seeds": 2},
}


@pytest.fixture(scope="module")
def cluster():
    """A head (1 CPU) and one worker node (1 CPU) on this machine; session files in a temp dir."""
    from ray.cluster_utils import Cluster

    root = tempfile.mkdtemp(prefix="llrc", dir="/tmp")  # short: Ray's unix sockets need < 108 bytes
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_AUTH_MODE", "disabled")
        mp.setenv("RAY_TMPDIR", root)
        mp.setenv("HOME", root)
        c = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 1,
                "include_dashboard": False,
                "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3},
            },
        )
        worker = c.add_node(num_cpus=1)
        c.wait_for_nodes()
        try:
            yield c, worker
        finally:
            c.shutdown()
            shutil.rmtree(root, ignore_errors=True)


def _running_task_pid(raylet_pid: int) -> int | None:
    """pid of a worker of that raylet currently executing a task (process title ``ray::_run_task``)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == raylet_pid and title.startswith(b"ray::_run_task"):
            return int(entry.name)
    return None


def _outcomes(store):
    """run_id -> (status, final test/mse, final train/loss); closes the store."""
    with store:
        runs = store.runs().set_index("run_id")
    return {rid: (row["status"], row["test/mse"], row["train/loss"]) for rid, row in runs.iterrows()}


def test_sweep_completes_every_run_exactly_once_when_a_worker_node_dies(cluster, tmp_path):
    import ray

    c, worker = cluster
    raylet_pid = worker.all_processes["raylet"][0].process.pid
    killed = {}
    seen = []

    def on_result(result, done, total):
        seen.append(result.run_id)
        if killed:
            return
        deadline = time.monotonic() + 60
        while (pid := _running_task_pid(raylet_pid)) is None and time.monotonic() < deadline:
            time.sleep(0.005)
        killed["task_pid"] = pid
        c.remove_node(worker, allow_graceful=False)  # SIGKILL the node's processes
        killed["after"] = done

    store = sweep(SPEC, out=tmp_path / "ray", executor="ray", address=c.address, runs_per_task=1, on_result=on_result)
    assert killed["task_pid"] is not None, "no task was running on the worker node when it was killed"
    assert killed["after"] < 8
    with pytest.raises(ProcessLookupError):
        os.kill(killed["task_pid"], 0)  # that worker is gone: its task was re-run elsewhere
    assert not ray.is_initialized()  # the executor disconnected its driver...
    assert c.head_node.remaining_processes_alive()  # ...and left the cluster running

    reference = _outcomes(sweep(SPEC, out=tmp_path / "serial", executor="serial"))
    assert len(reference) == 8
    assert sorted(seen) == sorted(reference)  # every run reported exactly once
    assert set(store.statuses().values()) == {"finished"}
    assert _outcomes(store) == reference  # and recorded with the same values


def test_an_instance_the_caller_connected_is_used_and_left_connected(cluster, tmp_path):
    import ray

    c, _ = cluster
    spec = {**SPEC, "train": {**SPEC["train"], "steps": 20}, "sweep": {"seeds": 2}}
    ray.init(address=c.address, log_to_driver=False)
    try:
        with sweep(spec, out=tmp_path / "out", executor="ray") as store:
            assert sorted(store.statuses().values()) == ["finished", "finished"]
        assert ray.is_initialized()
    finally:
        ray.shutdown()
    assert c.head_node.remaining_processes_alive()


def test_main_module_callables_reach_ray_workers(cluster, tmp_path):
    from test_sweep_callables import notebook_functions, outcomes, spec_with

    c, _ = cluster
    spec = spec_with(notebook_functions()["product_target"])
    on_ray = outcomes(sweep(spec, out=tmp_path / "ray", executor="ray", address=c.address))
    serial = outcomes(sweep(spec, out=tmp_path / "serial", executor="serial"))
    assert len(serial) == 4 and {v[0] for v in serial.values()} == {"finished"}
    assert on_ray == serial  # Ray workers could not import __main__: the function came by value
