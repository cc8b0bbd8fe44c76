"""The typer application shared by all command modules."""

from __future__ import annotations

import contextlib
import functools
import warnings

import typer
from rich.console import Console

__all__ = ["app", "console", "err_console", "bad_input", "show_warning", "warnings_shown", "store_errors"]

app = typer.Typer(
    name="learnlab",
    help="Rigorous, fast, reproducible experiments on how neural networks learn.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def bad_input(message: str) -> None:
    """Print a user-input error (no traceback) and exit with code 2."""
    err_console.print(message, markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a Python warning as one readable line on stderr (``warnings.showwarning``)."""
    err_console.print(f"warning: {message}", style="yellow", markup=False, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def warnings_shown():
    """Every warning raised inside, printed as a ``warning: ...`` line on stderr (once each)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            seen = set()
            for w in caught:
                text = str(w.message)
                if text not in seen:
                    seen.add(text)
                    show_warning(w.message, w.category, w.filename, w.lineno)


def store_errors(command):
    """A command whose unusable folders, damaged stores and unwritable outputs exit 2 with one
    line saying which file and what is wrong (never a traceback)."""

    @functools.wraps(command)
    def wrapped(*args, **kwargs):
        import sqlite3

        from learnlab.experiments._folder import StoreError

        try:
            return command(*args, **kwargs)
        except StoreError as exc:
            bad_input(str(exc))
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            where = kwargs.get("out")
            store = f"{where}/results.db" if where is not None else "the results store"
            bad_input(f"{store} could not be read ({exc}): it is damaged or not a learnlab store")
        except OSError as exc:
            where = f" {exc.filename}" if exc.filename else ""
            bad_input(f"cannot write or read{where}: {exc.strerror or exc} (write elsewhere with --to, or --out)")

    return wrapped
