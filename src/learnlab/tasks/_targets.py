"""Targets: deterministic functions y = f(x) of a batch, y: (n, outputs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from learnlab.tasks._hermite import hermite_monomial

__all__ = ["Target", "Parity", "Hermite", "TARGETS"]


class Target(Protocol):
    """A function of the inputs."""

    outputs: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Map x: (n, d) to y: (n, outputs)."""
        ...


@dataclass(frozen=True)
class Parity:
    """Sum of sparse parities y = sum_S prod_{i in S} x_i (seed 000), for x in {-1, +1}^d.

    ``indices=[[0], [0, 1], [0, 1, 2]]`` is the degree-3 staircase. The sum is
    unnormalised by default (variance = number of index sets, as in seed 000);
    ``normalize=True`` divides by sqrt(number of sets) for unit variance.
    """

    indices: tuple[tuple[int, ...], ...]
    normalize: bool = False
    outputs: int = 1

    def __call__(self, x):
        y = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for subset in self.indices:
            y = y + x[:, list(subset)].prod(dim=1)
        if self.normalize:
            y = y / len(self.indices) ** 0.5
        return y.unsqueeze(1)


@dataclass(frozen=True)
class Hermite:
    """Hermite monomial y = prod_i h_{k_i}(x_i), orthonormal under N(0, I_d)."""

    monomial: tuple[tuple[int, int], ...]  # ((index, degree), ...)
    outputs: int = 1

    def __call__(self, x):
        return hermite_monomial(dict(self.monomial), x).unsqueeze(1)


# name -> factory; the spec's ``task.target.name`` picks one.
TARGETS = {"parity": Parity, "hermite": Hermite}
