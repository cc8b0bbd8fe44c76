"""Training batches: online (fresh every step) or offline (one fixed sample, reshuffled per epoch)."""

from __future__ import annotations

import contextlib
import copy
import functools

import torch

from learnlab._cpu import one_thread
from learnlab._devices import to_device
from learnlab.tasks._targets import add_label_noise, is_rowwise
from learnlab.tasks._task import Task

__all__ = ["BatchStream", "next_stacked"]


class BatchStream:
    """An endless stream of training batches drawn from one generator.

    Online (``task.n_train is None``): every batch is a fresh ``task.sample``.
    Offline: ``n_train`` points are drawn once (with label noise); each epoch visits a
    fresh permutation of them in batches of ``batch_size`` (an incomplete last batch is
    dropped); ``batch_size >= n_train`` gives full-batch gradient descent.
    """

    def __init__(
        self,
        task: Task,
        batch_size: int,
        generator: torch.Generator,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        self.task, self.batch_size, self.generator = task, batch_size, generator
        self.dtype, self.device = dtype, device
        self.sample: tuple[torch.Tensor, torch.Tensor] | None = None
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
        idx = self._order[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return x[idx], y[idx]

    def detached(self) -> BatchStream:
        """This stream in its present state, with a generator (and permutation) of its own."""
        other = copy.copy(self)
        other.generator = torch.Generator(device=self.generator.device)
        other.generator.set_state(self.generator.get_state())
        if self.sample is not None:
            other._order = self._order.clone()
        return other


def next_stacked(streams: list[BatchStream]) -> tuple[torch.Tensor, torch.Tensor]:
    """The next batch of every stream, stacked: x (E, batch, d), y (E, batch, outputs).

    Equal, draw for draw, to stacking ``stream.next()`` of each stream: each member's x
    and then its label noise come from its own generator. A stream listed several times
    (members that share one: the same task, batch size and data seed, e.g. the learning
    rates of a sweep at one seed) is drawn once and its batch repeated. For online streams
    of plain tasks, a ``rowwise`` target (see ``Target``) is evaluated once on all its
    streams' inputs (the per-member Python overhead is what limits a stack of small models);
    any other target on each stream's batch, as a run alone evaluates it.
    """
    position: dict[int, int] = {}
    rows = [position.setdefault(id(s), len(position)) for s in streams]
    if len(position) == len(streams):
        return _draw(streams)
    distinct = list({id(s): s for s in streams}.values())  # first appearance order, as ``position``
    x, y = _draw(distinct)
    index = _index(tuple(rows), x.device)
    return x.index_select(0, index), y.index_select(0, index)


@functools.lru_cache(maxsize=64)
def _index(rows: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """``rows`` as an index tensor on ``device``, made once: a step does not wait for the copy."""
    return to_device(torch.tensor(rows, dtype=torch.long), device)


def _targets(streams, rows_of: dict[int, list[int]], x: torch.Tensor, n: int, d: int) -> dict[int, torch.Tensor]:
    """y of each row of x (E, n, d), each target once on its rows when rowwise, else per stream."""
    parts = {}
    for rows in rows_of.values():
        target = streams[rows[0]].task.target
        if is_rowwise(target, x):  # once on all its streams' rows: the same bits
            ys = target(x.index_select(0, _index(tuple(rows), x.device)).reshape(len(rows) * n, d))
            ys = ys.reshape(len(rows), n, -1)
        else:  # each stream's batch alone, as its run alone evaluates it
            ys = torch.stack([target(x[row]) for row in rows])
        parts.update({row: ys[j] for j, row in enumerate(rows)})
    return parts


def _draw(streams: list[BatchStream]) -> tuple[torch.Tensor, torch.Tensor]:
    """The next batch of each of distinct streams, stacked."""
    first = streams[0]
    fast = all(s.sample is None and type(s.task) is Task for s in streams)
    if not fast or len(streams) == 1:
        batches = [s.next() for s in streams]
        return torch.stack([b[0] for b in batches]), torch.stack([b[1] for b in batches])
    n, d = first.batch_size, first.task.d
    x = torch.stack([s.task.inputs.sample(n, s.generator, dtype=s.dtype, device=s.device) for s in streams])
    rows_of: dict[int, list[int]] = {}
    for row, s in enumerate(streams):
        rows_of.setdefault(id(s.task.target), []).append(row)
    elementwise = all(is_rowwise(s.task.target, x) for s in streams)
    with contextlib.nullcontext() if elementwise else one_thread():  # as Task.sample
        parts = _targets(streams, rows_of, x, n, d)
    y = torch.stack([parts[row] for row in range(len(streams))])
    for row, s in enumerate(streams):
        if s.task.noise > 0:
            labels = getattr(s.task.target, "labels", "value")
            y[row] = add_label_noise(y[row], labels, s.task.noise, s.generator)
    return x, y
