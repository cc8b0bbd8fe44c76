"""Put any ``nn.Module`` built of Linear/Conv layers into an abc-parameterization.

``apply_parameterization`` classifies the module's Linear/Conv layers as input, hidden
or output (first, middle and last in forward or registration order; overridable),
redraws their weights as s_l * N(0, 1) and zeroes their biases, and makes each layer
compute m_l * (W x) + m_l^bias * b through a forward hook reading two buffers,
``abc_weight_mult`` and ``abc_bias_mult``. The multipliers are therefore module state:
in ``state_dict``, kept by pickling and deep copies, traced by ``torch.compile``. The
learning rates are applied by ``build_optimizer(module, ...)``. Same formulas as the
native models (:mod:`learnlab.models._scaling`).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from learnlab.models._build import build_optimizer
from learnlab.models._param import Parameterization, get_parameterization
from learnlab.models._scaling import SCALING_ATTR, Scaling, Slot

__all__ = ["apply_parameterization", "LAYER_TYPES", "LAYER_ROLES"]

LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
LAYER_ROLES = ("input", "hidden", "output", "ignore")
_APPLIED_ATTR = "_learnlab_applied"


def _apply_multipliers(layer: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
    """Forward hook: W x + b -> m (W x) + m_b b (a module-level function, so it pickles)."""
    weight_mult = cast(torch.Tensor, layer.abc_weight_mult)  # the buffers _initialise registers
    out = output * weight_mult
    bias = cast("torch.Tensor | None", layer.bias)
    if bias is not None:
        shift = bias * (cast(torch.Tensor, layer.abc_bias_mult) - weight_mult)
        if not isinstance(layer, nn.Linear):  # conv: channels before the spatial dims
            shift = shift.view(-1, *([1] * len(cast("tuple[int, ...]", layer.kernel_size))))
        out = out + shift
    return out


def apply_parameterization(
    module: nn.Module,
    param: str | Parameterization | dict,
    *,
    width: int | None = None,
    base_width: int = 1,
    layers: dict[str, str] | None = None,
    init: str = "torch",
    gamma: float = 1.0,
    gamma_lr: str = "piecewise",
    generator: torch.Generator | None = None,
    example_input: torch.Tensor | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> nn.Module:
    """Parameterize ``module`` in place (Yang & Hu 2021 abc; see docs/parameterizations.md).

    Args:
        module: built of ``nn.Linear`` / ``nn.Conv1d/2d/3d`` layers; other modules holding
            parameters must be marked ``"ignore"`` in ``layers``.
        param: a named row (``"mup"``...), a :class:`Parameterization` or a dict of exponents.
        width: n (default: the out_features / out_channels of the input layer).
        base_width: n0, where every parameterization is the standard fan-in model.
        layers: {module name: role} overrides, role in ``input``, ``hidden``, ``output``,
            ``ignore`` (left as PyTorch made it: its init, the base lr).
        init: ``torch`` (the default: nn.Linear's U(+-1/sqrt(fan_in)) for weights and biases),
            ``lecun`` or ``he`` (Gaussian, zero biases), with the width exponents applied.
        gamma, gamma_lr: richness (output multiplier / gamma) and its base-lr rule.
        generator: for the N(0, 1) draws (layer by layer, in order); default: torch's global RNG.
        example_input: if given, layers are ordered by a forward pass on it (else by
            registration order).
        optimizer: a torch optimizer over ``module``'s parameters to scale in place.

    Returns:
        ``module`` itself. Applying again with the same arguments is a no-op; with
        different ones it raises (a re-initialisation is never silent).

    Raises:
        ValueError: a module that cannot be classified (named, with the override to use),
            fewer than two layers, bad overrides, width/base_width < 1, gamma <= 0.
    """
    row = get_parameterization(param)
    overrides = dict(layers or {})
    key = repr((row, width, base_width, sorted(overrides.items()), init, float(gamma), gamma_lr))
    if getattr(module, SCALING_ATTR, None) is not None:
        if getattr(module, _APPLIED_ATTR, None) == key:
            return module
        how = "natively" if getattr(module, _APPLIED_ATTR, None) is None else "with other settings"
        raise ValueError(
            f"{type(module).__name__} is already parameterized {how}; applying another "
            "parameterization would silently re-initialise it: build a fresh module instead"
        )
    ordered = _ordered_layers(module, overrides, example_input)
    roles = _roles(ordered, overrides)
    slots, width = _slots(module, ordered, roles, width)
    if not isinstance(base_width, int) or base_width < 1:
        raise ValueError(f"base_width must be an integer >= 1; got {base_width!r}")
    n_hidden = sum(r == "hidden" for r in roles.values())
    scaling = Scaling(
        [row], width / base_width, n_hidden + 2, slots, gammas=[float(gamma)], gamma_lr=gamma_lr, init=init
    )
    _initialise(module, scaling, generator)
    setattr(module, SCALING_ATTR, scaling)
    setattr(module, _APPLIED_ATTR, key)
    if optimizer is not None:
        build_optimizer(module, optimizer)
    return module


def _ordered_layers(module: nn.Module, overrides: dict, example_input) -> list[tuple[str, nn.Module]]:
    """The Linear/Conv layers to parameterize, in forward (or registration) order."""
    holders = {name: sub for name, sub in module.named_modules() if any(True for _ in sub.parameters(recurse=False))}
    unknown = sorted(set(overrides) - set(holders))
    if unknown:
        raise ValueError(f"layers names {unknown} are not modules holding parameters; valid: {sorted(holders)}")
    bad_roles = {n: r for n, r in overrides.items() if r not in LAYER_ROLES}
    if bad_roles:
        raise ValueError(f"layers roles {bad_roles} are not valid; valid roles: {', '.join(LAYER_ROLES)}")
    layers: list[tuple[str, nn.Module]] = []
    for name, sub in holders.items():
        if overrides.get(name) == "ignore":
            continue
        if not isinstance(sub, LAYER_TYPES):
            label = repr(name) if name else "the model itself"
            raise ValueError(
                f"cannot classify module {label} ({type(sub).__name__}): it holds parameters but is not "
                f"nn.Linear or nn.Conv1d/2d/3d, so its role (input/hidden/output) is unknown; pass "
                f"layers={{{name!r}: 'ignore'}} to leave it in PyTorch's parameterization, or build it "
                "from Linear/Conv layers"
            )
        layers.append((name, sub))
    if example_input is not None:
        layers = _forward_order(module, layers, example_input)
    return layers


def _forward_order(module, layers, example_input):
    calls: list[str] = []
    handles = [sub.register_forward_hook(lambda m, i, o, name=name: calls.append(name)) for name, sub in layers]
    try:
        with torch.no_grad():
            module(example_input)
    finally:
        for h in handles:
            h.remove()
    first = list(dict.fromkeys(calls))
    unused = [name for name, _ in layers if name not in first]
    if unused:
        raise ValueError(
            f"layers {unused} are not called in forward(example_input); mark them "
            f"layers={{name: 'ignore'}} or remove them"
        )
    by_name = dict(layers)
    return [(name, by_name[name]) for name in first]


def _roles(ordered: list[tuple[str, nn.Module]], overrides: dict) -> dict[str, str]:
    names = [name for name, _ in ordered]
    roles = {n: overrides[n] for n in names if n in overrides}
    free = [n for n in names if n not in roles]
    if "input" not in roles.values() and free:
        roles[free.pop(0)] = "input"
    if "output" not in roles.values() and free:
        roles[free.pop()] = "output"
    for n in free:
        roles[n] = "hidden"
    if "input" not in roles.values() or "output" not in roles.values():
        raise ValueError(
            f"an abc-parameterization needs an input and an output layer; found Linear/Conv layers "
            f"{names or 'none'} with roles {roles}; override with layers={{name: 'input' | 'output'}}"
        )
    return {n: roles[n] for n in names}


def _slots(module, ordered, roles, width):
    inputs = [sub for name, sub in ordered if roles[name] == "input"]
    if width is None:
        first = inputs[0]
        width = first.out_features if isinstance(first, nn.Linear) else first.out_channels
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be an integer >= 1; got {width!r}")
    hidden = [name for name, _ in ordered if roles[name] == "hidden"]
    slots = []
    for name, sub in ordered:
        role = roles[name]
        layer = 0 if role == "input" else len(hidden) + 1 if role == "output" else 1 + hidden.index(name)
        prefix = f"{name}." if name else ""
        bias = f"{prefix}bias" if sub.bias is not None else None
        slots.append(Slot(f"{prefix}weight", bias, role, layer, sub.weight[0].numel()))
    return slots, width


@torch.no_grad()
def _initialise(module: nn.Module, scaling: Scaling, generator) -> None:
    """W = s_l D(z), b = s_l^bias D(z) layer by layer (weight, then bias: the MLP's order, so both
    share z), the multiplier buffers and the hook; D maps z ~ N(0, 1) by the init scheme."""
    for slot in scaling.slots:
        layer = module.get_submodule(slot.weight.rpartition(".")[0])
        w = cast(torch.Tensor, layer.weight)  # a Linear/Conv layer's
        if isinstance(layer, nn.Linear):  # drawn (fan_in, fan_out) like learnlab's MLP, so both share z
            z = torch.randn(w.shape[1], w.shape[0], generator=generator).T
        else:  # (out_channels, in_channels / groups, *kernel), like learnlab's CNN
            z = torch.randn(w.shape, generator=generator)
        w.copy_(_scaled(z, scaling.init_std(slot)[0], scaling.uniform).to(w.dtype))
        layer.register_buffer("abc_weight_mult", scaling.weight_multiplier(slot)[0].to(w.dtype).to(w.device))
        bias = cast("torch.Tensor | None", layer.bias)
        if bias is not None:
            zb = torch.randn(bias.shape, generator=generator)
            bias.copy_(_scaled(zb, scaling.bias_std(slot)[0], scaling.uniform).to(bias.dtype))
            layer.register_buffer("abc_bias_mult", scaling.bias_multiplier(slot)[0].to(w.dtype).to(w.device))
        layer.register_forward_hook(_apply_multipliers)


def _scaled(z: torch.Tensor, scale: torch.Tensor, uniform: bool) -> torch.Tensor:
    """scale * D(z) in float64 (D(z) = erf(z / sqrt 2) ~ U(-1, 1) for the torch scheme, else z)."""
    z = z.to(torch.float64)
    if uniform:
        z = torch.special.erf(z * 0.5**0.5)
    return torch.zeros_like(z) if float(scale) == 0 else z * scale
