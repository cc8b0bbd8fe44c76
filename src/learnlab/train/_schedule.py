"""Learning-rate schedules as a factor of the step (equal to torch's lr_scheduler shapes)."""

from __future__ import annotations

import math

__all__ = ["lr_factor"]


def lr_factor(schedule, t: int, total: int) -> float:
    """Factor on every group's learning rate at step t (0-based) of ``total`` steps.

    constant 1; cosine final + (1 - final)(1 + cos(pi t / total)) / 2
    (``CosineAnnealingLR`` with eta_min = final * lr); exponential final^(t / total)
    (``ExponentialLR`` with gamma = final^(1/total)); step gamma^floor(t / every)
    (``StepLR``); a linear warmup min(1, (t + 1) / warmup) multiplies any of them.
    """
    name = schedule.name
    if name == "constant":
        f = 1.0
    elif name == "cosine":
        f = schedule.final_factor + (1 - schedule.final_factor) * (1 + math.cos(math.pi * t / total)) / 2
    elif name == "exponential":
        f = schedule.final_factor ** (t / total)
    elif name == "step":
        f = schedule.gamma ** (t // schedule.every)
    else:  # pragma: no cover - the spec validates names
        raise ValueError(f"unknown schedule {name!r}")
    if schedule.warmup and t < schedule.warmup:
        f *= (t + 1) / schedule.warmup
    return f
