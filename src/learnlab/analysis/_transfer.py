"""Does the best hyperparameter transfer along an axis? (muTransfer's question, measured.)

For each value of ``axis`` (width, depth, batch size, steps) the best ``hp`` (learning rate,
γ, ...) is found on the sweep's grid (:mod:`learnlab.analysis._optimum`: the argmin of the
seed-mean final loss, refined by a parabola in log hp), with a 95% interval from a bootstrap
over seeds; the slope of log hp* against log axis, with its own interval, says whether the
optimum moves. Yang et al. 2022 ("Tensor Programs V: Tuning Large Neural Networks via Zero-Shot
Hyperparameter Transfer") is the width case: under muP the slope is ~0, under SP ~-1 for Adam.

The objective per run: log(final metric) for a loss (an error metric, all finite values > 0;
otherwise the metric itself), minus the metric for one where higher is better (accuracy); a
run that diverged counts as +inf (worse than any finite value); a run that failed, was
interrupted or has not run is left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from learnlab.analysis._curves import default_metric, varying_columns
from learnlab.analysis._layout import _fmt, _points, matches, ordered, spec_name
from learnlab.analysis._optimum import best, seed_means, slopes
from learnlab.analysis._summary import higher_is_better

__all__ = ["Transfer", "TransferFit", "transfer", "transfer_pairs", "TRANSFER_AXES", "TRANSFER_HPS", "VERDICTS"]

TRANSFER_AXES = ("model.width", "model.depth", "train.batch_size", "train.steps")  # what the report looks along
TRANSFER_HPS = ("train.lr", "model.gamma", "model.branch_multiplier")  # ... and which optimum it follows
VERDICTS = ("transfers", "drifts", "inconclusive")
_RESULTS = ("finished", "diverged")  # statuses with an outcome; failed / interrupted / pending runs are left out


@dataclass
class TransferFit:
    """The analysis of one group of runs (the other varying keys fixed).

    Attributes:
        group: the fixed values of the other varying keys (``{}`` when there are none).
        optima: one dict per axis value, in numeric order: ``axis`` (its value), ``hp`` (the best
            hp, NaN where no run finished), ``lo`` and ``hi`` (its 95% bootstrap interval, NaN with
            fewer than 2 seeds), ``at_edge`` (the grid argmin is the smallest or largest hp tried),
            ``convex`` (False: the parabola around the argmin opens downwards), ``seeds``
            (seeds with a result), ``value`` (the metric at the optimum: the parabola's minimum,
            as a geometric mean over seeds for a loss).
        slope: OLS slope of log hp* against log axis (NaN with fewer than 2 optima).
        slope_ci: its 95% bootstrap interval (NaN, NaN where undefined).
        intercept: the fit's intercept: log hp* = intercept + slope * log axis.
        verdict: ``transfers``, ``drifts`` or ``inconclusive``.
        reason: a sentence that says why.
        table: the loss table behind it (pandas DataFrame; one row per axis value and hp):
            ``axis``, ``hp``, ``value`` (seed-mean metric, geometric for a loss; NaN where a
            seed diverged), ``low``, ``high`` (over the seeds that finished), ``seeds``, ``diverged``.
    """

    group: dict[str, Any]
    optima: list[dict[str, Any]]
    slope: float
    slope_ci: tuple[float, float]
    intercept: float
    verdict: str
    reason: str
    table: Any = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``group, slope, slope_ci, verdict, reason, optima`` (NaN -> None)."""
        return _plain(
            {
                "group": self.group,
                "slope": self.slope,
                "slope_ci": list(self.slope_ci),
                "verdict": self.verdict,
                "reason": self.reason,
                "optima": self.optima,
            }
        )


@dataclass
class Transfer:
    """The result of :func:`transfer`: one :class:`TransferFit` per group of runs.

    With exactly one group, ``slope``, ``slope_ci``, ``verdict``, ``reason`` and ``optima`` are
    that group's; with several they raise a ValueError naming the groups (read ``groups``).
    """

    axis: str
    hp: str
    metric: str
    groups: dict[str, TransferFit]
    tolerance: float
    scale: str  # "log": the loss's log was averaged over seeds and fitted; "linear": the metric itself
    maximise: bool  # higher is better (accuracy)
    name: str = "learnlab"  # the spec's name, for titles

    @property
    def fit(self) -> TransferFit:
        """The only group's fit."""
        if len(self.groups) != 1:
            raise ValueError(
                f"this transfer analysis has {len(self.groups)} groups ({'; '.join(self.groups)}): "
                "read .groups[label] for each"
            )
        return next(iter(self.groups.values()))

    @property
    def slope(self) -> float:
        return self.fit.slope

    @property
    def slope_ci(self) -> tuple[float, float]:
        return self.fit.slope_ci

    @property
    def verdict(self) -> str:
        return self.fit.verdict

    @property
    def reason(self) -> str:
        return self.fit.reason

    @property
    def optima(self) -> list[dict[str, Any]]:
        return self.fit.optima

    def to_dict(self) -> dict[str, Any]:
        """The ``learnlab transfer --json`` object: ``axis, hp, metric, tolerance`` and, for one
        group, ``slope, slope_ci, verdict, reason, optima``; for several, ``groups`` (a list of
        :meth:`TransferFit.to_dict`)."""
        head = {"axis": self.axis, "hp": self.hp, "metric": self.metric, "tolerance": self.tolerance}
        if len(self.groups) == 1:
            fit = self.fit.to_dict()
            fit.pop("group")
            return _plain({**head, **fit})
        return _plain({**head, "groups": [f.to_dict() for f in self.groups.values()]})


def transfer(
    store,
    axis: str = "model.width",
    hp: str = "train.lr",
    metric: str | None = None,
    *,
    tolerance: float = 0.2,
    bootstrap: int = 1000,
    seed: int = 0,
) -> Transfer:
    """Whether the best ``hp`` stays put along ``axis``: optima with intervals, a slope, a verdict.

    Per value of ``axis``, the final ``metric`` of every (hp, seed) gives a seed-mean curve over
    the hp grid; its best hp is the grid argmin, refined by a least-squares parabola in log hp
    through the argmin and up to 2 finite neighbours either side (vertex clamped into their
    range). The slope is the OLS slope of log hp* on log axis. A bootstrap over seeds (``bootstrap``
    replicates: an axis value's seeds drawn with replacement, the same draw at every hp, as a
    seed's runs are paired across hps) recomputes every optimum and the slope; the 2.5 and 97.5
    percentiles are the 95% intervals. Point estimates are from the data itself.

    Verdict: ``inconclusive`` if an optimum is at the grid's edge, an axis value has fewer than 2
    seeds, a curve is not convex at its optimum, or fewer than 2 axis values have an optimum;
    else ``transfers`` if the slope's interval lies inside [-tolerance, tolerance], ``drifts`` if
    it lies entirely beyond one side, ``inconclusive`` if it straddles ±tolerance. With only 2
    axis values the verdict is given and the reason says the slope is through two points. The
    percentile bootstrap over few seeds is optimistic (docs/store.md: its 95% interval covered a
    known optimum about half the time with 2 seeds, 80% with 4).

    Other config keys that vary (besides ``axis``, ``hp`` and ``seed``) split the runs into groups
    analysed apart (``model.param: sp`` vs ``mup``); a key that changes together with ``axis`` or
    ``hp`` (a zip) follows them instead.

    Args:
        store: an open :class:`~learnlab.experiments.Store`, or the path of an output folder.
        axis: a varying, numeric, positive config key (``model.width``, ``model.depth``, ...).
        hp: the hyperparameter, likewise (``train.lr``, ``model.gamma``, ...).
        metric: a final metric of ``store.runs()`` (default: the test metric of the loss).
        tolerance: a slope with |slope| below it is "no drift".
        bootstrap: replicates of the bootstrap over seeds.
        seed: seed of the bootstrap's ``numpy.random.Generator``.

    Returns:
        A :class:`Transfer`.

    Raises:
        ValueError: ``axis``/``hp`` missing, not varying, not numeric or not positive (the message
            lists the varying keys); an unknown ``metric``; ``tolerance <= 0`` or ``bootstrap < 1``.
    """
    import numpy as np

    if isinstance(store, (str, Path)):
        from learnlab.experiments import open_store

        with open_store(store) as opened:
            return transfer(opened, axis, hp, metric, tolerance=tolerance, bootstrap=bootstrap, seed=seed)
    if not (tolerance > 0 and math.isfinite(tolerance)):
        raise ValueError(f"tolerance must be a finite number > 0 (a |slope| below it is no drift); got {tolerance}")
    if bootstrap < 1:
        raise ValueError(f"bootstrap must be >= 1 replicates; got {bootstrap}")
    runs = store.runs()
    metric = _check(runs, axis, hp, metric)
    runs = runs.dropna(subset=[axis, hp])
    runs = runs.assign(**{hp: runs[hp].astype(float), "seed": runs["seed"] if "seed" in runs else 0})
    maximise = higher_is_better(metric)
    done = runs.loc[runs["status"] == "finished", metric].astype(float)
    done = done[np.isfinite(done)]
    scale = "log" if not maximise and (done > 0).all() else "linear"
    runs = runs.assign(_y=_objective(runs, metric, scale, maximise))
    keys = _group_keys(runs, axis, hp)
    rng = np.random.default_rng(seed)
    groups = {}
    for point in _points(runs, keys):
        rows = runs[matches(runs, point)]
        label = ", ".join(f"{k}={_fmt(v)}" for k, v in point.items()) or "all runs"
        groups[label] = _fit(rows, point, axis, hp, scale, maximise, tolerance, bootstrap, rng)
    return Transfer(axis, hp, metric, groups, float(tolerance), scale, maximise, spec_name(runs))


def transfer_pairs(runs) -> list[tuple[str, str]]:
    """The (axis, hp) pairs of ``TRANSFER_AXES`` x ``TRANSFER_HPS`` that this sweep varies, both
    numeric and positive: those the report analyses."""
    import numpy as np
    import pandas as pd

    if runs.empty:
        return []
    varying = set(varying_columns(runs))

    def usable(key: str) -> bool:
        if key not in varying or not pd.api.types.is_numeric_dtype(runs[key]) or runs[key].dtype == bool:
            return False
        values = runs[key].dropna().astype(float)
        return bool((values > 0).all() and np.isfinite(values).all())

    return [(a, h) for a in TRANSFER_AXES if usable(a) for h in TRANSFER_HPS if usable(h)]


def _check(runs, axis: str, hp: str, metric: str | None) -> str:
    """The metric to use, after checking ``axis`` and ``hp`` (ValueError otherwise)."""
    import pandas as pd

    varying = varying_columns(runs) if not runs.empty else []
    listed = ", ".join(varying) or "none (this store has no config key that varies)"
    if axis == hp:
        raise ValueError(f"axis and hp are both {axis!r}: the optimum of one key along another; varying keys: {listed}")
    for name, key in (("axis", axis), ("hp", hp)):
        if key not in varying:
            raise ValueError(f"{name}={key!r} is not a config key that varies in this store; varying keys: {listed}")
        values = runs[key].dropna()
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            shown = ", ".join(_fmt(v) for v in ordered(values)[:6])
            raise ValueError(f"{name}={key!r} must be numeric (it is placed on a log scale); its values: {shown}")
        if (values.astype(float) <= 0).any():
            raise ValueError(f"{name}={key!r} must be > 0 (it is placed on a log scale); got {_fmt(values.min())}")
    metric = metric or default_metric(runs)
    if metric not in runs:
        finals = sorted(c for c in runs.columns if "/" in c and not c.startswith(("steps_to/", "reached/")))
        raise ValueError(f"metric {metric!r} is not in this store; final metrics present: {', '.join(finals)}")
    return metric


def _objective(runs, metric: str, scale: str, maximise: bool):
    """Per run, the value minimised: log(metric), -metric or metric; +inf diverged; NaN no result."""
    import numpy as np

    value = runs[metric].astype(float).where(runs["status"] == "finished")
    with np.errstate(divide="ignore", invalid="ignore"):
        y = -value if maximise else (np.log(value) if scale == "log" else value)
    y = y.where(np.isfinite(y) | (y == np.inf))  # a finished run with a non-finite metric: no result
    return y.mask(runs["status"] == "diverged", np.inf)


def _group_keys(runs, axis: str, hp: str) -> list[str]:
    """The varying keys that split the runs into groups: not ``axis``, ``hp``, nor a key whose
    value is fixed by the (axis, hp) point (a zip with them)."""
    others = [k for k in varying_columns(runs) if k not in (axis, hp)]
    cells = runs.groupby([axis, hp])
    return [k for k in others if cells[k].agg(lambda s: s.astype(str).nunique()).max() > 1]


def _fit(rows, point, axis, hp, scale, maximise, tolerance, bootstrap, rng) -> TransferFit:
    """One group: optima per axis value, the slope, their bootstrap intervals, the verdict."""
    import pandas as pd

    optima, table, boots, sides = [], [], [], []
    for value in ordered(rows[axis]):
        at = rows[(rows[axis] == value) & rows["status"].isin(_RESULTS)]
        optimum, side, boot, cells = _optimum(at, hp, scale, maximise, bootstrap, rng)
        optima.append({"axis": value.item() if hasattr(value, "item") else value, **optimum})
        sides.append(side)
        boots.append(boot)
        table += [{"axis": optima[-1]["axis"], **row} for row in _table(at, hp, cells, scale, maximise)]
    slope, ci, intercept = _slope(optima, boots)
    verdict, reason = _verdict(axis, hp, optima, sides, slope, ci, tolerance)
    return TransferFit(_plain(point), optima, slope, ci, intercept, verdict, reason, pd.DataFrame(table))


def _optimum(at, hp, scale, maximise, bootstrap, rng):
    """The best ``hp`` at one axis value, from its runs with a result ``at``.

    Returns:
        ``(optimum, edge side, bootstrap log hp* (B,) or None, cells)``: the optimum's entry of
        :attr:`TransferFit.optima` (without ``axis``), -1/0/+1, the replicates (None with fewer
        than 2 seeds) and the (hp x seed) objective table.
    """
    import numpy as np

    cells = at.groupby([hp, "seed"])["_y"].mean().unstack("seed") if not at.empty else None
    if cells is not None:
        cells = cells.dropna(how="all").dropna(axis=1, how="all")  # (H, S) objective
    if cells is None or cells.empty:
        none = {"hp": math.nan, "lo": math.nan, "hi": math.nan, "at_edge": False, "convex": True, "seeds": 0}
        return {**none, "value": math.nan}, 0, None, None
    x, values = np.log(cells.index.to_numpy(float)), cells.to_numpy(float)
    n_seeds = values.shape[1]
    found = best(seed_means(values), x)
    boot = None
    if n_seeds >= 2:  # the same resampled seeds at every hp: a seed's runs are paired across hps
        boot = best(seed_means(values, rng.integers(0, n_seeds, size=(bootstrap, n_seeds))), x).x
    lo, hi = _interval(boot) if boot is not None and np.isfinite(found.x[0]) else (math.nan, math.nan)
    optimum = {
        "hp": math.exp(found.x[0]),
        "lo": math.exp(lo),
        "hi": math.exp(hi),
        "at_edge": bool(np.isfinite(found.x[0]) and found.edge[0] != 0),
        "convex": bool(found.convex[0]),
        "seeds": int(n_seeds),
        "value": _shown(float(found.value[0]), scale, maximise),
    }
    return optimum, int(found.edge[0]), boot, cells


def _interval(samples) -> tuple[float, float]:
    """The 2.5 and 97.5 percentiles of the finite samples (NaN, NaN if there are none)."""
    import numpy as np

    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return math.nan, math.nan
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return float(lo), float(hi)


def _slope(optima, boots) -> tuple[float, tuple[float, float], float]:
    """OLS slope of log hp* on log axis over the axis values with an optimum, its bootstrap
    interval (undefined where an axis value has fewer than 2 seeds) and the intercept."""
    import numpy as np

    keep = [k for k, o in enumerate(optima) if math.isfinite(o["hp"])]
    if len(keep) < 2:
        return math.nan, (math.nan, math.nan), math.nan
    u = np.log([float(optima[k]["axis"]) for k in keep])
    slope, intercept = slopes(u, np.log([optima[k]["hp"] for k in keep]))
    ci = (math.nan, math.nan)
    if all(boots[k] is not None for k in keep):
        replicate, _ = slopes(u, np.stack([boots[k] for k in keep], axis=1))
        ci = _interval(replicate)
    return float(slope[0]), ci, float(intercept[0])


def _verdict(axis, hp, optima, sides, slope, ci, tolerance) -> tuple[str, str]:
    problems = []
    for o, side in zip(optima, sides):
        at = f"{axis}={_fmt(o['axis'])}"
        if not math.isfinite(o["hp"]):
            problems.append(f"no run finished at {at}")
        elif o["at_edge"]:
            which = "smallest" if side < 0 else "largest"
            problems.append(f"the best {hp} at {at} is the {which} tried ({o['hp']:.3g}): the optimum may lie beyond")
        elif not o["convex"]:
            problems.append(f"the curve at {at} is not convex around its best {hp} ({o['hp']:.3g})")
        if 0 < o["seeds"] < 2:
            problems.append(f"only 1 seed at {at}: an interval needs 2 or more")
    found = sum(math.isfinite(o["hp"]) for o in optima)
    if found < 2:
        problems.append(f"a slope needs an optimum at 2 or more values of {axis}; got {found}")
    elif not problems and not all(map(math.isfinite, ci)):
        problems.append("the slope's bootstrap interval is undefined")
    if problems:
        return "inconclusive", "; ".join(problems)
    lo, hi = ci
    said = f"slope of log {hp}* on log {axis} = {slope:.2f}, 95% interval [{lo:.2f}, {hi:.2f}]"
    note = f" (only 2 values of {axis}: the slope is through two points)" if len(optima) == 2 else ""
    if -tolerance <= lo and hi <= tolerance:
        return "transfers", f"{said}, inside ±{tolerance:g}: the best {hp} does not move with {axis}{note}"
    if lo > tolerance or hi < -tolerance:
        where = f"above +{tolerance:g}" if lo > tolerance else f"below -{tolerance:g}"
        moves = "grows" if slope > 0 else "falls"
        return "drifts", f"{said}, entirely {where}: the best {hp} {moves} as {axis} grows{note}"
    return "inconclusive", f"{said} straddles ±{tolerance:g}: more seeds or a finer grid{note}"


def _table(at, hp, cells, scale, maximise) -> list[dict[str, Any]]:
    """Rows of the loss table at one axis value, one per hp (see :attr:`TransferFit.table`)."""
    import numpy as np

    if cells is None:
        return []
    rows = []
    for h, mean in zip(cells.index, seed_means(cells.to_numpy(float))[0]):
        seeds = cells.loc[h]
        shown = [_shown(float(v), scale, maximise) for v in seeds[np.isfinite(seeds)]]
        rows.append(
            {
                "hp": float(h),
                "value": _shown(float(mean), scale, maximise) if np.isfinite(mean) else math.nan,
                "low": min(shown) if shown else math.nan,
                "high": max(shown) if shown else math.nan,
                "seeds": len(shown),
                "diverged": int(((at[hp] == h) & (at["status"] == "diverged")).sum()),
            }
        )
    return rows


def _shown(y: float, scale: str, maximise: bool) -> float:
    """An objective value back in the metric's units."""
    return -y if maximise else (math.exp(y) if scale == "log" else y)


def _plain(value):
    """JSON-ready: numpy scalars to Python, NaN and inf to None, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
