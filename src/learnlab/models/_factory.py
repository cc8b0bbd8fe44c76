"""Build the model a spec's ``model`` section names: one stacked model for a group of runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from learnlab._spec_base import member_fields
from learnlab.models._cnn import CNN
from learnlab.models._mlp import MLP
from learnlab.models._resmlp import ResMLP
from learnlab.models._spec import ModelSpec
from learnlab.models._user import UserStack, build_user_members

__all__ = ["build_model", "MODELS"]

MODELS = {"mlp": MLP, "cnn": CNN, "resmlp": ResMLP}


def build_model(
    model: ModelSpec | dict | Sequence[ModelSpec | dict],
    d: int,
    outputs: int,
    *,
    generators: Sequence[torch.Generator] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> MLP | CNN | ResMLP | UserStack:
    """The stacked model of one ``model`` section per member (or one section for all).

    A user model (``name: "package.module:attr"``) is built once per member, with torch's
    global RNG seeded by the member's generator seed, and stacked as a :class:`UserStack`.

    Args:
        model: the spec section(s); all keys but those declared per-member must agree.
        d, outputs: the task's input and output dimensions.
        generators: one per member for the initial draw (default: seed 0, one member).
        dtype, device: of the parameters.

    Raises:
        ValueError: sections that differ in a shape key, or a cnn whose image_shape does
            not match d.
    """
    sections = [model] if isinstance(model, (ModelSpec, dict)) else list(model)
    specs = [s if isinstance(s, ModelSpec) else ModelSpec.model_validate(s) for s in sections]
    if generators is None:
        generators = [torch.Generator().manual_seed(0) for _ in specs]
    if len(specs) == 1 and len(generators) > 1:
        specs = specs * len(generators)
    if len(specs) != len(generators):
        raise ValueError(f"got {len(specs)} model sections for {len(generators)} generators")
    first = specs[0]
    per_member = set(member_fields(ModelSpec))
    shared = first.model_dump(exclude=per_member)
    for i, spec in enumerate(specs[1:], start=1):
        other = spec.model_dump(exclude=per_member)
        diff = sorted(k for k in shared if shared[k] != other[k])
        if diff:
            raise ValueError(
                f"members 0 and {i} differ in {diff}; only {sorted(per_member)} may differ within one stacked model"
            )
    if first.user:
        from learnlab._imports import resolve

        seeds = [g.initial_seed() for g in generators]
        return UserStack(
            build_user_members(resolve(first.name), first.options, d, outputs, seeds, dtype=dtype, device=device)
        )
    problems = first.problems_with_inputs(d)
    if problems:
        raise ValueError("; ".join(problems))
    kwargs: dict[str, Any] = dict(
        activation=first.activation,
        bias=first.bias,
        param=[s.parameterization_arg() for s in specs],
        base_width=first.base_width,
        gamma=[s.gamma for s in specs],
        gamma_lr=first.gamma_lr,
        center=first.center,
        init=first.init,
        generators=generators,
        dtype=dtype,
        device=device,
    )
    if first.name == "cnn":
        assert first.image_shape is not None  # ModelSpec validation requires it for cnn
        return CNN(first.image_shape, first.width, first.depth, outputs, kernel_size=first.kernel_size, **kwargs)
    if first.name == "resmlp":
        return ResMLP(
            d,
            first.width,
            first.depth,
            outputs,
            block_depth=first.block_depth,
            layer_norm=first.layer_norm,
            depth_param=[s.depth_parameterization_arg() for s in specs],
            base_depth=first.base_depth,
            branch_multiplier=[s.branch_multiplier for s in specs],
            **kwargs,
        )
    return MLP(d, first.width, first.depth, outputs, **kwargs)
