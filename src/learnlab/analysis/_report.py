"""One self-contained HTML report of a store: counts, summary table, failures and every figure that applies."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from learnlab.analysis._curves import plot_learning_curves, varying_columns
from learnlab.analysis._figures import (
    numeric_axes,
    plot_heatmap,
    plot_l2_vs_linf,
    plot_loss_vs_lr,
    plot_sharpness,
    plot_time_to_threshold,
    threshold_columns,
)
from learnlab.analysis._summary import best_at_edge, format_summary, summary_metrics, summary_table
from learnlab.analysis._theory_figure import THEORY_FINALS, plot_theory
from learnlab.analysis._transfer import transfer_pairs
from learnlab.analysis._transfer_figure import plot_transfer

__all__ = ["report", "report_figures"]

_FAILED = ("failed", "diverged", "interrupted")
_STYLE = """
body { font-family: sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; }
figure { margin: 1.5em 0; }
img { max-width: 100%; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""


def report_figures(store) -> list[tuple[str, Callable[..., Any], dict[str, Any]]]:
    """The figures that apply to this store, as (caption, plot function, keyword arguments).

    Learning curves of the test metric that matches the loss and of ``train/loss``; a heatmap
    of that metric over the two axes with the most values (two or more varying axes); time to
    threshold against ``model.width`` (else the first numeric varying axis) for every
    threshold some run reached; final loss vs learning rate if ``train.lr`` varies; L2 vs L∞
    if some eval set has ``linf``; sharpness if probed; measured vs predicted error against
    ``task.n_train`` if the runs stored theory predictions.
    """
    runs = store.runs()
    if runs.empty:
        return []
    names = set(store.metrics()["name"].unique())
    metric = summary_metrics(runs)[0]
    figures: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
        (
            f"learning curves: {m} (mean over seeds where all are running, band = min..max)",
            plot_learning_curves,
            {"metric": m},
        )
        for m in dict.fromkeys((metric, "train/loss"))
        if m in names
    ]
    if len(varying_columns(runs)) >= 2 and metric in runs:
        figures.append(
            (
                f"final {metric} over the two largest sweep axes (mean over finished runs)",
                plot_heatmap,
                {"metric": metric},
            )
        )
    axes = numeric_axes(runs)
    if axes:
        x = "model.width" if "model.width" in axes else axes[0]
        figures += [
            (
                f"steps to train-loss EMA < {c:g} vs {x}, power-law fit per series",
                plot_time_to_threshold,
                {"x": x, "threshold": c},
            )
            for c, col in threshold_columns(runs).items()
            if runs[col].notna().any()
        ]
    if "train.lr" in axes and metric in runs:
        figures.append(
            (
                f"final {metric} vs train.lr per config (mean over seeds, * = best, × = diverged)",
                plot_loss_vs_lr,
                {"metric": metric},
            )
        )
    if any(f"{s}/linf" in runs.columns for s in ("grid", "large", "test")):
        figures.append(("final L2 (RMS) vs L∞ (uniform) error per run", plot_l2_vs_linf, {}))
    if "probe/sharpness" in names:
        figures.append(("sharpness (mean over seeds) and 2/lr (dashed)", plot_sharpness, {}))
    if "task.n_train" in axes and any(c in runs for c in THEORY_FINALS):
        figures.append(
            ("final test/mse vs task.n_train: measured (solid) and the kernel's predictions (dashed)", plot_theory, {})
        )
    return figures


def report(store, path: str | Path, *, title: str | None = None) -> Path:
    """Write one self-contained HTML report of a store (figures inlined as base64 PNG, no network).

    Sections: title, runs by status, the summary (as ``learnlab run`` prints it: diverged runs
    and the steps they diverged at, the metrics that match the loss), warnings a reader should
    see, failures (status failed, diverged or interrupted: grouped by reason), every figure of
    :func:`report_figures`, then "Transfer" where the sweep varies a hyperparameter and an axis
    of :func:`~learnlab.analysis.transfer` (``train.lr``, ``model.gamma`` or ``model.branch_multiplier`` along
    ``model.width``, ``model.depth``, ``train.batch_size`` or ``train.steps``): its figure and
    verdict per pair.

    Args:
        store: an open :class:`~learnlab.experiments.Store`.
        path: the HTML file to write (its folder is created).
        title: page title (default: the spec's name and the store's path).

    Returns:
        The path written.
    """
    runs = store.runs()
    name = runs["name"].dropna().iloc[0] if not runs.empty and runs["name"].notna().any() else "learnlab"
    title = title or f"{name}: {store.path}"
    parts = [
        f"<h1>{_e(title)}</h1>",
        "<h2>Runs by status</h2>",
        _status_counts(runs),
        "<h2>Summary (means over the runs that finished)</h2>",
        _summary(store),
    ]
    warnings = _warnings(store)
    if warnings:
        parts += ["<h2>Warnings</h2>", "<ul>" + "".join(f"<li>{_e(w)}</li>" for w in warnings) + "</ul>"]
    failures = _failures(runs)
    if failures:
        parts += ["<h2>Failures</h2>", failures]
    figures = report_figures(store)
    if figures:
        parts.append("<h2>Figures</h2>")
    for caption, plot, kwargs in figures:
        parts.append(_figure(store, caption, plot, kwargs))
    parts += _transfer(store)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>\n<body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def _e(value) -> str:
    return html.escape(str(value))


def _status_counts(runs) -> str:
    if runs.empty:
        return "<p>no runs</p>"
    rows = "".join(
        f"<tr><td>{_e(s)}</td><td>{n}</td></tr>" for s, n in runs["status"].value_counts().sort_index().items()
    )
    return f"<table><tr><th>status</th><th>runs</th></tr>{rows}</table>"


def _summary(store) -> str:
    frame = summary_table(store)
    if frame.empty:
        return "<p>no runs</p>"
    return format_summary(frame, summary_metrics(store.runs())).to_html(index=False, border=0)


def _warnings(store) -> list[str]:
    runs = store.runs()
    metric = summary_metrics(runs)[0]
    return best_at_edge(summary_table(store), "train.lr", metric) if metric in runs else []


MAX_FAILURES = 20  # listed one by one; beyond, counted by status and reason


def _failures(runs) -> str:
    if runs.empty:
        return ""
    bad = runs[runs["status"].isin(_FAILED)]
    items = []
    for _, row in bad.head(MAX_FAILURES).iterrows():
        items.append(f"<li><code>{_e(row['run_id'])}</code> {_e(row['status'])}: {_e(_reason(row['error']))}</li>")
    if len(bad) > MAX_FAILURES:
        kinds = bad.assign(kind=bad["error"].map(_kind)).groupby(["status", "kind"]).size()
        rest = "".join(f"<li>{n} {_e(status)}: {_e(kind)}</li>" for (status, kind), n in kinds.items())
        items.append(f"<li>all {len(bad)}, by reason:<ul>{rest}</ul></li>")
    return f"<ul>{''.join(items)}</ul>" if items else ""


def _reason(error) -> str:
    lines = (error or "").strip().splitlines()
    return lines[-1] if lines else ""


def _kind(error) -> str:
    """A failure's reason without its numbers: ``train loss > diverge_factor x step-0 loss at step``."""
    import re

    return re.sub(r"[-+]?\d[\d.e+-]*", "#", _reason(error))


def _transfer(store) -> list[str]:
    """The Transfer section: per (axis, hp) pair of :func:`transfer_pairs`, the figure and a table
    of each group's slope, interval and verdict. Nothing where no pair applies or no run finished."""
    runs = store.runs()
    pairs = transfer_pairs(runs)
    metric = summary_metrics(runs)[0] if pairs else ""
    if not pairs or metric not in runs or not (runs["status"] == "finished").any():
        return []
    parts = [
        "<h2>Transfer</h2>",
        "<p>Does the best hyperparameter stay put along the axis? Per axis value, the best value "
        "(a parabola in log hp around the grid minimum of the seed-mean final loss) with a 95% "
        "bootstrap interval over seeds; the slope of log hp* on log axis with its interval; "
        "<code>transfers</code> if that interval lies inside ±tolerance, <code>drifts</code> if "
        "entirely outside, else <code>inconclusive</code> (also for an optimum at the grid's edge, "
        "fewer than 2 seeds or a non-convex curve). <code>learnlab transfer OUT --axis A --hp H</code> "
        "prints the optima.</p>",
    ]
    for axis, hp in pairs:
        buffer = io.BytesIO()
        _, result = plot_transfer(store, buffer, axis=axis, hp=hp, metric=metric)
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        rows = "".join(
            f"<tr><td>{_e(label)}</td><td>{_number(fit.slope)}</td>"
            f"<td style='white-space:nowrap'>[{_number(fit.slope_ci[0])}, {_number(fit.slope_ci[1])}]</td>"
            f"<td><b>{_e(fit.verdict)}</b></td><td style='text-align:left'>{_e(fit.reason)}</td></tr>"
            for label, fit in result.groups.items()
        )
        caption = f"best {hp} per {axis} ({metric}; tolerance ±{result.tolerance:g})"
        parts.append(
            f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}"><figcaption>{_e(caption)}'
            "</figcaption><table><tr><th>group</th><th>slope</th><th>95% interval</th><th>verdict</th>"
            f"<th>reason</th></tr>{rows}</table></figure>"
        )
    return parts


def _number(value: float) -> str:
    return f"{value:.3f}" if value == value else "-"


def _figure(store, caption: str, plot, kwargs: dict) -> str:
    """An inline PNG of ``plot(store, file, **kwargs)``, with its fits (if any) as a table."""
    buffer = io.BytesIO()
    result = plot(store, buffer, **kwargs)
    extra = result[1] if isinstance(result, tuple) else None  # power-law fits, or best learning rates
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    table = ""
    if extra and all(isinstance(f, dict) for f in extra.values()):
        rows = "".join(
            f"<tr><td>{_e(label)}</td><td>{f['exponent']:.3f}</td><td>{f['exponent_stderr']:.3f}</td>"
            f"<td>{f['prefactor']:.4g}</td><td>{f['r2']:.3f}</td><td>{f['n']}</td></tr>"
            for label, f in extra.items()
        )
        table = (
            "<table><tr><th>series</th><th>exponent</th><th>stderr</th><th>prefactor</th><th>r²</th>"
            f"<th>n</th></tr>{rows}</table>"
        )
    elif extra:
        rows = "".join(f"<tr><td>{_e(label)}</td><td>{value:g}</td></tr>" for label, value in extra.items())
        table = f"<table><tr><th>series</th><th>best learning rate</th></tr>{rows}</table>"
    return (
        f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(caption)}</figcaption>{table}</figure>"
    )
