"""``learnlab run | status | export | schema``: sweeps and their stores."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from learnlab.cli._app import app, bad_input, console, store_errors, warnings_shown


class ExecutorName(str, Enum):
    auto = "auto"
    serial = "serial"
    processes = "processes"
    ensemble = "ensemble"
    ray = "ray"
    slurm = "slurm"


_SLURM = "SLURM (--executor slurm)"


class ExportFormat(str, Enum):
    csv = "csv"
    parquet = "parquet"


@app.command()
@store_errors
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
    metrics: Annotated[
        str | None, typer.Option(help="Final metrics the summary shows, comma-separated (default: those of the loss).")
    ] = None,
    extend: Annotated[
        bool,
        typer.Option(
            "--extend",
            help="Continue each run from a shorter run of its config in OUT (saved with train.save_final).",
        ),
    ] = False,
    append: Annotated[
        bool,
        typer.Option(
            "--append",
            help="Add this spec's runs to an OUT that holds other runs (a folder belongs to one spec otherwise).",
        ),
    ] = False,
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster to join (host:port or auto); default: a local instance.")
    ] = None,
    slurm_partition: Annotated[
        str | None, typer.Option(help="SLURM partition of the jobs.", rich_help_panel=_SLURM)
    ] = None,
    slurm_time: Annotated[
        str | None,
        typer.Option(help="Time limit per job: minutes, HH:MM:SS or D-HH:MM:SS.", rich_help_panel=_SLURM),
    ] = None,
    slurm_cpus: Annotated[
        int | None, typer.Option(min=1, help="CPUs per job (its torch threads).", rich_help_panel=_SLURM)
    ] = None,
    slurm_gpus: Annotated[
        int | None, typer.Option(min=0, help="GPUs per job (1 when train.device is cuda).", rich_help_panel=_SLURM)
    ] = None,
    slurm_mem: Annotated[str | None, typer.Option(help="Memory per job (16G, 4000M).", rich_help_panel=_SLURM)] = None,
    slurm_qos: Annotated[str | None, typer.Option(help="Quality of service.", rich_help_panel=_SLURM)] = None,
    slurm_account: Annotated[str | None, typer.Option(help="Account to charge.", rich_help_panel=_SLURM)] = None,
    slurm_max_jobs: Annotated[
        int | None, typer.Option(min=1, help="Array tasks running at once.", rich_help_panel=_SLURM)
    ] = None,
    slurm_runs_per_job: Annotated[
        int | None,
        typer.Option(min=1, help="Runs packed into one array task (groups are never split).", rich_help_panel=_SLURM),
    ] = None,
    slurm_setup: Annotated[
        list[str] | None,
        typer.Option(
            help="Shell line each job runs first (repeatable): module load ..., source ...", rich_help_panel=_SLURM
        ),
    ] = None,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            help="Submit the SLURM jobs and return; the same command later collects them.",
            rich_help_panel=_SLURM,
        ),
    ] = False,
) -> None:
    """Run a spec's sweep into OUT; re-running resumes (finished runs are skipped).

    The spec is planned once (validated, expanded, grouped, the executor chosen); --dry-run
    prints that plan, and a run executes exactly it. One learnlab writes to a folder at a
    time (a second one exits 2 naming the first); reading it (status, export, report) works
    meanwhile.
    """
    from learnlab.experiments import SpecError, StoreError, plan, sweep

    if ray_address is not None and executor is not ExecutorName.ray:
        bad_input(f"--ray-address needs --executor ray (got --executor {executor.value})")
    slurm = {
        key: value
        for key, value in (
            ("partition", slurm_partition),
            ("time", slurm_time),
            ("cpus", slurm_cpus),
            ("gpus", slurm_gpus),
            ("mem", slurm_mem),
            ("qos", slurm_qos),
            ("account", slurm_account),
            ("max_jobs", slurm_max_jobs),
            ("runs_per_job", slurm_runs_per_job),
            ("setup", slurm_setup or None),
        )
        if value is not None
    }
    if slurm_time is not None and slurm_time.isdigit():
        slurm["time"] = int(slurm_time)
    try:
        with warnings_shown():
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
                append=append,
                slurm=slurm or None,
                detach=detach,
            )
    except SpecError as exc:
        bad_input(str(exc))
    except (ValueError, ImportError) as exc:
        bad_input(str(exc))
    if dry_run:
        _print_plan(p)
        return
    from learnlab.experiments._folder import FolderLock, check_folder
    from learnlab.experiments._slurm import SlurmError

    check_folder(out, write=True)  # before the progress bar: a folder that cannot be made, or is busy,
    FolderLock.check_free(out)  # is said alone
    if executor is ExecutorName.ensemble and p.reason:
        console.print(f"executor: ensemble ({p.reason})", markup=False)
    if extend:
        console.print(p.extension_summary().strip(), markup=False)
    if p.executor == "slurm":
        _say_slurm(p)
    if detach:
        _run_detached(p, out)
        return
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
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            bar = progress.add_task(f"{p.spec.name}: runs", total=len(p.todo))

            def on_result(result, done, total):
                progress.update(bar, completed=done, total=total)

            store = sweep(p, on_result=on_result, progress=False)
    except KeyboardInterrupt:
        raise typer.Exit(code=130) from None  # sweep() said how many runs are stored and how to resume
    except (StoreError, SlurmError) as exc:
        bad_input(str(exc))
    ours = store.subset(r.run_id for r in p.runs)  # an --append folder holds other runs too
    _print_summary(ours, _metric_list(metrics))
    from learnlab.analysis import plot_learning_curves

    figure = out / "learning_curves.png"
    plot_learning_curves(ours, figure)
    console.print(f"results: {store.path}\nfigure:  {figure}")
    if len(ours.statuses()) < len(store.statuses()):
        console.print(f"(this spec's {len(p.runs)} runs; {out} holds {len(store.statuses())}: learnlab status {out})")
    store.close()


def _say_slurm(p) -> None:
    from learnlab.experiments._slurm import Ledger

    waiting = len(Ledger(p.out).open_jobs()) if p.out is not None else 0
    earlier = f"; collecting {waiting} jobs submitted earlier first" if waiting else ""
    console.print(f"executor: slurm (jobs' logs in {p.out}/slurm/<job id>/){earlier}", markup=False)


def _run_detached(p, out: Path) -> None:
    """Submit (and collect what finished meanwhile), say what is queued, and return."""
    from learnlab.experiments import StoreError, sweep
    from learnlab.experiments._slurm import Ledger, SlurmError

    try:
        store = sweep(p, progress=False)
    except (StoreError, SlurmError) as exc:
        bad_input(str(exc))
    statuses = store.subset(r.run_id for r in p.runs).statuses()
    store.close()
    done = sum(s in ("finished", "diverged") for s in statuses.values())
    jobs = Ledger(out).open_jobs()
    runs = sum(len(j.runs) for j in jobs)
    ids = sorted({j.id.split("_")[0] for j in jobs})
    console.print(
        f"{done} of {len(statuses)} runs done; {runs} runs in {len(jobs)} SLURM jobs "
        f"(array jobs {', '.join(ids) or '-'}).\n"
        f"Watch them: learnlab status {out}. Collect them (and submit what is missing): run the same command "
        "again (without --detach it waits for them).",
        markup=False,
    )


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


MAX_ROWS = 60  # summary rows printed; the report and export have them all
MAX_FAILURES = 20
MAX_JOB_ROWS = 20  # SLURM jobs listed one by one; more are counted by state


def _print_summary(store, metrics: list[str] | None = None) -> None:
    """One compact row per config: axes, runs, diverged (how many, at which steps), failed, the
    final metrics that match the loss (mean over finished runs), steps to thresholds; then
    warnings a reader should see (a best learning rate at the edge of the range)."""
    from learnlab.analysis import best_at_edge, format_summary, summary_metrics, summary_table

    frame = summary_table(store, metrics=metrics)
    if frame.empty:
        console.print("no runs")
        return
    shown = summary_metrics(store.runs(), metrics)
    text = format_summary(frame.head(MAX_ROWS), shown)
    table = Table(
        title="summary: means over the runs that finished; diverged runs (at steps); "
        "steps to threshold (runs that reached it / runs)"
    )
    for column in text.columns:
        table.add_column(column, justify="right")
    for cells in text.itertuples(index=False):
        table.add_row(*cells)
    console.print(table)
    if len(frame) > MAX_ROWS:
        console.print(f"... {len(frame) - MAX_ROWS} more configs: learnlab report OUT, or learnlab export OUT")
    for warning in best_at_edge(frame, "train.lr", shown[0]):
        console.print(f"warning: {warning}", style="yellow", markup=False, soft_wrap=True)


@app.command()
@store_errors
def status(
    out: Annotated[Path, typer.Argument(help="Output folder of a sweep.")],
    metrics: Annotated[
        str | None, typer.Option(help="Final metrics to show, comma-separated (default: those of the loss).")
    ] = None,
) -> None:
    """Counts of runs by status, the per-config summary, and the failures' reasons."""
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
    _print_summary(store, _metric_list(metrics))
    _print_slurm_jobs(out)
    bad = runs[runs["status"].isin(["failed", "diverged", "interrupted"])]
    for _, row in bad.head(MAX_FAILURES).iterrows():
        reason = (row["error"] or "").strip().splitlines()
        console.print(f"{row['run_id']} {row['status']}: {reason[-1] if reason else ''}", markup=False)
    if len(bad) > MAX_FAILURES:
        console.print(f"... {len(bad) - MAX_FAILURES} more (every reason: learnlab export {out})", markup=False)
    store.close()


def _print_slurm_jobs(out: Path) -> None:
    """The folder's SLURM jobs not yet collected, as SLURM sees them now: each job when they are few,
    else counts by state and reason."""
    from learnlab.experiments._slurm import SlurmError, slurm_jobs

    try:
        rows = slurm_jobs(out)
    except SlurmError as exc:
        console.print(f"SLURM jobs of this folder could not be asked about: {exc}", markup=False)
        return
    if not rows:
        return
    table = Table(title=f"SLURM jobs not yet collected ({len(rows)})")
    if len(rows) <= MAX_JOB_ROWS:
        for column in ("job", "state", "reason", "runs"):
            table.add_column(column, justify="right" if column == "runs" else "left")
        for row in rows:
            table.add_row(row["job"], row["state"], row["reason"], str(row["runs"]))
    else:
        counts: dict[tuple[str, str], list] = {}
        for row in rows:
            entry = counts.setdefault((row["state"], row["reason"]), [0, 0, row["job"]])
            entry[0] += 1
            entry[1] += row["runs"]
        for column in ("state", "reason", "jobs", "runs", "e.g."):
            table.add_column(column, justify="right" if column in ("jobs", "runs") else "left")
        for (state, reason), (jobs, runs, example) in sorted(counts.items()):
            table.add_row(state, reason, str(jobs), str(runs), example)
    console.print(table)
    console.print(
        f"logs: {out}/slurm/<job>/; collect: learnlab run SPEC --out {out}; stop: scancel <array job id>",
        markup=False,
    )


def _metric_list(metrics: str | None) -> list[str] | None:
    return [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None


@app.command()
@store_errors
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
