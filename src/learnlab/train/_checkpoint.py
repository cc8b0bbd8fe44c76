"""Resumable checkpoints of a training loop, and reading saved loop states safely.

Checkpoints hold tensors and plain data only, and are read with
``torch.load(weights_only=True)``: a file that holds anything else is refused, never
unpickled. A file that cannot be read (truncated, garbage, or refused) never blocks its
run: it is moved aside to ``<name>.bad`` (``.bad.1``, ``.bad.2``, ... if that exists),
never deleted, a :class:`CheckpointWarning` says so, and the run starts from step 0.
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

__all__ = ["Checkpointer", "CheckpointWarning", "read_state", "RUNNING"]

RUNNING: list[Checkpointer] = []  # checkpointers of the loops running now in this process (fit adds them)


class CheckpointWarning(UserWarning):
    """A saved loop state could not be read: it was moved aside and its run starts from step 0."""


class Checkpointer:
    """Saves the loop's whole state every ``every`` steps to ``path``; ``load`` resumes it.

    The state holds parameters, buffers, optimizer state and hyperparameters, every
    generator state, offline shuffling order, threshold trackers and the histories so
    far, so a resumed run ends bit-identical to an uninterrupted one. Writes go to a
    temporary file renamed into place, so a kill never leaves a torn checkpoint.
    """

    def __init__(self, path: str | Path, every: int):
        self.path, self.every = Path(path), every
        self.requested: Callable[[], object] | None = None  # see request()

    def request(self, then: Callable[[], object]) -> None:
        """Save at the next step boundary, then call ``then`` (e.g. a SLURM job's requeue-and-exit,
        asked for by the time-limit signal: the requeued job resumes exactly there)."""
        self.requested = then

    def saved(self) -> None:
        """After a save: run what a request asked for once it is done."""
        then, self.requested = self.requested, None
        if then is not None:
            then()

    def save(self, state: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path)

    def load(self) -> dict | None:
        """The saved state; None if there is none, or if it cannot be read (then it is moved
        aside with a :class:`CheckpointWarning`, see :func:`read_state`)."""
        if not self.path.is_file():
            return None
        return read_state(self.path, "checkpoint", "the run restarts from step 0")

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def read_state(path: Path, what: str, then: str) -> dict | None:
    """``torch.load(path, weights_only=True)``, or None if the file cannot be read.

    A file that is missing, truncated, not a torch file, or holds objects other than
    tensors and plain data (which ``weights_only`` refuses) is renamed to ``<name>.bad``
    (or ``.bad.1``, ...), and a :class:`CheckpointWarning` names it, says why in one line
    and what happens instead.

    Args:
        path: the file.
        what: what it is, for the warning ("checkpoint").
        then: what the caller does instead, for the warning ("the run restarts from step 0").

    Raises:
        OSError: if the file cannot be opened or moved aside (a permission problem, say).
    """
    try:
        file = open(path, "rb")
    except FileNotFoundError:  # e.g. set aside by another run that continues it too
        warnings.warn(f"{what} {path} is missing; {then}", CheckpointWarning, stacklevel=3)
        return None
    with file, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own remarks on the file's pickle protocol
        try:
            state = torch.load(file, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many kinds (OSError too) for a damaged file
            state, reason = None, _reason(exc)
        else:
            if isinstance(state, dict):
                return state
            reason = f"it holds a {type(state).__name__}, not a saved loop state"
    bad = set_aside(path)
    moved = f"moved it to {bad.name}" if bad is not None else "another run moved it aside"
    warnings.warn(f"{what} {path} cannot be read ({reason}); {moved}; {then}", CheckpointWarning, stacklevel=3)
    return None


def set_aside(path: Path) -> Path | None:
    """Rename ``path`` to ``<name>.bad``, or ``.bad.1``, ``.bad.2``, ... (never overwriting one).

    Returns:
        The new path, or None if ``path`` is gone already (another process set it aside).
    """
    bad, k = path.with_name(path.name + ".bad"), 0
    while bad.exists():
        k += 1
        bad = path.with_name(f"{path.name}.bad.{k}")
    try:
        os.rename(path, bad)
    except FileNotFoundError:
        return None
    return bad


def _reason(exc: Exception) -> str:
    """One line on why torch could not load a file (never torch's advice to load it unsafely)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() and "weights_only" not in line]
    if isinstance(exc, EOFError):
        return "it ends early: empty or truncated"
    if isinstance(exc, pickle.UnpicklingError):
        # torch's refusal: a paragraph on loading it unsafely, then what it met, e.g.
        # "Trying to load unsupported GLOBAL posix.system whose module posix is blocked."
        found = [_sentence(line) for line in lines if "unsupported" in line.lower()]
        detail = f": {found[0]}" if found else ""
        return f"it holds more than tensors and plain data, so it is not loaded{detail}"
    first = f": {_sentence(lines[0])}" if lines else ""
    return f"not a torch file: {type(exc).__name__}{first}"


def _sentence(line: str) -> str:
    """The first sentence of ``line``, without its full stop."""
    return line.split(". ", 1)[0].rstrip(".")
