"""The ``model`` section of a spec."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import (
    Field,
    NonNegativeInt,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from learnlab._spec_base import Depth, Section, Small, Width, per_member, seeding
from learnlab.models._param import PARAMETERIZATIONS

__all__ = ["ModelSpec", "ParamSpec", "MODEL_NAMES", "ACTIVATION_NAMES"]

MODEL_NAMES = ("mlp", "cnn")
ACTIVATION_NAMES = ("relu", "tanh", "gelu", "silu", "linear")  # models._stack.ACTIVATIONS, without torch
# keys that shape learnlab's own models; a user model takes its settings from ``options``
_BUILTIN_ONLY = (
    "init",
    "width",
    "depth",
    "activation",
    "bias",
    "base_width",
    "gamma",
    "gamma_lr",
    "center",
    "kernel_size",
    "image_shape",
)
_EXPONENT_KEYS = ("a", "b", "c", "c_adam", "warmup_c", "warmup_c_adam")


def _unknown_row(name: str) -> str:
    return f"unknown parameterization {name!r}; valid: {', '.join(sorted(PARAMETERIZATIONS))}"


class ParamSpec(Section):
    """Custom exponents, ``(input, hidden, output)`` or one per weight matrix (depth + 1).

    Either ``a``, ``b`` and ``c`` (then ``c_adam`` defaults to ``c``), or ``like: <row>``
    with any keys to override (``{like: ipllr, n_warmup: 3}``).
    """

    like: str | None = None
    a: list[float] | None = Field(None, min_length=1)
    b: list[float] | None = Field(None, min_length=1)
    c: list[float] | None = Field(None, min_length=1)
    c_adam: list[float] | None = Field(None, min_length=1)
    warmup_c: list[float] | None = Field(None, min_length=1)  # lr exponents of the first n_warmup steps
    warmup_c_adam: list[float] | None = Field(None, min_length=1)
    warmup_c_depth: float | None = None  # warm-up exponents + warmup_c_depth * depth
    n_warmup: NonNegativeInt | None = None

    @model_validator(mode="after")
    def _complete(self):
        if self.like is not None and self.like not in PARAMETERIZATIONS:
            raise ValueError(_unknown_row(self.like))
        missing = [k for k in ("a", "b", "c") if getattr(self, k) is None]
        if self.like is None and missing:
            raise ValueError(
                f"custom exponents need {', '.join(missing)} (or like: <row> to start from "
                f"one of {', '.join(sorted(PARAMETERIZATIONS))})"
            )
        return self


class ModelSpec(Section):
    """Who learns: an MLP or a small CNN in a parameterization (see docs/parameterizations.md),
    or your own module: ``name: "package.module:attr"``, built as ``attr(d=..., outputs=...,
    **options)`` (see ``learnlab.models._user``)."""

    # the initial draw is seeded by the run's seed, the task's d and outputs, and the fields marked
    # "init" (the architecture): runs in other parameterizations or init schemes share it
    name: str = seeding("init", default="mlp")
    options: dict[str, Any] = seeding("init", default_factory=dict)  # keyword arguments of a user model's factory
    width: Width = seeding("init", default=256)
    depth: Depth = seeding("init", default=2)  # number of hidden layers (cnn: convolutions)
    activation: str = seeding("init", default="relu")
    bias: bool = seeding("init", default=True)
    param: str | ParamSpec = per_member("sp", examples=("sp", "mup"))
    base_width: int = 1  # n0: at width = base_width every parameterization is the standard model
    gamma: float = per_member(1.0, examples=(1.0, 2.0))  # richness: output multiplier / gamma
    gamma_lr: Literal["piecewise", "gamma", "gamma2", "none"] = "piecewise"  # base lr rule under gamma
    center: bool = False  # f(x) - f_0(x): zero output at initialisation
    init: Literal["torch", "lecun", "he"] = "torch"  # the init scheme (docs/parameterizations.md)
    init_seed: int | None = per_member(None, examples=(None, 7))  # this initial draw instead of the derived one
    kernel_size: Small = seeding("init", default=3)  # cnn
    image_shape: list[Width] | None = seeding("init", default=None)  # cnn: [channels, height, width]

    @field_validator("name")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value in MODEL_NAMES:
            return value
        from learnlab._imports import is_ref, resolve

        if not is_ref(value):
            raise ValueError(
                f"unknown model {value!r}; valid: {', '.join(MODEL_NAMES)} or your own as "
                "'package.module:attr' (called as attr(d=..., outputs=..., **options))"
            )
        if not callable(resolve(value)):  # an import failure raises with its reason
            raise ValueError(f"{value!r} is not callable: give a function or nn.Module class that builds the model")
        return value

    @model_serializer(mode="wrap")
    def _without_empty_options(self, handler):
        """``options`` only where a user model has them: the resolved configs (and so the run
        ids) of learnlab's own models stay as they were before the key existed."""
        data = handler(self)
        if isinstance(data, dict) and not data.get("options"):
            data.pop("options", None)
        return data

    @property
    def user(self) -> bool:
        """Whether this is a user model (``name`` is a reference)."""
        return self.name not in MODEL_NAMES

    @field_validator("width", "depth", "base_width", "kernel_size", "init_seed", mode="before")
    @classmethod
    def _not_a_boolean(cls, value):
        if isinstance(value, bool):  # pydantic's lax int would read true as 1
            raise ValueError(f"expected an integer, got the boolean {str(value).lower()}")
        return value

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, value: str) -> str:
        if value not in ACTIVATION_NAMES:
            raise ValueError(f"unknown activation {value!r}; valid: {', '.join(ACTIVATION_NAMES)}")
        return value

    @field_validator("param")
    @classmethod
    def _known_param(cls, value, info: ValidationInfo):
        if isinstance(value, str) and value not in PARAMETERIZATIONS:
            raise ValueError(_unknown_row(value) + " or custom exponents {a: [...], b: [...], c: [...]}")
        depth = info.data.get("depth")
        if isinstance(value, ParamSpec) and depth is not None:
            bad = {
                k: len(getattr(value, k))
                for k in _EXPONENT_KEYS
                if getattr(value, k) is not None and len(getattr(value, k)) not in (3, depth + 1)
            }
            if bad:
                raise ValueError(
                    f"exponent lists {bad} (key: entries) have the wrong length: expected 3 (input, hidden, "
                    f"output) or depth + 1 = {depth + 1} (one per weight matrix)"
                )
        return value

    @field_validator("base_width")
    @classmethod
    def _base_width_at_least_one(cls, value: int) -> int:
        if value < 1:
            raise ValueError(
                f"base_width must be >= 1 (the width at which every parameterization is the "
                f"standard model; 1 gives Yang & Hu's exponents); got {value}"
            )
        return value

    @field_validator("gamma")
    @classmethod
    def _gamma_positive(cls, value: float) -> float:
        if not value > 0 or not math.isfinite(value):
            raise ValueError(
                f"gamma must be a finite number > 0 (the output multiplier is divided by gamma; "
                f"1 = no change); got {value}"
            )
        return value

    @model_validator(mode="after")
    def _user_model_keys(self):
        if not self.user:
            if self.options:
                raise ValueError(
                    f"options are the keyword arguments of a user model's factory; model "
                    f"{self.name!r} takes width, depth, ... instead"
                )
            return self
        fields = type(self).model_fields  # compared with the defaults: a resolved config holds every key
        given = sorted(k for k in _BUILTIN_ONLY if getattr(self, k) != fields[k].get_default(call_default_factory=True))
        if given:
            raise ValueError(
                f"{', '.join(given)} shape learnlab's own models; a user model ({self.name}) "
                "is built as its factory says: pass its settings in model.options"
            )
        if self.param != "sp":
            raise ValueError(
                "a user model trains as its factory builds it (param: sp); for muP or another "
                "row call learnlab.apply_parameterization on a single run (learnlab.train), or "
                "use model.name mlp/cnn"
            )
        return self

    @model_validator(mode="after")
    def _cnn_shape(self):
        if self.name != "cnn" and self.image_shape is not None:
            raise ValueError(
                f"image_shape is only used by model.name cnn (got name {self.name!r}); remove it or set name: cnn"
            )
        if self.name == "cnn":
            if self.image_shape is None or len(self.image_shape) != 3:
                raise ValueError(
                    "model.name cnn needs image_shape: [channels, height, width] "
                    f"(their product = the task's d); got {self.image_shape}"
                )
            if self.kernel_size % 2 == 0:
                raise ValueError(f"kernel_size must be odd (for 'same' padding); got {self.kernel_size}")
        return self

    def parameterization_arg(self):
        """What :class:`MLP` takes for ``param``: a name or a dict of exponents."""
        return self.param if isinstance(self.param, str) else self.param.model_dump()

    def problems_with_inputs(self, d: int) -> list[str]:
        """Problems of this model with a task of input dimension ``d`` (cnn: d = C * H * W)."""
        if self.name == "cnn" and self.image_shape is not None and math.prod(self.image_shape) != d:
            return [
                f"image_shape {self.image_shape} has {math.prod(self.image_shape)} values per input but "
                f"the task's inputs have d = {d}"
            ]
        return []
