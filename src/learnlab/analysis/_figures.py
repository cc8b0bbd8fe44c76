"""Scaling figures out of the store: time to threshold with power-law fits, L2 vs L∞, sharpness vs 2/lr."""

from __future__ import annotations

import math
import numbers
from pathlib import Path

from learnlab.analysis._curves import default_metric, varying_columns
from learnlab.analysis._layout import ordered, spec_name

__all__ = [
    "fit_power_law",
    "plot_heatmap",
    "numeric_axes",
    "plot_l2_vs_linf",
    "plot_loss_vs_lr",
    "plot_sharpness",
    "plot_time_to_threshold",
    "threshold_columns",
]


def fit_power_law(x, y) -> dict:
    """Least-squares fit of ``y = prefactor * x**exponent`` in log-log space.

    Fits ``log y = log(prefactor) + exponent * log x`` by ordinary least squares over the
    pairs where both x and y are finite and positive (the others are dropped).

    Args:
        x, y: equal-length sequences of numbers.

    Returns:
        ``{"exponent", "prefactor", "exponent_stderr", "r2", "n"}``: the slope, ``exp`` of the
        intercept, the slope's standard error ``sqrt(SSR / (n - 2) / Sxx)`` (NaN when n = 2,
        where it is undetermined), the coefficient of determination of the log-log fit
        (1 when the fit is exact) and the number of pairs used.

    Raises:
        ValueError: fewer than 2 usable pairs, or all usable x equal (no slope to fit).
    """
    import numpy as np

    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"fit_power_law: x and y differ in length ({x.size} vs {y.size})")
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    n = int(keep.sum())
    if n < 2:
        raise ValueError(f"fit_power_law needs at least 2 pairs with finite, positive x and y; got {n} of {x.size}")
    lx, ly = np.log(x[keep]), np.log(y[keep])
    dx, dy = lx - lx.mean(), ly - ly.mean()
    sxx = float(dx @ dx)
    if sxx == 0.0:
        raise ValueError(f"fit_power_law needs at least 2 distinct x values; all {n} usable x equal {x[keep][0]:g}")
    slope = float(dx @ dy) / sxx
    intercept = float(ly.mean() - slope * lx.mean())
    ssr = float(((dy - slope * dx) ** 2).sum())
    sst = float(dy @ dy)
    return {
        "exponent": slope,
        "prefactor": math.exp(intercept),
        "exponent_stderr": math.sqrt(ssr / (n - 2) / sxx) if n > 2 else math.nan,
        "r2": 1.0 - ssr / sst if sst > 0 else 1.0,
        "n": n,
    }


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _labels(runs, axes: list[str]):
    """run_id -> ``"a=1, b=x"`` over ``axes`` (``"all runs"`` when there are none)."""
    frame = runs.set_index("run_id")
    if not axes:
        return frame.index.to_series().map(lambda _: "all runs")
    parts = [a + "=" + frame[a].astype(str) for a in axes]  # per column, so ints stay ints
    return parts[0].str.cat(parts[1:], sep=", ") if len(parts) > 1 else parts[0]


def _in_order(groups, runs, axes: list[str], labels):
    """(label, group) pairs of a groupby on config labels, ordered by the axes' values
    (numbers as numbers: width 32 before 128), not alphabetically."""

    def key(value):
        number = isinstance(value, numbers.Real) and not isinstance(value, bool)  # numpy scalars too
        return (0, float(value), "") if number else (1, 0.0, str(value))

    rank: dict[str, tuple[tuple[int, float, str], ...]] = {}
    for _, row in runs.iterrows():
        rank.setdefault(labels[row["run_id"]], tuple(key(row[a]) for a in axes))
    return sorted(groups, key=lambda item: rank.get(item[0], ()))


def _series_along(runs, x: str, name: str):
    """(the other varying axes, [(label, runs)] one series per combination of them, in axis
    order), after checking that ``x`` is a varying numeric config column."""
    choices = numeric_axes(runs) if not runs.empty else []
    if x not in choices:
        valid = ", ".join(choices) if choices else "none (this store has no numeric config axis that varies)"
        raise ValueError(f"{name}={x!r} is not a varying numeric config column; valid choices: {valid}")
    others = [a for a in varying_columns(runs) if a != x]
    labels = _labels(runs, others)
    return others, _in_order(runs.groupby(runs["run_id"].map(labels)), runs, others, labels)


def numeric_axes(runs) -> list[str]:
    """The varying config columns whose values are all numbers (not booleans)."""
    import pandas as pd

    return [
        c
        for c in varying_columns(runs)
        if pd.api.types.is_numeric_dtype(runs[c]) and not pd.api.types.is_bool_dtype(runs[c])
    ]


def threshold_columns(runs) -> dict[float, str]:
    """threshold value -> its ``steps_to/<c>`` column, smallest first."""
    cols = {float(c.split("/", 1)[1]): c for c in runs.columns if c.startswith("steps_to/")}
    return dict(sorted(cols.items()))


def _threshold_column(runs, threshold: float | None) -> str:
    columns = threshold_columns(runs)
    if not columns:
        raise ValueError(
            "no time-to-threshold data in this store: add train.thresholds (e.g. [0.5, 0.1]) to the spec and run it"
        )
    if threshold is None:
        return next(iter(columns.values()))
    for c, col in columns.items():
        if math.isclose(c, float(threshold), rel_tol=1e-9):
            return col
    raise ValueError(
        f"threshold {threshold:g} is not in this store; thresholds present: {', '.join(f'{c:g}' for c in columns)}"
    )


def plot_time_to_threshold(store, path, x: str = "model.width", threshold: float | None = None, *, fit: bool = True):
    """Steps to reach a loss threshold against a numeric config axis, log-log, with power-law fits.

    One series per combination of the other varying axes: a faint point per run that reached
    the threshold (finite ``steps_to/<c>``, any status), a marker per x value at the mean over
    those runs, and with ``fit`` the line ``steps = prefactor * x**exponent`` fitted to the
    per-run points by :func:`fit_power_law` (its exponent ± stderr in the legend).

    Args:
        store: an open :class:`~learnlab.experiments.Store`.
        path: where to save the PNG (a path or a binary file object).
        x: a varying numeric config column (``model.width``, ``train.lr``, ``task.inputs.d``).
        threshold: a threshold value from ``train.thresholds``; None = the smallest present.
        fit: fit and draw a power law per series.

    Returns:
        ``(fig, fits)``: the matplotlib Figure and {series label: fit dict}; a series with
        fewer than two distinct usable x values has no fit.

    Raises:
        ValueError: ``x`` is not a varying numeric config column, or the threshold is not in the store.
    """
    import numpy as np

    runs = store.runs()
    others, series = _series_along(runs, x, "x")
    col = _threshold_column(runs, threshold)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    fits = {}
    for label, group in series:
        points = group[[x, col]].astype(float)
        points = points[np.isfinite(points[col]) & (points[col] > 0) & (points[x] > 0)]
        if points.empty:
            continue
        means = points.groupby(x)[col].mean()
        (line,) = ax.plot(means.index, means.values, "o-", label=label)
        ax.scatter(points[x], points[col], color=line.get_color(), alpha=0.35, s=14)
        if fit and points[x].nunique() >= 2:
            fits[label] = result = fit_power_law(points[x], points[col])
            grid = np.geomspace(points[x].min(), points[x].max(), 50)
            ax.plot(
                grid,
                result["prefactor"] * grid ** result["exponent"],
                "--",
                color=line.get_color(),
                label=f"fit: exponent {result['exponent']:.2f} ± {result['exponent_stderr']:.2f}",
            )
    if ax.get_legend_handles_labels()[0]:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=7, title=", ".join(others) or None, loc="center left", bbox_to_anchor=(1.0, 0.5))
    else:
        ax.text(0.5, 0.5, f"no run reached {col.split('/', 1)[1]}", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(x)
    ax.set_ylabel(f"steps to loss < {col.split('/', 1)[1]}")
    ax.set_title(f"{spec_name(runs)}: time to threshold vs {x}" + (f" (per {', '.join(others)})" if others else ""))
    return _save(plt, fig, path), fits


def plot_loss_vs_lr(store, path, metric: str | None = None, lr: str = "train.lr"):
    """Final loss against learning rate, one curve per combination of the other varying axes
    (e.g. per width: the muTransfer picture after training, where under muP the optimum stays
    put across widths and under SP it drifts). Mean over the seeds that finished, with a
    min-max band, log-log; each curve's best learning rate is marked *.

    A learning rate at which every run of a curve diverged has no value: it is marked × at
    the top edge of the axes, never drawn as a finite loss; one where some diverged is drawn
    from the others and ringed. A best rate at the smallest or largest rate tried says so in
    the title: the optimum may lie outside the range.

    Args:
        store: an open :class:`~learnlab.experiments.Store`.
        path: where to save the PNG (a path or a binary file object).
        metric: a final metric column of ``store.runs()`` (default: the test metric of the loss).
        lr: the learning-rate axis (a varying numeric config column).

    Returns:
        ``(fig, best)``: the Figure and {series label: learning rate with the lowest mean}.

    Raises:
        ValueError: ``lr`` does not vary, or ``metric`` is not in the store.
    """
    import numpy as np

    runs = store.runs()
    metric = metric or default_metric(runs)
    others, series = _series_along(runs, lr, "lr")
    if metric not in runs:
        finals = sorted(c for c in runs.columns if "/" in c and not c.startswith(("steps_to/", "reached/")))
        raise ValueError(f"metric {metric!r} is not in this store; final metrics present: {', '.join(finals)}")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    best: dict[str, float] = {}
    edges, crosses = [], []
    rates = sorted(float(v) for v in runs[lr].dropna().unique())
    for label, group in series:
        finished = group[group["status"] == "finished"]
        values = finished[[lr, metric]].astype(float)
        values = values[np.isfinite(values[metric]) & (values[metric] > 0)]
        diverged = group[group["status"] == "diverged"].groupby(lr).size()
        tried = group.groupby(lr).size()
        all_diverged = [float(r) for r, n in diverged.items() if n == tried[r]]
        color = None
        if not values.empty:
            stats = values.groupby(lr)[metric].agg(["mean", "min", "max"])
            (line,) = ax.plot(stats.index, stats["mean"], "o-", label=label)
            color = line.get_color()
            ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.2)
            best[label] = float(stats["mean"].idxmin())
            ax.plot([best[label]], [stats["mean"].min()], "*", color=color, markersize=14)
            some = [float(r) for r, n in diverged.items() if 0 < n < tried[r] and float(r) in stats.index]
            ax.plot(some, stats.loc[some, "mean"], "o", mfc="none", color=color, markersize=11)
            if len(rates) >= 3 and best[label] in (rates[0], rates[-1]):
                edges.append(label)
        crosses.append((all_diverged, color or ax.plot([], [], label=label)[0].get_color()))
    ax.set_xscale("log")
    ax.set_yscale("log")
    top = ax.get_ylim()[1] if ax.has_data() else 1.0
    for xs, color in crosses:  # at the top edge: a diverged rate has no loss to draw
        ax.plot(xs, [top] * len(xs), "x", color=color, markersize=10, mew=2, clip_on=False)
    if any(xs for xs, _ in crosses):
        ax.plot([], [], "kx", label="all runs diverged")
        ax.plot([], [], "ko", mfc="none", label="some runs diverged")
    ax.set_ylim(top=top)
    ax.set_xlabel(lr)
    ax.set_ylabel(f"{metric} (final; * = best)")
    title = f"{spec_name(runs)}: {metric} vs {lr}" + (f" (per {', '.join(others)})" if others else "")
    if edges:
        title += "\nbest rate at the edge of the range for " + ", ".join(edges) + ": the optimum may lie outside"
    ax.set_title(title, fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, title=", ".join(others) or None, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _save(plt, fig, path), best


def plot_l2_vs_linf(store, path, eval_set: str | None = None):
    """Final L2 (root mean square) error against final uniform (L∞) error, one point per run, log-log.

    L2 = ``<set>/l2``, or sqrt(``<set>/mse``) where only the mean square was measured;
    L∞ = ``<set>/linf``. The evaluation ``grid`` is preferred (it covers the input domain),
    else ``large``, else ``test``. Points are coloured by config; the dashed diagonal is
    y = x, and RMS ≤ L∞ puts every point on or above it: the distance above is how much
    worse the worst case is than the average (Seed 001's point). Diverged runs have no final
    values and are counted in the title.

    Args:
        store: an open :class:`~learnlab.experiments.Store`.
        path: where to save the PNG (a path or a binary file object).
        eval_set: ``grid``, ``large`` or ``test`` (default: the first measured, in that order).

    Returns:
        The matplotlib Figure.

    Raises:
        ValueError: no set has L∞ (names the key to add), or every run diverged.
    """
    import numpy as np

    runs = store.runs()
    sets = [s for s in ("grid", "large", "test") if f"{s}/linf" in runs.columns]
    if eval_set is not None:
        sets = [eval_set] if eval_set in sets else []
    if not sets:
        wanted = f"eval set {eval_set!r}" if eval_set else "an eval set"
        raise ValueError(
            f"no uniform error (linf) of {wanted} in this store: add 'linf' (and 'l2') to train.metrics "
            "(e.g. train.metrics: [mse, l2, linf]) and run the spec again"
        )
    chosen = sets[0]
    linf = f"{chosen}/linf"
    l2 = runs[f"{chosen}/l2"] if f"{chosen}/l2" in runs else np.sqrt(runs.get(f"{chosen}/mse", np.nan))
    points = runs.assign(_l2=l2.astype(float), _linf=runs[linf].astype(float))
    usable = points[np.isfinite(points["_l2"]) & np.isfinite(points["_linf"]) & (points["_l2"] > 0)]
    if usable.empty:
        raise ValueError(f"no run of this store has final {chosen} L2 and L∞ values (every run diverged or failed)")
    axes = varying_columns(runs)
    labels = _labels(runs, axes)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for label, group in _in_order(usable.groupby(usable["run_id"].map(labels)), runs, axes, labels):
        ax.scatter(group["_l2"], group["_linf"], label=label, s=22)
    lo = min(usable["_l2"].min(), usable["_linf"].min())
    hi = max(usable["_l2"].max(), usable["_linf"].max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.legend(fontsize=7, title=", ".join(axes) or None, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_xlabel(f"{chosen} L2 error (RMS, final)")
    ax.set_ylabel(f"{chosen} L∞ error (uniform, final)")
    diverged = int((runs["status"] == "diverged").sum())
    note = f"; {diverged} diverged runs have no values" if diverged else ""
    ax.set_title(f"{spec_name(runs)}: L2 vs L∞ on the {chosen} set{note}", fontsize=9)
    return _save(plt, fig, path)


def plot_heatmap(store, path, metric: str | None = None, x: str | None = None, y: str | None = None):
    """The final ``metric`` over two sweep axes: one cell per (x, y), the mean over the runs that
    finished (seeds and any other axis pooled), a log colour scale where the values span more
    than a decade. A cell
    whose runs all diverged is marked ×; one with no finished run is grey.

    Args:
        store: an open :class:`~learnlab.experiments.Store`.
        path: where to save the PNG (a path or a binary file object).
        metric: a final metric column (default: the test metric of the loss).
        x, y: varying config columns (default: the two with the most values).

    Returns:
        The matplotlib Figure.

    Raises:
        ValueError: fewer than two varying axes, an unknown axis or metric.
    """
    import numpy as np

    runs = store.runs()
    metric = metric or default_metric(runs)
    axes = varying_columns(runs)
    if len(axes) < 2:
        raise ValueError(f"a heatmap needs two varying config axes; this store has {axes or 'none'}")
    ranked = sorted(axes, key=lambda a: -len(ordered(runs[a])))
    x = x or ranked[0]
    y = y or next(a for a in ranked if a != x)
    for name, value in (("x", x), ("y", y)):
        if value not in axes:
            raise ValueError(f"{name}={value!r} is not a varying config axis; axes: {', '.join(axes)}")
    if metric not in runs:
        raise ValueError(f"metric {metric!r} is not in this store")
    xs, ys = ordered(runs[x]), ordered(runs[y])
    grid = np.full((len(ys), len(xs)), np.nan)
    crossed = []
    for i, yv in enumerate(ys):
        for j, xv in enumerate(xs):
            cell = runs[(runs[x].astype(str) == str(xv)) & (runs[y].astype(str) == str(yv))]
            done = cell[cell["status"] == "finished"][metric].astype(float)
            done = done[np.isfinite(done)]
            if len(done):
                grid[i, j] = done.mean()
            elif len(cell) and (cell["status"] == "diverged").all():
                crossed.append((j, i))
    plt = _pyplot()
    import matplotlib.colors as mcolors

    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(xs) + 3), max(3.5, 0.35 * len(ys) + 2)))
    finite = grid[np.isfinite(grid)]
    wide = finite.size and (finite > 0).all() and finite.max() / finite.min() > 10  # a log scale helps
    norm = mcolors.LogNorm() if wide else None
    image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", origin="lower", cmap="viridis_r", norm=norm)
    ax.set_facecolor("0.85")
    for j, i in crossed:
        ax.plot(j, i, "rx", markersize=9, mew=2)
    if len(xs) * len(ys) <= 120:
        for i in range(len(ys)):
            for j in range(len(xs)):
                if np.isfinite(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.2g}", ha="center", va="center", fontsize=7, color="w")
    ax.set_xticks(range(len(xs)), [f"{v:g}" if isinstance(v, float) else str(v) for v in xs], rotation=45, fontsize=8)
    ax.set_yticks(range(len(ys)), [f"{v:g}" if isinstance(v, float) else str(v) for v in ys], fontsize=8)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    fig.colorbar(image, ax=ax, label=f"{metric} (final, mean over finished runs)")
    note = "; × = every run diverged" if crossed else ""
    ax.set_title(f"{spec_name(runs)}: {metric}{note}", fontsize=9)
    return _save(plt, fig, path)


def plot_sharpness(store, path):
    """Sharpness (top Hessian eigenvalue) against step per config, with its 2/lr line.

    Solid: ``probe/sharpness`` averaged over seeds; dashed, same colour: that config's
    ``probe/threshold`` = 2/lr, the edge of stability (Cohen et al. 2021, "Gradient descent
    on neural networks typically occurs at the edge of stability").

    Args:
        store: an open :class:`~learnlab.experiments.Store`.
        path: where to save the PNG (a path or a binary file object).

    Returns:
        The matplotlib Figure.

    Raises:
        ValueError: the store has no sharpness probe data.
    """
    history = store.metrics(names=["probe/sharpness", "probe/threshold"])
    if not (history["name"] == "probe/sharpness").any():
        raise ValueError(
            "no probe/sharpness data in this store: add the probe to the spec, "
            "train.probes: [{name: sharpness, every: 100}], and run it"
        )
    runs = store.runs()
    axes = varying_columns(runs)
    history["config"] = history["run_id"].map(_labels(runs, axes))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for config, rows in _in_order(history.groupby("config"), runs, axes, _labels(runs, axes)):
        mean = rows.groupby(["name", "step"])["value"].mean()
        sharp = mean.loc["probe/sharpness"] if "probe/sharpness" in mean.index else None
        if sharp is None:
            continue
        (line,) = ax.plot(sharp.index, sharp.values, label=config)
        if "probe/threshold" in mean.index:
            edge = mean.loc["probe/threshold"]
            ax.plot(edge.index, edge.values, "--", color=line.get_color(), lw=1)
    ax.plot([], [], "k--", lw=1, label="2 / lr")
    ax.legend(fontsize=7, title=", ".join(axes) or None, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_xlabel("step")
    ax.set_ylabel("sharpness (top Hessian eigenvalue)")
    ax.set_title(f"{spec_name(runs)}: sharpness (mean over seeds) and 2/lr")
    return _save(plt, fig, path)


def _save(plt, fig, path):
    fig.savefig(path if not isinstance(path, (str, Path)) else Path(path), dpi=120, format="png", bbox_inches="tight")
    plt.close(fig)
    return fig
