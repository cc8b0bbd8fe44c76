"""Single- and multi-index models y = g(W x) with directions drawn from their own seed.

Single index (e.g. Ben Arous, Gheissari & Jagannath, 2021; Bietti et al., 2022):
y = g(w . x) with |w| = 1, so w . x ~ N(0, 1) for x ~ N(0, I_d); with a Hermite link
g = sum_k c_k h_k the information exponent is the smallest k >= 1 with c_k != 0.
Multi index (Abbe, Boix-Adsera & Misiakiewicz, 2022-2023; Bietti et al., 2023):
y = g(p), p = W x in R^r, W with orthonormal rows when drawn at random.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import torch

from learnlab.tasks._hermite import hermite, hermite_stack
from learnlab.tasks._polynomial import HermitePolynomial
from learnlab.tasks._targets import on_device

__all__ = ["SingleIndex", "MultiIndex", "LINKS", "MULTI_LINKS", "random_directions", "parse_link"]

# g: R -> R, elementwise; ``he<k>`` (h_k = He_k / sqrt(k!)) is parsed by ``parse_link``
LINKS = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "identity": lambda t: t,
    "abs": torch.abs,
    "sign": lambda t: torch.where(t >= 0, 1.0, -1.0).to(t.dtype),
}
_HE = re.compile(r"^he_?(\d+)$", re.IGNORECASE)  # he3, He3, He_3: all h_3


def parse_link(name: str):
    """A named link: one of ``LINKS`` or ``he<k>`` = ``He_k`` (h_k, k >= 0). ValueError lists the valid names."""
    if name in LINKS:
        return LINKS[name]
    match = _HE.match(name)
    if match:
        k = int(match.group(1))
        return lambda t: hermite(k, t)
    raise ValueError(f"unknown link {name!r}; valid: {', '.join(LINKS)}, he<k> or He_k (e.g. he2 = He_2 = h_2)")


def _product(p):
    return p.prod(dim=1)


def _norm(p):
    # (|p|^2 - r) / sqrt(2 r): mean 0, variance 1 for p ~ N(0, I_r)
    r = p.shape[1]
    return (p.pow(2).sum(dim=1) - r) / math.sqrt(2 * r)


def _max(p):
    return p.max(dim=1).values


# g: R^r -> R on the projections p: (n, r)
MULTI_LINKS = {"product": _product, "norm": _norm, "max": _max}


def random_directions(d: int, r: int, seed: int) -> torch.Tensor:
    """r orthonormal directions in R^d, uniformly (Haar) distributed, from ``seed`` alone: (r, d) float64.

    QR of a Gaussian (d, r) matrix with the signs fixed by diag(R) > 0 (Mezzadri, 2007),
    computed on CPU so the directions do not depend on the device.
    """
    g = torch.randn(d, r, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    q, rr = torch.linalg.qr(g)
    return (q * torch.sign(torch.diagonal(rr))).T.contiguous()


@dataclass(frozen=True)
class SingleIndex:
    """y = g(w . x), g a named link or sum_k coefficients[k] h_k.

    Args:
        direction: (d,) unit vector w (float64 values).
        link: name (``relu``, ``tanh``, ``identity``, ``abs``, ``sign``, ``he<k>``), or None with
        coefficients: Hermite coefficients c_0, c_1, ... of g.
    """

    direction: tuple[float, ...]
    link: str | None = "relu"
    coefficients: tuple[float, ...] | None = None
    outputs: int = 1
    labels: str = "value"
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __call__(self, x):
        w = on_device(self._cache, "w", lambda: torch.tensor(self.direction, dtype=torch.float64), x)
        t = x @ w  # (n,) projections, N(0, 1) for x ~ N(0, I_d)
        if self.coefficients is None:
            return parse_link(self.link)(t).unsqueeze(1)
        c = on_device(self._cache, "c", lambda: torch.tensor(self.coefficients, dtype=torch.float64), x)
        return (hermite_stack(len(self.coefficients) - 1, t) @ c).unsqueeze(1)


@dataclass(frozen=True)
class MultiIndex:
    """y = g(W x), W: (r, d) directions; g a named link (``product``, ``norm``, ``max``),
    a user callable ``"package.module:attr"`` on p: (n, r), or a Hermite polynomial in p.

    Args:
        directions: r rows of d floats.
        link: name or reference (None when ``terms`` is given).
        terms: (((j, k), ...), coef) Hermite monomials over the projections j < r.
        outputs: columns a user link returns.
    """

    directions: tuple[tuple[float, ...], ...]
    link: str | None = "product"
    terms: tuple[tuple[tuple[tuple[int, int], ...], float], ...] | None = None
    outputs: int = 1
    labels: str = "value"
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def _g(self):
        if "g" not in self._cache:
            if self.terms is not None:
                self._cache["g"] = HermitePolynomial([dict(m) for m, _ in self.terms], [c for _, c in self.terms])
            elif self.link in MULTI_LINKS:
                self._cache["g"] = MULTI_LINKS[self.link]
            else:
                from learnlab._imports import resolve

                self._cache["g"] = resolve(self.link)
        return self._cache["g"]

    def __call__(self, x):
        w = on_device(self._cache, "W", lambda: torch.tensor(self.directions, dtype=torch.float64), x)
        p = x @ w.T  # (n, r)
        y = self._g()(p)
        return y.reshape(x.shape[0], -1).to(x.dtype)
