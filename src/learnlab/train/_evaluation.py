"""Evaluation sets and their metrics, per member of a stacked model.

Sets (``train.eval_sets``): ``test`` (the fixed noise-free test sample), ``train``
(the fixed training sample of an offline task), ``grid`` (an evaluation grid of box
inputs, d <= 2) and ``large`` (a large fresh sample for the uniform error, redrawn
from the same seed at every evaluation and streamed in chunks, never held whole).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from learnlab.tasks import hermite_monomial
from learnlab.train._eval_rows import CHUNK, PassRows, chunk_rows
from learnlab.train._metrics import MetricAccumulator

__all__ = ["EvalSource", "fixed_source", "streamed_source", "evaluate", "target_components", "chunk_rows"]

CACHE_BYTES = 256 << 20  # a streamed set up to this size is drawn once per run and kept
# streamed sets of the same seed and size whose first _PROBE points and targets are equal are one set
# (the same generator through the same task): an lr sweep's members draw theirs once, not E times
_PROBE = 1024
_METRIC_ELEMENTS = 1 << 16  # output values (members x points x outputs) per metrics update


@dataclass(eq=False)
class EvalSource:
    """One member's evaluation set: a function that yields (x, y) chunks, and its size.

    ``data`` is the whole set when it is held in memory (a fixed set, or a streamed one small
    enough to keep: :meth:`materialized`); ``key`` identifies a streamed set's draw (seed, n).
    """

    chunks: Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]
    n: int
    data: tuple[torch.Tensor, torch.Tensor] | None = None
    key: tuple | None = None
    cacheable: bool = False
    nbytes: int = 0  # a streamed set's size in memory, were it kept
    _same: dict[int, tuple[EvalSource, bool]] = field(default_factory=dict, repr=False)

    def materialized(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The whole set, drawn once (in the streamed draw's own chunks) if it fits CACHE_BYTES."""
        if self.data is None and self.cacheable:
            parts = list(self.chunks(CHUNK))
            x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
            self.data = (x, y)
        return self.data

    def same_as(self, other: EvalSource) -> bool:
        """Whether ``other`` holds the same points and targets (checked once, then remembered)."""
        if other is self:
            return True
        known = self._same.get(id(other))
        if known is None:
            if self.data is not None and other.data is not None:  # both in memory: compare them
                mine, theirs = self.data, other.data
                equal = mine[0].shape == theirs[0].shape and mine[1].shape == theirs[1].shape
                equal = equal and bool(torch.equal(mine[0], theirs[0]) and torch.equal(mine[1], theirs[1]))
            elif self.key is not None and self.key == other.key:  # the same draw (seed, n) of the same task?
                (a, b), (c, e) = next(iter(self.chunks(_PROBE))), next(iter(other.chunks(_PROBE)))
                equal = a.shape == c.shape and b.shape == e.shape and bool(torch.equal(a, c) and torch.equal(b, e))
            else:
                equal = False
            if equal and self.materialized() is not None:
                other.data = self.data  # one copy in memory, drawn once
            known = (other, equal)  # other is kept so its id stays its own
            self._same[id(other)] = known
        return known[1]


def fixed_source(x: torch.Tensor, y: torch.Tensor) -> EvalSource:
    """A set held in memory: x (n, d), y (n, k)."""

    def chunks(size: int):
        for start in range(0, x.shape[0], size):
            yield x[start : start + size], y[start : start + size]

    return EvalSource(chunks, x.shape[0], data=(x, y))


def streamed_source(task, n: int, seed: int, *, dtype, device) -> EvalSource:
    """``n`` fresh noise-free points drawn chunk by chunk from a generator re-seeded each time;
    kept in memory after the first evaluation when it fits ``CACHE_BYTES``."""

    def chunks(size: int):
        gen = torch.Generator(device=device).manual_seed(seed)
        for start in range(0, n, size):
            yield task.sample(min(size, n - start), gen, noise=False, dtype=dtype, device=device)

    itemsize = torch.empty((), dtype=dtype).element_size()
    row = (task.d + task.outputs) * itemsize if hasattr(task, "d") and hasattr(task, "outputs") else None
    nbytes = n * row if row is not None else 0
    return EvalSource(chunks, n, key=(seed, n), cacheable=row is not None and nbytes <= CACHE_BYTES, nbytes=nbytes)


_MIN_ROWS = 16  # a pass of 1 or 2 rows takes another BLAS path (gemv) with other rounding


def _spans(n: int, rows: PassRows) -> Iterator[tuple[int, int]]:
    """[start, stop) of each forward pass over n points, ``rows.next()`` at a time; a remainder
    under _MIN_ROWS joins the pass before it, so every point goes through a GEMM of >= 3 rows
    (which agree row by row, measured) whatever the chunk size, unless the whole set is that small."""
    start = 0
    while start < n:
        stop = min(start + rows.next(), n)
        if n - stop < _MIN_ROWS:
            stop = n
        yield start, stop
        start = stop


def target_components(target) -> list[tuple[str, Callable]]:
    """Basis functions of a target for the ``coef`` metric: its parities or Hermite monomials."""
    if hasattr(target, "components"):
        return list(target.components())
    if hasattr(target, "indices"):
        return [("x" + "x".join(map(str, s)), lambda x, s=tuple(s): x[:, list(s)].prod(dim=1)) for s in target.indices]
    if hasattr(target, "monomial"):
        mono = dict(target.monomial)
        label = "h" + "_".join(f"{i}^{k}" for i, k in sorted(mono.items()))
        return [(label, lambda x, m=mono: hermite_monomial(m, x))]
    return []


@torch.no_grad()
def evaluate(
    model, sources: list[EvalSource], metrics: list[str], components=None, chunk: int | None = None
) -> dict[str, list[float]]:
    """Metrics of the stacked ``model`` on each member's set (all sets have equal size).

    The whole stack at once, without autograd, ``chunk`` rows per forward pass (default: a
    cache-sized pass, tuned by timing on large sets, see ``learnlab.train._eval_rows``); members
    whose sets are equal (an lr sweep's) share one copy of it, passed to the model as a stride-0
    expand, and streamed sets small enough are drawn once.
    The values do not depend on ``chunk`` (partial sums over fixed blocks of ``BLOCK`` points).

    Returns:
        metric name -> one value per member (row of the stack).
    """
    members = len(sources)
    forward = getattr(model, "inference", model)  # learnlab's MLP: a fused evaluation pass
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    rows = PassRows(model, members, device, sources[0].n, chunk)
    acc = MetricAccumulator(metrics, members, components, total=sources[0].n)
    if all(sources[0].same_as(s) for s in sources[1:]):  # one set for every member
        data = sources[0].materialized()
        for x_block, y_block in iter([data]) if data is not None else sources[0].chunks(CHUNK):
            x_all, y_all = x_block.expand(members, *x_block.shape), y_block.expand(members, *y_block.shape)
            views = lambda a, b, _, with_y=True, x=x_all, y=y_all: (x[:, a:b], y[:, a:b] if with_y else None)  # noqa: E731
            _forward_spans(forward, acc, x_block.shape[0], rows, views)
        return acc.result()
    # distinct sets are kept only while all of them together fit CACHE_BYTES (a seed sweep's 64
    # members would otherwise hold 64 of them); else every member's is streamed, as drawn
    unkept = sum(s.nbytes for s in sources if s.data is None)
    sets = [s.materialized() if unkept <= CACHE_BYTES else s.data for s in sources]
    if all(d is not None for d in sets):
        blocks = [iter([d]) for d in sets]
    else:  # the same blocks for every member: all streamed
        blocks = [s.chunks(CHUNK) for s in sources]
    for parts in zip(*blocks):  # drawn blocks (one per member), each cut into forward chunks

        def take(a: int, b: int, with_x: bool, with_y: bool = True, parts=parts):  # (E, b - a, d), (E, b - a, k)
            x = torch.stack([p[0][a:b] for p in parts]) if with_x else None
            return x, torch.stack([p[1][a:b] for p in parts]) if with_y else None

        _forward_spans(forward, acc, parts[0][0].shape[0], rows, take)
    return acc.result()


def _forward_spans(forward, acc: MetricAccumulator, n: int, rows: PassRows, take) -> None:
    """Forward passes of ``rows`` of the block's n points (``take(a, b, with_x, with_y)``: points
    [a, b) as x, y, each None unless asked); the metrics of the outputs gathered over up to _METRIC_ELEMENTS output
    values at a time, in one buffer (the metrics' ~15 small ops per update cost as much as a
    cache-sized pass; their values do not depend on the grouping: partial sums over fixed blocks
    of points)."""
    with_x = "coef" in acc.metrics
    buffer: torch.Tensor | None = None
    group = 0  # outputs gathered before a metrics update
    first = 0  # the first point of the outputs gathered in the buffer
    for start, stop in _spans(n, rows):
        tuning = rows.tuning
        began = time.perf_counter() if tuning else 0.0
        out = forward(take(start, stop, True, False)[0])  # x only: y is taken once per group
        if tuning:
            rows.timed(stop - start, began)
        if buffer is None:  # (E, group + room for one more pass, k), at least one pass's worth
            group = max(stop - start, _METRIC_ELEMENTS // max(out.shape[0] * out.shape[-1], 1))
            buffer = out.new_empty(out.shape[0], group + _MIN_ROWS + rows.largest, out.shape[-1])
        buffer.narrow(1, start - first, stop - start).copy_(out)
        if stop - first >= group or stop == n:
            x, y = take(first, stop, with_x)
            acc.update(buffer[:, : stop - first], y, x)
            first = stop
