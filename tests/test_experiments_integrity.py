"""A store that cannot be corrupted: one writer per folder, final results, one spec per folder,
unusable folders said in one line (exit 2), read-only stores read."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from learnlab.cli import app
from learnlab.experiments import FolderBusy, RunResult, Store, StoreError, open_store, plan, sweep
from learnlab.experiments._folder import FolderLock

SPEC = {
    "name": "integrity",
    "seed": 3,
    "task": {"inputs": {"name": "gaussian", "d": 6}, "target": {"name": "hermite", "monomial": {0: 1}}, "n_test": 128},
    "model": {"width": 16, "depth": 2},
    "train": {"lr": 0.05, "batch_size": 16, "steps": 40, "eval_every": 20, "log_every": 10},
    "sweep": {"grid": {"train.lr": [0.02, 0.05]}, "seeds": 2},
}


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _write(tmp_path: Path, spec: dict, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return path


def _rows(db: Path) -> dict:
    """run_id -> (status, final, thresholds, metric rows): what a result is."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        runs = conn.execute("SELECT run_id, status, final, thresholds FROM runs").fetchall()
        metrics = conn.execute("SELECT run_id, step, name, value FROM metrics ORDER BY run_id, name, step").fetchall()
    finally:
        conn.close()
    return {rid: (status, final, thr, [m for m in metrics if m[0] == rid]) for rid, status, final, thr in runs}


def _digest(folder: Path) -> dict[str, str]:
    """Each file's hash, but SQLite's scratch files that a reader of a WAL store may create: the
    ``-shm`` index (rebuilt from the log, no data) and an empty ``-wal``."""

    def scratch(p: Path) -> bool:
        return p.name.endswith("-shm") or (p.name.endswith("-wal") and p.stat().st_size == 0)

    files = [p for p in sorted(folder.iterdir()) if p.is_file() and not scratch(p)]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


# ---- finished is final -------------------------------------------------------------------


def test_a_second_writer_cannot_relabel_overwrite_or_delete_a_finished_result(tmp_path):
    """The store itself refuses (the lock keeps a second sweep out; this is what it guards)."""
    store = sweep(SPEC, out=tmp_path, executor="serial")
    before = _rows(store.path)
    ids = sorted(before)
    other = Store(tmp_path, create=True)  # a second connection writing, as a second process would
    other.set_status(ids, "interrupted", "another attempt")
    fake = RunResult(ids[0], "failed", error="boom", step=1, metrics=[(0, "train/loss", 9.0)])
    assert other.record(fake) is False
    other.copy_run(ids[1], ids[2])
    other.close()
    assert _rows(store.path) == before
    store.close()


def test_a_result_replaces_its_metrics_in_the_transaction_that_records_it(tmp_path):
    store = Store(tmp_path, create=True)
    store.add_runs([("r1", "x", {"seed": 0})])
    assert store.record(RunResult("r1", "failed", error="e", step=5, metrics=[(0, "train/loss", 1.0)]))
    assert store.record(RunResult("r1", "finished", step=10, metrics=[(10, "train/loss", 0.5)]))
    assert store.metrics()[["step", "value"]].values.tolist() == [[10, 0.5]]
    assert not store.record(RunResult("r1", "failed", error="late", step=2, metrics=[]))
    assert store.statuses() == {"r1": "finished"} and len(store.metrics()) == 1
    store.close()


# ---- one writer per folder ---------------------------------------------------------------


def test_the_lock_names_its_holder_and_dies_with_it(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom learnlab.experiments._folder import FolderLock\n"
            "with FolderLock(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderBusy, match=rf"pid {holder.pid} on .*since \d{{4}}-"):
            with FolderLock(tmp_path):
                pass
        result = _cli("run", _write(tmp_path, SPEC, "s.yaml"), "--out", tmp_path)
        assert result.exit_code == 2 and f"pid {holder.pid}" in result.output
        assert not (tmp_path / "results.db").exists()  # nothing written
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    with FolderLock(tmp_path):  # released by the OS when its holder was killed
        pass


def _finished_count(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)
        try:
            return conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'finished'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_two_concurrent_runs_on_one_folder_and_a_ctrl_c(tmp_path):
    """The second exits 2 naming the first and touches nothing; a Ctrl-C of the first leaves
    its finished runs as they are; a re-run completes the rest, the finished runs untouched."""
    spec = {**SPEC, "train": {**SPEC["train"], "steps": 3000}, "sweep": {"grid": {"train.lr": [0.01, 0.02, 0.03]}}}
    spec["sweep"]["seeds"] = 4
    path = _write(tmp_path, spec)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "learnlab", "run", str(path), "--out", str(out), "--executor", "serial"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while _finished_count(out / "results.db") < 2:
            assert first.poll() is None, first.stdout.read()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        assert f"pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
        reader = subprocess.run(  # readers are never blocked
            [sys.executable, "-m", "learnlab", "status", str(out)], capture_output=True, text=True, timeout=120
        )
        assert reader.returncode == 0, reader.stderr
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=120) == 130
        assert "interrupted: " in first.stdout.read()
    finally:
        if first.poll() is None:
            first.kill()
        first.wait()
        first.stdout.close()
    after_ctrl_c = _rows(out / "results.db")
    finished = {rid: row for rid, row in after_ctrl_c.items() if row[0] == "finished"}
    assert len(finished) >= 2
    assert {row[0] for row in after_ctrl_c.values()} <= {"finished", "interrupted"}
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    final = _rows(out / "results.db")
    assert {row[0] for row in final.values()} == {"finished"}
    assert {rid: final[rid] for rid in finished} == finished


# ---- one spec per folder -----------------------------------------------------------------


def test_another_spec_into_a_folder_is_refused_unless_appended(tmp_path):
    sweep(SPEC, out=tmp_path, executor="serial").close()
    before = _digest(tmp_path)
    other = {**SPEC, "name": "other", "model": {"width": 8, "depth": 2}}
    with pytest.raises(StoreError, match="holds runs of another spec.*--append"):
        plan(other, out=tmp_path)
    result = _cli("run", _write(tmp_path.parent, other, "other.yaml"), "--out", tmp_path)
    assert result.exit_code == 2 and "--append" in result.output
    assert _digest(tmp_path) == before  # nothing touched
    grown = {**SPEC, "sweep": {**SPEC["sweep"], "seeds": 3}}  # the same spec grown in place: its folder
    assert len(plan(grown, out=tmp_path).todo) == 2
    store = sweep(other, out=tmp_path, executor="serial", append=True)
    assert len(store.statuses()) == 8 and store.names() == {"integrity", "other"}
    ours = store.subset(r.run_id for r in plan(other, out=tmp_path, append=True).runs)
    assert len(ours.runs()) == 4 and ours.names() == {"other"}
    assert set(ours.metrics()["run_id"]) == set(ours.statuses())
    store.close()


# ---- unusable folders and damaged stores -------------------------------------------------


def _damaged(kind: str, folder: Path, good: Path) -> Path:
    folder.mkdir()
    db = folder / "results.db"
    if kind == "empty":
        db.touch()
    elif kind == "not-sqlite":
        db.write_bytes(b"this is not a database\n" * 100)
    elif kind == "truncated":
        db.write_bytes((good / "results.db").read_bytes()[:6000])
    elif kind == "other-sqlite":
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE notes (text TEXT)")
        conn.commit()
        conn.close()
    elif kind == "corrupt-page":
        data = bytearray((good / "results.db").read_bytes())
        data[5000:9000] = os.urandom(4000)  # inside the pages, header intact
        db.write_bytes(bytes(data))
    elif kind == "db-is-a-folder":
        db.mkdir()
    return folder


@pytest.fixture(scope="module")
def good_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("good")
    sweep(SPEC, out=out, executor="serial").close()
    conn = sqlite3.connect(out / "results.db")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return out


@pytest.mark.parametrize("kind", ["empty", "not-sqlite", "truncated", "other-sqlite", "corrupt-page", "db-is-a-folder"])
def test_every_damaged_store_exits_2_with_one_line_and_nothing_touched(kind, good_store, tmp_path):
    folder = _damaged(kind, tmp_path / "out", good_store)
    spec = _write(tmp_path, SPEC)
    before = _digest(folder)
    for args in (
        ["run", spec, "--out", folder],
        ["status", folder],
        ["export", folder, "--to", tmp_path / "x"],
        ["report", folder],
        ["plot", folder],
    ):
        result = _cli(*args)
        assert result.exit_code == 2, (args, result.output, result.exception)
        assert "results.db" in result.output or str(folder) in result.output, result.output
        assert "Traceback" not in result.output
    assert _digest(folder) == before


@pytest.mark.parametrize("out", ["a-file", "a-file/below", "/proc/learnlab-cannot-exist/out"])
def test_an_out_that_cannot_be_a_folder_exits_2_before_work(out, tmp_path):
    (tmp_path / "a-file").write_text("x")
    target = tmp_path / out if not out.startswith("/") else Path(out)
    for extra in ([], ["--dry-run"]):
        result = _cli("run", _write(tmp_path, SPEC), "--out", target, *extra)
        if extra and out.startswith("/proc"):
            continue  # a dry run writes nothing: only a real run finds the OS refusing the folder
        assert result.exit_code == 2 and "folder" in result.output, result.output
    with pytest.raises(StoreError):
        sweep(SPEC, out=target)


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare to mount a folder read-only")
def test_a_store_on_a_read_only_mount_is_read(good_store, tmp_path):
    """status, export, report --to and open_store work; a run and a report into it exit 2."""
    folder = tmp_path / "ro"
    shutil.copytree(good_store, folder)
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare cannot make a mount namespace here: {probe.stderr.decode().strip()}")
    spec = _write(tmp_path, SPEC)
    learnlab = f"{sys.executable} -m learnlab"
    script = f"""
set -u
mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} || exit 99
touch {folder}/probe 2>/dev/null && exit 98
{learnlab} status {folder} > /dev/null; echo status=$?
{learnlab} export {folder} --to {tmp_path}/csv > /dev/null; echo export=$?
{learnlab} report {folder} --to {tmp_path}/r.html > /dev/null; echo report_to=$?
{learnlab} report {folder} > /dev/null 2>&1; echo report_in=$?
{learnlab} run {spec} --out {folder} > /dev/null 2>&1; echo run=$?
{sys.executable} -c "import learnlab; print('runs', len(learnlab.open_store('{folder}').runs()))"
"""
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    if done.returncode in (98, 99):
        pytest.skip("could not mount the folder read-only here")
    said = dict(line.split("=") for line in done.stdout.split() if "=" in line)
    assert said == {"status": "0", "export": "0", "report_to": "0", "report_in": "2", "run": "2"}, done
    assert "runs 4" in done.stdout
    assert (tmp_path / "r.html").is_file() and (tmp_path / "csv" / "runs.csv").is_file()


def test_a_store_stays_in_wal_mode_so_no_kill_leaves_a_journal_a_reader_cannot_open(tmp_path):
    """Switching journal modes is a write under a rollback journal: a sweep killed in it left a hot
    journal that read-only readers refused ("attempt to write a readonly database"). A writer's
    close folds the log into the file and leaves the mode alone; a resume switches nothing."""
    sweep(SPEC, out=tmp_path / "out").close()
    db = tmp_path / "out" / "results.db"
    wal = db.with_name("results.db-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # folded into the file
    assert not db.with_name("results.db-journal").exists()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()
    copy = tmp_path / "copy.db"  # the file alone holds every result
    shutil.copy(db, copy)
    assert _rows(copy) == _rows(db) and len(_rows(copy)) == 4
    store = Store(tmp_path / "out", create=True)  # a resume's writer
    store.close()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_a_store_left_with_a_wal_on_a_read_only_folder_is_read_whole(good_store, tmp_path, monkeypatch):
    """A killed sweep leaves committed results in the WAL: a read-only reader must see them."""
    folder = tmp_path / "out"
    folder.mkdir()
    conn = sqlite3.connect(folder / "results.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    src = sqlite3.connect(good_store / "results.db")
    src.backup(conn)
    src.close()
    conn.execute("UPDATE runs SET name = 'in-the-wal'")
    conn.commit()
    assert (folder / "results.db-wal").stat().st_size > 0
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as on a read-only mount
    store = open_store(folder)
    assert store.names() == {"in-the-wal"}
    store.close()
    conn.close()
