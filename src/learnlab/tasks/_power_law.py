"""Seed 002's power-law target: Hermite monomials in the order a ReLU network learns them.

Inputs x = sqrt(lambda) * z with z ~ N(0, I_d). Under the Hermite eigenstructure
ansatz (Karkada et al., 2025) a dot-product kernel K(x . x') has eigenfunctions
h_alpha(z) with eigenvalues

    lambda_alpha = c_|alpha| * prod_i lambda_i^alpha_i,

c_l = d^l K / dt^l at t = 0 (the level coefficients). The target sums the first
``cutoff_mode`` monomials in decreasing lambda_alpha with power-law coefficients
v_k proportional to (k + yoffset)^(-beta / 2), k = 0, 1, ... (so v_k^2 ~ k^-beta).
"""

from __future__ import annotations

import functools
import heapq
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.polynomial import Polynomial

from learnlab.tasks._polynomial import HermitePolynomial
from learnlab.tasks._targets import monomial_component, on_device

__all__ = ["relu_level_coefficients", "top_monomials", "power_law_coefficients", "PowerLaw"]


def relu_level_coefficients(
    eigenvalues, weight_variance: float = 1.0, bias_variance: float = 1.0, kmax: int = 10
) -> np.ndarray:
    """Level coefficients c_0..c_kmax of the NTK of a one-hidden-layer ReLU network.

    With preactivation variance q = sigma_b^2 + sigma_w^2 * sum_i lambda_i and
    correlation c(t) = (sigma_b^2 + sigma_w^2 t) / q of two inputs with x . x' = t, the
    NTK is K(t) = sigma_w^2 q / (2 pi) * G(c(t)) with G(c) = sqrt(1 - c^2) + 2 c (pi - arccos c)
    (arc-cosine kernels, Cho & Saul 2009). So c_l = sigma_w^2 q / (2 pi) (sigma_w^2 / q)^l G^(l)(c0)
    with c0 = sigma_b^2 / q, and G^(l)(c) = P_l(c) / (1 - c^2)^(l - 1/2) for l >= 2 with
    P_2 = 3 - 2c^2 and P_{l+1} = P_l' (1 - c^2) + (2l - 1) c P_l.

    Args:
        eigenvalues: (d,) data covariance eigenvalues.
        weight_variance, bias_variance: sigma_w^2 > 0, sigma_b^2 >= 0.
        kmax: largest level.

    Returns:
        (kmax + 1,) float64 array.
    """
    rho = float(np.sum(eigenvalues))
    q = bias_variance + weight_variance * rho
    c0 = bias_variance / q
    pref, scale = weight_variance * q / (2 * math.pi), weight_variance / q
    s = math.sqrt(1.0 - c0 * c0)
    derivs = [s + 2 * c0 * (math.pi - math.acos(c0)), 2 * (math.pi - math.acos(c0)) + c0 / s]
    p = Polynomial([3.0, 0.0, -2.0])
    for level in range(2, kmax + 1):
        derivs.append(p(c0) / (1.0 - c0 * c0) ** (level - 0.5))
        p = p.deriv() * Polynomial([1.0, 0.0, -1.0]) + (2 * level - 1) * Polynomial([0.0, 1.0]) * p
    return np.array([pref * scale**level * derivs[level] for level in range(kmax + 1)])


def top_monomials(eigenvalues, count: int, level_coefficients) -> tuple[list[dict[int, int]], np.ndarray]:
    """The ``count`` monomials of largest lambda_alpha = c_|alpha| prod_i lambda_i^alpha_i.

    Lazy best-first search: a monomial is a sorted multiset of indices (in order of
    decreasing lambda_i); its successors move one unit of degree to the next index,
    which never increases lambda_alpha, so a priority queue seeded with the top monomial
    of every degree (all degree on the largest lambda) pops monomials in decreasing order.
    Ties are broken by the sorted index tuple (deterministic).

    Args:
        eigenvalues: (d,) positive data eigenvalues (any order).
        count: how many monomials (the first is the constant, alpha = {}).
        level_coefficients: (kmax + 1,) positive c_l; degrees above kmax are never used.

    Returns:
        (monomials as {index: degree}, their lambda_alpha as a (count',) array), count' <= count
        only when fewer monomials exist.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    c = np.asarray(level_coefficients, dtype=np.float64)
    key = (lam.tobytes(), int(count), c.tobytes())
    monomials, values = _top_monomials_cached(*key)
    return [dict(m) for m in monomials], values.copy()


@functools.lru_cache(maxsize=8)
def _top_monomials_cached(lam_bytes: bytes, count: int, c_bytes: bytes):
    lam, c = np.frombuffer(lam_bytes), np.frombuffer(c_bytes)
    rank = np.argsort(-lam, kind="stable")  # rank r -> data index; lambda decreasing in r
    log_lam, log_c = np.log(lam[rank]).tolist(), np.log(c).tolist()
    d, kmax = len(lam), len(c) - 1

    def log_value(m):  # m: sorted tuple of ranks, one entry per unit of degree
        return log_c[len(m)] + sum(log_lam[r] for r in m)

    heap = [(-log_value((0,) * k), (0,) * k) for k in range(1, kmax + 1)]
    heapq.heapify(heap)
    seen = {m for _, m in heap}
    found: list[tuple[int, ...]] = [()]
    logs = [log_c[0]]
    while len(found) < count and heap:
        neg, m = heapq.heappop(heap)
        found.append(m)
        logs.append(-neg)
        for j in range(len(m)):  # raise the last copy of each rank by one
            if (j + 1 == len(m) or m[j + 1] != m[j]) and m[j] + 1 < d:
                nxt = m[:j] + (m[j] + 1,) + m[j + 1 :]
                if nxt not in seen:
                    seen.add(nxt)
                    heapq.heappush(heap, (-log_value(nxt), nxt))
    monomials = []
    for m in found:
        degrees: dict[int, int] = {}
        for r in m:
            degrees[int(rank[r])] = degrees.get(int(rank[r]), 0) + 1
        monomials.append(tuple(sorted(degrees.items())))
    return tuple(monomials), np.exp(np.array(logs))


def power_law_coefficients(count: int, beta: float, yoffset: float, normalized: bool) -> np.ndarray:
    """v_k = (k + yoffset)^(-beta / 2), k = 0..count-1; ``normalized`` rescales to sum_k v_k^2 = 1.

    Since the h_alpha are orthonormal, sum_k v_k^2 is the target's second moment E[y^2]
    (seed 002's ``normalized``: y = O(1) whatever cutoff_mode and beta are).
    """
    v = (np.arange(count, dtype=np.float64) + yoffset) ** (-beta / 2)
    return v / np.linalg.norm(v) if normalized else v


@dataclass(frozen=True)
class PowerLaw:
    """y = sum_k v_k h_{alpha_k}(z), z the standardised inputs (see module docstring).

    Args:
        monomials: the alpha_k, in learning order.
        coefs: the v_k.
        eigenvalues: lambda_alpha of each monomial (NaN for explicit ``target_monomials``).
    """

    monomials: tuple[tuple[tuple[int, int], ...], ...]
    coefs: tuple[float, ...]
    eigenvalues: tuple[float, ...] = ()
    scale: tuple[float, ...] | None = None  # sqrt(lambda): z = x / scale
    outputs: int = 1
    labels: str = "value"
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def polynomial(self) -> HermitePolynomial:
        if "p" not in self._cache:  # compiled once, lazily (cheap to pickle before first use)
            self._cache["p"] = HermitePolynomial([dict(m) for m in self.monomials], self.coefs)
        return self._cache["p"]

    @property
    def rowwise(self) -> bool:  # see learnlab.tasks.Target
        return self.polynomial().rowwise

    def rowwise_on(self, x: torch.Tensor) -> bool:  # see learnlab.tasks.Target
        return self.polynomial().rowwise_on(x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale is not None:
            x = x / on_device(self._cache, "scale", lambda: torch.tensor(self.scale, dtype=torch.float64), x)
        return self.polynomial()(x)

    def components(self, first: int = 10):
        """The leading ``first`` monomials as (label, x -> h_alpha(z)) for per-mode metrics."""
        return [monomial_component(dict(m), self.scale) for m in self.monomials[:first] if m]
