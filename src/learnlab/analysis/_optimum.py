"""The best value of a hyperparameter on a grid, for many loss curves at once.

A curve is a seed-mean objective (lower is better) over a grid of ``x = log(hp)``. Its best
value is the grid argmin, refined, when the argmin is inside the grid, by the vertex of a
least-squares parabola ``y = c0 + c1 t + c2 t²`` (``t = x - x[argmin]``) through the argmin and
its finite neighbours (up to ``WINDOW`` either side, at least 3 points); the vertex
``t* = -c1 / (2 c2)`` is clamped into the fitted points' range. A curvature ``c2 <= 0`` is a
non-convex curve: its best value stays the grid argmin. The same function serves the data
(one curve) and its bootstrap replicates (``B`` curves), so both follow one rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["WINDOW", "Best", "seed_means", "best", "slopes"]

WINDOW = 2  # grid points either side of the argmin that the parabola is fitted to


@dataclass
class Best:
    """The best point of each of R curves.

    Attributes:
        x: (R,) log hp* (NaN where the curve has no finite value).
        value: (R,) the objective there (the parabola's minimum where one was fitted).
        edge: (R,) -1 where the argmin is the smallest hp of the grid, +1 the largest, else 0.
        convex: (R,) False where a fitted parabola has curvature <= 0 (True where none was fitted).
        fitted: (R,) whether a parabola refined the grid argmin.
    """

    x: Any
    value: Any
    edge: Any
    convex: Any
    fitted: Any


def seed_means(values, picks=None):
    """The seed-mean of an objective at each hp, for the data or for resampled seeds.

    Args:
        values: (H, S) objective per (hp, seed): finite, +inf (the run diverged: worse than any
            finite value) or NaN (no result: ignored).
        picks: (R, S) seed indices per replicate (drawn with replacement; the same seeds at every
            hp, as the runs of one seed are paired across hps); None = the seeds themselves (R = 1).

    Returns:
        (R, H): the mean over the picked seeds that have a value; +inf where one of them
        diverged; NaN where none has a value.
    """
    import numpy as np

    values = np.asarray(values, dtype=float)
    if picks is None:
        picks = np.arange(values.shape[1])[None, :]
    chosen = values[:, picks]  # (H, R, S)
    have = ~np.isnan(chosen)
    with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 -> NaN: no seed has a value there
        mean = np.where(have, chosen, 0.0).sum(-1) / have.sum(-1)
    return mean.T


def best(curves, x) -> Best:
    """The best point of each curve (see the module's docstring).

    Args:
        curves: (R, H) objective (lower is better; +inf worst; NaN no value) on the grid ``x``.
        x: (H,) log hp, ascending.
    """
    import numpy as np

    curves, x = np.atleast_2d(np.asarray(curves, dtype=float)), np.asarray(x, dtype=float)
    n_rows, n_grid = curves.shape
    rows = np.arange(n_rows)
    filled = np.where(np.isnan(curves), np.inf, curves)
    i = filled.argmin(axis=1)
    found = np.isfinite(filled[rows, i])
    edge = np.where(i == 0, -1, np.where(i == n_grid - 1, 1, 0))
    j = i[:, None] + np.arange(-WINDOW, WINDOW + 1)  # (R, 2 WINDOW + 1) the window's grid indices
    inside = (j >= 0) & (j < n_grid)
    j = np.clip(j, 0, n_grid - 1)
    y = curves[rows[:, None], j]
    use = inside & np.isfinite(y)
    t = np.where(use, x[j] - x[i][:, None], 0.0)  # centred on the argmin: a well-conditioned fit
    y = np.where(use, y, 0.0)
    fit = found & (edge == 0) & (use.sum(1) >= 3)
    out_x = np.where(found, x[i], np.nan)
    value = np.where(found, filled[rows, i], np.nan)
    convex = np.ones(n_rows, dtype=bool)
    if fit.any():
        w, t, y = use[fit].astype(float), t[fit], y[fit]
        s = [(w * t**k).sum(1) for k in range(5)]  # normal equations of least squares in (1, t, t²)
        a = np.stack([np.stack(s[r : r + 3], -1) for r in range(3)], -2)  # (F, 3, 3)
        b = np.stack([(w * t**k * y).sum(1) for k in range(3)], -1)  # (F, 3)
        c0, c1, c2 = np.linalg.solve(a, b[..., None])[..., 0].T
        bowl = c2 > 0
        low = np.where(use[fit], t, np.inf).min(1)
        high = np.where(use[fit], t, -np.inf).max(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            vertex = np.clip(np.where(bowl, -c1 / (2 * c2), 0.0), low, high)
        index = np.flatnonzero(fit)
        convex[index] = bowl
        out_x[index] = np.where(bowl, out_x[index] + vertex, out_x[index])
        value[index] = np.where(bowl, c0 + c1 * vertex + c2 * vertex**2, value[index])
    return Best(out_x, value, np.where(found, edge, 0), convex, fit & convex)


def slopes(log_axis, log_best):
    """Ordinary least-squares slopes of ``log_best`` against ``log_axis``, row by row.

    Args:
        log_axis: (A,) log of the axis values (at least 2 distinct).
        log_best: (R, A) log hp* per row; a row with a NaN has a NaN slope.

    Returns:
        ``(slope, intercept)``, each (R,): ``log hp* = intercept + slope * log axis``.
    """
    import numpy as np

    u = np.asarray(log_axis, dtype=float)
    v = np.atleast_2d(np.asarray(log_best, dtype=float))
    du = u - u.mean()
    slope = (v - v.mean(1, keepdims=True)) @ du / (du @ du)
    return slope, v.mean(1) - slope * u.mean()
