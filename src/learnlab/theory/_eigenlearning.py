"""Eigenlearning: the test and train MSE of kernel ridge regression predicted from the kernel's
eigenvalues and the target's coefficients (Simon, Dickens, Karkada & DeWeese 2021, "The
eigenlearning framework: a conservation law perspective on kernel regression and wide neural
networks"; the same estimate as Bordelon, Canatar & Pehlevan 2020 and Jacot et al. 2020).

Conventions. The kernel is K(x, x') = sum_i lambda_i phi_i(x) phi_i(x') with phi_i orthonormal
in L2 of the input distribution (lambda_i = eigenvalues of the integral operator
f -> E_x'[K(., x') f(x')], *not* of the Gram matrix); the target is f = sum_i v_i phi_i; n
samples are drawn i.i.d. and labelled y = f(x) + noise (variance noise^2); KRR predicts
f^(x) = K(x, X) (K(X, X) + ridge I)^-1 y (:func:`learnlab.theory.kernel_regression`). Then

    kappa > 0 solves  sum_i lambda_i / (lambda_i + kappa) + ridge / kappa = n,
    L_i = lambda_i / (lambda_i + kappa)                (learnability of mode i),
    E_0 = n / (n - sum_i L_i^2)                        (overfitting coefficient),
    test MSE  = E_0 (sum_i (1 - L_i)^2 v_i^2 + noise^2)  (against noisy test labels),
    train MSE = (ridge / (n kappa))^2 test MSE.

The error against the clean target is test MSE - noise^2. A mode listed with multiplicity m_i
stands for m_i modes with eigenvalue lambda_i; its ``coefficients`` entry is then the norm of
the target's projection on that eigenspace (sqrt of its power), e.g. per Walsh degree on the
hypercube. With several outputs (coefficients (M, k)) the MSEs are means over the outputs, as
in learnlab's ``mse``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Eigenlearning", "eigenlearning"]

_MAX_ITERATIONS = 400
_EPS = float(np.finfo(np.float64).eps)
_BLOCK = 1 << 16  # (n, mode) pairs per block of the kappa solver: 512 KiB per work array


@dataclass
class Eigenlearning:
    """Eigenlearning's predictions; every array has n's shape in front (scalars for a scalar n).

    Attributes:
        n: the sample sizes, float64.
        kappa: effective regularisation (0 in the ridgeless, n >= modes limit).
        learnability: (..., M) L_i = lambda_i / (lambda_i + kappa) per listed mode.
        e0: overfitting coefficient E_0 = n / (n - sum_i m_i L_i^2) (inf at n = modes, ridge 0).
        test_mse: predicted test MSE against noisy labels (``test_mse - noise**2`` is the
            error against the clean target).
        train_mse: predicted train MSE.
    """

    n: np.ndarray
    kappa: np.ndarray
    learnability: np.ndarray
    e0: np.ndarray
    test_mse: np.ndarray
    train_mse: np.ndarray


def _vector(values, name: str) -> np.ndarray:
    arr = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-d array (one entry per mode); got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} has non-finite entries")
    return arr


def _checked_spectrum(eigenvalues, multiplicity) -> tuple[np.ndarray, np.ndarray]:
    lam = _vector(eigenvalues, "eigenvalues")
    scale = float(np.abs(lam).max())
    if (lam < -1e-8 * scale).any():
        raise ValueError(
            f"eigenvalues must be >= 0 (a kernel is positive semi-definite); got min {lam.min():.3g} "
            f"vs max {lam.max():.3g}. Round-off negatives (> -1e-8 x max) are set to 0"
        )
    lam = np.maximum(lam, 0.0)
    if multiplicity is None:
        return lam, np.ones_like(lam)
    mult = _vector(multiplicity, "multiplicity")
    if mult.shape != lam.shape or (mult <= 0).any():
        raise ValueError(
            f"multiplicity must hold one positive count per eigenvalue ({lam.shape[0]}); got shape "
            f"{mult.shape}, min {mult.min():.3g}"
        )
    return lam, mult


def _target_power(coefficients, power, modes: int) -> np.ndarray:
    """(M, k) power v_i^2 per listed mode and output."""
    if (coefficients is None) == (power is None):
        raise ValueError("pass exactly one of coefficients (v_i) and power (v_i^2 per mode or eigenspace)")
    values = coefficients if power is None else power
    arr = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64)
    arr = arr.reshape(modes, 1) if arr.ndim == 1 and arr.shape[0] == modes else arr
    if arr.ndim != 2 or arr.shape[0] != modes or not np.isfinite(arr).all():
        raise ValueError(
            f"{'coefficients' if power is None else 'power'} must be finite with shape ({modes},) or ({modes}, k), "
            f"one row per eigenvalue; got shape {arr.shape}"
        )
    if power is not None and (arr < 0).any():
        raise ValueError("power (the target's squared norm per mode) must be >= 0")
    return arr**2 if power is None else arr


def _solve_inverse_kappa(lam: np.ndarray, mult: np.ndarray, n: np.ndarray, ridge: float) -> np.ndarray:
    """s = 1 / kappa solving h(s) = sum_i m_i lam_i s / (1 + lam_i s) + ridge s = n, for each n.

    h is concave and increasing with h(0) = 0, so Newton's method started left of the root
    (h(s) <= n) climbs monotonically to it (a concave function lies below its tangents: no step
    overshoots); far from the root each step multiplies s by at least n / h(s). Requires a root:
    ridge > 0 or n < the number of modes with lam > 0 (those with lam = 0 do not enter h).

    The n are solved in increasing order, in blocks of ~_BLOCK (n, mode) pairs so that the work
    arrays stay in cache; the root s*(n) increases with n, so each block starts from the
    previous block's largest root (left of all of its own): a warm start along the curve.
    """
    keep = lam > 0
    lam, mult = lam[keep], mult[keep]
    weighted = _Weighted(lam, mult)
    order = np.argsort(n, kind="stable")
    s = np.empty(n.shape)
    rows = max(1, _BLOCK // max(1, lam.size))
    start_s = 0.0
    for start in range(0, n.size, rows):
        block = order[start : start + rows]
        s[block] = _newton(weighted, n[block], ridge, start_s)
        start_s = float(s[block].max())
    return s


class _Weighted:
    """The modes (lam > 0) with their multiplicities, and the sums over them that Newton needs."""

    def __init__(self, lam: np.ndarray, mult: np.ndarray):
        self.lam, self.mult, self.modes = lam, mult, float(mult.sum())
        self.unit = bool((mult == 1).all())
        self.mult_lam = mult * lam

    def sum(self, values: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """values (N, M) -> (N,): sum_i w_i values_i (w = mult by default). A plain sum when the
        weights are all 1; einsum otherwise (BLAS's matrix-vector product is up to 50x slower for a
        few rows of many columns)."""
        if weights is None:
            if self.unit:
                return values.sum(axis=1)
            weights = self.mult
        return np.einsum("ij,j->i", values, weights)


def _newton(modes: _Weighted, n: np.ndarray, ridge: float, start_s: float) -> np.ndarray:
    """Newton's iteration for :func:`_solve_inverse_kappa` from s = start_s (left of every root).
    The residual n - h(s) is formed from whichever of sum m L or sum m (1 - L) is smaller, so no
    digits are lost when n is close to the number of modes."""
    s = np.full(n.shape, start_s)
    todo = np.arange(n.shape[0])
    for _ in range(_MAX_ITERATIONS):
        q = modes.lam * s[todo, None]  # (N', M) lambda_i / kappa
        unlearn = 1 / (1 + q)  # 1 - L_i
        unlearned = modes.sum(unlearn)
        q *= unlearn  # now L_i
        learned = modes.sum(q)
        unlearn *= unlearn
        slope = modes.sum(unlearn, modes.mult_lam) + ridge  # h'(s) = sum m lam (1 - L)^2 + ridge
        by_learned = learned <= unlearned
        ridge_s = ridge * s[todo]
        nt = n[todo]
        residual = np.where(by_learned, nt - learned, (nt - modes.modes) + unlearned) - ridge_s
        # the size of what the residual is formed from: it is zero to working precision below eps x this
        scale = np.where(by_learned, nt + learned, np.abs(nt - modes.modes) + unlearned) + ridge_s
        step = residual / slope
        s[todo] += step
        done = (np.abs(step) <= 4 * _EPS * s[todo]) | (np.abs(residual) <= 8 * _EPS * scale)
        todo = todo[~done]
        if todo.size == 0:
            return s
    raise RuntimeError(f"eigenlearning: kappa did not converge in {_MAX_ITERATIONS} Newton steps (please report)")


def _learnabilities(
    lam: np.ndarray, mult: np.ndarray, power: np.ndarray, inv_kappa: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(L (N, M), sum_i m_i L_i (1 - L_i) (N,), sum_i (1 - L_i)^2 power_i (N,)) for each 1 / kappa,
    in blocks of ~_BLOCK values (in cache); inv_kappa = inf gives the kappa -> 0 limit (L_i = 1
    where lam_i > 0, else 0)."""
    learn = np.empty((inv_kappa.size, lam.size))
    overlap, bias = np.zeros(inv_kappa.size), np.empty(inv_kappa.size)
    limit = np.isinf(inv_kappa)
    learn[limit] = lam > 0
    bias[limit] = power[lam == 0].sum()
    finite = np.flatnonzero(~limit)
    rows = max(1, _BLOCK // max(1, lam.size))
    for start in range(0, finite.size, rows):
        block = finite[start : start + rows]
        q = lam * inv_kappa[block, None]  # lambda_i / kappa
        unlearn = 1 / (1 + q)  # 1 - L_i, without the cancellation of 1 - L_i
        q *= unlearn  # now L_i
        learn[block] = q
        overlap[block] = np.einsum("ij,ij,j->i", q, unlearn, mult)
        bias[block] = np.einsum("ij,ij,j->i", unlearn, unlearn, power)
    return learn, overlap, bias


def eigenlearning(
    eigenvalues,
    coefficients=None,
    n=None,
    ridge: float = 0.0,
    noise: float = 0.0,
    *,
    multiplicity=None,
    power=None,
) -> Eigenlearning:
    """Eigenlearning's prediction of kernel ridge regression's test and train MSE at n samples.

    See the module docstring for the conventions and formulas. kappa is found by a monotone
    Newton iteration on 1 / kappa, vectorised over all n at once (converged to ~1e-15 relative).
    E_0 is evaluated as n / (sum_i m_i L_i (1 - L_i) + ridge / kappa), equal to
    n / (n - sum_i m_i L_i^2) at the root but free of cancellation.

    Ridgeless with n >= M (M = number of modes with lambda > 0, counted with multiplicity),
    the equation has no root; the ridge -> 0+ limit is returned: kappa = 0, L_i = 1 on modes
    with lambda > 0 (0 elsewhere), E_0 = n / (n - M) (inf at n = M), test MSE =
    E_0 (power on lambda = 0 modes + noise^2) (0 when that is 0), train MSE = (n - M) / n
    (power on lambda = 0 modes + noise^2): least squares on M features.

    Args:
        eigenvalues: (M,) lambda_i >= 0 of the integral operator (e.g. ``Spectrum.eigenvalues``).
        coefficients: (M,) or (M, k) target coefficients v_i (with ``multiplicity``: the norm of
            the target's projection on each eigenspace); or pass ``power`` instead.
        n: number of training samples, a number or an array of them (a learning curve).
        ridge: delta >= 0 of :func:`kernel_regression` (units of the unnormalised Gram matrix).
        noise: standard deviation of the label noise.
        multiplicity: (M,) number of modes sharing each eigenvalue (default 1 each).
        power: (M,) or (M, k) v_i^2 (per eigenspace with ``multiplicity``), instead of coefficients.

    Returns:
        :class:`Eigenlearning`.

    Raises:
        ValueError: for negative eigenvalues, ridge, noise or n, or shapes that do not match.
    """
    lam, mult = _checked_spectrum(eigenvalues, multiplicity)
    weight = _target_power(coefficients, power, lam.shape[0])  # (M, k)
    if n is None:
        raise ValueError("eigenlearning needs n, the number of training samples (a number or an array)")
    n_arr = np.asarray(n, dtype=np.float64)
    if not (np.isfinite(n_arr).all() and (n_arr > 0).all()):
        raise ValueError(f"n must be > 0 and finite; got {n}")
    if not (np.isfinite(ridge) and ridge >= 0 and np.isfinite(noise) and noise >= 0):
        raise ValueError(f"ridge and noise must be finite and >= 0; got ridge={ridge}, noise={noise}")
    flat = n_arr.reshape(-1)
    modes = float(mult[lam > 0].sum())
    degenerate = (ridge == 0) & (flat >= modes)
    inv_kappa = np.full(flat.shape, np.inf)  # 1 / kappa; inf in the ridgeless n >= modes limit
    inv_kappa[~degenerate] = _solve_inverse_kappa(lam, mult, flat[~degenerate], float(ridge))
    learn, overlap, bias = _learnabilities(lam, mult, weight.mean(axis=1), inv_kappa)
    bias += noise**2  # sum_i (1 - L_i)^2 v_i^2 + noise^2
    with np.errstate(divide="ignore", invalid="ignore"):
        ridge_term = np.where(degenerate, 0.0, ridge * inv_kappa)  # ridge / kappa
        e0 = np.where(degenerate, flat / (flat - modes), flat / (overlap + ridge_term))
        test = np.where(bias == 0, 0.0, e0 * bias)
        train = np.where(degenerate, (flat - modes) / flat * bias, (ridge_term / flat) ** 2 * test)
    shape = n_arr.shape
    return Eigenlearning(
        n=n_arr,
        kappa=(1 / inv_kappa).reshape(shape),
        learnability=learn.reshape(*shape, lam.shape[0]),
        e0=e0.reshape(shape),
        test_mse=test.reshape(shape),
        train_mse=train.reshape(shape),
    )
