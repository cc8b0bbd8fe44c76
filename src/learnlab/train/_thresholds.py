"""Time to loss threshold (seed 002's LOSS_CHECKPOINTS, with a real missing value)."""

from __future__ import annotations

import math

__all__ = ["ThresholdTracker"]


class ThresholdTracker:
    """First step at which a smoothed metric falls below each threshold.

    ema_0 = v_0 and ema_t = s * ema_{t-1} + (1 - s) * v_t; the step recorded for
    threshold c is the first t with ema_t < c (with ``relative``, ema_t < c * v_0).
    A threshold never crossed stays ``None`` (stored as a missing value, never 0).
    Use s = 0 for an evaluation metric (no smoothing).
    """

    def __init__(self, thresholds, smoother: float = 0.9, relative: bool = False):
        self.thresholds = sorted((float(c) for c in thresholds), reverse=True)
        self.smoother, self.relative = smoother, relative
        self.ema: float | None = None
        self.scale = 1.0
        self.steps: dict[float, int | None] = {c: None for c in self.thresholds}

    def update(self, step: int, value: float) -> None:
        s = self.smoother
        if self.ema is None:
            self.ema = value
            if self.relative:
                self.scale = value
        else:
            self.ema = s * self.ema + (1 - s) * value
        if not math.isfinite(self.ema):
            return
        for c in self.thresholds:
            if self.steps[c] is None and self.ema < c * self.scale:
                self.steps[c] = step

    @property
    def all_crossed(self) -> bool:
        return bool(self.thresholds) and all(v is not None for v in self.steps.values())

    def state_dict(self) -> dict:
        return {"ema": self.ema, "scale": self.scale, "steps": list(self.steps.items())}

    def load_state_dict(self, state: dict) -> None:
        self.ema, self.scale = state["ema"], state["scale"]
        self.steps = dict(state["steps"])
