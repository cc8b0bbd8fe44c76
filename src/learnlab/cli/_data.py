"""``learnlab data fetch``: the official files of a real dataset, the one command that downloads."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Annotated

import typer

from learnlab.cli._app import app, bad_input, console

data_app = typer.Typer(
    help="Real datasets' files: fetch the official ones once (runs never download).", no_args_is_help=True
)
app.add_typer(data_app, name="data")


@data_app.command("fetch")
def fetch(
    name: Annotated[str, typer.Argument(help="mnist, fashion_mnist or cifar10.")],
    to: Annotated[
        Path | None,
        typer.Option(
            help="Data folder; the files go to TO/NAME/ (default: $LEARNLAB_DATA, else ~/.cache/learnlab/data)."
        ),
    ] = None,
    mirror: Annotated[
        str | None,
        typer.Option(
            help="Base URL serving the files instead of the official sources; {name} becomes the dataset's "
            "name (default: $LEARNLAB_DATA_MIRROR)."
        ),
    ] = None,
) -> None:
    """Download a dataset's official files, check them, and print the spec line that uses them.

    Files already present with the right checksum are kept; an interrupted download resumes
    where it stopped. A failed download or a wrong checksum exits 2 (a wrong file is deleted).
    digits and mnist1d need no files: the command says so and exits 0.
    """
    from learnlab.tasks import DATASETS, DatasetFilesError, FetchError
    from learnlab.tasks import fetch as fetch_files
    from learnlab.tasks._datasets import ENV_VAR
    from learnlab.tasks._fetch import SOURCES, default_data_dir

    if name not in DATASETS:
        bad_input(f"unknown dataset {name!r}; the datasets with files to fetch: {', '.join(SOURCES)}")
    if name not in SOURCES:
        info = DATASETS[name]
        _say(f"{name} needs no files (pip install 'learnlab[{info.extra}]'): use task.dataset: {name}")
        return
    root = (to if to is not None else default_data_dir()).expanduser().absolute()
    try:
        data_dir = fetch_files(name, root, mirror=mirror)
    except (FetchError, DatasetFilesError, ValueError) as exc:
        bad_input(str(exc))
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        bad_input(f"cannot write{where}: {exc.strerror or exc} (choose another folder with --to)")
    _say(f"{name}: the official files are in {root / name} (checksums and contents checked)")
    if to is None and os.environ.get(ENV_VAR) and data_dir == root:
        _say(f"${ENV_VAR} points there: a spec with task.dataset: {name} finds them as it is")
        return
    _say(f"use them with, in the spec:  task.data_dir: {_yaml_scalar(str(data_dir))}")
    _say(f"or on the command line:  learnlab run SPEC task.data_dir={shlex.quote(str(data_dir))}")


def _say(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _yaml_scalar(text: str) -> str:
    """``text`` as a YAML value: plain if it reads back as itself, else double-quoted."""
    import yaml

    try:
        plain = yaml.safe_load(f"k: {text}") == {"k": text}
    except yaml.YAMLError:
        plain = False
    return text if plain else json.dumps(text)
