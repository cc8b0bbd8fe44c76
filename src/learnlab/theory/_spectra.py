"""Kernel eigenvalues on an input distribution: exact per degree on the hypercube and the sphere,
Nystrom on samples for any other; the target's power per Walsh degree on the hypercube.

Eigenvalues are those of the integral operator f -> E_x'[K(., x') f(x')] under the input
distribution (what :func:`learnlab.theory.eigenlearning` takes), each listed once per degree
with its multiplicity (the dimension of the eigenspace).

* Hypercube {-1, +1}^d (learnlab's ``hypercube`` inputs): a kernel invariant under coordinate
  permutations and sign flips (any function of <x, x'>, as the NNGP / NTK of a fully connected
  network) has the Walsh functions chi_S(x) = prod_{i in S} x_i as eigenfunctions, with an
  eigenvalue that depends on |S| = k only. With kappa_j = K(1, x_j), x_j the point with its
  first j coordinates -1,

      lambda_k = 2^-d sum_{x'} K(1, x') chi_S(x') = 2^-d sum_{j=0}^d kappa_j K_j(k)
               = 2^-d sum_j C(d, j) kappa_j K_k(j) / C(d, k),

  since chi_S (|S| = k) summed over the C(d, j) points at Hamming distance j from 1 is the
  Krawtchouk number K_j(k) = sum_i (-1)^i C(k, i) C(d - k, j - i) (i = |S and T| for the flipped
  set T); C(d, k) K_j(k) = C(d, j) K_k(j) is the symmetry relation. Multiplicity C(d, k).
* Sphere of radius sqrt(d) in R^d (learnlab's ``sphere`` inputs), K = kappa(t), t = <x, x'> / d:
  the spherical harmonics of degree k, eigenvalue (Funk-Hecke)

      lambda_k = |S^{d-2}| / |S^{d-1}| int_{-1}^{1} kappa(t) P_k(t) (1 - t^2)^{(d-3)/2} dt
               = E[kappa(t) P_k(t)],  t the inner product of two independent uniform unit vectors,

  P_k the Gegenbauer (Legendre in d dimensions) polynomial with P_k(1) = 1; multiplicity
  N(d, k) = (2k + d - 2) / k C(k + d - 3, k - 1), and kappa(t) = sum_k N(d, k) lambda_k P_k(t).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from learnlab.theory._predict import Kernel, gram

__all__ = ["Spectrum", "hypercube_spectrum", "hypercube_target_power", "sphere_spectrum", "nystrom_spectrum"]

# all 2^d points are enumerated for a target's Walsh power: 2^22 x 8 bytes = 32 MiB per output
_MAX_WALSH_D = 22
_WALSH_CHUNK = 1 << 16  # points per call of the target
_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class Spectrum:
    """A kernel's eigenvalues on an input distribution.

    Attributes:
        eigenvalues: (M,) float64, lambda per listed mode or degree (decreasing for Nystrom).
        multiplicities: (M,) float64, the number of modes sharing each eigenvalue.
        degrees: (M,) int64 degree k of each entry (hypercube, sphere), or None.
        error: (M,) float64 bound on each eigenvalue's absolute error from the float64
            round-off of the kernel values it is computed from (hypercube, sphere), or None;
            a kernel computed less accurately than to eps relative scales it up in proportion.
            Eigenvalues below it are noise; weighed by its multiplicity, an eigenspace's noise
            is multiplicities * error.
        eigenfunctions: (n, M) float64 tensor phi_i(x_j) on the Nystrom sample, orthonormal in
            L2 of the sample's empirical measure ((1/n) sum_j phi_i(x_j) phi_l(x_j) = delta_il),
            or None.
    """

    eigenvalues: np.ndarray
    multiplicities: np.ndarray
    degrees: np.ndarray | None = None
    error: np.ndarray | None = None
    eigenfunctions: torch.Tensor | None = None

    @property
    def trace(self) -> float:
        """sum_i m_i lambda_i = E_x[K(x, x)] (for the full spectrum)."""
        return float((self.multiplicities * self.eigenvalues).sum())

    def coefficients(self, y: torch.Tensor) -> np.ndarray:
        """The target's coefficients v_i = (1/n) sum_j phi_i(x_j) y_j on the Nystrom eigenfunctions.

        Args:
            y: (n,) or (n, k) target values at the Nystrom sample.

        Returns:
            (M,) or (M, k) float64, for :func:`learnlab.theory.eigenlearning`.

        Raises:
            ValueError: without eigenfunctions (hypercube / sphere: use hypercube_target_power),
                or if y does not have one row per sample point.
        """
        if self.eigenfunctions is None:
            raise ValueError(
                "this spectrum has no eigenfunctions (only nystrom_spectrum keeps them); on the hypercube use "
                "hypercube_target_power(target, d) for the target's power per degree"
            )
        phi = self.eigenfunctions
        y = torch.as_tensor(y).to(device=phi.device, dtype=torch.float64)
        if y.shape[0] != phi.shape[0] or y.dim() > 2:
            raise ValueError(f"y must have shape ({phi.shape[0]},) or ({phi.shape[0]}, k); got {tuple(y.shape)}")
        return (phi.T @ y / phi.shape[0]).cpu().numpy()


def _invariance_check(kernel: Kernel, x: torch.Tensor, points: torch.Tensor, values: torch.Tensor, moved, what: str):
    """Raise unless K(g x, g points) == K(x, points) for one group element g (``moved``)."""
    again = gram(kernel, moved(x), moved(points), "kernel").reshape(-1).cpu()
    err = float((again - values).abs().max())
    if err > 1e-6 * float(values.abs().max()) + 1e-300:
        raise ValueError(
            f"the kernel is not invariant under {what} (values differ by {err:.3g} at max "
            f"{float(values.abs().max()):.3g}): the closed-form spectrum needs K(x, x') to depend on <x, x'> only; "
            "use nystrom_spectrum on samples instead"
        )


def krawtchouk(d: int) -> list[list[int]]:
    """Exact Krawtchouk numbers K_k(x; d) = sum_i (-1)^i C(x, i) C(d - x, k - i) for k, x = 0..d,
    as Python ints: row k holds K_k(0..d).

    Three-term recurrence in the degree: (k + 1) K_{k+1}(x) = (d - 2x) K_k(x) - (d - k + 1) K_{k-1}(x),
    K_0 = 1, K_1(x) = d - 2x (the division is exact)."""
    rows = [[1] * (d + 1), [d - 2 * x for x in range(d + 1)]]
    for k in range(1, d):
        rows.append([((d - 2 * x) * rows[k][x] - (d - k + 1) * rows[k - 1][x]) // (k + 1) for x in range(d + 1)])
    return rows[: d + 1]


def hypercube_spectrum(kernel: Kernel, d: int, *, device: torch.device | str = "cpu") -> Spectrum:
    """Exact eigenvalues per Walsh degree k = 0..d of a kernel on the uniform hypercube {-1, +1}^d.

    lambda_k = 2^-d sum_j kappa_j K_j(k) (module docstring), evaluated from d + 1 kernel values
    kappa_j with exact integer Krawtchouk numbers and an exact sum (each float kappa_j is a
    dyadic rational), rounded once: O(d^2) big-integer operations (~0.1 s at d = 300). The
    only error is that of the kernel values: with kappa_j accurate to eps relative it reaches
    lambda_k as at most eps max|kappa| 2^-d sum_j |K_j(k)| <= eps max|kappa| / sqrt(C(d, k))
    (``Spectrum.error``; Cauchy-Schwarz with sum_j C(d, j) K_k(j)^2 = 2^d C(d, k)). Weighted by
    the multiplicities, the round-off summed over all 2^d modes is at most
    eps max|kappa| sum_k sqrt(C(d, k)): 1e-9 at d = 40, 1e-6 at d = 60, 1e-3 at d = 80 and
    order 1 at d = 100 (times max|kappa|). So the whole spectrum is reliable up to d ~ 60;
    beyond, the low degrees still are, while the high ones (whose true eigenvalues are below
    ``error``) are noise that their huge multiplicities amplify: drop them (or set them to 0)
    before eigenlearning.

    Args:
        kernel: callable (x1, x2) -> (n1, n2), invariant under permutations and sign flips
            of the coordinates (checked once).
        d: dimension >= 1.
        device: where the d + 1 points are built (the kernel's device).

    Returns:
        :class:`Spectrum` with degrees 0..d and multiplicities C(d, k).

    Raises:
        ValueError: if d < 1 or the kernel is not invariant.
    """
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"d must be an integer >= 1; got {d!r}")
    ones = torch.ones(1, d, dtype=torch.float64, device=device)
    # x_j: first j coordinates -1 (j = 0..d)
    points = 1 - 2 * torch.tril(torch.ones(d + 1, d, dtype=torch.float64, device=device), diagonal=-1)
    kappa = gram(kernel, ones, points, "kernel(x1, x2)").reshape(-1).cpu()
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(d, generator=gen).to(device)
    signs = (1 - 2 * torch.randint(0, 2, (d,), generator=gen)).to(device=device, dtype=torch.float64)
    _invariance_check(kernel, ones, points, kappa, lambda x: x[:, perm] * signs, "permutations and sign flips")
    # kappa_j = p_j / q_j exactly (q_j a power of 2): sum over j on the common denominator q
    ratios = [float(v).as_integer_ratio() for v in kappa.tolist()]
    q = max(den for _, den in ratios)
    numerators = [num * (q // den) for num, den in ratios]
    table = krawtchouk(d)  # table[j][k] = K_j(k)
    lam = [sum(a * row[k] for a, row in zip(numerators, table)) / (q << d) for k in range(d + 1)]
    # |delta lambda_k| <= eps max|kappa| 2^-d sum_j |K_j(k)|  (<= eps max|kappa| / sqrt(C(d, k)))
    spread = [sum(abs(row[k]) for row in table) / (1 << d) for k in range(d + 1)]
    return Spectrum(
        eigenvalues=np.array(lam, dtype=np.float64),
        multiplicities=np.array([float(math.comb(d, k)) for k in range(d + 1)]),
        degrees=np.arange(d + 1),
        error=_EPS * float(kappa.abs().max()) * np.array(spread),
    )


def _parity_power(target, d: int) -> np.ndarray:
    """Walsh power per degree of a learnlab ``Parity`` (a sum of parities over index sets)."""
    coef: dict[frozenset[int], float] = {}
    weight = 1 / math.sqrt(len(target.indices)) if target.normalize else 1.0
    for subset in target.indices:
        if any(not 0 <= i < d for i in subset):
            raise ValueError(f"parity index set {list(subset)} has indices outside 0..{d - 1} (d = {d})")
        odd = frozenset(i for i in set(subset) if list(subset).count(i) % 2 == 1)  # x_i^2 = 1
        coef[odd] = coef.get(odd, 0.0) + weight
    power = np.zeros(d + 1)
    for s, c in coef.items():
        power[len(s)] += c * c
    return power


def _walsh_hadamard(values: np.ndarray) -> None:
    """In place: values[S] <- sum_b (-1)^popcount(S & b) values[b]; values (2^d, k)."""
    size = values.shape[0]
    h = 1
    while h < size:
        view = values.reshape(size // (2 * h), 2, h, -1)
        low = view[:, 0].copy()
        view[:, 0] += view[:, 1]
        view[:, 1] *= -1
        view[:, 1] += low
        h *= 2


def hypercube_target_power(target, d: int, *, device: torch.device | str = "cpu") -> np.ndarray:
    """The target's power per Walsh degree, P_k = sum_{|S| = k} c_S^2 with c_S = E[f chi_S], k = 0..d.

    sum_k P_k = E[f^2]. A learnlab ``Parity`` (sparse parity, staircase) is done exactly from
    its index sets, for any d; any other target is evaluated on all 2^d points (point b has
    x_i = -1 where bit i of b is set) followed by a fast Walsh-Hadamard transform, O(d 2^d),
    for d <= 22.

    Args:
        target: callable x (N, d) ±1 float64 -> (N,) or (N, k) (a learnlab target or any function).
        d: dimension.
        device: where the points are built.

    Returns:
        (d + 1,) float64 for one output, (d + 1, k) for k > 1.

    Raises:
        ValueError: if d > 22 for a general target, or the target's output has the wrong shape.
    """
    from learnlab.tasks._targets import Parity

    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"d must be an integer >= 1; got {d!r}")
    if isinstance(target, Parity):
        return _parity_power(target, d)
    if d > _MAX_WALSH_D:
        raise ValueError(
            f"the Walsh power of a general target enumerates all 2^d points; d = {d} > {_MAX_WALSH_D} is too many. "
            "Use a learnlab Parity target (exact for any d), or nystrom_spectrum(...).coefficients(y) on samples"
        )
    size = 1 << d
    bits = torch.arange(d, device=device)
    values: np.ndarray | None = None
    for start in range(0, size, _WALSH_CHUNK):
        index = torch.arange(start, min(start + _WALSH_CHUNK, size), device=device)
        x = (1 - 2 * ((index.unsqueeze(1) >> bits) & 1)).to(torch.float64)
        y = torch.as_tensor(target(x)).detach().to(torch.float64)
        y = y.reshape(-1, 1) if y.dim() == 1 else y
        if y.dim() != 2 or y.shape[0] != x.shape[0]:
            raise ValueError(f"the target must map (N, {d}) to (N,) or (N, k); got {tuple(y.shape)} for N = {len(x)}")
        if values is None:
            values = np.empty((size, y.shape[1]))
        values[start : start + len(x)] = y.cpu().numpy()
    assert values is not None  # size >= 2
    _walsh_hadamard(values)
    values /= size  # c_S
    subsets = np.arange(size)  # S as a bit mask
    degree = np.zeros(size, dtype=np.int64)
    for i in range(d):
        degree += (subsets >> i) & 1
    power = np.stack(
        [np.bincount(degree, weights=values[:, c] ** 2, minlength=d + 1) for c in range(values.shape[1])], 1
    )
    return power[:, 0] if power.shape[1] == 1 else power


def gauss_gegenbauer(d: int, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss quadrature for the density of t = <u, v> of two uniform unit vectors in R^d.

    That density is proportional to (1 - t^2)^{(d-3)/2}, the Gauss-Jacobi weight with
    alpha = beta = (d - 3)/2 (Gegenbauer lambda = (d - 2)/2). Golub-Welsch: the nodes are the
    eigenvalues of the symmetric Jacobi matrix of the monic recurrence p_{k+1} = t p_k -
    beta_k p_{k-1}, beta_k = k (k + 2 lam - 1) / (4 (k + lam)(k + lam - 1)); the weights are
    the squared first components of its eigenvectors (summing to 1: a probability density).
    Exact for polynomials of degree <= 2 nodes - 1.
    """
    if d == 2:  # Gauss-Chebyshev, in closed form: t_i = cos((2i - 1) pi / (2 nodes)), equal weights
        return np.cos((2 * np.arange(nodes, 0, -1) - 1) * np.pi / (2 * nodes)), np.full(nodes, 1 / nodes)
    k = np.arange(1, nodes, dtype=np.float64)
    lam = (d - 2) / 2
    beta = k * (k + 2 * lam - 1) / (4 * (k + lam) * (k + lam - 1))
    jacobi = np.diag(np.sqrt(beta), 1) + np.diag(np.sqrt(beta), -1)
    t, vectors = np.linalg.eigh(jacobi)
    weights = vectors[0] ** 2
    return t, weights / weights.sum()


def gegenbauer(d: int, kmax: int, t: np.ndarray) -> np.ndarray:
    """(kmax + 1, len(t)): P_k(t) for k = 0..kmax, normalised P_k(1) = 1 (Legendre in d dimensions).

    P_{k+1} = ((2k + d - 2) t P_k - k P_{k-1}) / (k + d - 2), P_0 = 1, P_1 = t."""
    p = np.empty((kmax + 1, t.shape[0]))
    p[0] = 1.0
    if kmax >= 1:
        p[1] = t
    for k in range(1, kmax):
        p[k + 1] = ((2 * k + d - 2) * t * p[k] - k * p[k - 1]) / (k + d - 2)
    return p


def sphere_multiplicity(d: int, k: int) -> int:
    """N(d, k) = C(k + d - 1, d - 1) - C(k + d - 3, d - 1): the dimension of degree-k spherical harmonics in R^d."""
    return math.comb(k + d - 1, d - 1) - (math.comb(k + d - 3, d - 1) if k >= 2 else 0)


def sphere_spectrum(
    kernel: Kernel, d: int, kmax: int, *, nodes: int | None = None, device: torch.device | str = "cpu"
) -> Spectrum:
    """Eigenvalues per degree k = 0..kmax of a dot-product kernel on the sphere of radius sqrt(d) in R^d.

    lambda_k = E[kappa(t) P_k(t)] (module docstring) by Gauss-Gegenbauer quadrature
    (:func:`gauss_gegenbauer`, default max(400, 2 kmax + 2) nodes): the kernel is evaluated
    once at pairs x = sqrt(d) e_1, x' = sqrt(d) (t e_1 + sqrt(1 - t^2) e_2) for every node t.
    Exact (to round-off) for polynomial kappa of degree < 2 nodes - kmax; for kernels that are
    not smooth at t = ±1 (relu arc-cosine: (1 - t)^{3/2} terms) the error falls like a power
    of the number of nodes that grows with d. The absolute round-off is ~eps max|kappa| /
    sqrt(N(d, k)).

    Args:
        kernel: callable (x1, x2) -> (n1, n2), a function of <x, x'> on the sphere (checked
            once under a random rotation).
        d: dimension >= 2.
        kmax: largest degree.
        nodes: quadrature nodes.
        device: where the points are built.

    Returns:
        :class:`Spectrum` with degrees 0..kmax and multiplicities N(d, k).

    Raises:
        ValueError: if d < 2, kmax < 0, or the kernel is not rotation invariant.
    """
    if isinstance(d, bool) or not isinstance(d, int) or d < 2:
        raise ValueError(f"the sphere needs an integer d >= 2; got {d!r}")
    if isinstance(kmax, bool) or not isinstance(kmax, int) or kmax < 0:
        raise ValueError(f"kmax must be an integer >= 0; got {kmax!r}")
    nodes = max(400, 2 * kmax + 2) if nodes is None else nodes
    t, w = gauss_gegenbauer(d, nodes)
    root = math.sqrt(d)
    x = torch.zeros(1, d, dtype=torch.float64, device=device)
    x[0, 0] = root
    pairs = torch.zeros(nodes, d, dtype=torch.float64, device=device)
    pairs[:, 0] = root * torch.from_numpy(t)
    pairs[:, 1] = root * torch.from_numpy(np.sqrt(np.clip(1 - t * t, 0, None)))
    kappa = gram(kernel, x, pairs, "kernel(x1, x2)").reshape(-1).cpu()
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    rotation = rotation.to(device)
    _invariance_check(kernel, x, pairs, kappa, lambda z: z @ rotation, "rotations")
    terms = gegenbauer(d, kmax, t) * (w * kappa.numpy())  # (kmax + 1, nodes)
    return Spectrum(
        eigenvalues=terms.sum(axis=1),
        multiplicities=np.array([float(sphere_multiplicity(d, k)) for k in range(kmax + 1)]),
        degrees=np.arange(kmax + 1),
        error=_EPS * np.abs(terms).sum(axis=1),  # round-off only, not the quadrature's truncation
    )


def nystrom_spectrum(kernel: Kernel, x: torch.Tensor, top: int | None = None) -> Spectrum:
    """Eigenvalues of K(X, X) / n and eigenfunctions on the sample: the Nystrom estimate of the
    integral operator's spectrum under the distribution x was drawn from.

    With K(X, X) / n = U diag(lambda) U^T, phi_i(x_j) = sqrt(n) U_ji is orthonormal in L2 of the
    empirical measure; ``Spectrum.coefficients(y)`` projects target values on it. The top
    eigenvalues converge to the operator's at rate ~1/sqrt(n); the bottom ones do not.

    Args:
        kernel: callable (x1, x2) -> (n1, n2).
        x: (n, d) samples of the input distribution.
        top: keep the ``top`` largest eigenvalues (all n by default).

    Returns:
        :class:`Spectrum`, eigenvalues decreasing, multiplicities 1, eigenfunctions (n, top).
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty (n, d) tensor of samples; got {getattr(x, 'shape', type(x))}")
    n = x.shape[0]
    top = n if top is None else top
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= n:
        raise ValueError(f"top must be an integer in 1..n = {n}; got {top!r}")
    k = gram(kernel, x, x, "kernel(x, x)")
    lam, u = torch.linalg.eigh(0.5 * (k + k.T) / n)
    lam, u = lam.flip(0)[:top], u.flip(1)[:, :top]
    return Spectrum(
        eigenvalues=lam.cpu().numpy(),
        multiplicities=np.ones(top),
        eigenfunctions=u * math.sqrt(n),
    )
