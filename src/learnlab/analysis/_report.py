"""One self-contained HTML report of a store: counts, summary table, failures and every figure that applies."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from learnlab.analysis._curves import plot_learning_curves
from learnlab.analysis._figures import (
    numeric_axes,
    plot_l2_vs_linf,
    plot_loss_vs_lr,
    plot_sharpness,
    plot_time_to_threshold,
    threshold_columns,
)
from learnlab.analysis._summary import summary_table

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

    Learning curves of ``test/mse`` and ``train/loss`` (those present); time to threshold
    against ``model.width`` (else the first numeric varying axis) for every threshold some
    run reached; final loss vs learning rate if ``train.lr`` varies; L2 vs L∞ if ``test/mse``
    and ``test/linf`` exist; sharpness if probed.
    """
    runs = store.runs()
    if runs.empty:
        return []
    names = set(store.metrics()["name"].unique())
    figures: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
        (f"learning curves: {m} (mean over seeds, band = min..max)", plot_learning_curves, {"metric": m})
        for m in ("test/mse", "train/loss")
        if m in names
    ]
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
    if "train.lr" in axes and "test/mse" in runs:
        figures.append(("final test mse vs train.lr per config (mean over seeds, * = best)", plot_loss_vs_lr, {}))
    if {"test/mse", "test/linf"} <= names:
        figures.append(("final test mse vs test L∞ (uniform) error per run", plot_l2_vs_linf, {}))
    if "probe/sharpness" in names:
        figures.append(("sharpness (mean over seeds) and 2/lr (dashed)", plot_sharpness, {}))
    return figures


def report(store, path: str | Path, *, title: str | None = None) -> Path:
    """Write one self-contained HTML report of a store (figures inlined as base64 PNG, no network).

    Sections: title, runs by status, :func:`summary_table`, failures (status failed, diverged
    or interrupted, with the last line of the error), then every figure of :func:`report_figures`.

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
        "<h2>Summary (mean over seeds)</h2>",
        _summary(store),
    ]
    failures = _failures(runs)
    if failures:
        parts += ["<h2>Failures</h2>", failures]
    figures = report_figures(store)
    if figures:
        parts.append("<h2>Figures</h2>")
    for caption, plot, kwargs in figures:
        parts.append(_figure(store, caption, plot, kwargs))
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
    return frame.to_html(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}", border=0)


def _failures(runs) -> str:
    if runs.empty:
        return ""
    bad = runs[runs["status"].isin(_FAILED)]
    items = []
    for _, row in bad.iterrows():
        lines = (row["error"] or "").strip().splitlines()
        items.append(f"<li><code>{_e(row['run_id'])}</code> {_e(row['status'])}: {_e(lines[-1] if lines else '')}</li>")
    return f"<ul>{''.join(items)}</ul>" if items else ""


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
