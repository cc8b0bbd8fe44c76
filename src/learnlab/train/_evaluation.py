"""Evaluation sets and their metrics, per member of a stacked model.

Sets (``train.eval_sets``): ``test`` (the fixed noise-free test sample), ``train``
(the fixed training sample of an offline task), ``grid`` (an evaluation grid of box
inputs, d <= 2) and ``large`` (a large fresh sample for the uniform error, redrawn
from the same seed at every evaluation and streamed in chunks, never held whole).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from learnlab.tasks import hermite_monomial
from learnlab.train._metrics import MetricAccumulator

__all__ = ["EvalSource", "fixed_source", "streamed_source", "evaluate", "target_components"]

CHUNK = 65536  # points per forward pass when evaluating


@dataclass
class EvalSource:
    """One member's evaluation set: a function that yields (x, y) chunks, and its size."""

    chunks: Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]
    n: int


def fixed_source(x: torch.Tensor, y: torch.Tensor) -> EvalSource:
    """A set held in memory: x (n, d), y (n, k)."""

    def chunks(size: int):
        for start in range(0, x.shape[0], size):
            yield x[start : start + size], y[start : start + size]

    return EvalSource(chunks, x.shape[0])


def streamed_source(task, n: int, seed: int, *, dtype, device) -> EvalSource:
    """``n`` fresh noise-free points drawn chunk by chunk from a generator re-seeded each time."""

    def chunks(size: int):
        gen = torch.Generator(device=device).manual_seed(seed)
        for start in range(0, n, size):
            yield task.sample(min(size, n - start), gen, noise=False, dtype=dtype, device=device)

    return EvalSource(chunks, n)


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
    model, sources: list[EvalSource], metrics: list[str], components=None, chunk: int = CHUNK
) -> dict[str, list[float]]:
    """Metrics of the stacked ``model`` on each member's set (all sets have equal size).

    Returns:
        metric name -> one value per member (row of the stack).
    """
    acc = MetricAccumulator(metrics, len(sources), components)
    streams = [s.chunks(chunk) for s in sources]
    for parts in zip(*streams):
        x = torch.stack([p[0] for p in parts])  # (E, n, d)
        y = torch.stack([p[1] for p in parts])  # (E, n, k)
        acc.update(model(x), y, x)
    return acc.result()
