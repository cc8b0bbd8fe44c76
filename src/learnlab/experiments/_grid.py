"""A store as a labelled array: a metric over the sweep axes, NaN where a run is missing.

What expt-core's masked grid did for seed 002, with xarray: ``store.grid("test/mse",
["model.width", "train.lr"], reduce="mean")`` is a (width, lr) array averaged over seeds,
ready for ``.sel``, ``.plot`` or ``.to_pandas``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["grid"]

MEMBER = "_member"  # the dimension reduced over: runs sharing a cell


def grid(store, metric: str, axes: list[str], reduce: str | None = None):
    """The final value of ``metric`` over the config ``axes`` of a store's runs.

    A cell holds the value of the run at those coordinates if it ``finished``; a cell
    whose run is pending, failed, interrupted, diverged or absent is NaN. Coordinates
    are the sorted values each axis takes among the store's runs.

    Args:
        store: a :class:`~learnlab.experiments.Store`.
        metric: a column of ``store.runs()``: a final metric (``test/mse``) or a
            threshold step (``steps_to/0.5``).
        axes: dotted config keys (``model.width``, ``train.lr``, ``seed``), one
            dimension each, in this order.
        reduce: an xarray reduction (``mean``, ``median``, ``min``, ``max``, ``std``,
            ``count``...) over every other config key that varies among the runs
            (typically ``seed``), skipping NaN: a cell is NaN only if none of its runs
            finished. ``None`` requires the axes to identify each run.

    Returns:
        ``xarray.DataArray`` named ``metric`` with dims ``axes``.

    Raises:
        ImportError: if xarray is not installed.
        ValueError: for an unknown metric, axis or reduction, or if runs differ in
            keys outside ``axes`` and ``reduce`` is None.
    """
    xr = _import_xarray()
    axes = list(axes)
    frame = store.runs()
    config_keys = store.config_keys()
    _check_names(frame, config_keys, store.run_columns, metric, axes, reduce, xr)
    if frame.empty:
        return xr.DataArray(np.empty((0,) * len(axes)), dims=axes, coords={a: [] for a in axes}, name=metric)
    others = [k for k in config_keys if k not in axes and _varies(frame[k])]
    if others and reduce is None:
        raise ValueError(
            f"store.grid: runs differ in {others} beyond axes {axes}: add them to axes or pass "
            f"reduce='mean' (or another reduction) to combine them"
        )
    if metric not in frame.columns:  # nothing has finished yet: every cell is missing
        frame[metric] = math.nan
    values = frame[metric].astype(float).where(frame["status"] == "finished")
    index = frame[axes].copy()
    if others:  # the runs sharing a cell are its members 0, 1, ... (not a product over `others`)
        index[MEMBER] = frame.groupby(axes, dropna=False, sort=False).cumcount()
    series = values.set_axis(pd.MultiIndex.from_frame(index))
    array = xr.DataArray.from_series(series).sortby(axes)
    if others:
        assert reduce is not None  # runs differing outside the axes without a reduction raised above
        array = getattr(array, reduce)(dim=MEMBER)
    array.name = metric
    return array


def _import_xarray():
    try:
        import xarray
    except ImportError as exc:  # pragma: no cover - CI installs the extra
        raise ImportError("store.grid needs xarray: pip install 'learnlab[analysis]'") from exc
    return xarray


def _check_names(frame, config_keys, run_columns, metric, axes, reduce, xr) -> None:
    problems = []
    if not axes:
        problems.append("axes is empty: name at least one config key, e.g. ['train.lr']")
    if len(set(axes)) != len(axes):
        problems.append(f"axes {axes} repeat a key")
    unknown = [a for a in axes if a not in config_keys]
    if unknown and config_keys:
        problems.append(f"unknown axes {unknown}; config keys are: {', '.join(sorted(config_keys))}")
    metrics = [c for c in frame.columns if c not in run_columns and c not in config_keys]
    if metric in config_keys or metric in run_columns or (metric not in frame.columns and metrics):
        problems.append(f"unknown metric {metric!r}; metrics in this store: {', '.join(sorted(metrics)) or 'none'}")
    if reduce is not None and not callable(getattr(xr.DataArray, reduce, None)):
        problems.append(f"unknown reduction {reduce!r}; try mean, median, min, max, std or count")
    if problems:
        raise ValueError("store.grid: " + "; ".join(problems))


def _varies(column) -> bool:
    """More than one distinct value, counting None/NaN as a value."""
    seen = {_key(v) for v in column}
    return len(seen) > 1


def _key(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value
