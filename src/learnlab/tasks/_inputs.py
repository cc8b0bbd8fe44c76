"""Input distributions: each draws a whole (n, d) batch from an explicit generator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

__all__ = ["Inputs", "Gaussian", "Hypercube", "INPUTS"]


class Inputs(Protocol):
    """An input distribution on R^d."""

    d: int

    def sample(
        self, n: int, generator: torch.Generator, *, dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        """Draw x: (n, d)."""
        ...


@dataclass(frozen=True)
class Gaussian:
    """x ~ N(0, I_d)."""

    d: int

    def sample(self, n, generator, *, dtype=torch.float32, device="cpu"):
        return torch.randn(n, self.d, generator=generator, dtype=dtype, device=device)


@dataclass(frozen=True)
class Hypercube:
    """x uniform on the Boolean hypercube {-1, +1}^d."""

    d: int

    def sample(self, n, generator, *, dtype=torch.float32, device="cpu"):
        bits = torch.randint(0, 2, (n, self.d), generator=generator, device=device)
        return (2 * bits - 1).to(dtype)


# name -> factory; the spec's ``task.inputs.name`` picks one.
INPUTS = {"gaussian": Gaussian, "hypercube": Hypercube}
