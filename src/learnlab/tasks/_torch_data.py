"""PyTorch interop: every task as a ``torch.utils.data`` dataset.

Online tasks give an :class:`OnlineBatches` ``IterableDataset`` of whole batches; use it
with ``DataLoader(ds, batch_size=None, num_workers=k)``. Batch b is drawn from its own
generator seeded by (seed, b), and worker w of k yields the batches b = w, w + k, ...;
the DataLoader interleaves workers round-robin, so the stream is the same sequence of
batches for any number of workers, and no two batches share a seed. Fixed tasks (and
the test split) give a map-style :class:`FixedDataset` of single examples.
"""

from __future__ import annotations

import hashlib
import itertools

import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

__all__ = ["OnlineBatches", "FixedDataset", "torch_dataset", "batch_seed"]


def batch_seed(seed: int, batch: int) -> int:
    """A 63-bit seed for batch number ``batch`` of the stream ``seed`` (SHA-256, so nearby seeds are unrelated)."""
    digest = hashlib.sha256(f"learnlab-batch:{seed}:{batch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class OnlineBatches(IterableDataset):
    """Fresh batches (x: (batch_size, d), y: (batch_size, outputs)) of an online task.

    Args:
        task: any task with ``sample``.
        batch_size: examples per batch.
        seed: the stream's seed.
        batches: stream length (None = endless).
        dtype: of x and y (CPU tensors; move them in the training loop, or ``pin_memory``).
    """

    def __init__(
        self, task, batch_size: int, seed: int = 0, *, batches: int | None = None, dtype: torch.dtype = torch.float32
    ):
        self.task, self.batch_size, self.seed, self.batches, self.dtype = task, batch_size, seed, batches, dtype

    def batch(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch number ``b`` of the stream (the same whoever draws it)."""
        gen = torch.Generator().manual_seed(batch_seed(self.seed, b))
        return self.task.sample(self.batch_size, gen, dtype=self.dtype)

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        numbers = itertools.count(worker, workers) if self.batches is None else range(worker, self.batches, workers)
        for b in numbers:
            yield self.batch(b)

    def __len__(self) -> int:
        if self.batches is None:
            raise TypeError("an endless OnlineBatches has no length; pass batches=... for a finite stream")
        return self.batches


class FixedDataset(Dataset):
    """Map-style dataset over a fixed sample: item i is (x[i]: (d,), y[i]: (outputs,))."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
        self.x, self.y = x, y

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def torch_dataset(
    task,
    split: str = "train",
    *,
    seed: int = 0,
    batch_size: int = 256,
    batches: int | None = None,
    dtype: torch.dtype = torch.float32,
):
    """A ``torch.utils.data`` dataset of ``task``.

    Args:
        task: a :class:`~learnlab.tasks.Task` (or a ``DatasetTask``).
        split: ``train`` (online: :class:`OnlineBatches`; fixed: the training sample) or
            ``test`` (the noise-free test sample).
        seed: seeds the stream, the fixed sample's draw and its subset.
        batch_size, batches: of an online stream.
        dtype: of the tensors.

    Raises:
        ValueError: for an unknown split.
    """
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; valid: train, test")
    gen = torch.Generator().manual_seed(seed)
    if split == "test":
        return FixedDataset(*task.test_sample(gen, dtype=dtype))
    if task.online:
        return OnlineBatches(task, batch_size, seed, batches=batches, dtype=dtype)
    return FixedDataset(*task.train_sample(gen, dtype=dtype))
