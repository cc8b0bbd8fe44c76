"""Input checks shared by the learning-rate tools: each error says what was got and how to fix it."""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "check_batch",
    "check_learning_rates",
    "check_model_and_optimizer",
    "eval_batch",
    "group_ratios",
    "scaled_lr",
    "set_learning_rates",
    "trainable",
]


def check_learning_rates(learning_rates) -> torch.Tensor:
    """The learning rates as a float64 CPU tensor of their own shape; all finite and > 0.

    Raises:
        TypeError: if they are not numbers.
        ValueError: if there are none, or any is non-finite or <= 0.
    """
    try:
        if isinstance(learning_rates, torch.Tensor):
            lrs = learning_rates.detach().to(device="cpu", dtype=torch.float64)
        else:
            lrs = torch.as_tensor(learning_rates, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(
            f"learning_rates must be a sequence, array or tensor of numbers; got {type(learning_rates).__name__} "
            f"({exc}). Example: torch.logspace(-4, 1, 50)"
        ) from None
    if lrs.numel() == 0:
        raise ValueError(
            "learning_rates is empty; pass at least one positive learning rate, e.g. torch.logspace(-4, 1, 50)"
        )
    bad = ~(torch.isfinite(lrs) & (lrs > 0))
    if bad.any():
        where = bad.flatten().nonzero().flatten()[:5].tolist()
        values = [lrs.flatten()[i].item() for i in where]
        raise ValueError(
            f"learning rates must be finite and > 0; got {values} at flat positions {where} "
            f"({int(bad.sum())} bad of {lrs.numel()})"
        )
    return lrs


def check_batch(x, y, names: tuple[str, str] = ("x", "y")) -> None:
    """x and y must be tensors with the same size of dim 0 (the batch, or the members of a stack)."""
    for value, name in zip((x, y), names):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
        if value.dim() == 0:
            raise ValueError(f"{name} must have a batch dimension; got a 0-d tensor")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same size of dim 0 (the batch); got {names[0]} "
            f"{tuple(x.shape)} and {names[1]} {tuple(y.shape)}. Pass targets for every input."
        )


def eval_batch(x, y, eval_x, eval_y) -> tuple:
    """(eval_x, eval_y) if given (both checked), else (x, y)."""
    if (eval_x is None) != (eval_y is None):
        raise ValueError("pass both eval_x and eval_y, or neither (then the loss is evaluated on x, y)")
    if eval_x is None:
        return x, y
    check_batch(eval_x, eval_y, ("eval_x", "eval_y"))
    return eval_x, eval_y


def trainable(model: nn.Module) -> list[nn.Parameter]:
    """The model's parameters that require grad; ValueError if there are none."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        total = sum(1 for _ in model.parameters())
        why, fix = (
            (f"{total} parameters, all frozen", "Unfreeze some with p.requires_grad_(True).")
            if total
            else ("it has no parameters at all", "Pass the module that holds the weights.")
        )
        raise ValueError(
            f"{type(model).__name__} has no parameters that require grad ({why}); "
            f"there is nothing for a learning rate to move. {fix}"
        )
    return params


def check_model_and_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[nn.Parameter]:
    """The optimizer's parameters that require grad, after checking it was built on ``model``.

    Raises:
        TypeError: if ``optimizer`` is not a torch.optim.Optimizer.
        ValueError: if the model has nothing trainable, a param group has no ``lr``, or the
            optimizer holds a tensor that is not one of the model's parameters.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer; got {type(optimizer).__name__}")
    trainable(model)
    owned = {id(p) for p in model.parameters()}
    name = type(optimizer).__name__
    stepped = []
    for i, group in enumerate(optimizer.param_groups):
        if "lr" not in group:
            raise ValueError(
                f"param group {i} of {name} has no 'lr' key; learning rates can only be "
                "scaled for optimizers that keep their learning rate in group['lr']"
            )
        for p in group["params"]:
            if id(p) not in owned:
                raise ValueError(
                    f"{name} param group {i} holds a tensor of shape {tuple(p.shape)} that is not a parameter "
                    f"of the {type(model).__name__}; build the optimizer on this model's parameters "
                    "(e.g. torch.optim.SGD(model.parameters(), lr=0.1)), not on a copy or another model."
                )
            if p.requires_grad:
                stepped.append(p)
    if not stepped:
        raise ValueError(f"none of the parameters of {name} requires grad; nothing would move")
    return stepped


def group_ratios(optimizer: torch.optim.Optimizer, relative: bool) -> list:
    """Each group's learning rate as a multiple of the first group's (relative) or 1.

    A ratio is a float, or a tensor when learning rates are tensors (one per ensemble
    member, learnlab's optimizers). ``relative=True`` with a zero first rate is an error.
    """
    if not relative:
        return [1.0] * len(optimizer.param_groups)
    first = optimizer.param_groups[0]["lr"]
    zero = bool((torch.as_tensor(first) == 0).any())
    if zero:
        raise ValueError(
            f"relative=True scales every group's lr by its ratio to the first group's, but the first group's lr "
            f"is {first}; give it a non-zero lr or pass relative=False (every group then gets the same lr)."
        )
    ratios: list[float | torch.Tensor] = []
    for group in optimizer.param_groups:
        lr = group["lr"]
        if isinstance(lr, torch.Tensor) or isinstance(first, torch.Tensor):
            ratios.append(torch.as_tensor(lr, dtype=torch.float64) / torch.as_tensor(first, dtype=torch.float64))
        else:
            ratios.append(float(lr) / float(first))
    return ratios


def scaled_lr(alpha: float, ratio, original):
    """alpha * ratio in the type of the group's original lr (float, or a tensor like it)."""
    if isinstance(original, torch.Tensor):
        value = torch.as_tensor(alpha * ratio, dtype=torch.float64)
        return value.to(dtype=original.dtype, device=original.device).expand_as(original).clone()
    if isinstance(ratio, torch.Tensor):
        return float(alpha * ratio) if ratio.numel() == 1 else alpha * ratio
    return alpha * ratio


def set_learning_rates(optimizer: torch.optim.Optimizer, alpha: float, ratios: list, originals: list) -> None:
    """Set group g's lr to alpha * ratios[g], typed like originals[g]."""
    for group, ratio, original in zip(optimizer.param_groups, ratios, originals):
        group["lr"] = scaled_lr(alpha, ratio, original)
