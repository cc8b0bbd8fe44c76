"""The transfer figure: loss vs hyperparameter per axis value with the optima, and hp* vs axis."""

from __future__ import annotations

import math
from pathlib import Path

from learnlab.analysis._layout import _fmt, pyplot
from learnlab.analysis._transfer import Transfer, transfer

__all__ = ["plot_transfer"]


def plot_transfer(
    result, path, axis: str = "model.width", hp: str = "train.lr", metric: str | None = None, **options
) -> tuple[object, Transfer]:
    """Draw a :func:`~learnlab.analysis.transfer` analysis: one column per group of runs.

    Top: the final metric against ``hp`` (log x; log y for a loss), one line per value of ``axis``
    in numeric order (a sequential colormap; a loss is the geometric mean over seeds, the
    quantity whose optimum is fitted), each optimum marked ● with a horizontal bar over its 95%
    bootstrap interval; an hp at which a seed diverged has no mean and is marked × at the top.
    Bottom: hp* against ``axis``, log-log, with vertical interval bars, the fitted line and
    "slope = s [lo, hi] → verdict".

    Args:
        result: a :class:`~learnlab.analysis.Transfer`, or a store (or its folder) to analyse.
        path: where to save the PNG (a path or a binary file object).
        axis, hp, metric, options: passed to :func:`~learnlab.analysis.transfer` when ``result``
            is a store (``tolerance``, ``bootstrap``, ``seed``).

    Returns:
        ``(fig, result)``: the matplotlib Figure and the :class:`Transfer` drawn.
    """
    if not isinstance(result, Transfer):
        result = transfer(result, axis, hp, metric, **options)
    plt = pyplot()
    fits = list(result.groups.items())
    fig, axs = plt.subplots(
        2,
        len(fits),
        figsize=(5.2 * len(fits) + 1.8, 6.6),
        squeeze=False,
        height_ratios=[3, 1.6],
        layout="constrained",
    )
    for k, (label, fit) in enumerate(fits):
        _curves(plt, axs[0][k], result, fit)
        _optima(axs[1][k], result, fit)
        if len(fits) > 1:
            axs[0][k].set_title(label, fontsize=9)
    handles, labels = axs[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, title=result.axis, loc="outside right center", fontsize=8)
    mean = "geometric mean over seeds" if result.scale == "log" else "mean over seeds"
    fig.suptitle(
        f"{result.name}: {result.metric} vs {result.hp} per {result.axis} ({mean})\n"
        f"● best {result.hp} (parabola in log {result.hp}), bar: 95% bootstrap interval over seeds",
        fontsize=10,
    )
    fig.savefig(path if not isinstance(path, (str, Path)) else Path(path), dpi=120, format="png", bbox_inches="tight")
    plt.close(fig)
    return fig, result


def _colors(plt, n: int) -> list:
    cmap = plt.get_cmap("viridis")
    return [cmap(0.05 + 0.8 * k / max(n - 1, 1)) for k in range(n)]


def _curves(plt, ax, result: Transfer, fit) -> None:
    """The metric against hp per axis value, the optima with their intervals, × where a seed diverged."""
    import numpy as np

    table = fit.table
    colors = _colors(plt, len(fit.optima))
    crosses = []
    for color, optimum in zip(colors, fit.optima):
        rows = table[table["axis"] == optimum["axis"]] if not table.empty else table
        ax.plot(rows["hp"], rows["value"], "o-", color=color, ms=3, lw=1.2, label=_fmt(optimum["axis"]))
        if len(rows):
            ax.fill_between(rows["hp"], rows["low"], rows["high"], color=color, alpha=0.12, lw=0)
        crosses += [(h, color) for h in rows.loc[rows["diverged"] > 0, "hp"]]
        if math.isfinite(optimum["hp"]):
            ax.plot([optimum["hp"]], [optimum["value"]], "o", color=color, ms=8, mec="k", mew=0.8, zorder=3)
            if math.isfinite(optimum["lo"]):
                ax.hlines(optimum["value"], optimum["lo"], optimum["hi"], color=color, lw=2.5, zorder=3)
    ax.set_xscale("log")
    if result.scale == "log" and ax.has_data():
        ax.set_yscale("log")
    if crosses:
        top = ax.get_ylim()[1]
        for h, color in crosses:
            ax.plot([h], [top], "x", color=color, ms=9, mew=2, clip_on=False)
        ax.set_ylim(top=top)
        ax.plot([], [], "kx", label="a seed diverged (worst)")
    if ax.get_yscale() == "log":
        _plain_ticks(ax.yaxis)
    ax.set_xlabel(result.hp)
    ax.set_ylabel(f"{result.metric} (final)")
    if table.empty or not np.isfinite(table["value"]).any():
        ax.text(0.5, 0.5, "no run finished", ha="center", va="center", transform=ax.transAxes)


def _optima(ax, result: Transfer, fit) -> None:
    """hp* against the axis, log-log, with interval bars, the fitted line and the verdict."""
    import numpy as np

    points = [o for o in fit.optima if math.isfinite(o["hp"])]
    for o in points:
        lo = o["lo"] if math.isfinite(o["lo"]) else o["hp"]
        hi = o["hi"] if math.isfinite(o["hi"]) else o["hp"]
        ax.vlines(o["axis"], lo, hi, color="C0", lw=2)
        ax.plot([o["axis"]], [o["hp"]], "s" if o["at_edge"] else "o", color="C0", mfc="w" if o["at_edge"] else "C0")
    if math.isfinite(fit.slope):
        grid = np.geomspace(min(o["axis"] for o in points), max(o["axis"] for o in points), 20)
        ax.plot(grid, np.exp(fit.intercept) * grid**fit.slope, "k--", lw=1, label="fit")
        centre = np.exp(np.mean(np.log(grid)))  # the no-drift wedge: slopes within ±tolerance through the fit's middle
        middle = np.exp(fit.intercept) * centre**fit.slope
        wedge = [middle * (grid / centre) ** (sign * result.tolerance) for sign in (-1, 1)]
        ax.fill_between(grid, *wedge, color="0.5", alpha=0.15, lw=0, label=f"|slope| < {result.tolerance:g}")
        lo, hi = fit.slope_ci
        interval = f" [{lo:.2f}, {hi:.2f}]" if math.isfinite(lo) else " [interval undefined]"
        text = f"slope = {fit.slope:.2f}{interval} → {fit.verdict}"
    else:
        text = f"no slope → {fit.verdict}"
    ax.set_title(text, fontsize=9, color={"transfers": "C2", "drifts": "C3"}.get(fit.verdict, "0.3"))
    if points:
        ax.set_xscale("log")
        ax.set_yscale("log")
        values = [o["axis"] for o in points]
        ax.set_xticks(values, [_fmt(v) for v in values])
        ax.xaxis.set_minor_locator(_ticker().NullLocator())
        _plain_ticks(ax.yaxis)
    ax.set_xlabel(result.axis)
    ax.set_ylabel(f"best {result.hp}")
    if any(o["at_edge"] for o in points):
        ax.plot([], [], "s", color="C0", mfc="w", label="at the grid's edge")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def _ticker():
    import matplotlib.ticker

    return matplotlib.ticker


def _plain_ticks(axis) -> None:
    """Log-axis ticks written as plain numbers (1.2, 0.003), not 1.2 x 10^0: at 10^k over many
    decades, at 1, 2, 5 x 10^k over one or two, evenly spaced over less than one (where 10^k
    ticks would be one or none)."""
    ticker = _ticker()
    low, high = sorted(axis.get_view_interval())
    decades = math.log10(high / low) if low > 0 else math.inf
    if decades > 2.5:
        locator = ticker.LogLocator()
    else:
        locator = ticker.LogLocator(subs=(1.0, 2.0, 5.0)) if decades >= 1 else ticker.MaxNLocator(6)
    axis.set_major_locator(locator)
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(ticker.NullLocator())
