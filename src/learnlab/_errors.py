"""Spec errors: every problem at once, each with its key path."""

from __future__ import annotations

import difflib
import functools
import re
import typing

from pydantic import BaseModel, ValidationError

__all__ = ["SpecError", "problems_from_validation", "validated"]


class SpecError(ValueError):
    """A spec (file, overrides, sweep, or the arguments of ``learnlab.train`` / ``make_task``) is
    invalid; ``problems`` lists (key path, message). A ``ValueError``: printed, each problem is a
    ``key: message`` line."""

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None):
        seen, unique = set(), []
        for p in problems:
            if p not in seen:
                seen.add(p)
                unique.append(p)
        self.problems, self.source = unique, source
        super().__init__(self._format())

    def _format(self) -> str:
        where = f" in {self.source}" if self.source else ""
        n = len(self.problems)
        lines = [f"invalid spec{where}: {n} problem{'s' if n != 1 else ''}"]
        lines += [f"  - {path}: {msg}" if path else f"  - {msg}" for path, msg in self.problems]
        return "\n".join(lines)


def validated(model: type[BaseModel], data, section: str, source: str | None = None, **fields):
    """``model`` validated from ``data`` (a dict) and ``fields``; a SpecError with every problem at
    ``<section>.<key>`` otherwise (what the Python API raises, like the CLI's spec errors)."""
    values = {**(data or {}), **fields}
    try:
        return model.model_validate(values)
    except ValidationError as err:
        raise SpecError(problems_from_validation(err, model, prefix=section), source=source) from None


def problems_from_validation(err: ValidationError, model: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
    """Turn a pydantic error into (dotted key path, readable message) pairs.

    The alternatives of a union (``seeds: int | list[int]``) fail one by one; their
    messages are joined into one problem per key ("... or ..."). Discriminator values
    (``parity``) that pydantic adds to locations are dropped: ``model`` says which they are.
    """
    tags = tagged_sections(model)
    out: list[tuple[str, str]] = []
    alternatives: dict[str, list[str]] = {}
    for e in err.errors():
        loc = [str(p) for p in e["loc"] if not _is_union_tag(p, tags)]
        in_union = len(loc) != len(e["loc"]) and not any(str(p) in tags for p in e["loc"])
        path = ".".join(([prefix] if prefix else []) + loc)
        msg = _message(e, model, tags)
        if in_union:
            if path not in alternatives:
                alternatives[path] = []
                out.append((path, ""))
            alternatives[path].append(msg)
        else:
            out.append((path, msg))
    return [(path, msg or " or ".join(dict.fromkeys(alternatives[path]))) for path, msg in out]


def _message(e, model: type[BaseModel], tags: dict[str, type[BaseModel]]) -> str:
    if e["type"] == "extra_forbidden":
        valid = _valid_keys(model, e["loc"][:-1], tags)
        close = difflib.get_close_matches(str(e["loc"][-1]), valid, n=1)
        guess = f" (did you mean {close[0]}?)" if close else ""
        hint = f"; valid keys here: {', '.join(valid)}" if valid else ""
        return f"unknown key{guess}{hint}"
    if e["type"] == "missing":
        return "required key is missing"
    msg = e["msg"].removeprefix("Value error, ")
    if "input" in e and not isinstance(e["input"], dict) and e["type"] not in ("union_tag_invalid",):
        shown = repr(e["input"])
        msg += f" (got {shown if len(shown) <= 80 else shown[:77] + '...'})"
    return msg


_TYPE_PARTS = re.compile(r"^(str|int|float|bool|none|list|dict|tuple)$|[\[\]-]")


def _is_union_tag(part, tags: dict[str, type[BaseModel]]) -> bool:
    """Location parts pydantic adds that are not keys: discriminator values ('parity') and
    union member names ('str', 'constrained-int', 'function-after[...]', 'list[int]')."""
    return isinstance(part, str) and (part in tags or bool(_TYPE_PARTS.search(part)))


def _valid_keys(model: type[BaseModel], loc, tags: dict[str, type[BaseModel]]) -> list[str]:
    """Field names of the (sub)model at ``loc``, following the spec's nesting."""
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            current = tags.get(part)
            if current is None:
                return []
            continue
        current = next(iter(_sections(field.annotation)), None)
        if current is None:
            return []
    return sorted(getattr(current, "model_fields", {}))


@functools.lru_cache(maxsize=16)
def tagged_sections(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """The members of every tagged union reachable from ``model`` (a field that holds one of
    several sections told apart by their ``name: Literal[tag]``), by tag."""
    found: dict[str, type[BaseModel]] = {}
    seen: set[type[BaseModel]] = set()
    todo = [model]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for field in current.model_fields.values():
            members = _sections(field.annotation)
            if len(members) > 1:  # a union of sections: its members' name tags appear in error locations
                for member in members:
                    name = member.model_fields.get("name")
                    if name is not None and typing.get_origin(name.annotation) is typing.Literal:
                        for tag in typing.get_args(name.annotation):
                            found.setdefault(str(tag), member)
            todo += members
    return found


def _sections(annotation) -> list[type[BaseModel]]:
    """Section models inside an annotation (``X``, ``X | None``, ``list[X]``, unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [sub for arg in typing.get_args(annotation) for sub in _sections(arg)]
