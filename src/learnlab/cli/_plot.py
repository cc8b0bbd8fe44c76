"""``learnlab plot | report``: figures and an HTML report out of a sweep's store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from learnlab.cli._app import app, bad_input, console, store_errors

KINDS = ("curves", "thresholds", "lr", "l2-linf", "sharpness", "heatmap", "theory")


def _open(out: Path):
    from learnlab.experiments import open_store

    try:
        return open_store(out)
    except FileNotFoundError as exc:
        bad_input(f"{exc}: run a sweep into {out} first (learnlab run SPEC --out {out})")


@app.command()
@store_errors
def plot(
    out: Annotated[Path, typer.Argument(help="Output folder of a sweep.")],
    kind: Annotated[
        str, typer.Option(help="Figure: curves, thresholds, lr, l2-linf, sharpness, heatmap or theory.")
    ] = "curves",
    metric: Annotated[
        str | None,
        typer.Option(
            help="Metric of the learning curves, or the final metric of kinds lr and heatmap "
            "(default: the test metric of the loss: test/mse, test/cross_entropy, ...)."
        ),
    ] = None,
    x: Annotated[
        str | None,
        typer.Option(
            "--x",
            help="Config axis: of the thresholds figure (default model.width), the heatmap's x, "
            "the theory figure's (default task.n_train).",
        ),
    ] = None,
    y: Annotated[str | None, typer.Option("--y", help="The heatmap's y axis (default: the other axis).")] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Loss threshold of the thresholds figure (default: the smallest in the store).")
    ] = None,
    to: Annotated[Path | None, typer.Option("--to", help="PNG file (default: OUT/<kind>.png).")] = None,
) -> None:
    """Draw one figure of a store; for thresholds also print the fitted power-law exponents."""
    from learnlab import analysis

    if kind not in KINDS:
        bad_input(f"unknown --kind {kind!r}: choose one of {', '.join(KINDS)}")
    store = _open(out)
    path = to or out / f"{kind}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fits = best = None
    metric = metric or analysis.default_metric(store.runs())
    try:
        if kind == "curves":
            _check_metric(store, metric)
            analysis.plot_learning_curves(store, path, metric=metric)
        elif kind == "thresholds":
            x = x or "model.width"
            _, fits = analysis.plot_time_to_threshold(store, path, x=x, threshold=threshold)
        elif kind == "lr":
            _, best = analysis.plot_loss_vs_lr(store, path, metric=metric)
        elif kind == "l2-linf":
            analysis.plot_l2_vs_linf(store, path)
        elif kind == "heatmap":
            analysis.plot_heatmap(store, path, metric=metric, x=x, y=y)
        elif kind == "theory":
            analysis.plot_theory(store, path, x=x or "task.n_train", metric=metric)
        else:
            analysis.plot_sharpness(store, path)
        warnings = analysis.best_at_edge(analysis.summary_table(store, metrics=[metric]), "train.lr", metric)
    except ValueError as exc:
        store.close()
        bad_input(str(exc))
    store.close()
    console.print(f"figure: {path}", markup=False, soft_wrap=True)
    for label, fit in (fits or {}).items():
        console.print(
            f"{label}: steps ~ {fit['prefactor']:.3g} * {x}^({fit['exponent']:.3f} "
            f"± {fit['exponent_stderr']:.3f}), r2 {fit['r2']:.3f}, n {fit['n']}",
            markup=False,
            soft_wrap=True,
        )
    for label, rate in (best or {}).items():
        console.print(f"{label}: best train.lr {rate:g}", markup=False, soft_wrap=True)
    if kind == "lr":
        for warning in warnings:
            console.print(f"warning: {warning}", style="yellow", markup=False, soft_wrap=True)
    if fits == {}:
        console.print(
            f"no fit: no series has runs that reached the threshold at two or more values of {x}", markup=False
        )


def _check_metric(store, metric: str) -> None:
    names = sorted(store.metrics()["name"].unique())
    if metric not in names:
        raise ValueError(
            f"--metric {metric!r} is not in this store; metrics present: {', '.join(names) if names else 'none'}"
        )


@app.command()
@store_errors
def report(
    out: Annotated[Path, typer.Argument(help="Output folder of a sweep.")],
    to: Annotated[Path | None, typer.Option("--to", help="HTML file (default: OUT/report.html).")] = None,
    title: Annotated[str | None, typer.Option(help="Page title (default: spec name and store path).")] = None,
) -> None:
    """Write one self-contained HTML report: status counts, summary, failures, every figure that applies."""
    from learnlab.analysis import report as write_report

    store = _open(out)
    path = write_report(store, to or out / "report.html", title=title)
    store.close()
    console.print(f"report: {path}", markup=False, soft_wrap=True)
