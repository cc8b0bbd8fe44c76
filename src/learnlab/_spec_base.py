"""Shared pydantic base for spec sections, and the declaration of per-member fields.

A field declared with :func:`per_member` may differ between the runs that are trained
together as one stacked model (a learning rate, a seed, a threshold); every other field
is shared by the whole stack (a width, a batch size, the number of steps). Grouping,
model building and the training loop all derive what they may let differ from this one
declaration (see :func:`member_fields`).

A field declared with :func:`seeding` feeds the seed of a random role (``data``: the
training stream, test and evaluation sets and label noise; ``target``: a random target
or teacher; ``init``: the initial draw of the weights). A role's seed derives from the
run's seed and those fields only (see :func:`role_key`), so runs that differ in anything
else (a learning rate, the number of steps, the parameterization) share its randomness.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

__all__ = [
    "Section",
    "per_member",
    "is_per_member",
    "member_fields",
    "seeding",
    "seed_roles",
    "role_key",
    "ROLES",
    "MAX_INT",
    "Width",
    "Depth",
    "Samples",
    "Steps",
    "Small",
]

PER_MEMBER = "per_member"  # the JSON-schema key that marks a per-member field
SEEDS = "seeds"  # the JSON-schema key listing the random roles a field's value seeds
ROLES = ("data", "target", "init")


MAX_INT = 2**63 - 1  # what SQLite and torch's seeds hold; any integer of a spec lies within +-MAX_INT

# Sizes, bounded where a value stops meaning anything on any machine (an absurd value is a spec
# error within a second, not a crash after minutes; what fits this machine is the plan's estimate).
Width = Annotated[int, Field(ge=1, le=2**24)]  # widths, input dimensions, channels, batch sizes
Depth = Annotated[int, Field(ge=1, le=10_000)]  # layers
Samples = Annotated[int, Field(ge=1, le=10**9)]  # examples of a fixed sample or an evaluation set
Steps = Annotated[int, Field(ge=1, le=10**9)]  # optimizer steps and step periods
Small = Annotated[int, Field(ge=1, le=1_000)]  # kernel sizes, degrees, directions


class Section(BaseModel):
    """A spec section: unknown keys, non-finite floats (inf, nan) and integers beyond +-(2**63 - 1)
    are errors."""

    model_config = ConfigDict(extra="forbid", frozen=False, validate_default=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _integers_in_range(cls, value: Any) -> Any:
        _check_integers(value)
        return value


def _check_integers(value: Any, depth: int = 0, where: str = "") -> None:
    """Raise for an integer beyond +-MAX_INT in ``value`` (nested lists and mappings, whose keys
    the message names: a sweep axis ``train.lr`` inside ``sweep.grid``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > MAX_INT:
            at = f"{where}: " if where else ""
            raise ValueError(f"{at}an integer of {len(str(abs(value)))} digits is out of range (at most 2**63 - 1)")
    elif isinstance(value, (list, tuple)) and depth < 4:
        for item in value:
            _check_integers(item, depth + 1, where)
    elif isinstance(value, dict) and depth < 4:
        for key, item in value.items():
            _check_integers(item, depth + 1, f"{where}.{key}" if where else str(key))


def per_member(default: Any = PydanticUndefined, *, examples: tuple[Any, Any], **kwargs: Any) -> Any:
    """A field that may differ between the members of one stacked model.

    Args:
        default: as for ``pydantic.Field`` (or pass ``default_factory``).
        examples: two valid values that train differently; shown in ``learnlab schema``
            and used by the test that stacks two members differing only in this field.
        **kwargs: any other ``pydantic.Field`` argument.
    """
    if len(examples) != 2 or examples[0] == examples[1]:
        raise ValueError(f"per_member needs two different examples; got {examples!r}")
    return Field(default, examples=list(examples), json_schema_extra={PER_MEMBER: True}, **kwargs)


def seeding(*roles: str, default: Any = PydanticUndefined, **kwargs: Any) -> Any:
    """A field whose value feeds the seed of the random ``roles`` (see the module docstring).

    Args:
        *roles: some of ``ROLES``.
        default: as for ``pydantic.Field`` (or pass ``default_factory``).
        **kwargs: any other ``pydantic.Field`` argument.
    """
    unknown = [r for r in roles if r not in ROLES]
    if not roles or unknown:
        raise ValueError(f"seeding needs roles among {ROLES}; got {roles!r}")
    return Field(default, json_schema_extra={SEEDS: list(roles)}, **kwargs)


def seed_roles(field: FieldInfo) -> tuple[str, ...]:
    """The roles a field was declared (with :func:`seeding`) to seed."""
    extra = field.json_schema_extra
    roles = extra.get(SEEDS) if isinstance(extra, dict) else None
    return tuple(str(r) for r in roles) if isinstance(roles, list) else ()


def role_key(section: BaseModel, role: str, exclude: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """The values of ``section``'s fields that seed ``role`` (JSON-able), minus ``exclude``."""
    names = {n for n, f in type(section).model_fields.items() if role in seed_roles(f)} - set(exclude)
    return section.model_dump(mode="json", include=names)


def is_per_member(field: FieldInfo) -> bool:
    """Whether a field was declared with :func:`per_member`."""
    extra = field.json_schema_extra
    return isinstance(extra, dict) and extra.get(PER_MEMBER) is True


def member_fields(model: type[BaseModel], prefix: str = "") -> dict[str, FieldInfo]:
    """Every per-member field under ``model``, by dotted path (``train.lr``, ``task.target.seed``).

    Descends into sub-sections and into every member of a union (a field declared in any
    tagged target counts once, at its path); a per-member field is not descended into.
    """
    out: dict[str, FieldInfo] = {}
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        if is_per_member(field):
            out.setdefault(path, field)
            continue
        for sub in _sections(field.annotation):
            for key, info in member_fields(sub, path + ".").items():
                out.setdefault(key, info)
    return out


def _sections(annotation: Any) -> list[type[BaseModel]]:
    """The section models an annotation holds directly (``X``, ``X | None``, ``A | B``, ``Annotated``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    if typing.get_origin(annotation) in (list, dict, tuple):
        return out  # a list of sections is one value (e.g. probes), not a section
    for arg in typing.get_args(annotation):
        out += _sections(arg)
    return out
