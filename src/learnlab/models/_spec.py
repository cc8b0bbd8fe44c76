"""The ``model`` section of a spec."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, ValidationInfo, field_validator

from learnlab._spec_base import Section
from learnlab.models._mlp import ACTIVATIONS
from learnlab.models._param import PARAMETERIZATIONS

__all__ = ["ModelSpec", "ParamSpec"]


class ParamSpec(Section):
    """Custom exponents: ``(input, hidden, output)`` or one per weight matrix (depth + 1)."""

    a: list[float] = Field(min_length=1)
    b: list[float] = Field(min_length=1)
    c: list[float] = Field(min_length=1)
    c_adam: list[float] | None = None


class ModelSpec(Section):
    """Who learns: an MLP in a parameterization."""

    name: Literal["mlp"] = "mlp"
    width: PositiveInt = 256
    depth: PositiveInt = 2  # number of hidden layers
    activation: str = "relu"
    bias: bool = True
    param: str | ParamSpec = "sp"
    base_width: PositiveInt = 1
    init_seed: int | None = None  # same initial draw across runs that share it

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, value: str) -> str:
        if value not in ACTIVATIONS:
            raise ValueError(f"unknown activation {value!r}; valid: {', '.join(ACTIVATIONS)}")
        return value

    @field_validator("param")
    @classmethod
    def _known_param(cls, value, info: ValidationInfo):
        if isinstance(value, str) and value not in PARAMETERIZATIONS:
            raise ValueError(
                f"unknown parameterization {value!r}; valid: {', '.join(sorted(PARAMETERIZATIONS))}"
            )
        if isinstance(value, ParamSpec):
            lengths = {len(value.a), len(value.b), len(value.c)}
            if len(lengths) != 1:
                raise ValueError(f"a, b, c must have the same length; got {sorted(lengths)}")
            depth = info.data.get("depth")
            n = lengths.pop()
            if depth is not None and n not in (3, depth + 1):
                raise ValueError(
                    f"exponents have {n} entries; expected 3 (input, hidden, output) "
                    f"or depth + 1 = {depth + 1} (one per weight matrix)"
                )
        return value

    def parameterization_arg(self):
        """What :class:`MLP` takes for ``param``: a name or a dict of exponents."""
        return self.param if isinstance(self.param, str) else self.param.model_dump()
