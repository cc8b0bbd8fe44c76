"""An output folder: usable or not (said before any work), and written by one process at a time.

A sweep writes ``OUT/results.db`` (and checkpoints, artifacts, logs) only while it holds an
exclusive OS lock on ``OUT/.learnlab.lock`` (``fcntl.flock``: released by the operating
system when its holder ends, however it ends). A second writer on the same folder is told
who holds it (pid, host, since) and stops before touching anything; readers never take it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import IO

__all__ = ["StoreError", "FolderBusy", "FolderLock", "check_folder", "LOCK_NAME"]

LOCK_NAME = ".learnlab.lock"


class StoreError(ValueError):
    """An output folder or results store that cannot be used as asked (said before any work)."""


class FolderBusy(StoreError):
    """Another process is writing to the output folder."""


def check_folder(out: str | os.PathLike, *, write: bool, create: bool = True) -> Path:
    """The output folder as a Path, after checking that it can be used; StoreError otherwise.

    ``write``: a sweep will write there: the folder must be writable, or creatable (it is
    created unless ``create`` is False: a plan checks, a sweep creates). Otherwise (a
    reader) only a file in its place is refused here; a missing store is the reader's to say.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StoreError(f"{out} is a file, not a folder: give --out a folder (it will hold results.db)")
    db = out / "results.db"
    if db.exists() and not db.is_file():
        raise StoreError(f"{db} is not a file: not a learnlab store; move it away or use another --out")
    if not write:
        return out
    if not out.exists():
        parent = out.absolute().parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise StoreError(f"cannot create the output folder {out}: {parent} is a file")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise StoreError(f"cannot create the output folder {out}: {parent} is not writable")
        if create:
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the output folder {out}: {exc.strerror or exc}") from None
        return out
    if not os.access(out, os.W_OK | os.X_OK):
        raise StoreError(f"the output folder {out} is not writable (a read-only mount?): use another --out")
    return out


class FolderLock:
    """The one-writer lock of an output folder (a context manager).

    Raises (on entry):
        FolderBusy: another live process holds it (its pid, host and start time are named).
        StoreError: the lock file cannot be created (the folder is not writable).
    """

    def __init__(self, out: str | os.PathLike):
        self.path = Path(out) / LOCK_NAME
        self._fh: IO[str] | None = None

    def __enter__(self) -> FolderLock:
        import fcntl

        try:
            fh = open(self.path, "a+")  # noqa: SIM115 - held until __exit__
        except OSError as exc:
            raise StoreError(f"cannot lock {self.path.parent}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fh)
            fh.close()
            raise FolderBusy(
                f"{self.path.parent} is being written by another learnlab ({holder}); wait for it to end, or "
                "use another --out. Reading it (learnlab status, export, report) works meanwhile"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}))
        fh.flush()
        self._fh = fh
        return self

    @classmethod
    def check_free(cls, out: str | os.PathLike) -> None:
        """FolderBusy now if another process holds the folder's lock (the lock is not kept: a
        caller says so early; the sweep's own lock is what protects the folder)."""
        if (Path(out) / LOCK_NAME).is_file():
            with cls(out):
                pass

    def __exit__(self, *exc) -> None:
        import fcntl

        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def _holder(fh) -> str:
    """Who holds a lock, from what it wrote in the lock file."""
    try:
        fh.seek(0)
        info = json.loads(fh.read() or "{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["since"])))
        return f"pid {info['pid']} on {info['host']}, since {since}"
    except (ValueError, KeyError, TypeError, OSError):
        return "a process that has not said who it is yet"
