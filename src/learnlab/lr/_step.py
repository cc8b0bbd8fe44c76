"""One gradient, one optimizer step at any learning rate, and the step's direction when it is linear.

For the optimizers of ``torch.optim`` (SGD with or without momentum, Adam, AdamW,
RMSprop, Adagrad without lr decay, ...) one step from a given state is affine in the
learning rate alpha:

    theta(alpha) = theta + alpha * u,

with u independent of alpha (AdamW: theta (1 - alpha wd) - alpha m/denom = theta - alpha
(wd theta + m/denom)). ``linear_direction`` checks this with two probe steps and returns
u, so every other alpha costs no optimizer step at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from learnlab.lr._checks import set_learning_rates
from learnlab.lr._state import Preserved

__all__ = ["LINEARITY_ULPS", "Gradient", "Stepper", "gradient", "linear_direction"]

# Two probe steps agree with one affine map if |theta(a/2) - theta - (theta(a) - theta)/2| is within
# this many units in the last place of |theta| + |theta(a) - theta| per element: each step rounds a
# few times (the update, then theta + update), and a nonlinear optimizer misses by far more.
LINEARITY_ULPS = 16


@dataclass
class Gradient:
    """The gradient at (x, y) and what it cost.

    Attributes:
        grads: one tensor (or None where the loss does not depend on it) per parameter.
        loss: the loss at (x, y), detached; a scalar or one value per member.
        saved_bytes: bytes autograd saved for backward, an estimate of the forward's activations.
    """

    grads: list
    loss: torch.Tensor
    saved_bytes: int


def gradient(model: nn.Module, criterion, x, y, params: list[nn.Parameter]) -> Gradient:
    """d criterion(model(x), y) / d params, without touching ``p.grad``.

    A criterion returning one loss per member (shape (E,)) is summed first, so each
    member's parameters get the gradient of its own loss.
    """
    seen, total = set(), [0]

    def pack(t: torch.Tensor):
        key = (t.data_ptr(), t.numel())
        if key not in seen:
            seen.add(key)
            total[0] += t.numel() * t.element_size()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = criterion(model(x), y)
    if not isinstance(loss, torch.Tensor) or not loss.is_floating_point():
        raise TypeError(f"criterion must return a floating-point tensor; got {type(loss).__name__}")
    if loss.dim() > 1:
        raise ValueError(
            f"criterion must return a scalar (or one loss per member, shape (E,)); "
            f"got shape {tuple(loss.shape)}. Use reduction='mean'."
        )
    if not loss.requires_grad:
        raise ValueError(
            "the loss does not depend on any parameter that requires grad "
            "(did the criterion or model detach its output?)"
        )
    grads = torch.autograd.grad(loss.sum(), params, allow_unused=True)
    return Gradient(list(grads), loss.detach(), total[0])


class Stepper:
    """Takes one step of ``optimizer`` at learning rate alpha from the saved state.

    Args:
        saved: the active :class:`Preserved` of the model and optimizer.
        params: the parameters the gradient was taken for.
        grads: their gradients.
        ratios: per-group lr multiples (see ``group_ratios``).
    """

    def __init__(self, saved: Preserved, params: list, grads: list, ratios: list):
        self.saved, self.params, self.grads, self.ratios = saved, params, grads, ratios
        self.originals = [g["lr"] for g in saved.groups]

    def step(self, alpha: float) -> None:
        """Parameters and state reset, every group's lr = alpha * ratio, one optimizer step."""
        self.saved.reset()
        opt = self.saved.optimizer
        assert opt is not None  # a Stepper steps the optimizer it was built for
        set_learning_rates(opt, alpha, self.ratios, self.originals)
        for p, g in zip(self.params, self.grads):
            p.grad = None if g is None else g.clone()  # an optimizer may write into p.grad
        opt.step()
        for p in self.params:
            p.grad = None


def linear_direction(stepper: Stepper, alpha: float) -> dict[int, torch.Tensor] | None:
    """u with theta(a) = theta + a u for every a in (0, alpha], or None if the step is not affine.

    Two probe steps, at alpha and alpha / 2. u = (theta(alpha) - theta) / alpha is taken
    from the larger one, so at any a <= alpha the rounding in theta + a u is no larger than
    in the optimizer's own step. Keys are ``id(param)``; only parameters that moved are kept.
    """
    saved = stepper.saved
    stepper.step(alpha)
    full = {id(p): p.data - saved.original[id(p)] for p in saved.params}
    stepper.step(alpha / 2)
    direction = {}
    for p in saved.params:
        theta, move = saved.original[id(p)], full[id(p)]
        if not _affine(theta, move, p.data - theta):
            saved.reset()
            return None
        if bool(move.any()):
            direction[id(p)] = move.div_(alpha)
    saved.reset()
    return direction


def _affine(theta: torch.Tensor, full: torch.Tensor, half: torch.Tensor) -> bool:
    """|half - full / 2| <= LINEARITY_ULPS * eps * (|theta| + |full|), elementwise (NaN fails)."""
    err = half.sub_(full, alpha=0.5).abs_()
    bound = theta.abs().add_(full.abs()).mul_(LINEARITY_ULPS * torch.finfo(theta.dtype).eps)
    return bool((err <= bound).all())
