"""Input distributions: each draws a whole (n, d) batch from an explicit generator.

Gaussian inputs may be anisotropic, x = sqrt(lambda) * z with z ~ N(0, I_d); their
``standardize`` returns z, the coordinates in which Hermite targets are orthonormal.
For every other distribution ``standardize`` is the identity.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

__all__ = ["Inputs", "Gaussian", "PowerLawGaussian", "Hypercube", "Sphere", "Box", "INPUTS", "power_law_spectrum"]


class Inputs(Protocol):
    """An input distribution on R^d."""

    @property
    def d(self) -> int: ...

    def sample(
        self, n: int, generator: torch.Generator | None, *, dtype: torch.dtype, device: torch.device | str
    ) -> torch.Tensor:
        """Draw x: (n, d)."""
        ...

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """Coordinates z of x in which the distribution is isotropic: (n, d) -> (n, d)."""
        ...


def power_law_spectrum(d: int, alpha: float, offset: float) -> np.ndarray:
    """Covariance eigenvalues lambda_i = (i + offset)^(-alpha) / sum_j (j + offset)^(-alpha).

    Seed 002 (``datasethps``: ``alpha``, ``offset``); i = 0..d-1, summing to 1.

    Returns:
        (d,) float64 array, decreasing for alpha > 0.
    """
    lam = (np.arange(d, dtype=np.float64) + offset) ** (-alpha)
    return lam / lam.sum()


@dataclass(frozen=True)
class Gaussian:
    """x = sqrt(lambda) * z, z ~ N(0, I_d): covariance diag(spectrum), N(0, I_d) by default.

    Args:
        d: dimension.
        spectrum: covariance eigenvalues lambda_0..lambda_{d-1} (all 1 when None).
    """

    d: int
    spectrum: tuple[float, ...] | None = None
    _scales: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def eigenvalues(self) -> np.ndarray:
        """(d,) covariance eigenvalues lambda_i."""
        if self.spectrum is None:
            return np.ones(self.d)
        return np.asarray(self.spectrum, dtype=np.float64)

    def _scale(self, dtype, device) -> torch.Tensor:
        key = (str(device), dtype)
        if key not in self._scales:  # built once per device/dtype, on CPU in float64 first
            self._scales[key] = torch.from_numpy(np.sqrt(self.eigenvalues())).to(device=device, dtype=dtype)
        return self._scales[key]

    def sample(self, n, generator=None, *, dtype=torch.float32, device="cpu"):
        z = torch.randn(n, self.d, generator=generator, dtype=dtype, device=device)
        return z if self.spectrum is None else z * self._scale(dtype, device)

    def standardize(self, x):
        return x if self.spectrum is None else x / self._scale(x.dtype, x.device)


class PowerLawGaussian(Gaussian):
    """Gaussian with spectrum lambda_i proportional to (i + offset)^(-alpha), summing to 1 (seed 002)."""

    def __init__(self, d: int, alpha: float = 2.0, offset: float = 6.0):
        super().__init__(d=d, spectrum=tuple(power_law_spectrum(d, alpha, offset).tolist()))
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "offset", offset)


@functools.lru_cache(maxsize=16)
def _sign_table(dtype: torch.dtype, device) -> torch.Tensor:
    """(256, 8): row b holds 1 - 2 * (bit j of b) for j = 0..7."""
    bits = (torch.arange(256).unsqueeze(1) >> torch.arange(8)) & 1
    return (1 - 2 * bits).to(dtype=dtype, device=device)


@dataclass(frozen=True)
class Hypercube:
    """x uniform on the Boolean hypercube {-1, +1}^d."""

    d: int

    def sample(self, n, generator=None, *, dtype=torch.float32, device="cpu"):
        # Every coordinate is one random bit: 32 of them from each uniform 32-bit integer,
        # spread to +-1 a byte at a time through a 256 x 8 table (on 2 CPU cores 7x faster
        # than a uniform float per coordinate). Bit j of a byte b gives coordinate
        # 8 * (byte index) + j, and the first n * d coordinates fill x row by row.
        count = n * self.d
        words = torch.randint(0, 1 << 32, (-(-count // 32),), generator=generator, device=device)
        octets = torch.stack([(words >> shift) & 255 for shift in (0, 8, 16, 24)], dim=-1).view(-1)
        out = torch.empty(octets.numel(), 8, dtype=dtype, device=device)
        torch.index_select(_sign_table(dtype, device), 0, octets, out=out)
        return out.view(-1)[:count].view(n, self.d)

    def standardize(self, x):
        return x


@dataclass(frozen=True)
class Sphere:
    """x uniform on the sphere of radius sqrt(d) in R^d: x = sqrt(d) g / |g|, g ~ N(0, I_d).

    Each coordinate has mean 0 and variance 1, like N(0, I_d).
    """

    d: int

    def sample(self, n, generator=None, *, dtype=torch.float32, device="cpu"):
        g = torch.randn(n, self.d, generator=generator, dtype=dtype, device=device)
        return g * (math.sqrt(self.d) / torch.linalg.vector_norm(g, dim=1, keepdim=True))

    def standardize(self, x):
        return x


@dataclass(frozen=True)
class Box:
    """x uniform on [low, high]^d (seed 001: [-1/2, 1/2]); ``grid`` gives an evaluation grid for d <= 2."""

    d: int
    low: float = -0.5
    high: float = 0.5

    def sample(self, n, generator=None, *, dtype=torch.float32, device="cpu"):
        u = torch.rand(n, self.d, generator=generator, dtype=dtype, device=device)
        return self.low + (self.high - self.low) * u

    def standardize(self, x):
        return x

    def grid(self, points: int, *, dtype=torch.float32, device="cpu") -> torch.Tensor:
        """A regular grid with ``points`` per axis, endpoints included: (points^d, d), d <= 2.

        Raises:
            ValueError: if d > 2 (a grid of points^d would not fit) or points < 2.
        """
        if self.d > 2:
            raise ValueError(f"an evaluation grid needs d <= 2, got d = {self.d}; use a large random sample")
        if points < 2:
            raise ValueError(f"a grid needs at least 2 points per axis, got {points}")
        axis = torch.linspace(self.low, self.high, points, dtype=torch.float64)
        if self.d == 1:
            return axis.unsqueeze(1).to(dtype=dtype, device=device)
        a, b = torch.meshgrid(axis, axis, indexing="ij")
        return torch.stack([a.flatten(), b.flatten()], dim=1).to(dtype=dtype, device=device)


# name -> factory; the spec's ``task.inputs.name`` picks one.
INPUTS = {
    "gaussian": Gaussian,
    "power_law_gaussian": PowerLawGaussian,
    "hypercube": Hypercube,
    "sphere": Sphere,
    "box": Box,
}
