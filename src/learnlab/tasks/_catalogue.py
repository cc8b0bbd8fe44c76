"""The catalogue of inputs, targets and datasets, generated from the spec models.

``learnlab tasks`` prints it; because it reads the pydantic models (field names, types,
defaults, descriptions, first docstring line), it cannot drift from what specs accept.
"""

from __future__ import annotations

import typing

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from learnlab.tasks._datasets import DATASETS, ENV_VAR
from learnlab.tasks._spec import TaskSpec
from learnlab.tasks._spec_inputs import INPUT_SPECS
from learnlab.tasks._spec_targets import TARGET_SPECS

__all__ = ["catalogue", "describe_model"]


def _type_name(annotation) -> str:
    """A short, readable type: ``int > 0``, ``list[int]``, ``float | null``, ``uniform|gaussian``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        base, constraints = _type_name(args[0]), []
        for meta in args[1:]:
            for attr, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
                value = getattr(meta, attr, None)
                if value is not None:
                    constraints.append(f"{op} {value}")
            if getattr(meta, "min_length", None):
                constraints.append(f"min {meta.min_length} items")
        return " ".join([base, *constraints])
    if origin is typing.Literal:
        return "|".join(map(str, args))
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        return " | ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _default(field) -> str | None:
    if field.default is not PydanticUndefined:
        return repr(field.default) if field.default is not None else "null"
    if field.default_factory is not None:
        return repr(field.default_factory())
    return None


def describe_model(model: type[BaseModel], skip: tuple[str, ...] = ("name",)) -> list[dict]:
    """One dict per field: ``key``, ``type``, ``default`` (None = required), ``description``."""
    rows = []
    for key, field in model.model_fields.items():
        if key in skip:
            continue
        annotated = (field.annotation, *field.metadata)  # Annotated[T, *metadata] (3.11+ syntax)
        annotation = typing.Annotated[annotated] if field.metadata else field.annotation
        rows.append(
            {
                "key": key,
                "type": _type_name(annotation),
                "default": _default(field),
                "description": field.description or "",
            }
        )
    return rows


def _summary(model) -> str:
    return (model.__doc__ or "").strip().splitlines()[0]


def _tagged(models) -> list[dict]:
    return [
        {"name": m.model_fields["name"].annotation.__args__[0], "summary": _summary(m), "params": describe_model(m)}
        for m in models
    ]


def catalogue() -> dict[str, list[dict]]:
    """Everything a ``task`` section can hold.

    Returns:
        {"inputs": [...], "targets": [...], "datasets": [...], "task": [...]}: inputs and
        targets as {name, summary, params}; datasets as {name, summary, classes, train, test,
        files, extra}; ``task`` = the section's own keys.
    """
    datasets = [
        {
            "name": i.name,
            "summary": i.summary,
            "classes": i.classes,
            "train": i.train_size,
            "test": i.test_size,
            "files": list(i.files),
            "extra": i.extra,
            "looked_in": f"task.data_dir or ${ENV_VAR}" if i.files else "no files needed",
        }
        for i in DATASETS.values()
    ]
    return {
        "inputs": _tagged(INPUT_SPECS),
        "targets": _tagged(TARGET_SPECS),
        "datasets": datasets,
        "task": describe_model(TaskSpec, skip=()),
    }
