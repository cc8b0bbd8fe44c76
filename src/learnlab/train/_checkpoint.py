"""Resumable checkpoints of a training loop (loadable with ``torch.load(weights_only=True)``)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["Checkpointer"]


class Checkpointer:
    """Saves the loop's whole state every ``every`` steps to ``path``; ``load`` resumes it.

    The state holds parameters, buffers, optimizer state and hyperparameters, every
    generator state, offline shuffling order, threshold trackers and the histories so
    far, so a resumed run ends bit-identical to an uninterrupted one. Writes go to a
    temporary file renamed into place, so a kill never leaves a torn checkpoint.
    """

    def __init__(self, path: str | Path, every: int):
        self.path, self.every = Path(path), every

    def save(self, state: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path)

    def load(self) -> dict | None:
        if not self.path.is_file():
            return None
        return torch.load(self.path, weights_only=True)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
