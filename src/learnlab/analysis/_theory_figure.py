"""Measured error against the kernel's predictions, along a sample-size (or any) axis."""

from __future__ import annotations

from pathlib import Path

from learnlab.analysis._curves import line_colors, varying_columns
from learnlab.analysis._layout import ordered, pyplot

__all__ = ["plot_theory", "THEORY_FINALS"]

# the stored predictions of the final test MSE and how they are drawn
THEORY_FINALS = {
    "theory/kernel_regression/test/mse": ("kernel regression", "--", "s"),
    "theory/eigenlearning/test/mse": ("eigenlearning", ":", "^"),
    "theory/dynamics/test/mse": ("linearised GD", "-.", "v"),
}


def plot_theory(store, path: str | Path, *, x: str = "task.n_train", metric: str = "test/mse"):
    """Final ``metric`` of the runs (mean over the seeds that finished, solid, with a min-max band)
    against ``x``, one colour per combination of the other varying keys (e.g. per width and
    parameterization), and the stored theory predictions of the same runs dashed beside them
    (kernel regression, eigenlearning, the linearised network's gradient descent: whichever the
    spec's ``theory.predict`` asked for). Log-log.

    Args:
        store: an open :class:`~learnlab.experiments.Store` whose runs have a ``theory`` section.
        path: where to save the PNG (a path or a binary file object).
        x: the axis (a varying numeric config column; ``task.n_train`` for learning curves in n).
        metric: the measured final metric (``test/mse``).

    Returns:
        The matplotlib Figure.

    Raises:
        ValueError: no theory predictions in the store, or ``x`` does not vary.
    """
    import numpy as np
    from matplotlib.ticker import NullFormatter

    runs = store.runs()
    predicted = [c for c in THEORY_FINALS if c in runs]
    if not predicted:
        raise ValueError(
            "no theory predictions in this store: add a theory section to the spec, e.g. "
            "theory: {kernel: ntk, predict: [kernel_regression, eigenlearning]} (docs/theory.md)"
        )
    axes = varying_columns(runs)
    if x not in axes:
        raise ValueError(f"{x!r} does not vary in this store; varying keys: {', '.join(axes) or 'none'}")
    # keys zipped with x (a batch size per n_train) follow it: they split nothing
    others = [a for a in axes if a != x and runs.groupby(x)[a].nunique(dropna=False).max() > 1]
    done = runs[runs["status"] == "finished"]
    groups = list(done.groupby(others, sort=False)) if others else [((), done)]
    groups.sort(key=lambda g: tuple(str(v) for v in (g[0] if isinstance(g[0], tuple) else (g[0],))))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = line_colors(plt, len(groups))
    for color, (key, group) in zip(colors, groups):
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{a.rsplit('.', 1)[-1]}={v}" for a, v in zip(others, key)) or "measured"
        xs = [float(v) for v in ordered(group[x])]
        by = group.groupby(x)[metric]
        mean = np.array([by.get_group(v).mean() for v in xs])
        low = np.array([by.get_group(v).min() for v in xs])
        high = np.array([by.get_group(v).max() for v in xs])
        ax.plot(xs, mean, "-o", color=color, ms=4, label=label)
        ax.fill_between(xs, low, high, color=color, alpha=0.15)
        for column in predicted:
            _, style, marker = THEORY_FINALS[column]
            theory = group.groupby(x)[column].mean()
            ax.plot(xs, [theory.get(v, np.nan) for v in xs], ls=style, marker=marker, ms=3, color=color, lw=1.2)
    for column in predicted:
        name, style, marker = THEORY_FINALS[column]
        ax.plot([], [], ls=style, marker=marker, ms=3, color="k", lw=1.2, label=f"theory: {name}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = [float(v) for v in ordered(done[x])]
    ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(x)
    ax.set_ylabel(f"final {metric}")
    name = runs["name"].dropna().iloc[0] if runs["name"].notna().any() else "learnlab"
    ax.set_title(f"{name}: measured (solid, mean over seeds, band min..max) vs theory (dashed)", fontsize=10)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path if not isinstance(path, (str, Path)) else Path(path), dpi=110, format="png")
    plt.close(fig)
    return fig
