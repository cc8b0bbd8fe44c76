"""Probes that run the network: empirical NTK, kernel-target alignment, activation sizes.

They see the model as the loop does, a :class:`~learnlab.models.Stack`: x (E, batch, d)
-> (E, batch, k), where E is the number of stacked members (1 for a user module trained
alone), and measure each member on the first points of its own current training batch
(``ctx.batch``).
"""

from __future__ import annotations

from typing import cast

import torch
from torch.func import jacrev, vmap

from learnlab.train._probes_api import ProbeContext

__all__ = ["empirical_ntk", "EmpiricalNTK", "KernelAlignment", "ActivationSize", "alignment"]


def empirical_ntk(model, x: torch.Tensor) -> torch.Tensor:
    """The empirical neural tangent kernel of every member on its points.

        K_e(x_i, x_j) = sum_c sum_p  d f_c(x_i) / d theta_p  *  d f_c(x_j) / d theta_p

    summed over the trainable parameters theta of member e and traced over the outputs
    c (Jacot, Gabriel & Hongler 2018). Jacobians come from ``torch.func``: ``jacrev`` of
    a one-point, one-member forward (``model.functional`` with that member's tensors),
    vmapped over points and members, so one call gives every row, with no backward pass
    per row.

    Args:
        model: a :class:`~learnlab.models.Stack`, x (E, batch, d) -> (E, batch, k).
        x: (E, n, d) points.

    Returns:
        K: (E, n, n). Memory: the Jacobians take E * n * k * (parameters per member) floats.
    """
    named = model.member_parameters()
    params = {n: model.per_member(p.detach()) for n, p in named if p.requires_grad}
    others = {n: model.per_member(p.detach()) for n, p in named if not p.requires_grad}
    others.update({n: model.per_member(b) for n, b in model.member_buffers()})

    def one_point(p, s, xi):  # p, s: one member's tensors, without the member axis
        state = {k: v.unsqueeze(0) for k, v in {**p, **s}.items()}
        return model.functional(state, xi.reshape(1, 1, -1)).reshape(-1)  # (k,)

    per_point = vmap(jacrev(one_point), in_dims=(None, None, 0))  # name -> (n, k, *shape)
    jac = vmap(per_point, in_dims=(0, 0, 0))(params, others, x)  # name -> (E, n, k, *shape)
    kernel: torch.Tensor | None = None
    for j in jac.values():
        j = j.flatten(3)  # (E, n, k, P_layer)
        term = torch.einsum("eikp,ejkp->eij", j, j)
        kernel = term if kernel is None else kernel + term
    return cast(torch.Tensor, kernel)  # None only for a model without trainable parameters


def alignment(kernel: torch.Tensor, y: torch.Tensor, centered: bool = False) -> torch.Tensor:
    """Kernel-target alignment A = <K, Y Y^T>_F / (||K||_F ||Y Y^T||_F), per member.

    (Cristianini et al. 2002; for one output A = y^T K y / (||K||_F y^T y).) With
    ``centered`` both matrices are first centred, K -> H K H with H = I - 1 1^T / n
    (Cortes, Mohri & Rostamizadeh 2012).

    Args:
        kernel: (E, n, n).
        y: (E, n, k) targets.
    """
    target = y @ y.transpose(1, 2)  # (E, n, n)
    if centered:
        n = kernel.shape[-1]
        h = torch.eye(n, dtype=kernel.dtype, device=kernel.device) - 1.0 / n
        kernel, target = h @ kernel @ h, h @ target @ h
    inner = (kernel * target).sum(dim=(1, 2))
    return inner / (kernel.flatten(1).norm(dim=1) * target.flatten(1).norm(dim=1))


class EmpiricalNTK:
    """The empirical NTK on the first ``n`` points of each member's batch.

        artifact ``ntk`` (E, n, n) = K (see :func:`empirical_ntk`)
        probe/ntk/trace = tr K = sum_i ||d f(x_i) / d theta||^2
        probe/kernel_alignment = A(K, y) (with ``alignment=True``; see :func:`alignment`)

    Args:
        every: steps between calls.
        n: points of the batch used (the first n; fewer if the batch is smaller).
        alignment: also report the kernel-target alignment with the batch labels.
        centered: centre K and y y^T for the alignment.
    """

    artifact = True

    def __init__(self, every: int = 100, n: int = 32, alignment: bool = False, centered: bool = False):
        self.every, self.n, self.alignment, self.centered = every, n, alignment, centered

    def __call__(self, model, ctx: ProbeContext):
        x, y = ctx.batch
        kernel = empirical_ntk(model, x[:, : self.n]).detach()
        out = {}
        if self.artifact:
            out["ntk"] = kernel
            out["ntk/trace"] = kernel.diagonal(dim1=1, dim2=2).sum(dim=1)
        if self.alignment:
            out["kernel_alignment"] = alignment(kernel, y[:, : self.n].to(kernel.dtype), self.centered)
        return out


class KernelAlignment(EmpiricalNTK):
    """Kernel-target alignment of the empirical NTK only: ``probe/kernel_alignment``.

        A = <K, y y^T>_F / (||K||_F ||y y^T||_F)   (= y^T K y / (||K||_F y^T y) for one output)

    on the first ``n`` points of the batch with their training labels (no artifact).

    Args:
        every: steps between calls.
        n: points of the batch used.
        centered: centre K and y y^T first (Cortes et al. 2012).
    """

    artifact = False

    def __init__(self, every: int = 100, n: int = 32, centered: bool = False):
        super().__init__(every, n, alignment=True, centered=centered)


class ActivationSize:
    """Coordinate size of every layer's output, per member (the muP "coord check").

        probe/act/<layer> = mean_{i, j} |h_ij|   over the batch points i and units j

    Layers: those the stack's ``activations(x) -> (out, {layer: h})`` records (learnlab's
    MLP: ``input``, ``hidden.1``, ..., ``output``, each after its multiplier and bias,
    before the nonlinearity; a user module held alone: every leaf submodule, ``0``, ``1``,
    ... for an ``nn.Sequential``); plus ``out``, the model's output. Per member, mean |h|
    is Theta(1) in a width-stable parameterization.

    Args:
        every: steps between calls.
        n: use the first n points of the batch (default all).
    """

    def __init__(self, every: int = 100, n: int | None = None):
        self.every, self.n = every, n

    @torch.no_grad()
    def __call__(self, model, ctx: ProbeContext):
        x = ctx.batch[0] if self.n is None else ctx.batch[0][:, : self.n]
        out, record = model.activations(x)  # (E, ...) each
        sizes = {f"act/{name}": _coordinate_size(h) for name, h in record.items()}
        sizes["act/out"] = _coordinate_size(out)
        return sizes


def _coordinate_size(h: torch.Tensor) -> torch.Tensor:
    """mean |h| per member, h (E, ...)."""
    return h.detach().abs().flatten(1).mean(dim=1)
