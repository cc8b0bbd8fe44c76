"""``learnlab tasks``: every input, target and dataset a spec can name, with parameters and defaults."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from learnlab.cli._app import app, console


def _params_table(title: str, entries: list[dict]) -> Table:
    table = Table(title=title, show_lines=True, title_justify="left")
    for col in ("name", "meaning", "parameters (default)"):
        table.add_column(col, overflow="fold")
    for e in entries:
        params = "\n".join(
            f"{p['key']}: {p['type']} = {p['default'] if p['default'] is not None else '(required)'}"
            + (f"  # {p['description']}" if p["description"] else "")
            for p in e["params"]
        )
        table.add_row(escape(e["name"]), escape(e["summary"]), escape(params or "-"))
    return table


@app.command()
def tasks(
    as_json: Annotated[bool, typer.Option("--json", help="Print the catalogue as JSON.")] = False,
) -> None:
    """List every input, target and dataset of task specs, with parameters, defaults and meaning."""
    from learnlab.tasks import catalogue

    cat = catalogue()
    if as_json:
        sys.stdout.write(json.dumps(cat, indent=2) + "\n")
        return
    console.print(_params_table("task.inputs (name: ...)", cat["inputs"]))
    console.print(_params_table("task.target (name: ...)", cat["targets"]))
    datasets = Table(
        title="task.dataset (instead of inputs/target; files: learnlab data fetch NAME)",
        show_lines=True,
        title_justify="left",
    )
    for col in ("name", "meaning", "train/test", "files (in task.data_dir or $LEARNLAB_DATA)"):
        datasets.add_column(col, overflow="fold")
    for d in cat["datasets"]:
        files = ", ".join(d["files"]) or (f"none (pip install 'learnlab[{d['extra']}]')" if d["extra"] else "none")
        datasets.add_row(escape(d["name"]), escape(d["summary"]), f"{d['train']}/{d['test']}", escape(files))
    console.print(datasets)
    keys = Table(title="task keys", title_justify="left")
    for col in ("key", "type", "default", "meaning"):
        keys.add_column(col, overflow="fold")
    for p in cat["task"]:
        keys.add_row(*(escape(v) for v in (p["key"], p["type"], p["default"] or "(required)", p["description"])))
    console.print(keys)
