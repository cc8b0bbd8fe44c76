"""Learning curves: a metric against step, mean over seeds with a min-max band."""

from __future__ import annotations

from pathlib import Path

__all__ = ["plot_learning_curves", "varying_columns"]

_NOT_AXES = {"run_id", "status", "name", "error", "step", "started", "finished", "seed"}


def varying_columns(runs) -> list[str]:
    """Config columns (dotted keys) that take more than one value across runs, seed excluded."""
    cols = [c for c in runs.columns if "." in c and "/" not in c and c not in _NOT_AXES]
    return [c for c in cols if runs[c].astype(str).nunique() > 1]


def plot_learning_curves(store, path: str | Path, metric: str = "test/mse", *, logy: bool = True):
    """Plot ``metric`` vs step, one line per config (mean over seeds, band = min..max).

    Args:
        store: an open :class:`~learnlab.experiments.Store`.
        path: where to save the PNG.
        metric: a metric name in the store (``test/mse``, ``train/loss``).

    Returns:
        The matplotlib Figure.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    runs = store.runs()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if runs.empty:
        ax.set_title("no runs")
    else:
        history = store.metrics(names=[metric])
        axes = varying_columns(runs)
        labels = runs.set_index("run_id")[axes].astype(str).agg(", ".join, axis=1) if axes else None
        history["config"] = history["run_id"].map(labels) if labels is not None else "all runs"
        for config, rows in history.groupby("config", sort=True):
            stats = rows.groupby("step")["value"].agg(["mean", "min", "max"])
            (line,) = ax.plot(stats.index, stats["mean"], label=config)
            ax.fill_between(stats.index, stats["min"], stats["max"], alpha=0.2, color=line.get_color())
        ax.set_title(", ".join(axes) if axes else metric)
        if len(history):
            ax.legend(fontsize=7)
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    if logy:
        ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return fig
