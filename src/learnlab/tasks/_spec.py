"""The ``task`` section of a spec, validated by pydantic."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveInt, ValidationInfo, field_validator

from learnlab._spec_base import Section

__all__ = ["TaskSpec", "InputsSpec", "TargetSpec", "TAGGED_SPECS"]


class GaussianInputsSpec(Section):
    """x ~ N(0, I_d)."""

    name: Literal["gaussian"]
    d: PositiveInt


class HypercubeInputsSpec(Section):
    """x uniform on {-1, +1}^d."""

    name: Literal["hypercube"]
    d: PositiveInt


InputsSpec = Annotated[Union[GaussianInputsSpec, HypercubeInputsSpec], Field(discriminator="name")]


class ParityTargetSpec(Section):
    """Sum of parities over index sets (seed 000)."""

    name: Literal["parity"]
    indices: list[Annotated[list[NonNegativeInt], Field(min_length=1)]] = Field(min_length=1)
    normalize: bool = False


class HermiteTargetSpec(Section):
    """Orthonormal Hermite monomial {index: degree}."""

    name: Literal["hermite"]
    monomial: dict[NonNegativeInt, NonNegativeInt] = Field(min_length=1)


TargetSpec = Annotated[Union[ParityTargetSpec, HermiteTargetSpec], Field(discriminator="name")]


class TaskSpec(Section):
    """What is learned: inputs, target, label noise and sample sizes."""

    inputs: InputsSpec
    target: TargetSpec
    noise: NonNegativeFloat = 0.0
    n_train: PositiveInt | None = None  # None = online (a fresh batch every step)
    n_test: PositiveInt = 2048

    @field_validator("target")
    @classmethod
    def _indices_below_d(cls, target, info: ValidationInfo):
        inputs = info.data.get("inputs")
        if inputs is None:
            return target
        d = inputs.d
        if isinstance(target, ParityTargetSpec):
            used = sorted({i for subset in target.indices for i in subset})
        else:
            used = sorted(target.monomial)
        bad = [i for i in used if i >= d]
        if bad:
            raise ValueError(
                f"index {bad} out of range for inputs.d = {d}: indices must be in [0, {d - 1}]"
            )
        if isinstance(target, ParityTargetSpec) and inputs.name != "hypercube":
            raise ValueError("a parity target needs inputs.name = hypercube")
        return target


# Every spec model selected by a ``name`` tag (the error formatter needs them).
TAGGED_SPECS = [GaussianInputsSpec, HypercubeInputsSpec, ParityTargetSpec, HermiteTargetSpec]
