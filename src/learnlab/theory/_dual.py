"""Dual activations: the Gaussian expectations an infinite-width layer passes on.

For (u, v) ~ N(0, [[a, c], [c, b]]) a layer's kernels need

    k(a, b, c)    = E[phi(u) phi(v)]      (NNGP, Neal 1996; Lee et al. 2018)
    kdot(a, b, c) = E[phi'(u) phi'(v)]    (NTK, Jacot et al. 2018)

elementwise over broadcastable float64 tensors a, b (the variances) and c (the covariance).

Closed forms, with theta = angle between u and v, cos(theta) = c / sqrt(a b):

* relu: Cho & Saul 2009's arc-cosine kernels of order 1 and 0,
  k = (sqrt(a b - c^2) + (pi - theta) c) / (2 pi),  kdot = (pi - theta) / (2 pi);
* erf: Williams 1997,  k = (2 / pi) arcsin(2 c / sqrt((1 + 2a)(1 + 2b))),
  and, as erf'(z) = (2 / sqrt(pi)) exp(-z^2),  kdot = (4 / pi) / sqrt((1 + 2a)(1 + 2b) - 4 c^2);
* linear (identity): k = c, kdot = 1.

Every other activation (tanh, gelu, silu, a user callable phi on a torch tensor; phi' by
autograd) is integrated numerically. Write u = sqrt(a) r cos(t), v = sqrt(b) r cos(t - psi)
with psi = theta and (r, t) polar coordinates of a standard 2-d Gaussian vector, so that

    E[F(u, v)] = 1/(2 pi) * int_{-pi/2}^{pi/2} dt  int_0^inf r exp(-r^2/2) [F(r, t) + F(-r, t)] dr.

On each of the two arcs t in [-pi/2, psi - pi/2] and [psi - pi/2, pi/2] neither u nor v changes
sign, so an activation that is smooth except at 0 (relu, its step derivative, leaky relu, |x|) is
smooth there: Gauss-Legendre in t on each arc and, in r, the Gauss rule of the Rayleigh weight
r exp(-r^2/2) on [0, inf) (the half-line sibling of Gauss-Hermite, built once by Golub-Welsch from a
Lanczos run on a fine discretisation) converge spectrally. A plain 2-d Gauss-Hermite product rule
stalls at a kink or a jump (for relu, order 160 is still 3e-4 off, its derivative 2e-3); this rule
gives relu's closed forms to ~1e-15 and erf's to ~1e-11 (variances <= 4) at the default order 32
(tests/test_theory_kernels.py). Cost: 8 order^2 evaluations of phi per pair.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

__all__ = ["Dual", "QuadratureDual", "dual_of", "CLOSED_FORMS", "QUADRATURE_ORDER"]

QUADRATURE_ORDER = 32  # Gauss-Legendre nodes per arc in angle, radial nodes per half-line (accuracy: docs/theory.md)
_SNAP = 16 * torch.finfo(torch.float64).eps  # see _angle
_BLOCK = 2**21  # function values evaluated at once by the quadrature (memory: 8 bytes each, a few copies)

Fn = Callable[[torch.Tensor], torch.Tensor]


class Dual(ABC):
    """k(a, b, c) = E[phi(u) phi(v)] and kdot(a, b, c) = E[phi'(u) phi'(v)] (module docstring)."""

    name: str

    @abstractmethod
    def k(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def kdot(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor: ...

    def both(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(k, kdot), sharing what they have in common."""
        return self.k(a, b, c), self.kdot(a, b, c)


def _angle(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(theta, sqrt(a b - c^2)): theta = arccos(c / sqrt(a b)) in [0, pi], as atan2, which stays
    accurate where c^2 is close to a b (arccos loses half the digits near 1); theta = 0 where a b = 0.

    a b - c^2 below ``_SNAP`` a b (theta < 6e-8) is rounding: c of a point with itself, formed by a
    matmul, and its variance, formed by a sum, differ in the last bits, and the square root would
    turn 1e-16 into theta ~ 1e-8. It is taken as 0, so equal points get theta = 0 exactly; for
    genuinely nearly parallel ones this costs no more than the rounding it removes.
    """
    ab = a * b
    sin2 = ab - c * c
    sin_part = torch.where(sin2 > _SNAP * ab, sin2, torch.zeros_like(sin2)).sqrt()
    return torch.atan2(sin_part, c), sin_part


class _Relu(Dual):
    name = "relu"

    def k(self, a, b, c):
        theta, sin_part = _angle(a, b, c)
        return (sin_part + (math.pi - theta) * c) / (2 * math.pi)

    def kdot(self, a, b, c):
        return self.both(a, b, c)[1]

    def both(self, a, b, c):
        theta, sin_part = _angle(a, b, c)
        angle = (math.pi - theta) / (2 * math.pi)
        kdot = torch.where(a * b > 0, angle, torch.zeros_like(angle))  # u = 0 a.s.: relu'(0) = 0, as in torch
        return sin_part / (2 * math.pi) + angle * c, kdot


class _Erf(Dual):
    name = "erf"

    def k(self, a, b, c):
        return (2 / math.pi) * torch.asin(2 * c / ((1 + 2 * a) * (1 + 2 * b)).sqrt())

    def kdot(self, a, b, c):
        return (4 / math.pi) / ((1 + 2 * a) * (1 + 2 * b) - 4 * c * c).sqrt()


class _Linear(Dual):
    name = "linear"

    def k(self, a, b, c):
        return torch.broadcast_tensors(a, b, c)[2].clone()

    def kdot(self, a, b, c):
        return torch.ones_like(torch.broadcast_tensors(a, b, c)[2])


CLOSED_FORMS: dict[str, Dual] = {"relu": _Relu(), "erf": _Erf(), "linear": _Linear()}


@lru_cache(maxsize=8)
def _radial_rule(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss rule (nodes, weights) of the weight r exp(-r^2/2) on [0, inf) (total mass 1).

    Golub & Welsch 1969: the nodes are the eigenvalues of the Jacobi matrix of the weight's
    orthogonal polynomials, which a Lanczos run with full reorthogonalisation computes stably
    from a 400-point Gauss-Legendre discretisation of the weight on [0, 16] (its mass beyond
    16 is exp(-128))."""
    x, w = np.polynomial.legendre.leggauss(400)
    r = 8.0 * (x + 1.0)
    weights = 8.0 * w * r * np.exp(-0.5 * r * r)
    q = np.sqrt(weights) / math.sqrt(weights.sum())
    basis = np.zeros((r.size, order))
    alpha, beta = np.zeros(order), np.zeros(order)
    basis[:, 0] = q
    for k in range(order):
        v = r * basis[:, k]
        alpha[k] = basis[:, k] @ v
        for _ in range(2):  # full reorthogonalisation, twice
            v -= basis[:, : k + 1] @ (basis[:, : k + 1].T @ v)
        if k + 1 < order:
            beta[k] = np.linalg.norm(v)
            basis[:, k + 1] = v / beta[k]
    nodes, vectors = np.linalg.eigh(np.diag(alpha) + np.diag(beta[:-1], 1) + np.diag(beta[:-1], -1))
    return nodes, vectors[0] ** 2  # the exact mass is 1


def _derivative(phi: Fn) -> Fn:
    """phi' of an elementwise phi by autograd (the gradient of sum(phi(t)) is phi'(t) entrywise)."""

    def dphi(t: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(False), torch.enable_grad():  # also inside no_grad / inference_mode
            t = t.detach().clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(phi(t).sum(), t)
        return grad

    return dphi


@dataclass
class QuadratureDual(Dual):
    """k and kdot of any elementwise phi by the polar quadrature of the module docstring.

    Attributes:
        phi: the activation, a function of a float64 tensor, elementwise.
        name: shown in messages.
        order: Gauss-Legendre nodes per arc and radial nodes per half-line; each pair costs
            8 * order^2 evaluations of phi (or phi').
    """

    phi: Fn
    name: str = "custom"
    order: int = QUADRATURE_ORDER

    def k(self, a, b, c):
        return self._expect(self.phi, a, b, c)

    def kdot(self, a, b, c):
        return self._expect(_derivative(self.phi), a, b, c)

    def _expect(self, f: Fn, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """E[f(u) f(v)] elementwise; pairs are processed in blocks of ``_BLOCK`` function values."""
        a, b, c = torch.broadcast_tensors(a, b, c)
        shape, device = a.shape, a.device
        a, b, c = a.reshape(-1), b.reshape(-1), c.reshape(-1)
        t_nodes, t_weights = (torch.as_tensor(v, dtype=torch.float64, device=device) for v in _legendre(self.order))
        r, w = (torch.as_tensor(v, dtype=torch.float64, device=device) for v in _radial_rule(self.order))
        radius, radial_w = torch.cat([r, -r]), torch.cat([w, w])  # both half-lines: (2R,)
        out = torch.empty_like(a)
        step = max(1, _BLOCK // (4 * self.order**2))
        for start in range(0, a.numel(), step):
            part = slice(start, start + step)
            out[part] = self._block(f, a[part], b[part], c[part], t_nodes, t_weights, radius, radial_w)
        return out.reshape(shape)

    @staticmethod
    def _block(f, a, b, c, t_nodes, t_weights, radius, radial_w) -> torch.Tensor:
        psi, _ = _angle(a, b, c)  # (P,): the angle between u's and v's directions
        split = (psi - math.pi / 2).unsqueeze(1)  # where v changes sign
        lo = torch.cat([torch.full_like(split, -math.pi / 2), split], 1)  # (P, 2): the two arcs
        half = torch.cat([split + math.pi / 2, math.pi / 2 - split], 1) / 2  # half their lengths
        t = (lo + half).unsqueeze(2) + half.unsqueeze(2) * t_nodes  # (P, 2, J)
        wt = (half.unsqueeze(2) * t_weights).flatten(1) / (2 * math.pi)  # (P, 2J)
        cu = (a.sqrt().view(-1, 1, 1) * torch.cos(t)).flatten(1)  # (P, 2J)
        cv = (b.sqrt().view(-1, 1, 1) * torch.cos(t - psi.view(-1, 1, 1))).flatten(1)
        values = f(cu.unsqueeze(2) * radius) * f(cv.unsqueeze(2) * radius)  # (P, 2J, 2R)
        return torch.einsum("pjr,pj,r->p", values, wt, radial_w)


@lru_cache(maxsize=8)
def _legendre(order: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(order)


def _known(phi: Fn) -> str | None:
    """The closed form a callable is (torch's relu, erf, learnlab's identity), or None."""
    from learnlab.models import ACTIVATIONS

    if phi in (torch.relu, torch.nn.functional.relu, ACTIVATIONS["relu"]):
        return "relu"
    if phi in (torch.erf, torch.special.erf):
        return "erf"
    if phi is ACTIVATIONS["linear"]:
        return "linear"
    return None


def dual_of(activation: str | Fn, order: int = QUADRATURE_ORDER) -> Dual:
    """The dual of an activation: a closed form (``relu``, ``erf``, ``linear``/``identity``), or the
    quadrature of a learnlab activation (``tanh``, ``gelu``, ``silu``) or of a callable phi.

    Raises:
        ValueError: an unknown name.
    """
    from learnlab.models import ACTIVATIONS

    if callable(activation):
        name = _known(activation)
        return (
            CLOSED_FORMS[name] if name else QuadratureDual(activation, getattr(activation, "__name__", "custom"), order)
        )
    name = "linear" if activation == "identity" else activation
    if name in CLOSED_FORMS:
        return CLOSED_FORMS[name]
    if name in ACTIVATIONS:
        return QuadratureDual(ACTIVATIONS[name], name, order)
    valid = sorted({*CLOSED_FORMS, *ACTIVATIONS, "identity"})
    raise ValueError(
        f"unknown activation {activation!r}; valid: {', '.join(valid)}, or a callable phi(tensor) -> tensor "
        "(elementwise; its dual is computed by quadrature)"
    )
