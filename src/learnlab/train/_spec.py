"""The ``train`` section of a spec: the recipe."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, field_validator

from learnlab._spec_base import Section

__all__ = ["TrainSpec"]


class TrainSpec(Section):
    """How the model learns, and what is measured along the way."""

    optimizer: Literal["sgd", "momentum", "nesterov", "adam", "adamw"] = "sgd"
    lr: PositiveFloat = 0.1
    momentum: float = Field(0.9, ge=0.0, lt=1.0)  # for momentum / nesterov
    betas: tuple[float, float] = (0.9, 0.999)  # for adam / adamw
    eps: PositiveFloat = 1e-8
    weight_decay: NonNegativeFloat = 0.0
    batch_size: PositiveInt = 64
    steps: PositiveInt = 1000
    loss: Literal["mse"] = "mse"
    eval_every: PositiveInt = 100
    log_every: PositiveInt = 10  # train/loss is stored every log_every steps
    thresholds: list[PositiveFloat] = Field(default_factory=list)
    ema: float = Field(0.9, ge=0.0, lt=1.0)  # EMA smoother s: ema <- s*ema + (1-s)*loss
    stop_at_thresholds: bool = False  # end the run once the EMA crossed every threshold
    dtype: Literal["float32", "float64"] = "float32"
    device: str = "cpu"

    @field_validator("betas")
    @classmethod
    def _betas_in_unit_interval(cls, value):
        if not all(0.0 <= b < 1.0 for b in value):
            raise ValueError(f"betas must be in [0, 1); got {list(value)}")
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value not in ("cpu", "auto") and not value.startswith(("cuda", "mps")):
            raise ValueError(f"device must be cpu, cuda, cuda:N, mps or auto; got {value!r}")
        return value
