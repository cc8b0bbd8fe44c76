"""Loggers read back: TensorBoard event files with tensorboard's own EventAccumulator, and
the W&B offline run's ``.wandb`` transaction log parsed record by record. Both must hold
exactly the metric history the store holds.

W&B runs offline with every directory it may write (run dir, cache, config, data,
artifacts, and HOME itself) pointed into the test's temporary folder, so nothing leaves
the machine and nothing is written to the real home directory.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from learnlab.experiments import open_store, sweep

SPEC = {
    "name": "loggers",
    "task": {"inputs": {"name": "hypercube", "d": 4}, "target": {"name": "parity", "indices": [[0, 1]]}, "n_test": 64},
    "model": {"width": 8, "depth": 1},
    "train": {
        "lr": 0.1,
        "steps": 20,
        "batch_size": 16,
        "eval_every": 5,
        "log_every": 2,
        "probes": [{"name": "grad_norm", "every": 10}],
    },
}


def _store_history(out: Path) -> tuple[str, dict[str, dict[int, float]]]:
    store = open_store(out)
    runs = store.runs()
    assert runs["status"].tolist() == ["finished"], runs["error"].tolist()  # a logger failure fails the run
    (rid,) = runs["run_id"]
    frame = store.metrics()
    history = {}
    for name, rows in frame.groupby("name"):
        history[name] = dict(zip(rows["step"].astype(int), rows["value"]))
    store.close()
    return rid, history


def test_tensorboard_events_hold_the_metric_history(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    spec = {**SPEC, "train": {**SPEC["train"], "loggers": ["tensorboard"]}}
    sweep(spec, out=tmp_path, executor="serial")
    rid, history = _store_history(tmp_path)
    acc = EventAccumulator(str(tmp_path / "tensorboard" / rid), size_guidance={"scalars": 0})
    acc.Reload()
    assert set(acc.Tags()["scalars"]) == set(history)
    assert {"train/loss", "test/mse", "probe/grad_norm"} <= set(history)
    for name, values in history.items():
        events = acc.Scalars(name)
        assert [e.step for e in events] == sorted(values)
        for e in events:  # TensorBoard stores float32
            assert e.value == pytest.approx(values[e.step], rel=1e-6)


def _wandb_records(path: Path) -> list[bytes]:
    """Records of a W&B transaction log: a 7-byte header (":W&B", magic, version), then
    LevelDB-log-style blocks of 32 KiB, each record with a 7-byte header (crc32 (4),
    length (2, little-endian), type (1): 1 full, 2 first, 3 middle, 4 last)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, partial, out = 7, 32768, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        payload = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            out.append(payload)
        elif kind == 2:
            partial = payload
        elif kind == 3:
            partial += payload
        elif kind == 4:
            out.append(partial + payload)
    return out


def _wandb_logged(path: Path, expected: dict, wait: float = 20.0) -> dict[str, dict[int, float]]:
    """The history in W&B's transaction log, read again until it equals ``expected`` or
    ``wait`` seconds pass: W&B's service writes the log in a process of its own, which on a
    loaded machine may still be writing when the sweep returns."""
    deadline = time.monotonic() + wait
    while True:
        logged = _wandb_history(path)
        if logged == expected or time.monotonic() > deadline:
            return logged
        time.sleep(0.2)


def _wandb_internal_log(path: Path) -> str:
    """The tail of W&B's own log of the run, to explain a failure."""
    log = path.parent / "logs" / "debug-internal.log"
    return log.read_text()[-3000:] if log.is_file() else f"(no {log})"


def _wandb_history(path: Path) -> dict[str, dict[int, float]]:
    from wandb.proto import wandb_internal_pb2

    history: dict[str, dict[int, float]] = {}
    for raw in _wandb_records(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") != "history":
            continue
        step = record.history.step.num
        for item in record.history.item:
            key = item.key or "/".join(item.nested_key)
            if not key.startswith("_"):
                history.setdefault(key, {})[step] = json.loads(item.value_json)
    return history


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    """Offline W&B with every folder it writes inside tmp_path; stops its service afterwards."""
    wandb = pytest.importorskip("wandb")
    home = tmp_path / "home"
    for key, sub in {
        "WANDB_DIR": "wandb-dir",
        "WANDB_CACHE_DIR": "cache",
        "WANDB_CONFIG_DIR": "config",
        "WANDB_DATA_DIR": "data",
        "WANDB_ARTIFACT_DIR": "artifacts",
    }.items():
        monkeypatch.setenv(key, str(tmp_path / sub))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("HOME", str(home))
    wandb.teardown()  # forget any W&B session an earlier test started under other settings
    yield home
    wandb.teardown()


def test_wandb_offline_run_holds_the_metric_history(tmp_path, wandb_env):
    out = tmp_path / "out"
    spec = {**SPEC, "train": {**SPEC["train"], "loggers": ["wandb"]}}
    sweep(spec, out=out, executor="serial")
    rid, history = _store_history(out)
    (log,) = (out / "wandb").rglob(f"run-{rid}.wandb")
    assert "offline-run" in log.parent.name
    logged = _wandb_logged(log, history)
    assert logged == history, _wandb_internal_log(
        log
    )  # every step of every metric, values exact (JSON round-trips floats)
    written = sorted(str(p) for p in wandb_env.rglob("*")) if wandb_env.exists() else []
    assert not written, written  # nothing written to HOME


def _tensorboard_history(directory: Path) -> dict[str, list[int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(directory), size_guidance={"scalars": 0})
    acc.Reload()
    return {name: [e.step for e in acc.Scalars(name)] for name in acc.Tags()["scalars"]}


@pytest.mark.parametrize("checkpoint_every", [5, None], ids=["resumed-from-checkpoint", "restarted"])
def test_logs_of_a_crashed_then_rerun_run_hold_each_step_once(tmp_path, interrupt, wandb_env, checkpoint_every):
    """A run crashes at step 13 and is run again (from its step-10 checkpoint, or from the
    start): TensorBoard and W&B end with exactly the store's history, no step twice."""
    pytest.importorskip("tensorboard")
    out = tmp_path / "out"
    train = {
        **SPEC["train"],
        "loggers": ["tensorboard", "wandb"],
        "probes": [{"name": "interrupt_probe:Interrupt", "every": 1}, {"name": "grad_norm", "every": 10}],
    }
    if checkpoint_every:
        train["checkpoint_every"] = checkpoint_every
    spec = {**SPEC, "train": train}
    interrupt["step"] = 13
    sweep(spec, out=out, executor="serial")
    store = open_store(out)
    assert store.runs()["status"].tolist() == ["failed"]
    store.close()
    sweep(spec, out=out, executor="serial")
    rid, history = _store_history(out)
    assert max(history["train/loss"]) == 18  # the whole run is in the store
    assert _tensorboard_history(out / "tensorboard" / rid) == {k: sorted(v) for k, v in history.items()}
    (log,) = (out / "wandb").rglob(f"run-{rid}.wandb")  # the crashed attempt's W&B run is gone
    assert _wandb_logged(log, history) == history, _wandb_internal_log(log)
