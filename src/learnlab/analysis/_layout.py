"""How figures lay out a sweep: which axes are lines and which are panels, labels, order, legends.

Up to ``MAX_LINES`` configs share one panel. A larger sweep is drawn as small multiples: the
varying axes with the fewest values become the lines of every panel (at most ``MAX_LINES``),
the others the panels (at most ``MAX_PANELS``, evenly chosen when there are more), so a
10,000-run sweep gives figures a person can read. Legends sit outside the axes, in the
axes' numeric order, titled by the axis names; figures are titled by the spec's name.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

__all__ = ["MAX_LINES", "MAX_PANELS", "Layout", "layout", "ordered", "label_of", "pyplot", "spec_name"]

MAX_LINES = 12
MAX_PANELS = 30


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def sort_key(value):
    """Numbers by value (width 32 before 128), then everything else by its text."""
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if number and math.isfinite(float(value)):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def ordered(values) -> list:
    """Distinct values in numeric order."""
    seen = {str(v): v for v in values}
    return sorted(seen.values(), key=sort_key)


def label_of(point: dict, axes: list[str], short: bool = True) -> str:
    """``"width=64, lr=0.1"`` for a config's values on ``axes`` (the last part of each key)."""
    names = {a: a.rsplit(".", 1)[-1] if short else a for a in axes}
    if short and len(set(names.values())) < len(axes):
        names = {a: a for a in axes}
    return ", ".join(f"{names[a]}={_fmt(point[a])}" for a in axes) or "all runs"


def _fmt(value) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e9:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def spec_name(runs) -> str:
    names = runs["name"].dropna().unique() if "name" in runs else []
    return ", ".join(map(str, names)) or "learnlab"


@dataclass
class Layout:
    """The panels and lines of a figure over a store's configs.

    Attributes:
        lines: axes whose combinations are the lines of a panel (legend entries).
        panels: axes whose combinations are the panels.
        panel_points: the panels' values on ``panels``, in order (at most MAX_PANELS).
        line_points: the lines' values on ``lines``, in order.
        skipped: panels left out (more than MAX_PANELS).
    """

    lines: list[str]
    panels: list[str]
    panel_points: list[dict]
    line_points: list[dict]
    skipped: int = 0

    def panel_title(self, point: dict) -> str:
        return label_of(point, self.panels)

    def line_label(self, point: dict) -> str:
        return label_of(point, self.lines)

    @property
    def legend_title(self) -> str:
        return ", ".join(self.lines)


def layout(runs, axes: list[str], *, lines: list[str] | None = None) -> Layout:
    """Split the varying ``axes`` into line axes (at most MAX_LINES combinations) and panel axes.

    The line axes are the ones with the fewest values, taken while their combinations stay
    within MAX_LINES (``lines`` forces them); the rest make the panels.
    """
    counts = {a: len(ordered(runs[a])) for a in axes}
    if lines is None:
        lines, product = [], 1
        for a in sorted(axes, key=lambda a: counts[a]):
            if product * counts[a] <= MAX_LINES:
                lines.append(a)
                product *= counts[a]
        lines = [a for a in axes if a in lines]  # keep the axes' own order
    panels = [a for a in axes if a not in lines]
    line_points = _points(runs, lines)
    panel_points = _points(runs, panels)
    skipped = 0
    if len(panel_points) > MAX_PANELS:  # evenly chosen, the first and last included
        pick = sorted({round(i * (len(panel_points) - 1) / (MAX_PANELS - 1)) for i in range(MAX_PANELS)})
        skipped = len(panel_points) - len(pick)
        panel_points = [panel_points[i] for i in pick]
    return Layout(lines, panels, panel_points, line_points, skipped)


def _points(runs, axes: list[str]) -> list[dict]:
    """The combinations of ``axes`` that occur among the runs, in numeric order."""
    if not axes:
        return [{}]
    seen: dict[tuple[str, ...], dict] = {}
    for values in runs[axes].itertuples(index=False):
        point = dict(zip(axes, values))
        seen.setdefault(tuple(str(point[a]) for a in axes), point)
    return sorted(seen.values(), key=lambda p: tuple(sort_key(p[a]) for a in axes))


def matches(runs, point: dict):
    """A boolean mask of the runs at ``point`` (values compared as text, so 64 == 64.0 is not an issue)."""
    import pandas as pd

    mask = pd.Series(True, index=runs.index)
    for key, value in point.items():
        mask &= runs[key].astype(str) == str(value)
    return mask


def panels_figure(plt, n: int, width: float = 4.2, height: float = 3.2):
    """A figure with n panels on a grid (up to 5 columns, shared axes), returning (fig, [ax...])."""
    cols = min(n, 5 if n > 4 else n)
    rows = math.ceil(n / cols)
    if n == 1:
        width = 6.0
    fig, axs = plt.subplots(
        rows,
        cols,
        figsize=(width * cols + 2.2, height * rows + 0.6),
        squeeze=False,
        sharex=True,
        sharey=True,
        layout="constrained",
    )
    flat = [ax for row in axs for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def legend_outside(fig, axs, title: str) -> None:
    """One legend for the figure, right of the panels, in the order the lines were drawn."""
    handles, labels, seen = [], [], set()
    for ax in axs:
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in seen and not label.startswith("_"):
                seen.add(label)
                handles.append(h)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, title=title or None, loc="outside right center", fontsize=8)
