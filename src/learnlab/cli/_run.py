"""``learnlab run | status | export | schema``: sweeps and their stores."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from learnlab.cli._app import app, bad_input, console


class ExecutorName(str, Enum):
    auto = "auto"
    serial = "serial"
    processes = "processes"
    ensemble = "ensemble"
    ray = "ray"


class ExportFormat(str, Enum):
    csv = "csv"
    parquet = "parquet"


@app.command()
def run(
    spec: Annotated[Path, typer.Argument(help="YAML spec file.")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides with dotted keys.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (results.db, figures).")] = Path("runs/out"),
    executor: Annotated[
        ExecutorName, typer.Option(help="auto: stack runs that share all shapes (ensemble), else a process pool.")
    ] = ExecutorName.auto,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes (default: cores).")] = None,
    max_members: Annotated[
        int | None, typer.Option(min=1, help="Largest stacked group (default 64 for ensemble, 1 for pools).")
    ] = None,
    devices: Annotated[
        str | None,
        typer.Option(help="Comma-separated devices to spread runs over (cpu, cuda:0,cuda:1); overrides train.device."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the expanded runs and groups, and exit.")] = False,
    extend: Annotated[
        bool,
        typer.Option(
            "--extend",
            help="Continue each run from a shorter run of its config in OUT (saved with train.save_final).",
        ),
    ] = False,
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster to join (host:port or auto); default: a local instance.")
    ] = None,
) -> None:
    """Run a spec's sweep into OUT; re-running resumes (finished runs are skipped).

    The spec is planned once (validated, expanded, grouped, the executor chosen); --dry-run
    prints that plan, and a run executes exactly it.
    """
    from learnlab.experiments import SpecError, plan, sweep

    if ray_address is not None and executor is not ExecutorName.ray:
        bad_input(f"--ray-address needs --executor ray (got --executor {executor.value})")
    try:
        p = plan(
            spec,
            overrides or [],
            out=out,
            executor=executor.value,
            workers=workers,
            max_members=max_members,
            devices=_device_list(devices),
            address=ray_address,
            extend=extend,
        )
    except SpecError as exc:
        bad_input(str(exc))
    except (ValueError, ImportError) as exc:
        bad_input(str(exc))
    if dry_run:
        _print_plan(p)
        return
    if executor is ExecutorName.ensemble and p.reason:
        console.print(f"executor: ensemble ({p.reason})", markup=False)
    if extend:
        console.print(p.extension_summary().strip(), markup=False)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task(f"{p.spec.name}: runs", total=len(p.todo))

        def on_result(result, done, total):
            progress.update(bar, completed=done, total=total)

        store = sweep(p, on_result=on_result)
    _print_summary(store)
    from learnlab.analysis import plot_learning_curves

    figure = out / "learning_curves.png"
    plot_learning_curves(store, figure)
    console.print(f"results: {store.path}\nfigure:  {figure}")
    store.close()


def _device_list(devices: str | None) -> list[str] | None:
    return [d.strip() for d in devices.split(",") if d.strip()] if devices else None


def _print_plan(p) -> None:
    """The plan's runs (id, group, sweep point; done ones marked) and one line on its groups."""
    group_of = p.group_of()
    table = Table(title=f"{p.spec.name}: {len(p.runs)} runs")
    keys = sorted({k for r in p.runs for k in r.point})
    for col in ["run_id", "group", *keys]:
        table.add_column(col)
    for r in p.runs:
        group = "done" if r.run_id in p.done else "copy" if r.run_id in p.copies else str(group_of.get(r.run_id, ""))
        table.add_row(r.run_id, group, *(str(r.point.get(k, "")) for k in keys))
    console.print(table)
    console.print(p.summary(), markup=False)


def _print_summary(store) -> None:
    """One compact row per config: axes, runs (diverged, failed), final test mse, steps to thresholds."""
    from learnlab.analysis import summary_table

    frame = summary_table(store)
    if frame.empty:
        console.print("no runs")
        return
    axes = [c for c in frame.columns if "." in c and "/" not in c]
    short = {a: a.rsplit(".", 1)[-1] for a in axes}
    if len(set(short.values())) < len(axes):
        short = {a: a for a in axes}
    thresholds = [c.split("/", 1)[1] for c in frame.columns if c.startswith("steps_to/")]
    table = Table(title="summary: mean over seeds; steps to threshold (runs that reached it / runs)")
    for a in axes:
        table.add_column(short[a], justify="right")
    for name in ("runs", "diverged", "failed", "test mse", *(f"steps to {c}" for c in thresholds)):
        table.add_column(name, justify="right")
    for _, row in frame.iterrows():
        cells = [_fmt(row[a]) for a in axes]
        runs = int(row["runs"])
        cells += [
            str(runs),
            str(int(row["diverged"])),
            str(int(row["failed"])),
            _fmt(row.get("test/mse", float("nan"))),
        ]
        cells += [f"{_steps(row[f'steps_to/{c}'])} ({int(row[f'reached/{c}'])}/{runs})" for c in thresholds]
        table.add_row(*cells)
    console.print(table)


def _steps(value) -> str:
    """A mean step count, rounded to a whole step (1740, not 1.74e+03)."""
    return "-" if value != value else f"{value:.0f}"


def _fmt(value) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        if value.is_integer() and abs(value) < 1e9:  # a width that pandas made a float: 1024, not 1.02e+03
            return str(int(value))
        return f"{value:.3g}"
    return str(value)


@app.command()
def status(out: Annotated[Path, typer.Argument(help="Output folder of a sweep.")]) -> None:
    """Counts of runs by status, and the failures' reasons."""
    from learnlab.experiments import open_store

    try:
        store = open_store(out)
    except FileNotFoundError as exc:
        bad_input(str(exc))
    runs = store.runs()
    table = Table(title=str(store.path))
    table.add_column("status")
    table.add_column("runs", justify="right")
    for name, count in runs["status"].value_counts().sort_index().items():
        table.add_row(name, str(count))
    console.print(table)
    for _, row in runs[runs["status"].isin(["failed", "diverged", "interrupted"])].iterrows():
        reason = (row["error"] or "").strip().splitlines()
        console.print(f"{row['run_id']} {row['status']}: {reason[-1] if reason else ''}", markup=False)
    store.close()


@app.command()
def export(
    out: Annotated[Path, typer.Argument(help="Output folder of a sweep.")],
    dest: Annotated[Path | None, typer.Option("--to", help="Destination folder (default: OUT).")] = None,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="File format.")] = ExportFormat.csv,
) -> None:
    """Write runs and metrics tables (csv or parquet) from the store."""
    from learnlab.experiments import open_store

    try:
        store = open_store(out)
    except FileNotFoundError as exc:
        bad_input(str(exc))
    dest = dest or out
    dest.mkdir(parents=True, exist_ok=True)
    paths = [dest / f"{name}.{fmt.value}" for name in ("runs", "metrics")]
    for frame, path in zip((store.runs(), store.metrics()), paths):
        if fmt is ExportFormat.csv:
            frame.to_csv(path, index=False)
        else:
            _to_parquet(frame, path)
    console.print(f"wrote {paths[0]} and {paths[1]}")
    store.close()


def _to_parquet(frame, path: Path) -> None:
    """Parquet needs one type per column: mixed-type config columns are written as strings."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        bad_input("--format parquet needs pyarrow: pip install 'learnlab[analysis]'")
    kind = lambda v: float if isinstance(v, (int, float)) and not isinstance(v, bool) else type(v)  # noqa: E731
    mixed = [c for c in frame.columns if frame[c].dtype == object and len({kind(v) for v in frame[c].dropna()}) > 1]
    for c in mixed:
        frame[c] = frame[c].map(lambda v: v if v is None else str(v))
    frame.to_parquet(path, index=False)


@app.command()
def schema() -> None:
    """Print the JSON Schema of specs (for editor completion)."""
    from learnlab.experiments import Spec

    sys.stdout.write(json.dumps(Spec.model_json_schema(), indent=2) + "\n")
