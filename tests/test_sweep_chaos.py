"""Chaos: random ``kill -9``s of ``learnlab run`` across executors, in every phase (start-up,
planning, training, committing), then a resume: the store equals an uninterrupted one."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

SPEC = {
    "name": "chaos",
    "seed": 11,
    "task": {"inputs": {"name": "gaussian", "d": 8}, "target": {"name": "hermite", "monomial": {0: 1, 1: 1}}},
    "model": {"width": 32, "depth": 2},
    "train": {"lr": 0.05, "batch_size": 32, "steps": 2000, "eval_every": 250, "log_every": 10, "thresholds": [0.5]},
    "sweep": {"grid": {"train.lr": [0.02, 0.05, 0.1, 2.0]}, "seeds": 2},  # lr 2.0 diverges
}
KILLS_PER_EXECUTOR = 4
EXECUTORS = ("serial", "processes", "ensemble")


def _snapshot(db: Path) -> dict:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        runs = conn.execute(
            "SELECT run_id, config, status, step, final, thresholds FROM runs ORDER BY run_id"
        ).fetchall()
        metrics = conn.execute("SELECT run_id, step, name, value FROM metrics ORDER BY run_id, name, step").fetchall()
    finally:
        conn.close()
    return {"runs": runs, "metrics": metrics}


def _command(spec: Path, out: Path, executor: str) -> list[str]:
    cmd = [sys.executable, "-m", "learnlab", "run", str(spec), "--out", str(out), "--executor", executor]
    return cmd + (["--workers", "2"] if executor == "processes" else [])


@pytest.mark.slow
@pytest.mark.parametrize("executor", EXECUTORS)
def test_random_kill_9s_then_resume_give_the_uninterrupted_store(executor, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    reference = tmp_path / "reference"
    started = time.perf_counter()
    subprocess.run(_command(spec, reference, executor), capture_output=True, check=True, timeout=600)
    uninterrupted = time.perf_counter() - started  # kills land anywhere in the first 80% of this
    expected = _snapshot(reference / "results.db")
    assert {r[2] for r in expected["runs"]} == {"finished", "diverged"}

    out = tmp_path / "out"
    rng = random.Random(f"chaos-{executor}")
    kills = 0
    for _ in range(5 * KILLS_PER_EXECUTOR):  # until 4 kills land; an attempt that finishes leaves less to do
        if kills == KILLS_PER_EXECUTOR:
            break
        proc = subprocess.Popen(_command(spec, out, executor), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.8 * uninterrupted))  # start-up (imports), planning, training or committing
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        if (out / "results.db").is_file():
            _snapshot(out / "results.db")  # consistent after every kill
    assert kills == KILLS_PER_EXECUTOR  # 12 kills across the three executors
    done = subprocess.run(_command(spec, out, executor), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert _snapshot(out / "results.db") == expected
