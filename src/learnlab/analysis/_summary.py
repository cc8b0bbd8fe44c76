"""A per-config summary of a store: outcomes, final metric and time to thresholds over seeds."""

from __future__ import annotations

from learnlab.analysis._curves import varying_columns

__all__ = ["summary_table"]


def summary_table(store, metric: str = "test/mse"):
    """One row per config (seeds pooled).

    Columns: the varying config keys, ``runs``, ``finished``, ``diverged``, ``failed``,
    ``<metric>`` (mean final value), and for every threshold c ``steps_to/c`` (mean
    over the runs that reached it) with ``reached/c`` (how many did).
    """
    import pandas as pd

    runs = store.runs()
    if runs.empty:
        return pd.DataFrame()
    axes = varying_columns(runs)
    key = axes or (lambda _: "all")
    rows = []
    for point, group in runs.groupby(key, sort=True):
        row = dict(zip(axes, point if isinstance(point, tuple) else (point,))) if axes else {}
        row["runs"] = len(group)
        for status in ("finished", "diverged", "failed"):
            row[status] = int((group["status"] == status).sum())
        if metric in group:
            row[metric] = group[metric].mean()
        for col in sorted(c for c in group.columns if c.startswith("steps_to/")):
            c = col.split("/", 1)[1]
            row[col] = group[col].mean()
            row[f"reached/{c}"] = int(group[col].notna().sum())
        rows.append(row)
    return pd.DataFrame(rows)
