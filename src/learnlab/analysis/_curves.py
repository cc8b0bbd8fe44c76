"""Learning curves: a metric against step per config, mean over seeds where every seed is there."""

from __future__ import annotations

from pathlib import Path

from learnlab.analysis._layout import layout, legend_outside, matches, panels_figure, pyplot, spec_name

__all__ = ["plot_learning_curves", "varying_columns", "line_colors"]


def varying_columns(runs) -> list[str]:
    """Config columns (dotted keys) that take more than one value across runs, seed excluded."""
    from learnlab.experiments._aggregates import varying_keys

    return varying_keys(runs.drop(columns=["seed"], errors="ignore"))


def line_colors(plt, n: int) -> list:
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(k % cmap.N) for k in range(n)]


def plot_learning_curves(
    store, path: str | Path, metric: str = "test/mse", *, logy: bool = True, lines: list[str] | None = None
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
        metric: a metric name in the store (``test/mse``, ``train/loss``).
        logy: log-scale y axis.
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
    axes = varying_columns(runs)
    lay = layout(runs, axes, lines=lines)
    table = store.curves(metric, by=axes)
    history = store.metrics(names=[metric])
    fig, axs = panels_figure(plt, len(lay.panel_points))
    colors = line_colors(plt, len(lay.line_points))
    marks = set()
    for ax, panel in zip(axs, lay.panel_points):
        for color, line in zip(colors, lay.line_points):
            point = {**panel, **line}
            marks |= _draw_config(
                ax, table[matches(table, point)], runs[matches(runs, point)], history, color, lay.line_label(line)
            )
        if lay.panels:
            ax.set_title(lay.panel_title(panel), fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        if logy and _positive(table):
            ax.set_yscale("log")
    if "survivors" in marks:
        axs[0].plot([], [], "k--", lw=0.8, label="runs still going (k/n: how many)")
    if "diverged" in marks:
        axs[0].plot([], [], "kx", label="diverged (last value)")
    skipped = f" ({lay.skipped} more panels not shown)" if lay.skipped else ""
    fig.suptitle(f"{spec_name(runs)}: {metric}, mean over seeds (band: min..max){skipped}")
    legend_outside(fig, axs, lay.legend_title)
    return _save(plt, fig, path)


def _draw_config(ax, rows, config_runs, history, color, label: str) -> set[str]:
    """One config's curve on ``ax``; returns the marks it used (``survivors``, ``diverged``)."""
    marks: set[str] = set()
    if rows.empty:
        return marks
    rows = rows.sort_values("step")
    full = rows[rows["count"] == rows["total"]]
    ax.plot(full["step"], full["mean"], color=color, label=label)
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
    return not table.empty and bool((table["min"].astype(float) > 0).all())


def _save(plt, fig, path):
    fig.savefig(path if not isinstance(path, (str, Path)) else Path(path), dpi=110, format="png", bbox_inches="tight")
    plt.close(fig)
    return fig
