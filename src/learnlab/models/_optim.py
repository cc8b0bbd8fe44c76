"""Optimizers whose hyperparameters may differ per ensemble member.

Every hyperparameter of a param group is a float or a tensor of shape (E,) that is
broadcast over dim 0 of each parameter (the member axis of a stacked model). With
floats, the updates are torch.optim.SGD's and torch.optim.Adam/AdamW's (tested
against them), so a single run and an ensemble member follow the same math.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from learnlab.models._param import ADAM_LIKE

__all__ = ["SGD", "Adam", "OPTIMIZERS", "build_optimizer", "select_members"]

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")


def _per_member(value, p: torch.Tensor):
    """A float stays a float; an (E,) tensor becomes (E, 1, ..., 1) to broadcast over p."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype=p.dtype, device=p.device).view(-1, *([1] * (p.dim() - 1)))
    return value


def _nonzero(value) -> bool:
    return bool((value != 0).any()) if isinstance(value, torch.Tensor) else value != 0


class SGD(torch.optim.Optimizer):
    """SGD with optional (Nesterov) momentum and L2 weight decay, as torch.optim.SGD."""

    def __init__(self, params, lr=1e-2, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if _nonzero(group["weight_decay"]):
                    g = g + _per_member(group["weight_decay"], p) * p
                if _nonzero(group["momentum"]):
                    mom = _per_member(group["momentum"], p)
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = g.clone()
                    else:
                        buf.mul_(mom).add_(g)
                    g = g + mom * buf if group["nesterov"] else buf
                lr = group["lr"]
                if isinstance(lr, torch.Tensor):
                    p.sub_(_per_member(lr, p) * g)
                else:
                    p.add_(g, alpha=-lr)


class Adam(torch.optim.Optimizer):
    """Adam (L2 weight decay) or AdamW (decoupled weight decay), as torch.optim.Adam/AdamW."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled=decoupled))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                lr = _per_member(group["lr"], p)
                wd = group["weight_decay"]
                if _nonzero(wd):
                    if group["decoupled"]:
                        p.mul_(1 - lr * _per_member(wd, p))
                    else:
                        g = g + _per_member(wd, p) * p
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                b1, b2 = _per_member(beta1, p), _per_member(beta2, p)
                m.mul_(b1).add_((1 - b1) * g) if isinstance(b1, torch.Tensor) else m.lerp_(g, 1 - b1)
                if isinstance(b2, torch.Tensor):
                    v.mul_(b2).add_((1 - b2) * g * g)
                else:
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                bias1 = 1 - b1**t
                bias2_sqrt = (1 - b2**t) ** 0.5
                denom = (v.sqrt() / bias2_sqrt).add_(_per_member(group["eps"], p))
                p.sub_((lr / bias1) * m / denom)


def build_optimizer(
    model,
    optimizer: str = "sgd",
    lr: float | Sequence[float] = 0.1,
    *,
    momentum: float | Sequence[float] = 0.9,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float | Sequence[float] = 0.0,
) -> torch.optim.Optimizer:
    """One param group per parameter tensor, each with lr * (n / n0)^(-c_l) per member.

    Args:
        model: a stacked learnlab model (``MLP``) exposing ``lr_exponents``.
        optimizer: one of ``OPTIMIZERS``; ``sgd`` ignores ``momentum``.
        lr: base learning rate eta, one float or one per member.
        momentum, weight_decay: floats or one per member.

    Returns:
        An optimizer whose groups carry ``name`` (e.g. ``weights.1``) and per-member ``lr`` (E,).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
    members = model.members
    eta = _member_tensor(lr, members, "lr")
    ratio = model.width / model.base_width
    groups = [
        {"params": [p], "name": name, "lr": eta * ratio ** (-c)}
        for p, name, c in model.lr_exponents(optimizer)
    ]
    wd = _member_tensor(weight_decay, members, "weight_decay")
    if optimizer in ADAM_LIKE:
        return Adam(groups, lr=eta, betas=betas, eps=eps, weight_decay=wd, decoupled=optimizer == "adamw")
    mom = 0.0 if optimizer == "sgd" else _member_tensor(momentum, members, "momentum")
    return SGD(groups, lr=eta, momentum=mom, nesterov=optimizer == "nesterov", weight_decay=wd)


def _member_tensor(value, members: int, key: str) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float64).flatten()
    if t.numel() == 1:
        return t.expand(members).clone()
    if t.numel() != members:
        raise ValueError(f"{key}: got {t.numel()} values for {members} members")
    return t


@torch.no_grad()
def select_members(model, optimizer: torch.optim.Optimizer, keep: torch.Tensor) -> None:
    """Keep only members ``keep`` (indices) of a stacked model and its optimizer, in place."""
    keep_dev = {}
    for p in model.parameters():
        idx = keep_dev.setdefault(p.device, keep.to(p.device))
        state = optimizer.state.pop(p, {})
        p.data = p.data.index_select(0, idx)
        optimizer.state[p] = {k: v.index_select(0, idx) if isinstance(v, torch.Tensor) and v.dim() > 0 else v
                              for k, v in state.items()}
    for name, buf in model.named_buffers():
        model.get_buffer(name).data = buf.index_select(0, keep.to(buf.device))
    for group in optimizer.param_groups:
        for key, value in group.items():
            if isinstance(value, torch.Tensor) and value.dim() == 1:
                group[key] = value.index_select(0, keep.to(value.device))
    model.members = int(keep.numel())
    model.params = [model.params[i] for i in keep.tolist()]
