"""The loss after one optimizer step, at many learning rates (seed 004's ``loss_per_learning_rate``, exact).

For a batch (x, y), a gradient g = grad L(theta; x, y) and every alpha:

    loss(alpha) = L(theta'(alpha); eval_x, eval_y),  theta'(alpha) = one step of the optimizer from
                                                     its current state with group lrs alpha * r_g,

r_g = lr_g / lr_0 (``relative=True``, keeps per-layer rates such as muP's) or 1. Two paths
give the same numbers: the *exact* path steps and restores for every alpha; the *fast* path
(when the step is affine in alpha, checked by two probe steps) evaluates
L(theta + alpha u) for all alpha with batched forward passes (``torch.func.vmap`` over
``functional_call``), so its cost is that of the forward passes, or less: a first layer
affine in its parameters is evaluated once for theta and once for u (``learnlab.lr._head``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, vmap

from learnlab._cpu import tune_cpu
from learnlab.lr._checks import check_batch, check_learning_rates, check_model_and_optimizer, eval_batch, group_ratios
from learnlab.lr._head import affine_head
from learnlab.lr._state import Preserved
from learnlab.lr._step import Stepper, gradient, linear_direction

__all__ = ["DEFAULT_MEMORY_BUDGET", "METHODS", "loss_per_learning_rate"]

METHODS = ("auto", "fast", "exact")

# Bytes of parameters and activations one batched forward pass may hold. On CPU a small
# budget keeps each chunk's activations in cache (large chunks are slower per alpha, measured
# in benchmarks/lr_probe.py); on an accelerator a large one amortises kernel launches.
DEFAULT_MEMORY_BUDGET = {"cpu": 32 * 2**20, "other": 2 * 2**30}


def loss_per_learning_rate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    criterion,
    optimizer: torch.optim.Optimizer,
    learning_rates,
    *,
    eval_x: torch.Tensor | None = None,
    eval_y: torch.Tensor | None = None,
    relative: bool = True,
    method: str = "auto",
    memory_budget: int | None = None,
) -> torch.Tensor:
    """The loss after one step of ``optimizer`` at each learning rate; nothing is changed.

    One gradient g is taken at (x, y) in the model's current train/eval mode (as a
    training step would). For each alpha, every param group's lr is set to
    alpha * lr_g / lr_0 (``relative=True``) or alpha, one optimizer step is taken from the
    optimizer's current state, and criterion(model(eval_x), eval_y) is evaluated in eval
    mode (dropout off; buffers as after the gradient pass). For SGD without momentum this
    is L(theta - alpha r g).

    Afterwards the parameters (their original storage is never written), buffers, ``.grad``
    tensors, train/eval flags, the optimizer's state, param groups and attributes, and the
    global RNG are exactly as before.

    Args:
        model: any ``nn.Module``; learnlab's stacked models too.
        x, y: the batch of the step: x (batch, ...), y (batch, ...).
        criterion: ``criterion(model(x), y)`` -> scalar loss, or one loss per member (E,)
            for a stacked model (their sum is differentiated).
        optimizer: any ``torch.optim.Optimizer`` built on ``model``'s parameters, with
            ``lr`` floats or tensors in its param groups.
        learning_rates: positive numbers (list, array or tensor, any shape).
        eval_x, eval_y: the batch the loss is evaluated on (default: x, y).
        relative: keep per-group lr ratios (True) or give every group alpha (False).
        method: ``auto`` (fast path when the step is affine in alpha, else exact),
            ``fast`` (error if it is not), or ``exact`` (step and restore per alpha).
        memory_budget: bytes per batched forward pass of the fast path (default:
            ``DEFAULT_MEMORY_BUDGET`` for the device).

    Returns:
        float64 CPU tensor of shape ``learning_rates.shape`` (+ (E,) for per-member losses).

    Raises:
        ValueError, TypeError: on empty or non-positive learning rates, mismatched batches,
            a model without trainable parameters, or an optimizer built on other parameters.
    """
    lrs = check_learning_rates(learning_rates)
    check_batch(x, y)
    ex, ey = eval_batch(x, y, eval_x, eval_y)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    params = check_model_and_optimizer(model, optimizer)
    ratios = group_ratios(optimizer, relative)
    tune_cpu()  # work starts: the allocator keeps the per-lr tensors (learnlab._cpu)
    alphas = lrs.flatten()
    with Preserved(model, optimizer) as saved:
        grad = gradient(model, criterion, x, y, params)
        model.eval()
        stepper = Stepper(saved, params, grad.grads, ratios)
        direction = None if method == "exact" else linear_direction(stepper, float(alphas.max()))
        if direction is None and method == "fast":
            raise ValueError(
                f"method='fast' needs a step that is affine in the learning rate; "
                f"{type(optimizer).__name__}'s step from this state is not. Use method='auto'."
            )
        if direction is None:
            losses = _exact(stepper, model, criterion, ex, ey, alphas.tolist())
        else:
            scale = ex.numel() / max(x.numel(), 1)
            budget = memory_budget or _default_budget(ex.device)
            chunk = _chunk_size(direction, grad.saved_bytes * scale, budget, alphas.numel())
            losses = _fast(model, criterion, ex, ey, saved, direction, alphas, chunk)
    return losses.reshape(tuple(lrs.shape) + tuple(losses.shape[1:]))


def _exact(stepper: Stepper, model, criterion, ex, ey, alphas: list[float]) -> torch.Tensor:
    """Step, evaluate, restore, for every alpha."""
    out = []
    for alpha in alphas:
        stepper.step(alpha)
        with torch.no_grad():
            out.append(criterion(model(ex), ey).detach())
    return torch.stack(out).to(device="cpu", dtype=torch.float64)


def _default_budget(device: torch.device) -> int:
    return DEFAULT_MEMORY_BUDGET["cpu" if device.type == "cpu" else "other"]


def _chunk_size(direction: dict, activation_bytes: float, budget: int, n: int) -> int:
    """How many alphas one batched forward pass takes: budget / (moved parameters + activations)."""
    param_bytes = sum(u.numel() * u.element_size() for u in direction.values())
    per_alpha = max(param_bytes + activation_bytes, 1)
    return int(max(1, min(n, budget // per_alpha)))


def _fast(
    model, criterion, ex, ey, saved: Preserved, direction: dict, alphas: torch.Tensor, chunk: int
) -> torch.Tensor:
    """L(theta + alpha u) for every alpha, ``chunk`` alphas per batched forward pass.

    A first layer that is affine in its parameters (``learnlab.lr._head``) is evaluated
    once for theta and once for u, and only the rest of the model per alpha. With chunk 1
    (or if ``vmap`` cannot trace the model) the working parameters are set in place,
    p = theta + alpha u (one pass over the parameters, no allocation), and the model is
    called as it is: per alpha one parameter pass and one forward pass.
    """
    moving = [(p, saved.original[id(p)], direction[id(p)]) for p in saved.params if id(p) in direction]
    out = []
    with torch.no_grad():
        if not moving:  # a zero step: every alpha gives the loss at theta
            loss = criterion(model(ex), ey).detach()
            return loss.to(device="cpu", dtype=torch.float64).expand(alphas.numel(), *loss.shape).clone()
        batched = chunk > 1
        try:
            head = _split_head(model, ex, saved, moving)
        except Exception:  # noqa: BLE001 - an unusual first layer: the whole model per alpha
            head = None
        for start in range(0, alphas.numel(), chunk):
            a = alphas[start : start + chunk]
            if batched:
                try:
                    out.append(_forward_batched(model, criterion, ex, ey, moving, a, head))
                    continue
                except Exception:  # noqa: BLE001 - vmap cannot trace this model: one alpha at a time
                    batched = False
            out.extend(_forward_in_place(model, criterion, ex, ey, moving, alpha, head) for alpha in a.tolist())
    return torch.cat(out).to(device="cpu", dtype=torch.float64)


def _split_head(model, ex, saved: Preserved, moving):
    """(head, z0, z1, the moving parameters after it): the first layer's output at theta and
    along the step direction (None if it does not move), or None without a split."""
    head = affine_head(model)
    if head is None:
        return None
    by_name: dict[str, nn.Parameter] = dict(model.named_parameters())
    in_head = {id(by_name[n]) for n in head.names}
    moves = {id(p): u for p, _, u in moving}
    theta = {n: saved.original.get(id(by_name[n]), by_name[n]) for n in head.names}
    z0 = head.pre(ex, theta)
    z1 = None
    if in_head & moves.keys():
        z1 = head.pre(ex, {n: moves.get(id(by_name[n]), torch.zeros_like(theta[n])) for n in head.names})
    return head, z0, z1, [m for m in moving if id(m[0]) not in in_head]


def _forward_batched(model, criterion, ex, ey, moving, a: torch.Tensor, head=None) -> torch.Tensor:
    """vmap over alphas: (K,) -> (K, *loss shape); parameters (K, ...) = theta + a u."""
    names = {id(p): name for name, p in model.named_parameters()}
    theta0 = moving[0][1]
    a = a.to(device=theta0.device, dtype=theta0.dtype)
    varied = moving if head is None else head[3]  # a split first layer's parameters are in z0, z1
    params = {names[id(p)]: torch.addcmul(theta, a.view(-1, *([1] * theta.dim())), u) for p, theta, u in varied}
    if head is not None:
        head, z0, z1, _ = head
        z = z0.expand(a.numel(), *z0.shape) if z1 is None else torch.addcmul(z0, a.view(-1, *([1] * z0.dim())), z1)

        def loss_after_head(batch_params, zk):
            return criterion(head.rest(zk, batch_params), ey)

        return vmap(loss_after_head)(params, z)

    def loss(batch_params):
        return criterion(functional_call(model, batch_params, (ex,)), ey)

    return vmap(loss)(params)


def _forward_in_place(model, criterion, ex, ey, moving, alpha: float, head=None) -> torch.Tensor:
    """One alpha, (1, *loss shape): working parameters p <- theta + alpha u, then the model as is
    (after a split first layer: z0 + alpha z1, then the rest of the model; the first layer's
    own parameters, already in z0 and z1, are left alone)."""
    if head is None:
        for p, theta, u in moving:
            torch.add(theta, u, alpha=alpha, out=p.data)
        return criterion(model(ex), ey).detach().unsqueeze(0)
    head, z0, z1, rest = head
    for p, theta, u in rest:
        torch.add(theta, u, alpha=alpha, out=p.data)
    z = z0 if z1 is None else torch.add(z0, z1, alpha=alpha)
    return criterion(head.rest(z, {}), ey).detach().unsqueeze(0)
