"""User code named in specs: ``"package.module:attr"`` strings.

Specs name user callables (targets, models, losses, probes) by an import path so a
spec stays plain data (YAML, JSON, the store) and runs the same in any process.
"""

from __future__ import annotations

import difflib
import importlib
import re

from learnlab._callables import is_callable_ref, lookup

__all__ = ["ImportRefError", "resolve", "is_ref"]

# ``package.module:attr`` or ``package.module:Class.attr`` (identifiers only)
_REF = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


class ImportRefError(ValueError):
    """A ``"package.module:attr"`` reference cannot be resolved (a ``ValueError``, so spec
    validation reports it like any other bad value)."""


def is_ref(value: object) -> bool:
    """Whether ``value`` is spelled like ``"package.module:attr"`` (not whether it resolves),
    or is the reference of a callable handed to the Python API (``"callable:..."``)."""
    if is_callable_ref(value):
        return True
    return isinstance(value, str) and bool(_REF.match(value.strip()))


def resolve(ref: str):
    """Import the object named by ``"package.module:attr"``.

    ``attr`` may be dotted (``"pkg.mod:Class.method"``). The module is imported with
    :func:`importlib.import_module`, so it must be importable from ``sys.path`` in the
    process that runs the code (workers too: keep user code in an installed package or
    next to the spec, not in a notebook cell).

    Args:
        ref: the reference string.

    Returns:
        The object (usually a callable).

    Raises:
        ImportRefError: the string is malformed, the module does not import (with the
            import error), or the attribute is missing (with the names the module has).
    """
    if is_callable_ref(ref):
        try:
            return lookup(ref)
        except ValueError as exc:
            raise ImportRefError(str(exc)) from None
    if not is_ref(ref):
        raise ImportRefError(
            f"expected a reference of the form 'package.module:attr', got {ref!r}; "
            "write the module's import path, a colon, then the attribute name"
        )
    module_name, _, attr_path = ref.strip().partition(":")
    try:
        obj = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to see
        raise ImportRefError(
            f"cannot import module {module_name!r} named in {ref!r}: {type(exc).__name__}: {exc}; "
            "check the spelling and that the module is on sys.path (installed or in the working directory)"
        ) from None
    where = module_name
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(obj) if not n.startswith("_"))
            close = difflib.get_close_matches(part, public, n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            shown = ", ".join(public[:20]) + (", ..." if len(public) > 20 else "")
            raise ImportRefError(
                f"{where!r} has no attribute {part!r} (named in {ref!r}); {hint}it has: {shown or 'no public names'}"
            )
        obj = getattr(obj, part)
        where = f"{where}:{part}" if where == module_name else f"{where}.{part}"
    return obj
