"""Learning curves: a metric against step per config, mean over seeds where every seed is there."""

from __future__ import annotations

from pathlib import Path

from learnlab.analysis._layout import layout, legend_outside, matches, panels_figure, pyplot, spec_name

__all__ = ["plot_learning_curves", "varying_columns", "line_colors", "measured", "default_metric", "MAX_BANDS"]

MAX_BANDS = 4  # min..max bands are drawn for up to this many lines a panel (more would hide each other)


def varying_columns(runs) -> list[str]:
    """Config columns (dotted keys) that take more than one value across runs, seed excluded."""
    from learnlab.experiments._aggregates import varying_keys

    return varying_keys(runs.drop(columns=["seed"], errors="ignore"))


def measured(runs) -> list[str]:
    """The test metrics the runs measured (their ``train.metrics``, which follow the loss), ``test/...``."""
    import json

    column = runs["train.metrics"] if "train.metrics" in runs and not runs.empty else None
    names = json.loads(column.iloc[0]) if column is not None and isinstance(column.iloc[0], str) else []
    return [f"test/{n}" for n in names if not n.startswith("coef")]


def default_metric(runs) -> str:
    """The test metric that matches the runs' loss: the first of their ``train.metrics``."""
    return (measured(runs) or ["test/mse"])[0]


def line_colors(plt, n: int) -> list:
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(k % cmap.N) for k in range(n)]


def plot_learning_curves(
    store, path: str | Path, metric: str | None = None, *, logy: bool = True, lines: list[str] | None = None
):
    """``metric`` vs step per config: the mean over its seeds with a min-max band.

    The mean is drawn only where every seed of the config is still running. Past the step where
    a seed stops (diverged, or ended at its thresholds), the survivors are drawn one by one,
    thin and dashed, with how many are left; a diverged run's last value is marked ×. Up to 12
    configs share one panel; a larger sweep is drawn as small multiples (see
    :mod:`learnlab.analysis._layout`).

    Args:
        store: an open :class:`~learnlab.experiments.Store`.
        path: where to save the PNG (a path or a binary file object).
        metric: a metric name in the store (``test/mse``, ``train/loss``); default: the test
            metric that matches the loss (``test/mse``, ``test/cross_entropy``, ...).
        logy: log-scale y axis (where the values are positive and span more than a decade).
        lines: the axes drawn as lines (default: the ones with the fewest values).

    Returns:
        The matplotlib Figure.
    """
    plt = pyplot()
    runs = store.runs()
    if runs.empty:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.set_title("no runs")
        return _save(plt, fig, path)
    metric = metric or default_metric(runs)
    axes = varying_columns(runs)
    lay = layout(runs, axes, lines=lines)
    table = store.curves(metric, by=axes)
    history = store.metrics(names=[metric])
    theory_metric = theory_of(metric)
    theory = store.curves(theory_metric, by=axes) if theory_metric != metric else None
    theory = None if theory is None or theory.empty else theory
    fig, axs = panels_figure(plt, len(lay.panel_points))
    colors = line_colors(plt, len(lay.line_points))
    bands = len(lay.line_points) <= MAX_BANDS
    marks = set()
    for k, (ax, panel) in enumerate(zip(axs, lay.panel_points)):
        for color, line in zip(colors, lay.line_points):
            point = {**panel, **line}
            config = table[matches(table, point)]
            marks |= _draw_config(ax, config, runs[matches(runs, point)], history, color, lay.line_label(line), bands)
            if theory is not None:
                predicted = theory[matches(theory, point)].sort_values("step")
                if not predicted.empty:
                    marks.add("theory")
                    ax.plot(predicted["step"], predicted["mean"], color=color, lw=1.6, ls=":")
        if lay.panels:
            ax.set_title(lay.panel_title(panel), fontsize=9)
        if k >= len(axs) - min(len(axs), 5):  # the bottom row
            ax.set_xlabel("step")
        if k % 5 == 0:
            ax.set_ylabel(metric)
    if logy and _positive(table):
        axs[0].set_yscale("log")  # shared by every panel
    if "survivors" in marks:
        axs[0].plot([], [], "k--", lw=0.8, label="runs still going (k/n: how many)")
    if "diverged" in marks:
        axs[0].plot([], [], "kx", label="diverged (last value)")
    if "theory" in marks:
        axs[0].plot([], [], "k:", lw=1.6, label="theory: linearised network (NTK/NNGP gradient descent)")
    skipped = f" ({lay.skipped} more panels not shown)" if lay.skipped else ""
    band = "band: min..max" if bands else f"bands left out above {MAX_BANDS} lines a panel"
    fig.suptitle(f"{spec_name(runs)}: {metric}\nmean over seeds ({band}){skipped}", fontsize=10)
    legend_outside(fig, axs, lay.legend_title)
    return _save(plt, fig, path)


def theory_of(metric: str) -> str:
    """The stored prediction of a measured metric: ``theory/dynamics/test/mse`` for ``test/mse``
    (and for ``train/loss``, the mean-square loss of the batches, ``theory/dynamics/train/mse``)."""
    return "theory/dynamics/train/mse" if metric == "train/loss" else f"theory/dynamics/{metric}"


def _draw_config(ax, rows, config_runs, history, color, label: str, band: bool = True) -> set[str]:
    """One config's curve on ``ax``; returns the marks it used (``survivors``, ``diverged``)."""
    marks: set[str] = set()
    if rows.empty:
        return marks
    rows = rows.sort_values("step")
    full = rows[rows["count"] == rows["total"]]
    ax.plot(full["step"], full["mean"], color=color, label=label)
    if band:
        ax.fill_between(full["step"], full["min"].astype(float), full["max"].astype(float), color=color, alpha=0.15)
    partial = rows[rows["count"] < rows["total"]]
    if not partial.empty:
        marks.add("survivors")
        start = full["step"].max() if not full.empty else partial["step"].min()
        ids = set(config_runs["run_id"])
        later = history[history["run_id"].isin(ids) & (history["step"] >= start)]
        for _, run in later.groupby("run_id"):
            if run["step"].max() > start:
                ax.plot(run["step"], run["value"], color=color, lw=0.8, ls="--", alpha=0.8)
        first = partial.iloc[0]
        ax.annotate(
            f"{int(first['count'])}/{int(first['total'])}",
            (first["step"], first["mean"]),
            fontsize=7,
            color=color,
            textcoords="offset points",
            xytext=(2, 4),
        )
    diverged = config_runs.loc[config_runs["status"] == "diverged", "run_id"]
    for rid in diverged:
        last = history[history["run_id"] == rid].sort_values("step").tail(1)
        if not last.empty:
            marks.add("diverged")
            ax.plot(last["step"], last["value"], "x", color=color, markersize=7, mew=1.5)
    return marks


def _positive(table) -> bool:
    """A log scale helps: every value positive, spanning more than a decade."""
    if table.empty:
        return False
    low, high = table["min"].astype(float).min(), table["max"].astype(float).max()
    return bool(low > 0 and high / low > 10)


def _save(plt, fig, path):
    fig.savefig(path if not isinstance(path, (str, Path)) else Path(path), dpi=110, format="png")
    plt.close(fig)
    return fig
