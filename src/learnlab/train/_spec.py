"""The ``train`` section of a spec: the recipe and what is measured along the way."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    field_validator,
    model_serializer,
    model_validator,
)

from learnlab._spec_base import Section, Steps, Width, per_member
from learnlab.train._names import LOSS_NAMES, METRICS, default_metrics

if TYPE_CHECKING:
    import torch

__all__ = ["TrainSpec", "ScheduleSpec", "ProbeSpec", "EVAL_SETS", "LOGGERS"]

EVAL_SETS = ("test", "train", "grid", "large")
DIVERGE_FACTOR = 1e4  # the default: a loss 10^4 x its initial value has diverged
LOGGERS = ("tensorboard", "wandb")


class ScheduleSpec(Section):
    """Learning-rate schedule: a factor on every group's learning rate at step t.

    constant: 1; cosine: final + (1 - final)(1 + cos(pi t / T)) / 2; exponential:
    final^(t / T) (seed 001 decays 1e-4 -> 1e-6: final_factor 0.01); step: gamma^floor(t / every).
    ``warmup`` steps of linear ramp from 1/warmup to 1 multiply any of them. T = train.steps.
    """

    name: Literal["constant", "cosine", "exponential", "step"] = "constant"
    final_factor: NonNegativeFloat = 0.0  # cosine / exponential: factor reached at the last step
    every: Steps = 1000  # step: decay period
    gamma: PositiveFloat = 0.1  # step: decay factor
    warmup: NonNegativeInt = 0  # linear warmup steps

    @model_validator(mode="after")
    def _exponential_needs_positive_final(self):
        if self.name == "exponential" and self.final_factor <= 0:
            raise ValueError("an exponential schedule needs final_factor > 0 (e.g. 0.01)")
        return self


class ProbeSpec(Section):
    """A measurement taken every ``every`` steps: a built-in name or ``"package.module:attr"``."""

    name: str
    every: Steps = 100
    options: dict[str, Any] = Field(default_factory=dict)


class TrainSpec(Section):
    """How the model learns, and what is measured along the way.

    Fields declared ``per_member`` may differ between runs trained as one stacked model;
    the others are shared by the stack.
    """

    optimizer: Literal["sgd", "momentum", "nesterov", "adam", "adamw"] = "sgd"
    lr: PositiveFloat = per_member(0.1, examples=(0.1, 0.05))
    momentum: float = per_member(0.9, ge=0.0, lt=1.0, examples=(0.9, 0.5))  # for momentum / nesterov
    betas: tuple[float, float] = per_member((0.9, 0.999), examples=((0.9, 0.999), (0.8, 0.99)))  # adam / adamw
    eps: PositiveFloat = per_member(1e-8, examples=(1e-8, 1e-3))
    weight_decay: NonNegativeFloat = per_member(0.0, examples=(0.0, 0.01))
    # adamw: decay every tensor by lr * weight_decay at the base lr, whatever its own scaled lr
    # (Wortsman et al. 2024; CompleteP, Dey et al. 2025); false: by its own lr (mup's MuAdamW)
    independent_weight_decay: bool = False
    # torch.compile the stack's forward pass and loss (inductor): ~5 s to compile, then a faster
    # forward/backward; on 2 CPU cores it does not pay yet (docs/training.md); results within float
    # rounding of the eager pass, not bit for bit
    compile: bool = False
    schedule: ScheduleSpec = per_member(
        default_factory=ScheduleSpec, examples=({"name": "constant"}, {"name": "cosine", "warmup": 5})
    )
    clip_grad_norm: PositiveFloat | None = per_member(None, examples=(None, 0.5))  # as clip_grad_norm_
    batch_size: Width = 64
    steps: Steps | None = None  # online (default 1000) or offline
    epochs: Annotated[int, Field(ge=1, le=10**6)] | None = None  # offline only: steps = epochs * batches per epoch
    loss: str = "mse"
    # null: those that match the loss and the task's labels (see default_metrics), filled in
    # when the run is resolved
    metrics: list[str] | None = None
    eval_sets: list[str] = Field(default_factory=lambda: ["test"])
    eval_every: Steps = 100
    large_n: Annotated[int, Field(ge=1, le=10**11)] = 1_000_000  # points of the `large` eval set (streamed, never held)
    grid_points: Annotated[int, Field(ge=2, le=100_000)] = 1001  # per axis of the `grid` eval set (box inputs, d <= 2)
    log_every: Steps = 10  # train/loss is stored every log_every steps
    thresholds: list[PositiveFloat] = per_member(default_factory=list, examples=([0.5], [0.8, 0.3]))
    # EMA of the train loss, or an eval metric like test/mse
    threshold_metric: str = per_member("train/loss", examples=("train/loss", "test/mse"))
    relative_thresholds: bool = per_member(False, examples=(False, True))  # fractions of the step-0 value
    ema: float = per_member(0.9, ge=0.0, lt=1.0, examples=(0.9, 0.5))  # EMA smoother s: ema <- s*ema + (1-s)*loss
    stop_at_thresholds: bool = per_member(False, examples=(False, True))  # end once every threshold is crossed
    # a batch loss above diverge_factor x the step-0 loss ends the run as diverged (null: only non-finite)
    diverge_factor: PositiveFloat | None = per_member(DIVERGE_FACTOR, examples=(None, 1.5))
    probes: list[ProbeSpec] = per_member(default_factory=list, examples=([], [{"name": "param_norm", "every": 10}]))
    loggers: list[Literal["tensorboard", "wandb"]] = per_member(default_factory=list, examples=([], ["tensorboard"]))
    checkpoint_every: Steps | None = per_member(None, examples=(None, 10))  # steps between checkpoints
    save_final: bool = per_member(False, examples=(False, True))  # final weights in OUT/checkpoints/<run_id>.pt
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

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, value: str) -> str:
        if value in LOSS_NAMES:
            return value
        if ":" not in value:
            raise ValueError(f"unknown loss {value!r}; valid: {', '.join(LOSS_NAMES)} or 'package.module:attr'")
        from learnlab._imports import resolve

        if not callable(resolve(value)):  # an import failure raises with its reason
            raise ValueError(f"loss {value!r} is not callable")
        return value

    @field_validator("probes")
    @classmethod
    def _probes_build(cls, value: list[ProbeSpec]) -> list[ProbeSpec]:
        if value:  # (probes need torch: a spec without them is validated without it)
            from learnlab.train._probes import make_probes

            make_probes(value)  # unknown names, bad options and unimportable refs fail here
        return value

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        bad = [m for m in value if m not in METRICS and not m.startswith("coef")]
        if bad:
            raise ValueError(f"unknown metrics {bad}; valid: {', '.join(METRICS)}, coef")
        return value

    @field_validator("eval_sets")
    @classmethod
    def _known_sets(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if s not in EVAL_SETS]
        if bad:
            raise ValueError(f"unknown eval sets {bad}; valid: {', '.join(EVAL_SETS)}")
        return value if "test" in value else ["test", *value]

    @field_validator("threshold_metric")
    @classmethod
    def _threshold_metric_shape(cls, value: str) -> str:
        if value != "train/loss" and value.split("/")[0] not in EVAL_SETS:
            raise ValueError(f"threshold_metric must be train/loss or <eval set>/<metric>; got {value!r}")
        return value

    @model_serializer(mode="wrap")
    def _without_default_keys(self, handler):
        """``independent_weight_decay`` and ``compile`` only when set: the resolved configs (and so
        the run ids) of other runs stay as they were before the keys existed."""
        data = handler(self)
        if isinstance(data, dict):
            for key in ("independent_weight_decay", "compile"):
                if not data.get(key):
                    data.pop(key, None)
        return data

    @model_validator(mode="after")
    def _steps_or_epochs(self):
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give train.steps or train.epochs, not both")
        if self.independent_weight_decay and self.optimizer != "adamw":
            raise ValueError(
                "independent_weight_decay applies to adamw's decoupled decay; with "
                f"{self.optimizer!r} set optimizer: adamw or remove the key"
            )
        if self.threshold_metric != "train/loss":
            eval_set, _, metric = self.threshold_metric.partition("/")
            if eval_set not in self.eval_sets or metric not in self.measured():
                raise ValueError(
                    f"threshold_metric {self.threshold_metric!r} is not measured: add {eval_set!r} to "
                    f"eval_sets and {metric!r} to metrics"
                )
        return self

    def measured(self, labels: str = "value") -> list[str]:
        """The metrics evaluated: ``metrics``, or those that match the loss and the labels."""
        return list(self.metrics) if self.metrics is not None else default_metrics(self.loss, labels)

    @property
    def torch_dtype(self) -> torch.dtype:
        """``dtype`` as a torch dtype."""
        import torch

        return getattr(torch, self.dtype)

    def total_steps(self, n_train: int | None) -> int:
        """Number of optimizer updates: ``steps``, or ``epochs`` x batches per epoch (offline)."""
        if self.epochs is None:
            return self.steps if self.steps is not None else 1000
        per_epoch = max(1, n_train // self.batch_size) if n_train else 1
        return self.epochs * per_epoch
