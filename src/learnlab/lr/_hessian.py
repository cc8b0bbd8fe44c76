"""The loss as a function of the parameters, Hessian-vector products, and Lanczos for top eigenvalues.

Hessian-vector products are reverse-over-reverse with ``torch.func``: the gradient
g(theta) = ``grad(L)(theta)`` is built once with ``vjp``, and H v = v^T dg/dtheta is one
backward pass through it (H is symmetric), never forming H. (Forward-over-reverse, ``jvp``
of ``grad``, fails for ``F.mse_loss`` in torch 2.13 with "ZeroTensors are immutable" and
warns on first use, so it is not used.)

Vectors over parameters are kept flat per member, shape (E, n): for a stacked model
(every parameter has a leading member axis of size E, members independent) the Hessian
of the summed loss is block diagonal, so one batched Lanczos run finds every member's
eigenvalues at once. An ordinary model is a stack of one: (1, n).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn
from torch.func import functional_call, grad, vjp

__all__ = ["LossFunction", "lanczos"]


class LossFunction:
    """theta -> criterion(model(x), y).sum() for the model's trainable parameters.

    Args:
        model: the module (its buffers and frozen parameters are used as they are).
        criterion: ``criterion(model(x), y)`` -> scalar or one loss per member (summed).
        x, y: the batch.
        stacked: parameters carry a leading member axis (learnlab's stacked models).
    """

    def __init__(self, model: nn.Module, criterion, x, y, *, stacked: bool = False):
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        members = named[0][1].shape[0] if stacked else 1
        if stacked and any(p.dim() == 0 or p.shape[0] != members for _, p in named):
            shapes = {n: tuple(p.shape) for n, p in named}
            raise ValueError(f"stacked=True needs every parameter to have the member axis first; got {shapes}")
        self._setup({n: p.detach() for n, p in named}, members, lambda params: functional_call(model, params, (x,)))
        self.criterion, self.y = criterion, y

    @classmethod
    def of_stack(cls, stack, criterion, x, y) -> LossFunction:
        """The loss of a :class:`~learnlab.models.Stack`, over each member's trainable parameters
        viewed (E, ...) by their own names (``stack.member_parameters()``, ``stack.per_member``)."""
        self = cls.__new__(cls)
        theta = {n: stack.per_member(p.detach()) for n, p in stack.member_parameters() if p.requires_grad}
        self._setup(theta, stack.members, lambda params: stack.functional(params, x))
        self.criterion, self.y = criterion, y
        return self

    def _setup(self, theta: dict, members: int, forward) -> None:
        self.names, self.theta, self.members, self._forward = list(theta), theta, members, forward
        self._pullback: Callable[..., Any] | None = None  # v -> H v, built on first use

    def __call__(self, params: dict) -> torch.Tensor:
        return self.criterion(self._forward(params), self.y).sum()

    def gradient_and_hvp(self, v: dict) -> tuple[dict, dict]:
        """(grad L(theta), H v) for a dict of tangents shaped like the parameters."""
        if self._pullback is None:
            # torch.func.vjp's annotation joins its has_aux=True return: without aux it is (output, vjp_fn)
            self._gradient, self._pullback = cast("tuple[Any, Callable[..., Any]]", vjp(grad(self), self.theta))
        return self._gradient, self._pullback(v)[0]

    def flat(self, tensors: dict) -> torch.Tensor:
        """Parameter-shaped tensors -> (E, n) float64."""
        e = self.members
        return torch.cat([tensors[n].reshape(e, -1).to(torch.float64) for n in self.names], dim=1)

    def unflat(self, v: torch.Tensor) -> dict:
        """(E, n) -> parameter-shaped tensors in the parameters' dtypes."""
        out, start = {}, 0
        for n in self.names:
            t = self.theta[n]
            size = t.numel() // self.members
            out[n] = v[:, start : start + size].reshape(t.shape).to(t.dtype)
            start += size
        return out


def _ritz(alphas: list, betas: list, e: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (ascending) and last eigenvector components of member e's m x m tridiagonal."""
    a = torch.stack([alphas[j][e] for j in range(m)])
    t = torch.diag(a)
    if m > 1:
        b = torch.stack([betas[j][e] for j in range(m - 1)])
        t = t + torch.diag(b, 1) + torch.diag(b, -1)
    values, vectors = torch.linalg.eigh(t)
    return values, vectors[-1]


def lanczos(
    matvec,
    members: int,
    n: int,
    k: int,
    *,
    iters: int,
    tol: float,
    seed: int,
    device: torch.device,
    breakdown: float = 1e-10,
) -> torch.Tensor:
    """Top-k eigenvalues (descending) of a symmetric operator on (E, n), per member: (E, k).

    Lanczos with full reorthogonalisation (twice, "twice is enough", Parlett 1980). A
    member stops when its top-k Ritz residuals |beta_m s_mi| are all <= tol * |theta_i|,
    or when its Krylov space is invariant (beta <= breakdown * |A q|: its Ritz values are
    then exact up to beta).
    Eigenvalues the Krylov space cannot hold (k above its dimension) are NaN.
    """
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(members, n, generator=gen, dtype=torch.float64).to(device)
    q = q / q.norm(dim=1, keepdim=True)
    basis = torch.zeros(iters, members, n, dtype=torch.float64, device=device)
    alphas: list[torch.Tensor] = []
    betas: list[torch.Tensor] = []
    size = [0] * members  # Krylov dimension reached by each member
    done = torch.zeros(members, dtype=torch.bool)
    for j in range(iters):
        basis[j] = q
        w = matvec(q)
        norm_aq = w.norm(dim=1)
        a = (w * q).sum(dim=1)
        for _ in range(2):
            w = w - torch.einsum("jen,je->en", basis[: j + 1], torch.einsum("jen,en->je", basis[: j + 1], w))
        b = w.norm(dim=1)
        alphas.append(a.cpu())
        for e in range(members):
            if not done[e]:
                size[e] = j + 1
                invariant = b[e].item() <= breakdown * max(norm_aq[e].item(), 1e-300)
                done[e] = invariant or _converged(alphas, betas, e, j + 1, b[e].item(), k, tol)
        if bool(done.all()) or j + 1 == iters:
            break
        betas.append(b.cpu())
        q = torch.where(done.to(device)[:, None], torch.zeros_like(w), w / b.clamp_min(1e-300)[:, None])
    out = torch.full((members, k), float("nan"), dtype=torch.float64)
    for e in range(members):
        values, _ = _ritz(alphas, betas, e, size[e])
        top = values.flip(0)[:k]
        out[e, : top.numel()] = top
    return out


def _converged(alphas, betas, e: int, m: int, beta: float, k: int, tol: float) -> bool:
    if m < k:
        return False
    values, last = _ritz(alphas, betas, e, m)
    top, resid = values.flip(0)[:k], (beta * last.flip(0)[:k]).abs()
    return bool((resid <= tol * top.abs().clamp_min(1e-300)).all())
