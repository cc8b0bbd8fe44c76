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
from learnlab.models._depth import DEPTH_PARAMETERIZATIONS
from learnlab.models._param import PARAMETERIZATIONS

__all__ = ["ModelSpec", "ParamSpec", "DepthParamSpec", "MODEL_NAMES", "ACTIVATION_NAMES"]

MODEL_NAMES = ("mlp", "cnn", "resmlp")
ACTIVATION_NAMES = ("relu", "tanh", "gelu", "silu", "linear", "erf")  # models._stack.ACTIVATIONS, without torch
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
    "block_depth",
    "layer_norm",
    "depth_param",
    "base_depth",
    "branch_multiplier",
)
_RESIDUAL_ONLY = ("block_depth", "layer_norm", "depth_param", "base_depth", "branch_multiplier")
_EXPONENT_KEYS = ("a", "b", "c", "c_adam", "warmup_c", "warmup_c_adam", "eps")


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
    eps: list[float] | None = Field(None, min_length=1)  # Adam eps exponents (default c_adam - c)

    @model_serializer(mode="wrap")
    def _without_default_eps(self, handler):
        """``eps`` only when given: the run ids of custom exponents stay as before the key existed."""
        data = handler(self)
        if isinstance(data, dict) and data.get("eps") is None:
            data.pop("eps", None)
        return data

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


class DepthParamSpec(Section):
    """Custom depth exponents of a residual network (see docs/parameterizations.md): branch
    multiplier (L / L0)^(-alpha), branch init (L / L0)^(-init), learning rates (L / L0)^(-lr) for
    SGD and (L / L0)^(-lr_adam) for Adam, Adam eps (L / L0)^(-eps); ``like: <row>`` starts from a
    named row, other missing exponents are 0."""

    like: str | None = None
    alpha: float | None = None
    init: float | None = None
    lr: float | None = None
    lr_adam: float | None = None
    eps: float | None = None

    @field_validator("like")
    @classmethod
    def _known_row(cls, value: str | None) -> str | None:
        if value is not None and value not in DEPTH_PARAMETERIZATIONS:
            raise ValueError(_unknown_depth_row(value))
        return value


def _unknown_depth_row(name: str) -> str:
    return f"unknown depth parameterization {name!r}; valid: {', '.join(DEPTH_PARAMETERIZATIONS)}"


class ModelSpec(Section):
    """Who learns: an MLP or a small CNN in a parameterization (see docs/parameterizations.md),
    or your own module: ``name: "package.module:attr"``, built as ``attr(d=..., outputs=...,
    **options)`` (see ``learnlab.models._user``)."""

    # the initial draw is seeded by the run's seed, the task's d and outputs, and the fields marked
    # "init" (the architecture): runs in other parameterizations or init schemes share it
    name: str = seeding("init", default="mlp")
    options: dict[str, Any] = seeding("init", default_factory=dict)  # keyword arguments of a user model's factory
    width: Width = seeding("init", default=256)
    depth: Depth = seeding("init", default=2)  # number of hidden layers (cnn: convolutions; resmlp: blocks)
    block_depth: Small = seeding("init", default=1)  # resmlp: linear layers per residual branch
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
    # resmlp: depth = number of residual blocks, each of block_depth layers (docs/parameterizations.md)
    layer_norm: bool = seeding("init", default=False)  # LayerNorm (no affine) at each branch's entry
    depth_param: str | DepthParamSpec = per_member("none", examples=("none", "completep"))
    base_depth: Depth = 1  # L0: at depth = base_depth every depth parameterization is the plain network
    branch_multiplier: float = per_member(1.0, examples=(1.0, 0.5))  # beta0, at the base depth

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
    def _without_unused_keys(self, handler):
        """``options`` only where a user model has them, the residual keys only for resmlp: the
        resolved configs (and so the run ids) of other models stay as they were before the keys
        existed."""
        data = handler(self)
        if isinstance(data, dict):
            if not data.get("options"):
                data.pop("options", None)
            if self.name != "resmlp":
                for key in _RESIDUAL_ONLY:
                    data.pop(key, None)
        return data

    @property
    def user(self) -> bool:
        """Whether this is a user model (``name`` is a reference)."""
        return self.name not in MODEL_NAMES

    @field_validator(
        "width", "depth", "base_width", "kernel_size", "init_seed", "block_depth", "base_depth", mode="before"
    )
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
        depth, block_depth = info.data.get("depth"), info.data.get("block_depth")
        if isinstance(value, ParamSpec) and depth is not None and block_depth is not None:
            residual = info.data.get("name") == "resmlp"
            n = depth * block_depth + 2 if residual else depth + 1
            bad = {
                k: len(getattr(value, k))
                for k in _EXPONENT_KEYS
                if getattr(value, k) is not None and len(getattr(value, k)) not in (3, n)
            }
            if bad:
                which = "depth * block_depth + 2" if residual else "depth + 1"
                raise ValueError(
                    f"exponent lists {bad} (key: entries) have the wrong length: expected 3 (input, hidden, "
                    f"output) or {which} = {n} (one per weight matrix)"
                )
        return value

    @field_validator("depth_param")
    @classmethod
    def _known_depth_param(cls, value):
        if isinstance(value, str) and value not in DEPTH_PARAMETERIZATIONS:
            raise ValueError(_unknown_depth_row(value) + " or exponents {alpha: ..., lr: ..., lr_adam: ...}")
        return value

    @property
    def n_layers(self) -> int:
        """Weight matrices: depth + 1 (resmlp: depth * block_depth + 2)."""
        return self.depth * self.block_depth + 2 if self.name == "resmlp" else self.depth + 1

    @field_validator("branch_multiplier")
    @classmethod
    def _multiplier_positive(cls, value: float) -> float:
        if not value > 0:
            raise ValueError(
                f"branch_multiplier must be > 0 (the residual branch's scale at the base depth); got {value}"
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
    def _residual_keys(self):
        if self.name == "resmlp" or self.user:
            return self
        fields = type(self).model_fields
        given = sorted(k for k in _RESIDUAL_ONLY if getattr(self, k) != fields[k].get_default())
        if given:
            raise ValueError(
                f"{', '.join(given)} only apply to residual networks (model.name resmlp); got name {self.name!r}"
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

    def depth_parameterization_arg(self):
        """What :class:`ResMLP` takes for ``depth_param``: a name or a dict of exponents."""
        return self.depth_param if isinstance(self.depth_param, str) else self.depth_param.model_dump()

    def problems_with_inputs(self, d: int) -> list[str]:
        """Problems of this model with a task of input dimension ``d`` (cnn: d = C * H * W)."""
        if self.name == "cnn" and self.image_shape is not None and math.prod(self.image_shape) != d:
            return [
                f"image_shape {self.image_shape} has {math.prod(self.image_shape)} values per input but "
                f"the task's inputs have d = {d}"
            ]
        return []
