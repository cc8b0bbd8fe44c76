"""The ``learnlab`` command line: one module per group of commands, all on one typer app."""

from learnlab.cli import (
    _coord,  # noqa: F401
    _data,  # noqa: F401  (registers data fetch)
    _lr,  # noqa: F401
    _plot,  # noqa: F401  (registers plot, report)
    _run,  # noqa: F401  (registers run, status, export, schema)
    _tasks,  # noqa: F401
    _transfer,  # noqa: F401
)
from learnlab.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``learnlab`` console script and ``python -m learnlab``."""
    import warnings

    from learnlab._cpu import tune_cpu
    from learnlab.cli._app import show_warning

    tune_cpu()  # before any command imports torch (see learnlab._cpu)
    warnings.showwarning = show_warning  # "warning: ..." lines, not file:line and source
    app()
