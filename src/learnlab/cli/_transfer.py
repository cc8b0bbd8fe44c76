"""``learnlab transfer``: does a sweep's best hyperparameter stay put along an axis?

Per value of ``--axis`` the best ``--hp`` with a 95% bootstrap interval, the slope of log hp*
on log axis with its interval, and a verdict (transfers / drifts / inconclusive) with its
reason, per group of runs (see :func:`learnlab.analysis.transfer`); a figure in OUT.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from learnlab.cli._app import app, bad_input, console, store_errors
from learnlab.cli._plot import _open

__all__ = ["transfer"]

_STYLE = {"transfers": "green", "drifts": "red", "inconclusive": "yellow"}


@app.command()
@store_errors
def transfer(
    out: Annotated[Path, typer.Argument(help="Output folder of a sweep.")],
    axis: Annotated[
        str, typer.Option(help="The axis the optimum should not move along (model.width, model.depth, ...).")
    ] = "model.width",
    hp: Annotated[str, typer.Option(help="The hyperparameter whose optimum is followed (train.lr, ...).")] = "train.lr",
    metric: Annotated[
        str | None, typer.Option(help="Final metric to minimise (accuracy: maximise); default: the loss's test metric.")
    ] = None,
    tolerance: Annotated[float, typer.Option(help="A |slope| below this is no drift.")] = 0.2,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap replicates (over seeds).")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    figure: Annotated[bool, typer.Option("--figure/--no-figure", help="Draw the figure.")] = True,
    to: Annotated[
        Path | None, typer.Option("--to", help="PNG file (default: OUT/transfer_<axis>_<hp>.png, short key names).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (the last line of stdout).")] = False,
) -> None:
    """Best HP per AXIS value with intervals, the slope of log HP* on log AXIS and a verdict."""
    from learnlab.analysis import plot_transfer
    from learnlab.analysis import transfer as analyse

    store = _open(out)
    try:
        result = analyse(store, axis, hp, metric, tolerance=tolerance, bootstrap=bootstrap, seed=seed)
    except ValueError as exc:
        store.close()
        bad_input(str(exc))
    store.close()
    path = None
    if figure:
        path = to or out / f"transfer_{axis.rsplit('.', 1)[-1]}_{hp.rsplit('.', 1)[-1]}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        plot_transfer(result, path)
    if as_json:
        sys.stdout.write(json.dumps({**result.to_dict(), "figure": str(path) if path else None}) + "\n")
        return
    for label, fit in result.groups.items():
        console.print(_table(result, label if len(result.groups) > 1 else "", fit))
        lo, hi = fit.slope_ci
        console.print(
            f"slope of log {hp}* on log {axis}: {_num(fit.slope, '.3f')}, 95% interval "
            f"[{_num(lo, '.3f')}, {_num(hi, '.3f')}] (tolerance ±{tolerance:g})",
            markup=False,
            soft_wrap=True,
        )
        console.print(f"[{_STYLE[fit.verdict]}]{fit.verdict}[/]: {escape(fit.reason)}", soft_wrap=True, highlight=False)
    if path:
        console.print(f"figure: {path}", markup=False, soft_wrap=True)


def _table(result, label: str, fit) -> Table:
    table = Table(title=f"{label + ': ' if label else ''}best {result.hp} per {result.axis}", title_justify="left")
    for column in (result.axis, f"best {result.hp}", "95% interval", "edge", "seeds", result.metric):
        table.add_column(escape(column), justify="right")
    for o in fit.optima:
        edge = "at edge" if o["at_edge"] else ("not convex" if not o["convex"] else "")
        table.add_row(
            escape(_value(o["axis"])),
            _num(o["hp"], ".3g"),
            f"[{_num(o['lo'], '.3g')}, {_num(o['hi'], '.3g')}]",
            edge,
            str(o["seeds"]),
            _num(o["value"], ".4g"),
        )
    return table


def _num(value: float, spec: str) -> str:
    return format(value, spec) if math.isfinite(value) else "-"


def _value(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
