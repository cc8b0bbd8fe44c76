"""Taylor predictions of the loss after one step, and the learning rate they call optimal.

Along a step direction u (theta' = theta + alpha u), to second order

    L(theta + alpha u) ~ L + alpha g^T u + 1/2 alpha^2 u^T H u,

g = grad L, H = its Hessian (u^T H u by one Hessian-vector product, never forming H).
For gradient descent u = -g and this is seed 004's L - alpha |g|^2 + 1/2 alpha^2 g^T H g.
The second-order model is minimal at alpha* = -g^T u / u^T H u when u^T H u > 0 (for
gradient descent |g|^2 / g^T H g); on a quadratic loss both are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from learnlab.lr._checks import (
    check_batch,
    check_learning_rates,
    check_model_and_optimizer,
    eval_batch,
    group_ratios,
    trainable,
)
from learnlab.lr._hessian import LossFunction
from learnlab.lr._state import Preserved
from learnlab.lr._step import Stepper, gradient, linear_direction

__all__ = ["TaylorPrediction", "taylor_predictions"]


@dataclass
class TaylorPrediction:
    """First- and second-order predictions of the loss after one step.

    Attributes:
        learning_rates: alpha, float64, the shape given.
        loss: L(theta) on the evaluation batch.
        slope: g^T u, the derivative of the loss along the step at alpha = 0 (-|g|^2 for GD).
        curvature: u^T H u (g^T H g for GD).
        first: L + alpha slope.
        second: L + alpha slope + 1/2 alpha^2 curvature.
        optimal_lr: argmin of the second-order model, -slope / curvature; ``inf`` when the
            curvature is <= 0 (the model has no minimum: it predicts ever lower losses).
    """

    learning_rates: torch.Tensor
    loss: float
    slope: float
    curvature: float
    first: torch.Tensor
    second: torch.Tensor
    optimal_lr: float


def taylor_predictions(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    criterion,
    learning_rates,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    relative: bool = True,
    eval_x: torch.Tensor | None = None,
    eval_y: torch.Tensor | None = None,
) -> TaylorPrediction:
    """Taylor predictions of what :func:`loss_per_learning_rate` measures.

    The step direction u comes from the gradient at (x, y) in the model's current mode:
    u = -g (plain gradient descent) without ``optimizer``; with one, u = (theta'(alpha) -
    theta) / alpha for its step (which must be affine in alpha, as for torch.optim's SGD,
    Adam, AdamW, RMSprop...; per-group lrs scaled as in ``loss_per_learning_rate``).
    L, g^T u and u^T H u are taken on (eval_x, eval_y) (default x, y) in eval mode.
    Nothing is changed (same guarantees as ``loss_per_learning_rate``).

    Args:
        model, x, y, criterion: as for :func:`loss_per_learning_rate` (a per-member loss is summed).
        learning_rates: positive numbers, any shape.
        optimizer: step direction of this optimizer instead of -g.
        relative: per-group lr ratios kept (True) or all groups at alpha (False).
        eval_x, eval_y: the batch the loss is expanded on.

    Returns:
        A :class:`TaylorPrediction`.
    """
    lrs = check_learning_rates(learning_rates)
    check_batch(x, y)
    ex, ey = eval_batch(x, y, eval_x, eval_y)
    params = trainable(model) if optimizer is None else check_model_and_optimizer(model, optimizer)
    with Preserved(model, optimizer) as saved:
        grad = gradient(model, criterion, x, y, params)
        u: dict[int, torch.Tensor] | None
        if optimizer is None:
            u = {id(p): -g for p, g in zip(params, grad.grads) if g is not None}
        else:
            stepper = Stepper(saved, params, grad.grads, group_ratios(optimizer, relative))
            u = linear_direction(stepper, float(lrs.max()))
            if u is None:
                raise ValueError(
                    f"{type(optimizer).__name__}'s step is not affine in the learning rate from this "
                    "state, so it has no single direction to expand along; use loss_per_learning_rate"
                )
        model.eval()
        f = LossFunction(model, criterion, ex, ey)
        names = {id(p): n for n, p in model.named_parameters()}
        tangent = {n: torch.zeros_like(t) for n, t in f.theta.items()}
        tangent.update({names[i]: v.to(f.theta[names[i]].dtype) for i, v in u.items()})
        loss = float(f(f.theta))
        g_eval, hu = f.gradient_and_hvp(tangent)
        slope = float(sum((g_eval[n].double() * tangent[n].double()).sum() for n in f.names))
        curvature = float(sum((hu[n].double() * tangent[n].double()).sum() for n in f.names))
    first = loss + lrs * slope
    second = first + 0.5 * lrs**2 * curvature
    optimal = -slope / curvature if curvature > 0 else math.inf
    return TaylorPrediction(lrs, loss, slope, curvature, first, second, optimal)
