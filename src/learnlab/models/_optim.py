"""Optimizers whose hyperparameters may differ per ensemble member.

Every hyperparameter of a param group is a float or a tensor of shape (E,) that is
broadcast over dim 0 of each parameter (the member axis of a stacked model); Adam's
``betas`` is a pair of floats or a pair of (E,) float64 tensors. With
floats, the updates are torch.optim.SGD's and torch.optim.Adam/AdamW's (tested
against them), so a single run and an ensemble member follow the same math.

A group may also carry a learning-rate warm-up as data (ipllr's large initial
learning rates, Hajjar et al. 2021): ``lr_warmup`` (E,) and ``n_warmup`` (E,); the
update k (0-based, counted per parameter in ``state["step"]``) uses
``lr * (lr_warmup if k < n_warmup else 1)``. ``build_optimizer`` fills them in.

Hyperparameter tensors are treated as immutable (their broadcast views are cached):
to change one, assign a new tensor to the group, as schedulers do; never edit in place.
"""

from __future__ import annotations

import torch

from learnlab._devices import to_device

__all__ = ["SGD", "Adam", "select_members", "scheduled_lr"]


def scheduled_lr(group: dict, k: int):
    """The group's learning rate for update ``k`` (0-based): ``lr``, times ``lr_warmup`` while k < n_warmup."""
    lr = group["lr"]
    n_warmup = group.get("n_warmup")
    if n_warmup is None or not bool((n_warmup > k).any()):
        return lr
    warm = group["lr_warmup"]
    return lr * torch.where(n_warmup > k, warm, torch.ones_like(warm))


class _MemberOptimizer(torch.optim.Optimizer):
    """Per-member hyperparameters, broadcast over dim 0 of each parameter.

    What a step derives from a group's hyperparameter tensor (its (E, 1, ..., 1) view in
    the parameter's dtype and device, whether it is nonzero, 1 - beta) is kept here, one
    entry per (group, hyperparameter, layout), with the tensor it came from: it is
    reused while the group holds that tensor and replaced when a new one is assigned (a
    schedule assigns one every step), so nothing is converted twice and nothing grows.
    """

    def _derived(self, key: tuple, value: torch.Tensor, make):
        cache = self.__dict__.setdefault("_learnlab_derived", {})
        entry = cache.get(key)
        if entry is None or entry[0] is not value:
            entry = cache[key] = (value, make())
        return entry[1]

    def _member(self, where: tuple, value, p: torch.Tensor):
        """A float stays a float; an (E,) tensor becomes (E, 1, ..., 1) to broadcast over p."""
        if not isinstance(value, torch.Tensor):
            return value
        layout = (p.dtype, p.device, p.dim())
        return self._derived((*where, *layout), value, lambda: _member_view(value, p))

    def _nonzero(self, where: tuple, value) -> bool:
        if isinstance(value, torch.Tensor):
            return self._derived((*where, "nonzero"), value, lambda: bool((value != 0).any()))
        return value != 0

    def _closure(self, closure):
        """torch's convention: re-evaluate the loss (with gradients) before the step, and return it."""
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()


def _member_view(value: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    # a schedule or Adam's corrections make a new (E,) CPU tensor every step: queued, not waited for
    return to_device(value, p.device, p.dtype).view(-1, *([1] * (p.dim() - 1)))


class SGD(_MemberOptimizer):
    """SGD with optional (Nesterov) momentum and L2 weight decay, as torch.optim.SGD."""

    def __init__(self, params, lr=1e-2, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = self._closure(closure)
        for k, group in enumerate(self.param_groups):
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if self._nonzero((k, "weight_decay"), group["weight_decay"]):
                    g = g + self._member((k, "weight_decay"), group["weight_decay"], p) * p
                if self._nonzero((k, "momentum"), group["momentum"]):
                    mom = self._member((k, "momentum"), group["momentum"], p)
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = g.clone()
                    else:
                        buf.mul_(mom).add_(g)
                    g = g + mom * buf if group["nesterov"] else buf
                step = state.get("step", 0)
                lr = scheduled_lr(group, step)
                state["step"] = step + 1
                if isinstance(lr, torch.Tensor):
                    p.addcmul_(g, self._member((k, "lr"), lr, p), value=-1)
                else:
                    p.add_(g, alpha=-lr)
        return loss


class Adam(_MemberOptimizer):
    """Adam (L2 weight decay) or AdamW (decoupled weight decay), as torch.optim.Adam/AdamW."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled=decoupled))

    @torch.no_grad()
    def step(self, closure=None):
        loss = self._closure(closure)
        for k, group in enumerate(self.param_groups):
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                lr = self._member((k, "lr"), scheduled_lr(group, state["step"]), p)
                wd = group["weight_decay"]
                if self._nonzero((k, "weight_decay"), wd):
                    if group["decoupled"]:
                        p.mul_(1 - lr * self._member((k, "weight_decay"), wd, p))
                    else:
                        g = g + self._member((k, "weight_decay"), wd, p) * p
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                if isinstance(beta1, torch.Tensor):  # one pair per member: the same bits as floats
                    bias1, bias2_sqrt = self._member_betas(k, m, v, g, beta1, beta2, t, p)
                else:
                    m.lerp_(g, 1 - beta1)
                    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                    bias1 = 1 - beta1**t
                    bias2_sqrt = (1 - beta2**t) ** 0.5
                denom = (v.sqrt() / bias2_sqrt).add_(self._member((k, "eps"), group["eps"], p))
                p.sub_((lr / bias1) * m / denom)
        return loss

    def _member_betas(self, k: int, m, v, g, beta1: torch.Tensor, beta2: torch.Tensor, t: int, p):
        """Adam's moment updates with (E,) float64 betas; returns the bias corrections.

        Every coefficient (1 - beta, the corrections) is computed in float64, as Python does
        for float betas, and rounded once to p's dtype, and the moments go through the same
        kernels (lerp, addcmul) as the float path, so a member's update has the same bits
        as its run alone with float betas.
        """
        layout = (p.dtype, p.device, p.dim())
        w1 = self._derived((k, "1-beta1", *layout), beta1, lambda: _member_view(1 - beta1, p))
        w2 = self._derived((k, "1-beta2", *layout), beta2, lambda: _member_view(1 - beta2, p))
        m.lerp_(g, w1)
        v.mul_(self._member((k, "beta2"), beta2, p)).addcmul_(g * w2, g)
        # the corrections by Python's float arithmetic, as the float path has them (torch's pow
        # and sqrt may round the last bit differently, which float64 parameters would show)
        bias1 = torch.tensor([1 - b**t for b in beta1.tolist()], dtype=torch.float64)
        bias2_sqrt = torch.tensor([(1 - b**t) ** 0.5 for b in beta2.tolist()], dtype=torch.float64)
        return _member_view(bias1, p), _member_view(bias2_sqrt, p)


@torch.no_grad()
def select_members(model, optimizer: torch.optim.Optimizer, keep: torch.Tensor) -> None:
    """Keep only members ``keep`` (indices) of a stacked model and its optimizer, in place.

    Every parameter, buffer (multipliers, centering's initial parameters), optimizer
    state tensor and (E,) group hyperparameter is indexed along dim 0; the model's
    :class:`~learnlab.models.Scaling` keeps the members' parameterizations. Keeping
    every member (in order) changes nothing, so a stack of one need not have a member axis.
    """
    if keep.tolist() == list(range(int(getattr(model, "members", -1)))):
        return
    keep_dev: dict[torch.device, torch.Tensor] = {}
    for p in model.parameters():
        idx = keep_dev.setdefault(p.device, keep.to(p.device))
        state = optimizer.state.pop(p, {})
        p.data = p.data.index_select(0, idx)
        optimizer.state[p] = {
            k: v.index_select(0, idx) if isinstance(v, torch.Tensor) and v.dim() > 0 else v for k, v in state.items()
        }
    for name, buf in model.named_buffers():
        model.get_buffer(name).data = buf.index_select(0, keep.to(buf.device))
    for group in optimizer.param_groups:
        for key, value in group.items():
            if isinstance(value, torch.Tensor) and value.dim() == 1:
                group[key] = value.index_select(0, keep.to(value.device))
            elif isinstance(value, tuple) and any(isinstance(v, torch.Tensor) for v in value):  # Adam's betas
                group[key] = tuple(v.index_select(0, keep.to(v.device)) for v in value)
    model.members = int(keep.numel())
    from learnlab.models._scaling import SCALING_ATTR

    scaling = getattr(model, SCALING_ATTR, None)
    if scaling is not None:
        setattr(model, SCALING_ATTR, scaling.select(keep.tolist()))
