"""Predictions of kernel methods: kernel (ridge) regression and gradient-descent dynamics of the
linearised network.

Every function takes the kernel as a callable ``kernel(x1, x2) -> (n1, n2)`` tensor (e.g.
``lambda a, b: learnlab.theory.ntk(model, a, b)``); its values are used in float64 on the
device it returns them on.

Gradient descent (``gd_dynamics``) is that of the *linearised* model f(x) = <phi(x), w>, with
K(x, x') = <phi(x), phi(x')> and f_0 = 0 (a centred network), on learnlab's MSE loss
L = 1/(n k) sum_{i, c} (f_c(x_i) - y_ic)^2 (``learnlab.train``'s ``mse``: a mean over the n
samples *and* the k outputs, one weight vector per output sharing K). Full-batch GD with
learning rate lr moves the training residual r = f(X) - y by

    r_{t+1} = (I - eta K) r_t,    eta = 2 lr / (n k),

so with K(X, X) = V diag(lambda) V^T (one eigendecomposition) and b = V^T y

    r_t = -V diag(g^t) b,    g = 1 - eta lambda,
    f_t(x) = K(x, X) V diag((1 - g^t) / lambda) b    ((1 - g^t) / lambda -> t eta as lambda -> 0)

(Jacot, Gabriel & Hongler 2018; Lee et al. 2019, "Wide neural networks of any depth evolve as
linear models under gradient descent"). ``lr`` is the learning rate of the linearised model in
the parameter scale that defines K: for a network whose layers have their own learning rates
lr_l, K must be the tangent kernel with each layer's part weighted by lr_l / lr.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import torch

from learnlab.theory._eigenlearning import Eigenlearning, eigenlearning

__all__ = ["Kernel", "Dynamics", "Eigenlearning", "kernel_regression", "gd_dynamics", "eigenlearning", "gram"]

Kernel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# values held per chunk of steps in gd_dynamics (steps x n_train or steps x n_test x k): 128 MiB of float64
_CHUNK = 1 << 24


def gram(kernel: Kernel, x1: torch.Tensor, x2: torch.Tensor, what: str = "kernel(x1, x2)") -> torch.Tensor:
    """kernel(x1, x2) as float64, checked to be a finite (n1, n2) tensor.

    Raises:
        TypeError: if the kernel does not return a tensor.
        ValueError: if its shape is not (len(x1), len(x2)) or a value is not finite.
    """
    k = kernel(x1, x2)
    if not isinstance(k, torch.Tensor):
        raise TypeError(f"{what} must return a torch.Tensor of shape (n1, n2); got {type(k).__name__}")
    expected = (x1.shape[0], x2.shape[0])
    if tuple(k.shape) != expected:
        raise ValueError(
            f"{what} returned shape {tuple(k.shape)} for inputs of shapes {tuple(x1.shape)} and "
            f"{tuple(x2.shape)}; a kernel must return (n1, n2) = {expected}"
        )
    k = k.to(torch.float64)
    if not torch.isfinite(k).all():
        raise ValueError(f"{what} has non-finite values (nan or inf); check the kernel and the inputs")
    return k


def _targets(y: torch.Tensor, n: int, what: str, device: torch.device) -> torch.Tensor:
    """y: (n,) or (n, k) -> (n, k) float64 on ``device``."""
    y = torch.as_tensor(y)
    if y.dim() == 1:
        y = y.unsqueeze(1)
    if y.dim() != 2 or y.shape[0] != n:
        raise ValueError(f"{what} must have shape ({n},) or ({n}, k) to match the inputs; got {tuple(y.shape)}")
    return y.to(device=device, dtype=torch.float64)


def _check_inputs(x_train: torch.Tensor, x_test: torch.Tensor) -> None:
    for name, x in (("x_train", x_train), ("x_test", x_test)):
        if not isinstance(x, torch.Tensor) or x.dim() != 2:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a (n, d) tensor; got {got}")
    if x_train.shape[0] == 0:
        raise ValueError("x_train is empty; kernel predictions need at least one training point")


def _solve_psd(k: torch.Tensor, y: torch.Tensor, ridge: float) -> torch.Tensor:
    """(K + ridge I)^-1 y by Cholesky; a clear error when K + ridge I is (numerically) singular.

    A Cholesky pivot L_ii^2 is a Schur complement's diagonal entry, >= the smallest eigenvalue;
    a pivot below n * eps * max K_ii therefore means an eigenvalue that small: singular in float64.
    """
    n = k.shape[0]
    a = k + ridge * torch.eye(n, dtype=k.dtype, device=k.device)
    chol, info = torch.linalg.cholesky_ex(a)
    scale = float(a.diagonal().abs().max())
    pivot = float(chol.diagonal().min() ** 2) if int(info) == 0 else 0.0
    if int(info) != 0 or pivot <= n * torch.finfo(torch.float64).eps * scale:
        fix = (
            f"pass ridge > 0 (e.g. ridge={1e-8 * scale:.1e}, 1e-8 x the largest K(x, x)), or remove "
            "duplicate training points"
            if ridge == 0
            else "check that the kernel is positive semi-definite, or increase ridge"
        )
        raise ValueError(
            f"the training Gram matrix K(x_train, x_train) + ridge I ({n} x {n}, ridge={ridge}) is singular or not "
            f"positive definite in float64 (smallest Cholesky pivot {pivot:.3g} vs largest diagonal {scale:.3g}); {fix}"
        )
    return torch.cholesky_solve(y, chol)


def kernel_regression(
    kernel: Kernel,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    ridge: float = 0.0,
) -> torch.Tensor:
    """Kernel (ridge) regression f(x) = K(x, X) (K(X, X) + ridge I)^-1 y.

    With ridge = 0 this is the kernel interpolant, the t -> inf limit of :func:`gd_dynamics`
    (and of an infinitely wide network trained to convergence in the kernel regime). ``ridge``
    is in the units of the unnormalised Gram matrix, as delta in eigenlearning (Simon et al. 2021).

    Args:
        kernel: callable (x1, x2) -> (n1, n2) tensor.
        x_train: (n, d) training inputs.
        y_train: (n,) or (n, k) training targets.
        x_test: (m, d) inputs to predict at.
        ridge: delta >= 0 added to the diagonal of K(X, X).

    Returns:
        (m, k) float64 predictions on the kernel's device.

    Raises:
        ValueError: for a negative ridge, shapes that do not match, or a Gram matrix that is
            singular (e.g. duplicate points with ridge 0) or not positive definite.
    """
    _check_inputs(x_train, x_test)
    if not ridge >= 0:
        raise ValueError(f"ridge must be >= 0; got {ridge}")
    k_train = gram(kernel, x_train, x_train, "kernel(x_train, x_train)")
    y = _targets(y_train, x_train.shape[0], "y_train", k_train.device)
    alpha = _solve_psd(0.5 * (k_train + k_train.T), y, float(ridge))
    return gram(kernel, x_test, x_train, "kernel(x_test, x_train)").to(alpha.device) @ alpha


@dataclass
class Dynamics:
    """Train and test MSE of the linearised model under full-batch gradient descent.

    Attributes:
        steps: (T,) int64, the recorded steps: 0, every, 2 every, ..., and the last step.
        train_mse: (T,) float64, mean over samples and outputs of (f_t(x_i) - y_i)^2.
        test_mse: (T,) float64 on (x_test, y_test), or None without y_test.
        predictions: (m, k) float64, f_t(x_test) at the last step.
        max_stable_lr: n k / lambda_max(K(X, X)): GD on the linearised model converges for
            lr < max_stable_lr (every |1 - eta lambda| < 1) and diverges above it.
    """

    steps: torch.Tensor
    train_mse: torch.Tensor
    test_mse: torch.Tensor | None
    predictions: torch.Tensor
    max_stable_lr: float


def _recorded_steps(steps: int, every: int, device: torch.device) -> torch.Tensor:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0; got {steps!r}")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be an integer >= 1; got {every!r}")
    recorded = list(range(0, steps + 1, every))
    if recorded[-1] != steps:
        recorded.append(steps)
    return torch.tensor(recorded, dtype=torch.int64, device=device)


def _decay(eta_lam: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(g^t, 1 - g^t) for g = 1 - eta lambda: eta_lam (1, n), t (T, 1) -> two (T, n).

    Near g = 1 (|eta lambda| < 1/2) through log1p / expm1, accurate for small eta lambda and
    huge t; elsewhere (oscillating or diverging modes, g <= 1/2) by the integer power."""
    near = eta_lam.abs() < 0.5
    log_g = torch.log1p(-torch.where(near, eta_lam, torch.zeros_like(eta_lam)))
    smooth_power = torch.exp(t * log_g)
    smooth_rest = -torch.expm1(t * log_g)
    power = torch.pow(1 - eta_lam, t)
    return torch.where(near, smooth_power, power), torch.where(near, smooth_rest, 1 - power)


def _curves(
    lam: torch.Tensor, b: torch.Tensor, a: torch.Tensor, y_test: torch.Tensor | None, eta: float, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Train MSE, test MSE (or None) at each step t and the filter h at the last one.

    lam (n,) and b = V^T y (n, k): K(X, X)'s eigenvalues and the targets in its eigenbasis;
    a = K(x_test, X) V (m, n); t (T,) float64. Steps are taken in chunks so that no more than
    ~_CHUNK values (steps x n or steps x m x k) are held at once.
    """
    n, outputs = b.shape
    train = torch.empty(t.shape[0], dtype=torch.float64, device=b.device)
    test = None if y_test is None else torch.empty_like(train)
    norms = b.square().sum(dim=1)  # |b_j|^2
    safe = torch.where(lam == 0, torch.ones_like(lam), lam)
    rows = max(1, _CHUNK // max(n, a.shape[0] * outputs))
    h = torch.zeros(1, n, dtype=torch.float64, device=b.device)
    for start in range(0, t.shape[0], rows):
        tc = t[start : start + rows].unsqueeze(1)  # (T_c, 1)
        power, rest = _decay(eta * lam.unsqueeze(0), tc)  # (T_c, n): g^t, 1 - g^t
        train[start : start + rows] = power.square() @ norms / (n * outputs)  # |r_t|^2 = sum_j g_j^2t |b_j|^2
        h = torch.where(lam == 0, eta * tc, rest / safe)  # (T_c, n): (1 - g^t) / lambda
        if test is not None and y_test is not None:
            pred = torch.einsum("mj,tjc->tmc", a, h.unsqueeze(2) * b)  # (T_c, m, k)
            test[start : start + rows] = (pred - y_test).square().mean(dim=(1, 2))
    return train, test, h[-1]


def gd_dynamics(
    kernel: Kernel,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    lr: float,
    steps: int,
    *,
    y_test: torch.Tensor | None = None,
    every: int = 1,
) -> Dynamics:
    """Full-batch gradient descent on MSE of the linearised model, from f_0 = 0, in closed form.

    One eigendecomposition of K(X, X) gives every step at once (no step-by-step iteration):
    r_t = -V diag(g^t) V^T y with g = 1 - eta lambda, eta = 2 lr / (n k) for learnlab's MSE
    (a mean over the n samples and k outputs), and f_t(x) = K(x, X) V diag((1 - g^t) / lambda)
    V^T y, with the limit t eta for lambda = 0 modes (see the module docstring for the
    convention and for what ``lr`` means for a network).

    Args:
        kernel: callable (x1, x2) -> (n1, n2) tensor.
        x_train: (n, d). y_train: (n,) or (n, k).
        x_test: (m, d). y_test: (m,) or (m, k), for ``test_mse``.
        lr: learning rate > 0 of the linearised model.
        steps: number of GD steps (any integer >= 0: the cost does not grow with it).
        every: record every ``every``-th step (and always the last).

    Returns:
        :class:`Dynamics` on the kernel's device.

    Raises:
        ValueError: for a non-positive lr, bad steps/every or shapes that do not match.
    """
    _check_inputs(x_train, x_test)
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0; got {lr!r}")
    k_train = gram(kernel, x_train, x_train, "kernel(x_train, x_train)")
    device = k_train.device
    n = x_train.shape[0]
    y = _targets(y_train, n, "y_train", device)
    outputs = y.shape[1]
    lam, v = torch.linalg.eigh(0.5 * (k_train + k_train.T))  # K = V diag(lam) V^T
    b = v.T @ y  # (n, k): the targets in K's eigenbasis
    eta = 2.0 * float(lr) / (n * outputs)
    recorded = _recorded_steps(steps, every, device)
    a = gram(kernel, x_test, x_train, "kernel(x_test, x_train)").to(device) @ v  # (m, n)
    yt = None if y_test is None else _targets(y_test, x_test.shape[0], "y_test", device)
    if yt is not None and yt.shape[1] != outputs:
        raise ValueError(f"y_test has {yt.shape[1]} outputs but y_train has {outputs}")
    train_mse, test_mse, h_last = _curves(lam, b, a, yt, eta, recorded.to(torch.float64))
    lam_max = float(lam[-1])
    return Dynamics(
        steps=recorded,
        train_mse=train_mse,
        test_mse=test_mse,
        predictions=a @ (h_last.unsqueeze(1) * b),
        max_stable_lr=n * outputs / lam_max if lam_max > 0 else math.inf,
    )
