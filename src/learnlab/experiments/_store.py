"""The results store: one SQLite file (WAL) per output folder, written by one process.

Tables:
    runs(run_id, name, config, status, error, step, started, finished, final, thresholds)
    metrics(run_id, step, name, value)
    meta(key, value)

Each finished run is committed in one transaction (its row and all its metric
history), so a crash or ``kill -9`` at any moment leaves either the whole run or
nothing. Readers can query while a sweep writes (WAL).
"""

from __future__ import annotations

import copy
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from learnlab.experiments._folder import StoreError

__all__ = ["Store", "RunResult", "open_store", "flatten", "db_path", "DONE_STATUSES", "STATUSES", "RUN_COLUMNS"]

DB_NAME = "results.db"
STATUSES = ("pending", "running", "finished", "diverged", "failed", "interrupted")
DONE_STATUSES = ("finished", "diverged")  # results; a re-run skips them, nothing overwrites them
_DONE_SQL = "('finished', 'diverged')"
# what a row of runs() holds besides the flattened config, final metrics and threshold steps
RUN_COLUMNS = ("run_id", "status", "name", "error", "step", "diverged_at", "started", "finished", "artifacts")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    name TEXT,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    step INTEGER,
    started REAL,
    finished REAL,
    final TEXT,
    thresholds TEXT,
    artifacts TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, name, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


@dataclass
class RunResult:
    """What a worker sends back to the driver for one run."""

    run_id: str
    status: str
    error: str | None = None
    step: int | None = None
    started: float | None = None
    finished: float | None = None
    final: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, int | None] = field(default_factory=dict)
    metrics: list[tuple[int, str, float]] = field(default_factory=list)
    artifacts: str | None = None  # path of the run's probe tensors, relative to the output folder


def db_path(path: str | Path) -> Path:
    path = Path(path)
    return path if path.suffix == ".db" else path / DB_NAME


class Store:
    """A results database. Use :func:`open_store` to read one."""

    run_columns = RUN_COLUMNS  # columns of runs() besides config keys, final metrics and threshold steps
    _views = 0  # subsets made (each has its own temporary table of run ids)

    def __init__(self, path: str | Path, *, create: bool = False):
        """Open a store: ``create`` (a sweep: the folder is made, the schema added) or read it.

        A reader never writes: it opens the file read-only (``immutable`` on a read-only
        mount, where SQLite cannot even write its shared-memory file).

        Raises:
            FileNotFoundError: no store at ``path`` (reading).
            StoreError: the file is not a learnlab store (empty, not SQLite, damaged) or cannot
                be opened; nothing in it is changed.
        """
        self.path = db_path(path)
        self._only: frozenset[str] | None = None
        self._only_table = ""
        self._writer = create
        if not create and not self.path.is_file():
            raise FileNotFoundError(f"no results store at {self.path}")
        if self.path.is_file() and self.path.stat().st_size == 0:
            raise StoreError(f"{self.path} is empty (0 bytes): not a learnlab store; move it away or use another --out")
        try:
            if create:
                if not self.path.exists():
                    _create(self.path)
                self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=60, check_same_thread=False)
            else:
                self._conn = _read_only(self.path)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} cannot be opened ({exc}); nothing was changed") from None
        self._conn.text_factory = self._text
        try:
            self._check_schema(new_ok=create)
            if create:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.executescript(_SCHEMA)
        except (sqlite3.DatabaseError, StoreError, UnicodeDecodeError) as exc:
            self._conn.close()
            if isinstance(exc, StoreError):
                raise
            why = "its schema is garbled" if isinstance(exc, UnicodeDecodeError) else str(exc)
            raise StoreError(f"{self.path} is not a usable learnlab store ({why}); nothing was changed") from None

    def _text(self, raw: bytes) -> str:
        """Text cells are UTF-8; anything else means the file was damaged (StoreError, not a crash)."""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise StoreError(
                f"{self.path} is damaged (a text cell is not UTF-8); restore the file, or run into another --out"
            ) from None

    def _check_schema(self, new_ok: bool) -> None:
        """StoreError unless the file is a learnlab store (or, if ``new_ok``, an empty SQLite file)."""
        tables = {n for (n,) in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables and new_ok:
            return
        if not {"runs", "metrics"} <= tables:
            found = ", ".join(sorted(tables)) or "none"
            raise StoreError(f"{self.path} is an SQLite file but not a learnlab store (its tables: {found})")

    def verify(self) -> None:
        """StoreError unless every page of the store reads back (``PRAGMA quick_check``; a
        writer checks before it adds to a store, a reader finds damage as it reads)."""
        try:
            (check,) = self._conn.execute("PRAGMA quick_check").fetchone()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            check = str(exc)
        if check != "ok":
            raise StoreError(f"{self.path} is damaged ({check}); nothing was changed: restore it or use another --out")

    def subset(self, run_ids: Iterable[str]) -> Store:
        """This store seen through some of its runs: ``runs()``, ``metrics()``, ``curves()``,
        summaries and figures of the view hold only those (e.g. the current spec's runs of a
        folder that also holds others). The view shares the connection; close the store, not it."""
        ids = set(run_ids) if self._only is None else set(run_ids) & set(self._only)
        view = copy.copy(self)
        view._only = frozenset(ids)
        Store._views += 1
        view._only_table = f"temp.learnlab_only_{Store._views}"
        self._conn.execute(f"CREATE TABLE {view._only_table} (run_id TEXT PRIMARY KEY)")
        self._conn.executemany(f"INSERT INTO {view._only_table} VALUES (?)", [(r,) for r in sorted(ids)])
        return view

    def _where(self, *conditions: str) -> str:
        """`` WHERE ...`` of some conditions and, in a subset, its runs ('' when there is none)."""
        parts = list(conditions)
        if self._only is not None:
            parts.append(f"run_id IN (SELECT run_id FROM {self._only_table})")
        return " WHERE " + " AND ".join(parts) if parts else ""

    # ---- writing (the driver only) -------------------------------------------------
    def add_runs(self, runs: Iterable[tuple[str, str, dict]]) -> None:
        """Register (run_id, spec name, config) as pending; existing runs are kept."""
        with self._transaction() as c:
            c.executemany(
                "INSERT OR IGNORE INTO runs (run_id, name, config, status) VALUES (?, ?, ?, 'pending')",
                [(rid, name, json.dumps(cfg, sort_keys=True)) for rid, name, cfg in runs],
            )

    def set_status(self, run_ids: Iterable[str], status: str, error: str | None = None) -> None:
        """Set the status of runs that have no result yet (a finished or diverged run keeps its own)."""
        with self._transaction() as c:
            c.executemany(
                f"UPDATE runs SET status = ?, error = ? WHERE run_id = ? AND status NOT IN {_DONE_SQL}",
                [(status, error, rid) for rid in run_ids],
            )

    def record(self, result: RunResult) -> bool:
        """Commit one run's outcome and whole metric history in one transaction.

        A run that already has a result (finished or diverged) keeps it: another attempt never
        overwrites, relabels or deletes it (False is returned). Otherwise its metrics are
        replaced in the same transaction that records its new outcome (True).
        """
        with self._transaction() as c:
            updated = c.execute(
                "UPDATE runs SET status = ?, error = ?, step = ?, started = ?, finished = ?, "
                f"final = ?, thresholds = ?, artifacts = ? WHERE run_id = ? AND status NOT IN {_DONE_SQL}",
                (
                    result.status,
                    result.error,
                    result.step,
                    result.started,
                    result.finished if result.finished is not None else time.time(),
                    json.dumps(result.final),
                    json.dumps(result.thresholds),
                    result.artifacts,
                    result.run_id,
                ),
            ).rowcount
            if not updated:
                return False
            c.execute("DELETE FROM metrics WHERE run_id = ?", (result.run_id,))
            c.executemany(
                "INSERT INTO metrics (run_id, step, name, value) VALUES (?, ?, ?, ?)",
                [(result.run_id, s, n, _sql_float(v)) for s, n, v in result.metrics],
            )
        return True

    def _transaction(self):
        return _Transaction(self._conn)

    # ---- reading -------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        """A value of the store's ``meta`` table (e.g. ``seeding``), or None."""
        try:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:  # a store from before the meta table
            return None
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as c:
            c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def check_seeding(self) -> None:
        """Raise ValueError unless this store's runs were seeded as this learnlab seeds them.

        A store records its seeding scheme (``learnlab._seeds.SEEDING``) when it is created. Runs
        added under another scheme would not pair with those already there, so such a store is
        read (``open_store``), never resumed or extended.
        """
        from learnlab._seeds import SEEDING

        recorded = self.meta("seeding")
        if recorded == SEEDING or (recorded is None and not self.statuses()):
            return
        written = f"with seeding {recorded!r}" if recorded else "by an earlier learnlab (every stream from the run id)"
        raise ValueError(
            f"{self.path} was written {written}; this learnlab seeds each random role from the config it "
            f"depends on ({SEEDING!r}), so its runs would not pair with these. Run into a new --out; the "
            "old store stays readable (learnlab status, export, report, open_store)"
        )

    def names(self) -> set[str]:
        """The spec names of the store's runs."""
        return {n for (n,) in self._conn.execute("SELECT DISTINCT name FROM runs" + self._where()) if n is not None}

    def statuses(self) -> dict[str, str]:
        """run_id -> status."""
        return dict(self._conn.execute("SELECT run_id, status FROM runs" + self._where()).fetchall())

    def outcomes(self) -> dict[str, tuple[dict, str, int | None]]:
        """run_id -> (resolved config, status, last step reached)."""
        query = "SELECT run_id, config, status, step FROM runs" + self._where()
        return {
            rid: (self._decoded(cfg, rid, "config"), status, step)
            for rid, cfg, status, step in self._conn.execute(query)
        }

    def copy_run(self, source: str, target: str) -> None:
        """Record run ``source``'s outcome and whole history as run ``target``'s (one transaction).

        Used for a longer run whose shorter run of the same config ended early: it ends there too.
        """
        with self._transaction() as c:
            row = c.execute(
                "SELECT status, error, step, started, finished, final, thresholds, artifacts FROM runs "
                "WHERE run_id = ?",
                (source,),
            ).fetchone()
            if row is None:
                raise KeyError(f"no run {source!r} in {self.path}")
            status, error, step, started, finished, final, thresholds, artifacts = row
            if artifacts:
                artifacts = artifacts.replace(source, target)
            updated = c.execute(
                "UPDATE runs SET status = ?, error = ?, step = ?, started = ?, finished = ?, final = ?, "
                f"thresholds = ?, artifacts = ? WHERE run_id = ? AND status NOT IN {_DONE_SQL}",
                (status, error, step, started, finished, final, thresholds, artifacts, target),
            ).rowcount
            if updated:
                c.execute("DELETE FROM metrics WHERE run_id = ?", (target,))
                c.execute(
                    "INSERT INTO metrics (run_id, step, name, value) SELECT ?, step, name, value FROM metrics "
                    "WHERE run_id = ?",
                    (target, source),
                )

    def configs(self) -> dict[str, dict]:
        """run_id -> resolved config."""
        query = "SELECT run_id, config FROM runs" + self._where()
        return {rid: self._decoded(cfg, rid, "config") for rid, cfg in self._conn.execute(query)}

    def runs(self):
        """One row per run: run_id, status, error, step, diverged_at, times, flattened config,
        final metrics, thresholds.

        Config keys are flattened with dots (``model.width``, ``train.lr``, ``seed``);
        final metrics keep their names (``test/mse``) and are NaN for a run that diverged (its
        ``diverged_at`` step and, in ``error``, the reason say what happened); the step at which
        the train-loss EMA first fell below threshold c is ``steps_to/c`` (NaN when never reached).
        """
        import pandas as pd

        rows = []
        query = (
            "SELECT run_id, name, config, status, error, step, started, finished, final, thresholds, "
            "artifacts FROM runs" + self._where() + " ORDER BY rowid"
        )
        for rid, name, cfg, status, error, step, started, finished, final, thresholds, artifacts in self._conn.execute(
            query
        ):
            diverged_at = step if status == "diverged" else math.nan
            row = dict(zip(RUN_COLUMNS, (rid, status, name, error, step, diverged_at, started, finished, artifacts)))
            row.update(flatten(self._decoded(cfg, rid, "config")))
            row.update(self._decoded(final, rid, "final") if final else {})
            for c, s in (self._decoded(thresholds, rid, "thresholds") if thresholds else {}).items():
                row[f"steps_to/{c}"] = math.nan if s is None else s
            rows.append(row)
        frame = pd.DataFrame(rows)
        for name in self._metric_names():  # a final column for every metric, NaN where there is none
            if not frame.empty and name not in frame:
                frame[name] = math.nan
        return frame

    def _decoded(self, text, run_id: str, column: str) -> dict:
        """A JSON object of a run's row; StoreError if the store holds something else there."""
        try:
            value = json.loads(text)
        except (TypeError, ValueError):
            value = None
        if not isinstance(value, dict):
            raise StoreError(
                f"{self.path} is damaged: the {column} of run {str(run_id)[:40]!r} is not readable; "
                "restore the file, or run into another --out"
            )
        return value

    def _metric_names(self) -> list[str]:
        query = "SELECT DISTINCT name FROM metrics" + self._where() + " ORDER BY name"
        return [n for (n,) in self._conn.execute(query)]

    def metrics(self, names: Iterable[str] | None = None, run_ids: Iterable[str] | None = None):
        """Long-format metric histories: columns run_id, step, name, value."""
        import pandas as pd

        args: list[str] = []
        where = []
        for column, values in (("name", names), ("run_id", run_ids)):
            if values is not None:
                values = list(values)
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                args += values
        query = "SELECT run_id, step, name, value FROM metrics" + self._where(*where)
        frame = pd.DataFrame(
            self._conn.execute(query + " ORDER BY run_id, name, step", args).fetchall(),
            columns=["run_id", "step", "name", "value"],
        )
        frame["value"] = frame["value"].astype(float)
        return frame

    def config_keys(self) -> list[str]:
        """Flattened config keys of every run (``model.width``, ``train.lr``, ``seed``), in first-seen order."""
        keys: dict[str, None] = {}
        for config in self.configs().values():
            keys.update(dict.fromkeys(flatten(config)))
        return list(keys)

    def curves(self, metric: str, by: list[str] | None = None):
        """``metric`` per step of every config: mean, min, max and how many of its runs are still
        there (``count`` of ``total``). See :func:`learnlab.experiments._aggregates.curves`."""
        from learnlab.experiments._aggregates import curves

        return curves(self, metric, by)

    def varying_keys(self) -> list[str]:
        """Config keys whose value differs between runs (``seed`` excluded): a sweep's axes."""
        from learnlab.experiments._aggregates import varying_keys

        return varying_keys(self.runs().drop(columns=["seed"], errors="ignore"))

    def grid(self, metric: str, axes: list[str], *, reduce: str | None = None):
        """An xarray DataArray of ``metric`` over the sweep ``axes`` (NaN where a run is missing).

        See :func:`learnlab.experiments._grid.grid`.
        """
        from learnlab.experiments._grid import grid

        return grid(self, metric, axes, reduce=reduce)

    def close(self) -> None:
        """Close; a writer first folds the write-ahead log into the file. The store stays in WAL mode
        for good: a switch of journal modes is a write under a rollback journal, and a sweep killed in
        it left a hot journal that read-only readers cannot open until a writer rolls it back."""
        if self._writer:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.DatabaseError:
                pass
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Transaction:
    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, *exc):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _sql_float(value: float):
    return None if value is None or math.isnan(value) else value


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"model": {"width": 64}} -> {"model.width": 64}; lists become JSON strings."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        elif isinstance(value, (list, dict)):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def open_store(path: str | Path) -> Store:
    """Open the results store of an output folder (or a ``.db`` file) for reading."""
    return Store(path)


def _create(path: Path) -> None:
    """A new store at ``path``, whole or not at all: made beside it, then linked into place (a
    kill while it is made leaves a temporary file, never an empty or half-made store)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for left in path.parent.glob(f".{path.name}.*.new"):  # by a writer killed while it made one
        left.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.executescript(_SCHEMA)
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
    try:
        os.link(tmp, path)  # fails if a store appeared meanwhile: that one is kept
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links
        if not path.exists():
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_only(path: Path) -> sqlite3.Connection:
    """A connection that never writes.

    ``mode=ro`` where the folder is writable (a sweep may be writing: its WAL is read too) or
    where a WAL with content was left behind (a killed sweep, then a read-only mount); else,
    on a read-only folder with no WAL, ``immutable`` (SQLite cannot create the shared-memory
    file there, and nothing can be writing).
    """
    uri = path.resolve().as_uri()
    wal = path.with_name(path.name + "-wal")
    if os.access(path.parent, os.W_OK) or (wal.is_file() and wal.stat().st_size > 0):
        return sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, timeout=60, check_same_thread=False)
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None, check_same_thread=False)
