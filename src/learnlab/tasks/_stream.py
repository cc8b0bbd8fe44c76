"""Training batches: online (fresh every step) or offline (one fixed sample, reshuffled per epoch)."""

from __future__ import annotations

import torch

from learnlab.tasks._task import Task

__all__ = ["BatchStream"]


class BatchStream:
    """An endless stream of training batches drawn from one generator.

    Online (``task.n_train is None``): every batch is a fresh ``task.sample``.
    Offline: ``n_train`` points are drawn once (with label noise); each epoch visits a
    fresh permutation of them in batches of ``batch_size`` (an incomplete last batch is
    dropped); ``batch_size >= n_train`` gives full-batch gradient descent.
    """

    def __init__(self, task: Task, batch_size: int, generator: torch.Generator, *,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        self.task, self.batch_size, self.generator = task, batch_size, generator
        self.dtype, self.device = dtype, device
        self.sample = None
        if not task.online:
            self.sample = task.train_sample(generator, dtype=dtype, device=device)
            self._order = torch.empty(0, dtype=torch.long, device=device)
            self._pos = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch (x, y): x (batch, d), y (batch, outputs)."""
        if self.sample is None:
            return self.task.sample(self.batch_size, self.generator, dtype=self.dtype, device=self.device)
        x, y = self.sample
        n = x.shape[0]
        if self.batch_size >= n:
            return x, y
        if self._pos + self.batch_size > self._order.numel():
            self._order = torch.randperm(n, generator=self.generator, device=self.device)
            self._pos = 0
        idx = self._order[self._pos:self._pos + self.batch_size]
        self._pos += self.batch_size
        return x[idx], y[idx]
