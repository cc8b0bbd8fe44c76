"""Survivor-aware aggregates of a store's histories: a metric per step over the runs of a config."""

from __future__ import annotations

__all__ = ["curves", "varying_keys"]


def varying_keys(runs) -> list[str]:
    """Config columns (dotted keys) of ``store.runs()`` that take more than one value, ``seed`` excluded."""
    cols = [c for c in runs.columns if "." in c and "/" not in c]
    return [c for c in cols if runs[c].astype(str).nunique() > 1]


def curves(store, metric: str, by: list[str] | None = None):
    """``metric`` per step of every config, over its runs (typically its seeds).

    A config's runs do not all last equally long: a run that diverged or stopped at its
    thresholds has no records after its last step. So each step says how many runs are
    still there (``count``) out of the config's runs that recorded the metric (``total``);
    a mean over the survivors of a step where ``count < total`` is not the mean of the
    config, and the figures draw it apart. A step that only some of the runs there recorded
    (the last evaluation of a run that stopped between two scheduled ones) is left out: it
    is in that run's own history.

    Args:
        store: a :class:`~learnlab.experiments.Store`.
        metric: a metric name in ``store.metrics()`` (``test/mse``, ``train/loss``, ``probe/...``).
        by: config keys that define a config (default: every config key that varies in the
            store except ``seed``).

    Returns:
        A DataFrame with columns ``*by, step, mean, min, max, count, total``, sorted by config
        then step; empty (with those columns) if the metric has no records.
    """
    import numpy as np
    import pandas as pd

    runs = store.runs()
    by = varying_keys(runs.drop(columns=["seed"], errors="ignore")) if by is None else list(by)
    unknown = [k for k in by if k not in runs.columns]
    if unknown:
        raise ValueError(f"curves: unknown config keys {unknown}; config keys: {', '.join(store.config_keys())}")
    columns = [*by, "step", "mean", "min", "max", "count", "total"]
    history = store.metrics(names=[metric])
    if history.empty:
        return pd.DataFrame(columns=columns)
    keys = runs.set_index("run_id")[by] if by else None
    frame = history.join(keys, on="run_id") if keys is not None else history
    groups = frame.groupby(by, dropna=False, sort=True) if by else [((), frame)]
    parts = []
    for point, rows in groups:
        stats = rows.groupby("step")["value"].agg(["mean", "min", "max", "count"]).reset_index()
        last = rows.groupby("run_id")["step"].max()  # a run is there up to its last record
        alive = np.array([(last >= step).sum() for step in stats["step"]])
        stats = stats[stats["count"].to_numpy() == alive]  # not a step only some runs recorded (a stop)
        stats["total"] = len(last)
        for key, value in zip(by, point if isinstance(point, tuple) else (point,)):
            stats[key] = value
        parts.append(stats)
    return pd.concat(parts, ignore_index=True)[columns]
