"""Spec models of ``task.inputs`` (one per input distribution, tagged by ``name``)."""

from __future__ import annotations

from typing import Annotated, Literal, Union, get_args

from pydantic import Field, NonNegativeFloat, PositiveFloat, model_validator

from learnlab._spec_base import Section, Width

__all__ = [
    "InputsSpec",
    "INPUT_SPECS",
    "GaussianInputsSpec",
    "PowerLawGaussianInputsSpec",
    "HypercubeInputsSpec",
    "SphereInputsSpec",
    "BoxInputsSpec",
]

_D = Field(description="input dimension d")


class GaussianInputsSpec(Section):
    """x ~ N(0, diag(spectrum)); N(0, I_d) by default."""

    name: Literal["gaussian"]
    d: Width = _D
    spectrum: list[PositiveFloat] | None = Field(
        None, description="covariance eigenvalues lambda_0..lambda_{d-1}, x_i = sqrt(lambda_i) z_i (default all 1)"
    )

    @model_validator(mode="after")
    def _spectrum_has_d_values(self):
        if self.spectrum is not None and len(self.spectrum) != self.d:
            raise ValueError(
                f"spectrum has {len(self.spectrum)} values but d = {self.d}: give one eigenvalue per coordinate"
            )
        return self


class PowerLawGaussianInputsSpec(Section):
    """x ~ N(0, diag(lambda)), lambda_i proportional to (i + offset)^(-alpha), summing to 1 (seed 002)."""

    name: Literal["power_law_gaussian"]
    d: Width = _D
    alpha: NonNegativeFloat = Field(2.0, description="decay exponent of the covariance spectrum")
    offset: PositiveFloat = Field(6.0, description="index offset: lambda_i ~ (i + offset)^(-alpha)")


class HypercubeInputsSpec(Section):
    """x uniform on the Boolean hypercube {-1, +1}^d."""

    name: Literal["hypercube"]
    d: Width = _D


class SphereInputsSpec(Section):
    """x uniform on the sphere of radius sqrt(d)."""

    name: Literal["sphere"]
    d: Width = _D


class BoxInputsSpec(Section):
    """x uniform on [low, high]^d (seed 001: [-1/2, 1/2]); d <= 2 also has an evaluation grid."""

    name: Literal["box"]
    d: Width = _D
    low: float = Field(-0.5, description="lower end of every coordinate")
    high: float = Field(0.5, description="upper end of every coordinate")

    @model_validator(mode="after")
    def _low_below_high(self):
        if not self.low < self.high:
            raise ValueError(f"box needs low < high, got low = {self.low}, high = {self.high}")
        return self


# spelled out (a static type checker cannot evaluate ``Union[tuple(...)]``); INPUT_SPECS is read off it
_AnyInputsSpec = Union[  # noqa: UP007
    GaussianInputsSpec, PowerLawGaussianInputsSpec, HypercubeInputsSpec, SphereInputsSpec, BoxInputsSpec
]
INPUT_SPECS = list(get_args(_AnyInputsSpec))
InputsSpec = Annotated[_AnyInputsSpec, Field(discriminator="name")]
