"""A per-config summary of a store: outcomes, final metrics and time to thresholds over seeds."""

from __future__ import annotations

import math

from learnlab.analysis._curves import measured, varying_columns
from learnlab.analysis._layout import ordered

__all__ = ["summary_table", "summary_metrics", "best_at_edge", "format_summary", "higher_is_better"]


def summary_metrics(runs, metrics: list[str] | None = None) -> list[str]:
    """The final metrics a summary shows: ``metrics`` (``test/mse`` or just ``mse``), else the test
    metrics the runs measured (``train.metrics``, which follows the loss: mse for mse,
    cross_entropy and accuracy for cross_entropy, ...), at most three."""
    if metrics:
        return [m if "/" in m else f"test/{m}" for m in metrics]
    return measured(runs)[:3] or ["test/mse"]


def summary_table(store, metric: str | None = None, *, metrics: list[str] | None = None):
    """One row per config (seeds pooled).

    Columns: the varying config keys; ``runs``, ``finished``, ``diverged``, ``failed``;
    ``diverged_first`` and ``diverged_last``, the steps at which its runs diverged; the mean
    final value of each metric over the runs that finished (a run that diverged has none, so a
    config whose runs all diverged shows NaN, never their last values); and for every
    threshold c ``steps_to/c`` (mean over the runs that reached it) with ``reached/c`` (how many).

    Args:
        store: an open :class:`~learnlab.experiments.Store`.
        metric: one final metric (kept for callers of one metric; ``metrics`` wins).
        metrics: final metrics to show (default: :func:`summary_metrics`).
    """
    import pandas as pd

    runs = store.runs()
    if runs.empty:
        return pd.DataFrame()
    shown = summary_metrics(runs, metrics or ([metric] if metric else None))
    axes = varying_columns(runs)
    key = axes or (lambda _: "all")
    rows = []
    for point, group in runs.groupby(key, sort=False):
        row = dict(zip(axes, point if isinstance(point, tuple) else (point,))) if axes else {}
        row["runs"] = len(group)
        for status in ("finished", "diverged", "failed"):
            row[status] = int((group["status"] == status).sum())
        at = group.loc[group["status"] == "diverged", "diverged_at"].dropna()
        row["diverged_first"] = at.min() if len(at) else math.nan
        row["diverged_last"] = at.max() if len(at) else math.nan
        done = group[group["status"] == "finished"]
        for m in shown:
            row[m] = done[m].mean() if m in done else math.nan
        for col in sorted(c for c in group.columns if c.startswith("steps_to/")):
            c = col.split("/", 1)[1]
            row[col] = group[col].mean()
            row[f"reached/{c}"] = int(group[col].notna().sum())
        rows.append(row)
    frame = pd.DataFrame(rows)
    if axes:  # numeric order: width 32 before 128
        ranks = {a: {str(v): k for k, v in enumerate(ordered(frame[a]))} for a in axes}
        order = sorted(range(len(frame)), key=lambda i: tuple(ranks[a][str(frame[a].iloc[i])] for a in axes))
        frame = frame.iloc[order].reset_index(drop=True)
    return frame


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (accuracy), as opposed to a loss or an error."""
    return metric.rsplit("/", 1)[-1] == "accuracy"


def best_at_edge(table, lr: str, metric: str) -> list[str]:
    """Warnings for configs whose best mean ``metric`` over ``lr`` is at the smallest or largest
    learning rate tried (of three or more): the optimum may lie outside the range. Configs at
    the same edge share one line."""
    if lr not in table or metric not in table:
        return []
    values = ordered(table[lr])
    if len(values) < 3:
        return []
    others = [c for c in table.columns if "." in c and "/" not in c and c != lr]
    at_edges: dict[tuple[str, str], list[str]] = {}
    for point, rows in table.groupby(others, sort=False) if others else [((), table)]:
        rows = rows.dropna(subset=[metric])
        if rows.empty:
            continue
        pick = rows[metric].idxmax() if higher_is_better(metric) else rows[metric].idxmin()
        best = rows.loc[pick, lr]
        if str(best) in (str(values[0]), str(values[-1])):
            where = ", ".join(f"{k}={v}" for k, v in zip(others, point if isinstance(point, tuple) else (point,)))
            edge = "smallest" if str(best) == str(values[0]) else "largest"
            at_edges.setdefault((edge, f"{best:g}" if isinstance(best, float) else str(best)), []).append(where)
    out = []
    for (edge, best), configs in at_edges.items():
        shown = "; ".join(c for c in configs[:6] if c) + (f"; and {len(configs) - 6} more" if len(configs) > 6 else "")
        who = f"{len(configs)} configs ({shown})" if len(configs) > 1 else (shown or "")
        out.append(
            f"{who + ': ' if who else ''}the best {lr} for {metric} is the {edge} tried ({best}); "
            "the optimum may lie outside the range"
        )
    return out


def format_summary(frame, metrics: list[str]):
    """``summary_table`` as text, one column per thing a reader looks at: the axes (short names),
    ``runs``, ``diverged`` (``2/2 @ 4-5``: how many, at which steps), ``failed``, the metrics
    (means over finished runs, ``-`` where none finished) and ``steps to c (reached/runs)``."""
    import pandas as pd

    axes = [c for c in frame.columns if "." in c and "/" not in c]
    short = {a: a.rsplit(".", 1)[-1] for a in axes}
    if len(set(short.values())) < len(axes):
        short = {a: a for a in axes}
    thresholds = [c.split("/", 1)[1] for c in frame.columns if c.startswith("steps_to/")]
    rows = []
    for _, row in frame.iterrows():
        runs = int(row["runs"])
        cells = {short[a]: _text(row[a]) for a in axes}
        cells["runs"] = str(runs)
        cells["diverged"] = _diverged(row, runs)
        cells["failed"] = str(int(row["failed"]))
        cells.update({m.replace("/", " "): _text(row.get(m, math.nan)) for m in metrics})
        for c in thresholds:
            steps = row[f"steps_to/{c}"]
            shown = "-" if steps != steps else f"{steps:.0f}"
            cells[f"steps to {c}"] = f"{shown} ({int(row[f'reached/{c}'])}/{runs})"
        rows.append(cells)
    return pd.DataFrame(rows)


def _diverged(row, runs: int) -> str:
    """``0``, or ``2/2 @ 4-5``: how many of the config's runs diverged, and at which steps."""
    n = int(row["diverged"])
    if n == 0:
        return "0"
    first, last = int(row["diverged_first"]), int(row["diverged_last"])
    return f"{n}/{runs} @ {first if first == last else f'{first}-{last}'}"


def _text(value) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        if value.is_integer() and abs(value) < 1e9:  # a width that pandas made a float: 1024, not 1.02e+03
            return str(int(value))
        return f"{value:.3g}"
    return str(value)
