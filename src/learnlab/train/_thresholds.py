"""EMA time-to-loss-threshold (seed 002's LOSS_CHECKPOINTS, with a real missing value)."""

from __future__ import annotations

import math

__all__ = ["ThresholdTracker"]


class ThresholdTracker:
    """First step at which the EMA of the train loss falls below each threshold.

    ema_0 = loss_0 and ema_t = s * ema_{t-1} + (1 - s) * loss_t; the step recorded for
    threshold c is the first t with ema_t < c. A threshold never crossed stays ``None``
    (stored as a missing value, never as 0).
    """

    def __init__(self, thresholds, smoother: float = 0.9):
        self.thresholds = sorted((float(c) for c in thresholds), reverse=True)
        self.smoother = smoother
        self.ema: float | None = None
        self.steps: dict[float, int | None] = {c: None for c in self.thresholds}

    def update(self, step: int, loss: float) -> None:
        s = self.smoother
        self.ema = loss if self.ema is None else s * self.ema + (1 - s) * loss
        if not math.isfinite(self.ema):
            return
        for c in self.thresholds:
            if self.steps[c] is None and self.ema < c:
                self.steps[c] = step

    @property
    def all_crossed(self) -> bool:
        return bool(self.thresholds) and all(v is not None for v in self.steps.values())
