"""Optimizers for parameterized models: one param group per tensor with its width-scaled lr.

For parameter tensor l of member e the group's learning rate is

    lr_{l,e} = eta_e * g(gamma_e) * (n / n0)^(-c_{l,e})

with c the SGD exponents for ``sgd``/``momentum``/``nesterov`` (momentum is linear in
the gradients, so SGD's rule holds) and ``c_adam`` for ``adam``/``adamw`` (Tensor
Programs V; the ``mup`` package's MuSGD / MuAdam). AdamW's decoupled decay
p <- p (1 - lr_l * wd) uses the scaled lr, as in ``mup``'s MuAdamW. Adam's eps is scaled
per tensor too, eps_l = eps * (n / n0)^(-eps_l) (the layer's gradient scale; see
``Parameterization.exponents``), and in a residual network's branches the depth
parameterization's lr and eps factors multiply in (:mod:`learnlab.models._depth`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from learnlab.models._optim import SGD, Adam
from learnlab.models._param import ADAM_LIKE
from learnlab.models._scaling import LrEntry, lr_table, scaling_of

__all__ = ["OPTIMIZERS", "build_optimizer"]

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
_RULES = {torch.optim.SGD: "sgd", SGD: "sgd", Adam: "adam"}
_ADAM_FAMILY = ("Adam", "AdamW", "Adamax", "NAdam", "RAdam", "Adagrad", "RMSprop", "Adadelta", "Adafactor")
_PER_MEMBER_KEYS = ("lr", "momentum", "weight_decay")


def build_optimizer(
    model: torch.nn.Module,
    optimizer: str | torch.optim.Optimizer = "sgd",
    lr: float | Sequence[float] = 0.1,
    *,
    momentum: float | Sequence[float] = 0.9,
    betas: tuple[float, float] | Sequence[tuple[float, float]] = (0.9, 0.999),
    eps: float | Sequence[float] = 1e-8,
    weight_decay: float | Sequence[float] = 0.0,
    param_groups: Iterable[dict] | None = None,
    rule: str | None = None,
    ignore_warmup: bool = False,
    independent_weight_decay: bool = False,
) -> torch.optim.Optimizer:
    """One param group per parameter tensor, each with lr * g(gamma) * (n / n0)^(-c_l) per member.

    Args:
        model: a parameterized model (``MLP``, ``CNN``, or any module after
            ``apply_parameterization``).
        optimizer: one of ``OPTIMIZERS`` (learnlab's SGD/Adam, per-member hyperparameters
            allowed), or a torch optimizer over the model's parameters, whose groups are
            split per tensor and scaled in place (their other settings are kept).
        lr: base learning rate eta, one float or one per member.
        momentum, weight_decay: floats or one per member (``sgd`` ignores ``momentum``).
        betas, eps: Adam's: one pair and one float, or one per member.
        param_groups: user groups (dicts with ``params`` and any of ``lr``, ``momentum``,
            ``weight_decay``); each tensor gets its group's settings, its lr scaled.
        rule: ``sgd`` or ``adam`` exponents for a torch optimizer learnlab does not know.
        ignore_warmup: accept a torch optimizer although the parameterization has a
            warm-up (ipllr) that torch's optimizers cannot apply; drive it with
            ``lr_factors`` yourself.
        independent_weight_decay: ``adamw`` only: every tensor decays by eta * wd per step
            (eta the base lr, as scheduled), not by its own scaled lr_l * wd: the tensor's
            weight decay is wd / (lr_l / eta) (Wortsman et al. 2024, "independent" decay;
            Dey et al. 2025, Table 1: weight decay scaled up as the hidden lr is scaled down).

    Returns:
        The optimizer; its groups carry ``name`` (e.g. ``weights.1``) and ``lr`` (E,)
        (a float for a torch optimizer), plus ``lr_warmup``/``n_warmup`` under a warm-up.

    Raises:
        ValueError: unknown optimizer name, a parameter that is not the model's, a torch
            optimizer already scaled, or lengths that do not match the members.
    """
    if isinstance(optimizer, torch.optim.Optimizer):
        if independent_weight_decay:
            raise ValueError("independent_weight_decay needs optimizer='adamw' (learnlab's), not a torch optimizer")
        return _scale_in_place(model, optimizer, rule, ignore_warmup)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid: {', '.join(OPTIMIZERS)} or a torch optimizer")
    if independent_weight_decay and optimizer != "adamw":
        raise ValueError(f"independent_weight_decay applies to adamw's decoupled decay; got optimizer {optimizer!r}")
    members = scaling_of(model).members
    defaults = {"lr": lr, "weight_decay": weight_decay}
    if optimizer not in ADAM_LIKE:
        defaults["momentum"] = momentum
    adam = optimizer in ADAM_LIKE
    if adam:
        betas, eps = _adam_constants(betas, eps, members)
    entries = lr_table(model, optimizer)
    user = list(param_groups) if param_groups is not None else [{"params": [e.param for e in entries]}]
    groups = []
    for settings, entry in _assign(entries, user):
        group = {**defaults, **settings}
        for key in _PER_MEMBER_KEYS:
            if key in group:
                group[key] = _member_tensor(group[key], members, key)
        if optimizer == "sgd":
            group["momentum"] = 0.0
        if adam and _scaled(entry.eps):
            group["eps"] = _member_tensor(eps, members, "eps") * entry.eps
        if independent_weight_decay and _scaled(entry.factor):
            group["weight_decay"] = group["weight_decay"] / entry.factor  # lr_l * wd_l = eta * wd
        groups.append(_scaled_group(entry, group, group["lr"]))
    eta = _member_tensor(lr, members, "lr")
    wd = _member_tensor(weight_decay, members, "weight_decay")
    if adam:
        return Adam(groups, lr=eta, betas=betas, eps=eps, weight_decay=wd, decoupled=optimizer == "adamw")
    return SGD(groups, lr=eta, momentum=0.0, nesterov=optimizer == "nesterov", weight_decay=wd)


def _assign(entries: list[LrEntry], user: list[dict]) -> list[tuple[dict, LrEntry]]:
    """(user group settings, lr entry) for every parameter of the user's groups, in order."""
    by_id = {id(e.param): e for e in entries}
    seen, out = set(), []
    for i, group in enumerate(user):
        params = group["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        settings = {k: v for k, v in group.items() if k != "params"}
        for p in params:
            if id(p) not in by_id:
                raise ValueError(
                    f"param_groups[{i}] holds a tensor of shape {tuple(p.shape)} that is not "
                    "a trainable parameter of the model; pass the model's own parameters"
                )
            if id(p) in seen:
                raise ValueError(
                    f"param_groups[{i}] repeats a parameter ({by_id[id(p)].name}); give each parameter to one group"
                )
            seen.add(id(p))
            out.append((settings, by_id[id(p)]))
    return out


def _scaled(factor: torch.Tensor) -> bool:
    """Whether a factor differs from 1 for some member (an eps left as it was keeps its bits)."""
    return bool((factor != 1).any())


def _scaled_group(entry: LrEntry, settings: dict, lr) -> dict:
    group = {**settings, "params": [entry.param], "name": entry.name, "lr": lr * entry.factor}
    if bool((entry.n_warmup > 0).any()):
        group["lr_warmup"], group["n_warmup"] = entry.warmup.clone(), entry.n_warmup.clone()
    return group


def _scale_in_place(model, optimizer: torch.optim.Optimizer, rule: str | None, ignore_warmup: bool):
    """Split a torch optimizer's groups per tensor and scale their lrs; other settings are kept."""
    if any(g.get("abc_scaled") for g in optimizer.param_groups):
        raise ValueError(
            "this optimizer's learning rates are already scaled by a parameterization; "
            "scaling twice would apply the width factors twice: build a fresh optimizer"
        )
    rule = rule or _rule_of(optimizer)
    if rule not in ("sgd", "adam"):
        raise ValueError(f"rule must be 'sgd' or 'adam'; got {rule!r}")
    learnlab_opt = isinstance(optimizer, (SGD, Adam))
    scaling = scaling_of(model)
    if scaling.members != 1 and not learnlab_opt:
        raise ValueError(
            f"a torch optimizer takes one lr per group but the model stacks {scaling.members} "
            "members; use build_optimizer(model, 'sgd' | 'adam', ...) instead"
        )
    entries = {id(e.param): e for e in lr_table(model, rule)}
    new_groups = []
    for group in optimizer.param_groups:
        settings = {k: v for k, v in group.items() if k != "params"}
        for p in group["params"]:
            entry = entries.get(id(p))
            if entry is None:  # not the model's: kept as it was
                new_groups.append({**settings, "params": [p], "abc_scaled": True})
                continue
            if not learnlab_opt and bool((entry.n_warmup > 0).any()) and not ignore_warmup:
                raise ValueError(
                    f"{entry.name} has a learning-rate warm-up (e.g. ipllr) that {type(optimizer).__name__} "
                    "cannot apply; use build_optimizer(model, 'sgd', ...) or pass ignore_warmup=True and "
                    "drive the lrs with learnlab.models.lr_factors"
                )
            scaled = _scaled_group(entry, settings, settings["lr"])
            if rule == "adam" and "eps" in settings and _scaled(entry.eps):
                scaled["eps"] = settings["eps"] * (entry.eps if learnlab_opt else float(entry.eps))
            if not learnlab_opt:
                scaled["lr"] = float(scaled["lr"])
                scaled.pop("lr_warmup", None)
                scaled.pop("n_warmup", None)
            new_groups.append({**scaled, "abc_scaled": True})
    optimizer.param_groups.clear()
    for group in new_groups:
        optimizer.add_param_group(group)
    return optimizer


def _rule_of(optimizer: torch.optim.Optimizer) -> str:
    for cls, rule in _RULES.items():
        if type(optimizer) is cls:
            return rule
    if type(optimizer).__name__ in _ADAM_FAMILY:
        return "adam"  # entrywise-normalised updates: Adam's exponents
    raise ValueError(
        f"learnlab does not know which exponents {type(optimizer).__name__} needs; "
        "pass rule='sgd' (updates linear in the gradient) or rule='adam' (normalised updates)"
    )


def _adam_constants(betas, eps, members: int):
    """Floats when every member has the same betas and eps, else (E,) float64 tensors."""
    pairs = [tuple(betas)] if len(betas) == 2 and not isinstance(betas[0], Sequence) else [tuple(b) for b in betas]
    eps_values = [float(eps)] if not isinstance(eps, Sequence) else [float(e) for e in eps]
    for key, values in (("betas", pairs), ("eps", eps_values)):
        if len(values) not in (1, members):
            raise ValueError(f"{key}: got {len(values)} values for {members} members; give one, or one per member")
    b1: float | torch.Tensor
    b2: float | torch.Tensor
    if len(set(pairs)) == 1:
        b1, b2 = (float(b) for b in pairs[0])
    else:
        b1 = _member_tensor([b for b, _ in pairs], members, "betas")
        b2 = _member_tensor([b for _, b in pairs], members, "betas")
    e = eps_values[0] if len(set(eps_values)) == 1 else _member_tensor(eps_values, members, "eps")
    return (b1, b2), e


def _member_tensor(value, members: int, key: str) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float64).flatten()
    if t.numel() == 1:
        return t.expand(members).clone()
    if t.numel() != members:
        raise ValueError(f"{key}: got {t.numel()} values for {members} members; give one, or one per member")
    return t
