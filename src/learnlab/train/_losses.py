"""Losses per ensemble member: out, y (E, n, k) -> (E,).

Each is the mean over the batch of the per-example loss, as the corresponding
torch loss with reduction="mean" on a single member.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from learnlab.train._names import LOSS_NAMES

__all__ = ["LOSSES", "OUTPUT_GRADS", "get_loss"]


def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """mean (f - y)^2 over examples and outputs (``nn.MSELoss``)."""
    return (out - y).pow(2).mean(dim=(1, 2))


def cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-sum_c y_c log softmax(f)_c averaged over examples; y one-hot (or soft) labels (n, classes)."""
    return -(y * F.log_softmax(out, dim=-1)).sum(dim=-1).mean(dim=1)


def hinge(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """mean max(0, 1 - y f) for labels y in {-1, +1} (the parity literature's loss)."""
    return torch.relu(1 - y * out).mean(dim=(1, 2))


def logistic(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """mean log(1 + exp(-y f)) for labels y in {-1, +1}."""
    return F.softplus(-y * out).mean(dim=(1, 2))


LOSSES = {"mse": mse, "cross_entropy": cross_entropy, "hinge": hinge, "logistic": logistic}
assert tuple(LOSSES) == LOSS_NAMES  # the names specs are validated against (without torch)


# Closed forms of (losses, d losses.sum() / d out) for the fused training step (models._mlp_grad),
# each running the loss's own forward operations and then, in order, the operations autograd's
# derivative formulas run for it (sum's and mean's backward: 1/N everywhere; relu's
# threshold_backward; rsub's negation; softplus_backward; mul's grad * other), so the gradient
# has autograd's bits without its graph (~0.15 ms a step: a tenth of a small stack's step).
def _inverse_count(out: torch.Tensor) -> torch.Tensor:
    """mean's backward over dims (1, 2): 1/N in out's dtype, expanded to out's shape."""
    inv = torch.ones((), dtype=out.dtype, device=out.device).div_(out.shape[1] * out.shape[2])
    return inv.expand(out.shape)


def _hinge_output_grad(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    margin = torch.relu(1 - y * out)
    g = torch.ops.aten.threshold_backward(_inverse_count(out), margin, 0)
    return margin.mean(dim=(1, 2)), g.neg_().mul_(y)  # rsub's -grad * 1: the same bits as -grad


def _logistic_output_grad(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    minus_y = -y
    z = minus_y * out
    g = torch.ops.aten.softplus_backward(_inverse_count(out), z, 1, 20)
    return F.softplus(z).mean(dim=(1, 2)), g.mul_(minus_y)


def _cross_entropy_output_grad(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    log_p = F.log_softmax(out, dim=-1)
    losses = -(y * log_p).sum(dim=-1).mean(dim=1)  # neg's backward first: -1, then mean's: -1 / n
    minus_inv = torch.full((), -1, dtype=out.dtype, device=out.device).div_(out.shape[1])
    g = minus_inv.expand(out.shape) * y  # sum's backward (expand over classes), then mul's
    return losses, torch.ops.aten._log_softmax_backward_data(g, log_p, -1, out.dtype)


OUTPUT_GRADS = {hinge: _hinge_output_grad, logistic: _logistic_output_grad, cross_entropy: _cross_entropy_output_grad}


def get_loss(name_or_fn):
    """A loss by name, a ``"package.module:attr"`` reference, or a callable (out, y) -> (E,)."""
    if callable(name_or_fn):
        return name_or_fn
    if name_or_fn in LOSSES:
        return LOSSES[name_or_fn]
    from learnlab._imports import resolve

    return resolve(name_or_fn)
