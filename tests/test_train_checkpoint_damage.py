"""A checkpoint or saved state that cannot be read never blocks its run.

A damaged file (a malicious pickle, truncated bytes, random garbage) is moved aside to
``<name>.bad`` (never deleted, never unpickled beyond what ``weights_only`` allows), a
warning says which file, why and that the run restarts from step 0, and the run then
completes with the results of an uninterrupted run. The checkpoints are real ones, left
by a run that crashed mid-way (the ``interrupt`` probe of conftest.py), then damaged.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import sqlite3
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from learnlab.experiments import sweep
from learnlab.train import Checkpointer, CheckpointWarning
from learnlab.train._checkpoint import read_state

SPEC = {
    "name": "damage",
    "seed": 3,
    "task": {
        "inputs": {"name": "gaussian", "d": 4},
        "target": {"name": "hermite", "monomial": {0: 1, 1: 1}},
        "noise": 0.1,
        "n_test": 64,
    },
    "model": {"width": 16, "depth": 2},
    "train": {
        "optimizer": "adam",
        "lr": 0.01,
        "steps": 30,
        "batch_size": 16,
        "eval_every": 10,
        "log_every": 1,
        "thresholds": [0.9],
        "checkpoint_every": 5,
        "probes": [{"name": "interrupt_probe:Interrupt", "every": 1}, {"name": "param_norm", "every": 5}],
    },
    "sweep": {"grid": {"train.lr": [0.01, 0.02]}},
}


class _Payload:
    """Unpickled, it makes the directory ``marker``: proof that the pickle ran code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def _malicious_pickle(marker: Path) -> bytes:
    return pickle.dumps({"step": 15, "model": _Payload(marker)}, protocol=2)


def _malicious_torch_file(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"step": 15, "model": _Payload(marker)}, buffer)
    return buffer.getvalue()


def _unpickled_anyway(data: bytes) -> None:
    """Load ``data`` the unsafe way (a plain unpickler), as a checkpoint loader must never do."""
    if data[:2] == b"PK":  # torch's zip format: the pickle is its data.pkl
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            (name,) = [n for n in archive.namelist() if n.endswith("data.pkl")]
            data = archive.read(name)
    pickle.loads(data)


def _damage(kind: str, original: bytes, marker: Path) -> bytes:
    if kind == "malicious-pickle":
        return _malicious_pickle(marker)
    if kind == "malicious-torch-file":
        return _malicious_torch_file(marker)
    if kind == "truncated":
        return original[: len(original) // 2]
    return random.Random(0).randbytes(4096)  # garbage


@pytest.mark.parametrize("kind", ["malicious-pickle", "malicious-torch-file"])
def test_the_malicious_payloads_do_run_code_when_unpickled(kind, tmp_path):
    """The payloads the tests below plant are live: a plain unpickler runs them."""
    control = tmp_path / "control"
    _unpickled_anyway(_damage(kind, b"", control))
    assert control.is_dir()


@pytest.mark.parametrize("kind", ["malicious-pickle", "malicious-torch-file", "truncated", "garbage", "empty"])
def test_an_unreadable_checkpoint_is_moved_aside_with_a_one_line_warning(kind, tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"step": 5, "model": {"w": torch.ones(3)}}, good)
    path, marker = tmp_path / "group-x.pt", tmp_path / "pwned"
    data = b"" if kind == "empty" else _damage(kind, good.read_bytes(), marker)
    path.write_bytes(data)
    checkpoint = Checkpointer(path, every=5)
    with pytest.warns(CheckpointWarning) as caught:
        assert checkpoint.load() is None
    (warning,) = caught
    text = str(warning.message)
    assert text.startswith(f"checkpoint {path} cannot be read (") and "\n" not in text
    assert text.endswith("moved it to group-x.pt.bad; the run restarts from step 0")
    assert "weights_only" not in text
    assert not path.exists() and (tmp_path / "group-x.pt.bad").read_bytes() == data
    assert not marker.exists()
    assert Checkpointer(good, every=5).load()["step"] == 5  # a good one still loads


def test_files_set_aside_before_are_kept(tmp_path):
    path = tmp_path / "group-x.pt"
    for k, expected in enumerate(["group-x.pt.bad", "group-x.pt.bad.1", "group-x.pt.bad.2"]):
        path.write_bytes(b"garbage %d" % k)
        with pytest.warns(CheckpointWarning, match=expected.replace(".", r"\.") + ";"):
            assert read_state(path, "checkpoint", "the run restarts from step 0") is None
    assert [(tmp_path / n).read_bytes() for n in ("group-x.pt.bad", "group-x.pt.bad.1", "group-x.pt.bad.2")] == [
        b"garbage 0",
        b"garbage 1",
        b"garbage 2",
    ]


def test_a_readable_file_that_is_not_a_state_is_set_aside_too(tmp_path):
    path = tmp_path / "x.state.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.warns(CheckpointWarning, match="it holds a list, not a saved loop state"):
        assert read_state(path, "saved state", "run r restarts from step 0") is None
    assert (tmp_path / "x.state.pt.bad").is_file()


def _snapshot(out: Path, steps: int | None = None) -> dict:
    """The store's runs (of ``steps`` steps, if given) and their metric histories, read-only."""
    conn = sqlite3.connect(f"file:{out / 'results.db'}?mode=ro", uri=True)
    try:
        runs = conn.execute(
            "SELECT run_id, config, status, step, final, thresholds, error FROM runs ORDER BY run_id"
        ).fetchall()
        metrics = conn.execute("SELECT run_id, step, name, value FROM metrics ORDER BY run_id, name, step").fetchall()
    finally:
        conn.close()
    if steps is not None:
        runs = [r for r in runs if json.loads(r[1])["train"]["steps"] == steps]
    ids = {r[0] for r in runs}
    return {"runs": runs, "metrics": [m for m in metrics if m[0] in ids]}


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """``learnlab run`` in a fresh process (the probe module importable there too)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "learnlab", "run", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _said(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, executor",
    [
        ("malicious-pickle", "processes"),  # the warning comes from a worker process
        ("malicious-torch-file", "ensemble"),  # one checkpoint for a stack of two runs
        ("truncated", "serial"),
        ("garbage", "ensemble"),
    ],
)
def test_a_damaged_checkpoint_is_set_aside_and_the_run_completes_as_if_uninterrupted(
    kind, executor, interrupt, tmp_path
):
    spec_path, out, reference, marker = tmp_path / "spec.yaml", tmp_path / "out", tmp_path / "ref", tmp_path / "pwned"
    spec_path.write_text(yaml.safe_dump(SPEC))
    in_process = "ensemble" if executor == "ensemble" else "serial"  # the same groups as `executor`'s
    sweep(SPEC, out=reference, executor=in_process).close()
    expected = _snapshot(reference)
    assert {r[2] for r in expected["runs"]} == {"finished"}

    interrupt["step"] = 17  # the first group crashes at step 17, its checkpoint of step 15 stays
    sweep(SPEC, out=out, executor=in_process).close()
    assert "failed" in {r[2] for r in _snapshot(out)["runs"]}
    (path,) = (out / "checkpoints").glob("group-*.pt")
    assert torch.load(path, weights_only=True)["step"] == 15
    damaged = _damage(kind, path.read_bytes(), marker)
    path.write_bytes(damaged)

    result = _cli(tmp_path, str(spec_path), "--out", str(out), "--executor", executor)
    said = _said(result)
    assert result.returncode == 0, said
    (line,) = [line for line in said.splitlines() if line.startswith("warning: checkpoint")]
    assert f"{path} cannot be read (" in line and f"moved it to {path.name}.bad" in line
    assert line.endswith("the run restarts from step 0")
    assert "weights_only" not in said
    assert not marker.exists()  # the payload never ran
    assert Path(f"{path}.bad").read_bytes() == damaged  # kept as it was, beside where it was
    assert not path.exists()  # the group finished: its checkpoint is removed
    got = _snapshot(out)
    assert got == expected  # every run finished, every value as in the uninterrupted sweep


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["malicious-torch-file", "truncated"])
def test_a_damaged_saved_state_is_set_aside_and_extend_runs_from_scratch(kind, tmp_path):
    spec = {**SPEC, "train": {**SPEC["train"], "steps": 20, "save_final": True, "checkpoint_every": None}}
    spec["train"]["probes"] = [{"name": "param_norm", "every": 5}]
    spec_path, out, scratch, marker = tmp_path / "spec.yaml", tmp_path / "out", tmp_path / "scratch", tmp_path / "pwned"
    spec_path.write_text(yaml.safe_dump(spec))
    short = sweep(spec, out=out, executor="serial")
    first = sorted(short.statuses())[0]
    short.close()
    path = out / "checkpoints" / f"{first}.state.pt"
    damaged = _damage(kind, path.read_bytes(), marker)
    path.write_bytes(damaged)

    result = _cli(tmp_path, str(spec_path), "--out", str(out), "--executor", "serial", "train.steps=40", "--extend")
    said = _said(result)
    assert result.returncode == 0, said
    assert "2 continue a shorter run's saved state" in " ".join(said.split())  # as planned
    (line,) = [line for line in said.splitlines() if line.startswith("warning: saved state")]
    assert f"{path} cannot be read (" in line and f"moved it to {path.name}.bad" in line
    assert "restarts from step 0" in line and "weights_only" not in said
    assert not marker.exists()
    assert Path(f"{path}.bad").read_bytes() == damaged

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sweep({**spec, "train": {**spec["train"], "steps": 40}}, out=scratch, executor="serial").close()
    expected = _snapshot(scratch)
    assert len(expected["runs"]) == 2 and {r[2] for r in expected["runs"]} == {"finished"}
    assert _snapshot(out, steps=40) == expected  # the run from scratch and the one continued alike
