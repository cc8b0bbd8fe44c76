"""Callables handed to the Python API (notebook cells, ``__main__``) inside a spec.

A spec dict may hold a function or class object where a ``"package.module:attr"``
string is allowed (a target, loss, probe, model). Before validation, each one is
replaced by a stable reference ``"callable:<module>.<qualname>:<digest>"`` (the
digest is of its cloudpickled bytes, so editing the function changes the run id),
and the object is kept in this process's registry. Executors ship the registry's
cloudpickled entries to their workers (process pools and Ray), where ``resolve``
finds them again, so a function defined in a notebook works everywhere.
"""

from __future__ import annotations

import hashlib

__all__ = ["register", "lookup", "is_callable_ref", "payload", "install", "replace_callables"]

_PREFIX = "callable:"
_REGISTRY: dict[str, object] = {}


def register(obj) -> str:
    """Keep ``obj`` and return its reference."""
    import cloudpickle

    blob = cloudpickle.dumps(obj)
    name = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"
    ref = f"{_PREFIX}{name}:{hashlib.sha256(blob).hexdigest()[:12]}"
    _REGISTRY[ref] = obj
    return ref


def is_callable_ref(value) -> bool:
    return isinstance(value, str) and value.startswith(_PREFIX)


def lookup(ref: str):
    """The object behind a ``callable:`` reference registered in this process."""
    try:
        return _REGISTRY[ref]
    except KeyError:
        raise ValueError(
            f"{ref!r} names a callable handed to learnlab.sweep in another Python session; "
            "pass the function object again (or give it as 'package.module:attr')"
        ) from None


def payload(refs=None) -> dict[str, bytes]:
    """Cloudpickled registry entries (all, or those in ``refs``) for shipping to workers."""
    import cloudpickle

    keys = _REGISTRY if refs is None else [r for r in refs if r in _REGISTRY]
    return {ref: cloudpickle.dumps(_REGISTRY[ref]) for ref in keys}


def install(blobs: dict[str, bytes] | None) -> None:
    """Register shipped entries in a worker process."""
    if not blobs:
        return
    import cloudpickle

    for ref, blob in blobs.items():
        if ref not in _REGISTRY:
            _REGISTRY[ref] = cloudpickle.loads(blob)


def replace_callables(tree):
    """A copy of a spec tree with every callable replaced by its reference (classes too)."""
    if isinstance(tree, dict):
        return {k: replace_callables(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [replace_callables(v) for v in tree]
    if isinstance(tree, tuple):
        return tuple(replace_callables(v) for v in tree)
    if callable(tree):
        return register(tree)
    return tree


def refs_in(tree) -> set[str]:
    """Every ``callable:`` reference in a config tree."""
    if isinstance(tree, dict):
        return set().union(*(refs_in(v) for v in tree.values())) if tree else set()
    if isinstance(tree, (list, tuple)):
        return set().union(*(refs_in(v) for v in tree)) if tree else set()
    return {tree} if is_callable_ref(tree) else set()
