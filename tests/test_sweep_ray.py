"""The ray executor on a local instance: same results as serial/processes, clean errors, no leftovers."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from learnlab.cli import app
from learnlab.experiments import sweep
from learnlab.experiments._ray import RayExecutor, batch_groups

pytest.importorskip("ray")  # the optional extra learnlab[ray]


@pytest.fixture
def short_tmp():
    """A fresh folder under /tmp: Ray's unix sockets need paths < 108 bytes, tmp_path can be longer."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="llray", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def ray_env(monkeypatch, tmp_path, short_tmp):
    """Token auth off, ``~`` redirected, the executor's temporary folders made in ``short_tmp``.

    Returns (home, short_tmp). Only the executor module's view of ``tempfile`` is patched:
    patching ``tempfile.tempdir`` itself would leak into caches other libraries keep.
    """
    import tempfile
    from types import SimpleNamespace

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("HOME", str(home))
    mkdtemp = tempfile.mkdtemp
    monkeypatch.setattr(
        "learnlab.experiments._ray.tempfile",
        SimpleNamespace(mkdtemp=lambda prefix: mkdtemp(prefix=prefix, dir=short_tmp)),
    )
    return home, short_tmp


def _outcomes(store) -> dict:
    """run_id -> (status, final test/mse, threshold step, metric history): what must match exactly.

    Closes the store.
    """
    with store:
        runs = store.runs().set_index("run_id")
        metrics = store.metrics()
    history = {
        rid: list(map(tuple, g[["step", "name", "value"]].itertuples(index=False)))
        for rid, g in metrics.groupby("run_id")
    }
    return {
        rid: (row["status"], row["test/mse"], repr(row["steps_to/0.9"]), history[rid]) for rid, row in runs.iterrows()
    }


@pytest.mark.slow
def test_local_ray_instance_gives_the_same_results_as_serial_and_processes(tiny_spec, tmp_path, ray_env):
    import ray

    home, temp = ray_env

    tiny_spec["sweep"] = {"grid": {"train.lr": [0.05, 0.1, 0.2]}, "seeds": 2}  # 6 runs
    seen, sessions = [], []

    def on_result(result, done, total):
        seen.append((result.run_id, done, total))
        sessions.extend(temp.glob("learnlab-ray-*/session_*"))

    ray_store = sweep(tiny_spec, out=tmp_path / "ray", executor="ray", workers=2, on_result=on_result)
    serial_store = sweep(tiny_spec, out=tmp_path / "serial", executor="serial")
    processes_store = sweep(tiny_spec, out=tmp_path / "processes", executor="processes", workers=2)

    expected = _outcomes(serial_store)
    assert len(expected) == 6 and all(v[0] == "finished" for v in expected.values())
    assert _outcomes(ray_store) == expected  # same run ids, statuses and every metric value, exactly
    assert _outcomes(processes_store) == expected
    assert sorted(r for r, _, _ in seen) == sorted(expected)  # each run reported once
    assert [d for _, d, _ in seen] == list(range(1, 7)) and {t for _, _, t in seen} == {6}
    # the executor kept its session files in a temporary folder, then shut down and removed them
    assert sessions and all(path.parent.parent == temp for path in sessions)
    assert not ray.is_initialized()
    assert list(temp.iterdir()) == []
    assert not (home / ".ray").exists()  # no auth token written under ~


def test_batch_groups_packs_consecutive_groups_without_splitting_them():
    groups = [[{"i": 0}], [{"i": 1}, {"i": 2}], [{"i": 3}], [{"i": 4}], [{"i": 5}]]
    tasks = batch_groups(groups, runs_per_task=2)
    assert tasks == [[[{"i": 0}], [{"i": 1}, {"i": 2}]], [[{"i": 3}], [{"i": 4}]], [[{"i": 5}]]]
    assert [g for t in batch_groups(groups, 100) for g in t] == groups
    assert len(batch_groups(groups, 1)) == 5


def test_default_batching_gives_about_four_tasks_per_cpu_slot():
    from types import SimpleNamespace

    groups = [[{"i": i}] for i in range(64)]
    executor = RayExecutor()
    executor._ray = SimpleNamespace(cluster_resources=lambda: {"CPU": 4.0})
    per_task = executor._runs_per_task(groups)
    assert per_task == 4 and len(batch_groups(groups, per_task)) == 16  # 4 tasks per CPU
    executor.num_cpus = 2  # 2 slots of 2 CPUs
    assert len(batch_groups(groups, executor._runs_per_task(groups))) == 8
    assert RayExecutor(runs_per_task=5)._runs_per_task(groups) == 5


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never answers (not a Ray head)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


@pytest.mark.parametrize("kind", ["refused", "silent", "malformed"])
def test_unreachable_ray_address_is_a_clean_error_within_seconds(kind, tiny_spec, tmp_path, silent_server):
    import yaml

    address = {"refused": f"127.0.0.1:{_closed_port()}", "silent": silent_server, "malformed": "no-port-here"}[kind]
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec))
    out = tmp_path / "out"
    start = time.monotonic()
    result = CliRunner().invoke(
        app, ["run", str(spec), "--out", str(out), "--executor", "ray", "--ray-address", address]
    )
    elapsed = time.monotonic() - start
    assert result.exit_code == 2, result.output
    assert address in result.output and "Traceback" not in result.output
    assert elapsed < 10
    assert not out.exists()  # nothing written


def test_ray_address_without_the_ray_executor_is_rejected(tiny_spec, tmp_path):
    import yaml

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec))
    result = CliRunner().invoke(
        app, ["run", str(spec), "--out", str(tmp_path / "out"), "--ray-address", "127.0.0.1:6379"]
    )
    assert result.exit_code == 2
    assert "--ray-address needs --executor ray" in result.output
    assert not (tmp_path / "out").exists()


def test_executor_rejects_bad_resources_and_unreachable_addresses():
    with pytest.raises(ValueError, match="num_cpus"):
        RayExecutor(num_cpus=0)
    with pytest.raises(ValueError, match="runs_per_task"):
        RayExecutor(runs_per_task=0)
    port = _closed_port()
    with pytest.raises(ValueError, match=f"127.0.0.1:{port}"):
        RayExecutor(address=f"127.0.0.1:{port}")
    with pytest.raises(ValueError, match="Ray places tasks itself"):
        RayExecutor(devices=["cuda:0", "cuda:1"])
    assert RayExecutor(devices=["cpu"]).device == "cpu" and RayExecutor().device is None
