"""``kill -9`` of a running ``learnlab run`` at several points, then resume: nothing lost or duplicated."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from learnlab.experiments import sweep

SPEC = {
    "name": "resume",
    "seed": 7,
    "task": {
        "inputs": {"name": "gaussian", "d": 8},
        "target": {"name": "hermite", "monomial": {0: 1, 1: 1}},
        "n_test": 256,
    },
    "model": {"width": 32, "depth": 2},
    "train": {"lr": 0.05, "batch_size": 32, "steps": 200, "eval_every": 50, "log_every": 10, "thresholds": [0.5]},
    "sweep": {"grid": {"train.lr": [0.02, 0.05, 0.1]}, "seeds": 2},
}
N_RUNS = 6


def _snapshot(db: Path) -> dict:
    """Everything a resumed store must reproduce: run ids, statuses, finals, thresholds, histories."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        runs = conn.execute(
            "SELECT run_id, config, status, step, final, thresholds FROM runs ORDER BY run_id"
        ).fetchall()
        metrics = conn.execute("SELECT run_id, step, name, value FROM metrics ORDER BY run_id, name, step").fetchall()
    conn.close()
    return {"runs": runs, "metrics": metrics}


def _check_integrity(db: Path) -> None:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT run_id FROM runs GROUP BY run_id HAVING COUNT(*) > 1").fetchall() == []
        assert (
            conn.execute(
                "SELECT run_id, name, step FROM metrics GROUP BY run_id, name, step HAVING COUNT(*) > 1"
            ).fetchall()
            == []
        )
    finally:
        conn.close()


def _finished(db: Path) -> int | None:
    """Runs committed as finished once all are registered, read the way any reader would
    (read-only, while the sweep writes); None before that."""
    if not db.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)
        try:
            registered, finished = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(status = 'finished'), 0) FROM runs"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.OperationalError:  # schema not created yet, or a writer holds a lock
        return None
    return finished if registered == N_RUNS else None


def _children(pid: int) -> set[int]:
    """Live processes whose parent is ``pid`` (Linux /proc)."""
    kids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == pid:
            kids.add(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill_after(
    spec: Path, out: Path, k: int, timeout: float = 120, executor: str = "serial", workers: list[int] | None = None
) -> int:
    """Start ``learnlab run``, SIGKILL it once ``k`` runs are committed; return the count at the kill.
    The driver's child processes at the kill are appended to ``workers``."""
    cmd = [sys.executable, "-m", "learnlab", "run", str(spec), "--out", str(out), "--executor", executor]
    if executor == "processes":
        cmd += ["--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = out / "results.db"
    deadline = time.monotonic() + timeout
    try:
        while (count := _finished(db)) is None or count < k:
            if proc.poll() is not None:
                pytest.fail(f"learnlab run exited ({proc.returncode}) before {k} runs: {proc.stderr.read().decode()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {k} runs committed within {timeout} s")
            time.sleep(0.005)
        if workers is not None:
            workers.extend(_children(proc.pid))
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
        proc.stderr.close()
    # the last point may find the CLI already done (summary and figure written): also a valid end
    assert proc.returncode == -signal.SIGKILL or (k == N_RUNS and proc.returncode == 0)
    return _finished(db)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The store of an uninterrupted run of the same spec."""
    out = tmp_path_factory.mktemp("reference")
    store = sweep(SPEC, out=out, executor="serial")
    store.close()
    snap = _snapshot(out / "results.db")
    assert len(snap["runs"]) == N_RUNS and {r[2] for r in snap["runs"]} == {"finished"}
    return snap


@pytest.mark.slow
@pytest.mark.parametrize("k", [0, 2, N_RUNS])
def test_kill_9_then_resume_gives_the_uninterrupted_store(k, reference, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    out = tmp_path / "out"
    committed = _kill_after(spec, out, k)
    db = out / "results.db"
    _check_integrity(db)  # consistent right after the kill
    assert k <= committed <= N_RUNS and (committed < N_RUNS or k == N_RUNS)
    partial = _snapshot(db)
    assert len(partial["runs"]) == N_RUNS  # every run registered before any trained
    done = {r[0] for r in partial["runs"] if r[2] == "finished"}
    assert len(done) == committed
    for rid, _, status, *_ in partial["runs"]:  # a run is either wholly committed or has no metrics
        rows = [m for m in partial["metrics"] if m[0] == rid]
        assert (status == "finished") == bool(rows)

    resumed = []
    store = sweep(SPEC, out=out, executor="serial", on_result=lambda r, d, t: resumed.append(r.run_id))
    store.close()
    assert len(resumed) == N_RUNS - committed and not set(resumed) & done  # finished runs are skipped
    _check_integrity(db)
    assert _snapshot(db) == reference


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_kill_9_of_a_process_pool_driver_leaves_no_worker_and_resumes(reference, tmp_path):
    """The pool's workers notice their driver is gone and exit; a re-run with the pool
    completes the store, equal to the uninterrupted serial one."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    out = tmp_path / "out"
    workers: list[int] = []
    committed = _kill_after(spec, out, 2, executor="processes", workers=workers)
    assert workers  # the pool was running
    deadline = time.monotonic() + 30
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [w for w in workers if _alive(w)], "pool workers outlived their killed driver"
    db = out / "results.db"
    _check_integrity(db)
    assert 2 <= committed <= N_RUNS
    store = sweep(SPEC, out=out, executor="processes", workers=2)
    store.close()
    _check_integrity(db)
    assert _snapshot(db) == reference
