"""No process outlives its driver: process-pool workers end within a second of the driver's
``kill -9``, whenever it comes (as they are spawned, while they import torch before any run,
mid-training), and a local Ray instance ends with a normal exit of ``learnlab run``.

Every process the driver starts is in its session (it is started in a new one), so the
session's members are what must be gone. Polled every 50 ms up to the deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")

DEADLINE_S = 1.0  # the contract: no pool worker outlives its killed driver by more
RAY_DEADLINE_S = 10.0  # nor a Ray process the normal end of learnlab run
POLL_S = 0.05

SPEC = {
    "name": "orphans",
    "seed": 0,
    "task": {"inputs": {"name": "gaussian", "d": 8}, "target": {"name": "hermite", "monomial": {0: 1, 1: 1}}},
    "model": {"width": 64, "depth": 2},
    "train": {"lr": 0.05, "batch_size": 32, "steps": 400, "eval_every": 100},
    "sweep": {"grid": {"train.lr": [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5]}},
}


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, session, ...)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # gone meanwhile
        return None


def _session(sid: int) -> set[int]:
    """Live (not zombie) processes of session ``sid``."""
    members = set()
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat(int(entry.name))
        if fields is not None and int(fields[3]) == sid and fields[0] != "Z":
            members.add(int(entry.name))
    return members


def _workers(driver: int) -> list[int]:
    """The pool's worker processes (spawned children running multiprocessing's spawn_main)."""
    found = []
    for pid in _session(driver) - {driver}:
        fields = _stat(pid)
        try:
            spawned = b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if fields is not None and int(fields[1]) == driver and spawned:
            found.append(pid)
    return found


def _has_torch(pid: int) -> bool:
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _finished_runs(db: Path) -> int:
    if not db.is_file():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)
        try:
            return conn.execute("SELECT COALESCE(SUM(status = 'finished'), 0) FROM runs").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:  # schema not there yet, or a writer holds a lock
        return 0


def _wait_for(condition, what: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"learnlab run exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout} s")
        time.sleep(0.002)


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["spawned", "importing torch", "training"])
def test_pool_workers_end_within_a_second_of_their_drivers_kill_9(moment, tmp_path):
    spec, out = tmp_path / "spec.yaml", tmp_path / "out"
    spec.write_text(yaml.safe_dump(SPEC))
    cmd = [sys.executable, "-m", "learnlab", "run", str(spec), "--out", str(out), "--executor", "processes"]
    proc = subprocess.Popen(
        [*cmd, "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        _wait_for(lambda: _workers(proc.pid), "pool worker", proc)
        if moment == "importing torch":  # the workers have started, no run has
            _wait_for(lambda: any(_has_torch(w) for w in _workers(proc.pid)), "worker importing torch", proc)
            assert _finished_runs(out / "results.db") == 0
        elif moment == "training":
            _wait_for(lambda: _finished_runs(out / "results.db") >= 1, "finished run", proc)
        left_behind = _session(proc.pid) - {proc.pid}
        assert left_behind, "the driver had no processes to leave behind"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = time.monotonic()
        while _session(proc.pid) and time.monotonic() - killed < DEADLINE_S:
            time.sleep(POLL_S)
        survivors = _session(proc.pid)
    finally:
        proc.kill()
        proc.wait()
        for pid in _session(proc.pid):  # none left running if the check failed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert not survivors, f"{len(survivors)} of the driver's {len(left_behind)} processes outlived it by {DEADLINE_S} s"


@pytest.mark.slow
def test_learnlab_runs_local_ray_instance_ends_with_it(tmp_path):
    """A normal exit of ``learnlab run --executor ray`` leaves no Ray process (GCS, raylet,
    agents, workers) behind after 10 s, and removes the instance's session files."""
    pytest.importorskip("ray")  # the optional extra learnlab[ray]
    import shutil
    import tempfile

    spec, out, home = tmp_path / "spec.yaml", tmp_path / "out", tmp_path / "home"
    spec.write_text(yaml.safe_dump({**SPEC, "sweep": {"grid": {"train.lr": [0.01, 0.02, 0.05, 0.1]}}}))
    home.mkdir()
    temp = Path(tempfile.mkdtemp(prefix="llorph", dir="/tmp"))  # Ray's unix sockets need paths < 108 bytes
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "HOME": str(home), "TMPDIR": str(temp)}
    cmd = [sys.executable, "-m", "learnlab", "run", str(spec), "--out", str(out), "--executor", "ray", "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True)
    seen: set[int] = set()
    try:
        while proc.poll() is None:
            seen |= _session(proc.pid) - {proc.pid}
            time.sleep(POLL_S)
        ended = time.monotonic()
        while _session(proc.pid) and time.monotonic() - ended < RAY_DEADLINE_S:
            time.sleep(POLL_S)
        survivors = _session(proc.pid)
    finally:
        proc.kill()
        proc.wait()
        errors = proc.stderr.read().decode()
        proc.stderr.close()
        for pid in _session(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        leftovers = list(temp.glob("learnlab-ray-*"))
        shutil.rmtree(temp, ignore_errors=True)
    assert proc.returncode == 0, errors
    assert len(seen) >= 4  # the instance ran: GCS, raylet, its agents, workers
    assert not survivors, f"{len(survivors)} Ray processes outlived learnlab run by {RAY_DEADLINE_S} s"
    assert leftovers == []  # the instance's session folder is removed
