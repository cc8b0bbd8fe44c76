"""What a run leaves behind: its metric histories, outcome and threshold steps."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["History"]


@dataclass
class History:
    """Metric histories of one run.

    Attributes:
        metrics: name -> list of (step, value), names as ``<set>/<metric>``
            (``train/loss``, ``test/mse``).
        status: ``finished`` or ``diverged``.
        step: the last step reached (number of optimizer updates done).
        reason: why the run diverged, else None.
        thresholds: threshold -> first step the train-loss EMA fell below it, or None.
        artifacts: tensors from probes, name -> [(step, tensor)] (saved per run by sweeps).
    """

    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    status: str = "running"
    step: int = 0
    reason: str | None = None
    thresholds: dict[float, int | None] = field(default_factory=dict)
    sinks: list = field(default_factory=list, repr=False)  # loggers: sink.log(step, name, value)
    artifacts: dict[str, list] = field(default_factory=dict, repr=False)  # probe tensors: name -> [(step, tensor)]

    def log(self, step: int, name: str, value: float) -> None:
        self.metrics.setdefault(name, []).append((int(step), float(value)))
        for sink in self.sinks:
            sink.log(int(step), name, float(value))

    def replay(self) -> None:
        """Send every record so far to the sinks again, in step order (a run resumed from a
        checkpoint, so its fresh loggers hold the whole history)."""
        records = sorted((s, name, v) for name, rows in self.metrics.items() for s, v in rows)
        for step, name, value in records:
            for sink in self.sinks:
                sink.log(step, name, value)

    def drop_from(self, step: int) -> None:
        """Forget records at or after ``step`` (used when a run diverges)."""
        for name in self.metrics:
            self.metrics[name] = [(s, v) for s, v in self.metrics[name] if s < step]

    @property
    def final(self) -> dict[str, float]:
        """The last recorded finite value of every metric; none for a run that diverged (its last
        values are of a run on its way to blowing up, not a result)."""
        if self.status == "diverged":
            return {}
        out = {}
        for name, rows in self.metrics.items():
            finite = [v for _, v in rows if math.isfinite(v)]
            if finite:
                out[name] = finite[-1]
        return out

    def to_frame(self):
        """Long-format DataFrame with columns step, name, value."""
        import pandas as pd

        rows = [(s, name, v) for name, recs in self.metrics.items() for s, v in recs]
        return pd.DataFrame(rows, columns=["step", "name", "value"])
