"""Specs: YAML files with ``name``, ``seed``, ``task``, ``model``, ``train``, ``sweep``.

A spec is validated in full before anything runs: the file, the overrides, and every
run the sweep expands to. All problems are reported at once, with their key paths.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, PositiveInt, ValidationError, field_validator

from learnlab._spec_base import Section
from learnlab.experiments._errors import SpecError, problems_from_validation, register_tagged
from learnlab.models._spec import ModelSpec
from learnlab.tasks._spec import TAGGED_SPECS, TaskSpec
from learnlab.train._spec import TrainSpec

__all__ = ["Spec", "RunConfig", "cross_checks", "SweepSpec", "load_spec", "parse_overrides", "set_dotted", "get_dotted"]

register_tagged(TAGGED_SPECS)


class SweepSpec(Section):
    """Which runs: a Cartesian ``grid`` and lists advanced together (``zip``), times ``seeds``."""

    grid: dict[str, list[Any]] = Field(default_factory=dict)
    zip: dict[str, list[Any]] = Field(default_factory=dict)
    seeds: PositiveInt | list[int] = 1

    @field_validator("grid", "zip")
    @classmethod
    def _non_empty_axes(cls, axes: dict[str, list[Any]]):
        empty = [k for k, v in axes.items() if len(v) == 0]
        if empty:
            raise ValueError(f"axes {empty} have no values")
        return axes

    @field_validator("zip")
    @classmethod
    def _equal_lengths(cls, axes: dict[str, list[Any]]):
        lengths = {k: len(v) for k, v in axes.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"zip lists must have equal lengths; got {lengths}")
        return axes


class RunConfig(Section):
    """One fully resolved run: what its id hashes, what the store records."""

    seed: int = 0
    task: TaskSpec
    model: ModelSpec = Field(default_factory=ModelSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)


def cross_checks(run: RunConfig) -> list[tuple[str, str]]:
    """What the recipe asks of the task, as (key path, problem) pairs."""
    problems = []
    online = getattr(run.task, "n_train", None) is None and getattr(run.task, "dataset", None) is None
    if online and run.train.epochs is not None:
        problems.append(("train.epochs", "needs an offline task (set task.n_train); use train.steps online"))
    if online and "train" in run.train.eval_sets:
        problems.append(("train.eval_sets", "eval set 'train' needs an offline task (set task.n_train)"))
    if "grid" in run.train.eval_sets:
        inputs = getattr(run.task, "inputs", None)
        if inputs is None or getattr(inputs, "name", None) != "box" or inputs.d > 2:
            problems.append(("train.eval_sets", "eval set 'grid' needs task.inputs.name = box with d <= 2"))
    return problems


class Spec(RunConfig):
    """A whole spec: a base run plus the sweep around it."""

    name: str = "experiment"
    sweep: SweepSpec = Field(default_factory=SweepSpec)


def get_dotted(tree: dict, key: str):
    node = tree
    for part in key.split("."):
        node = node[part]
    return node


def set_dotted(tree: dict, key: str, value) -> None:
    """Set ``tree[a][b][c] = value`` for key ``a.b.c``, creating sections as needed."""
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def parse_overrides(overrides: list[str]) -> tuple[list[tuple[str, Any]], list[tuple[str, str]]]:
    """``key=value`` strings -> [(key, YAML-parsed value)], plus problems."""
    parsed, problems = [], []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            problems.append(("", f"override {item!r} is not of the form key=value"))
            continue
        try:
            parsed.append((key.strip(), yaml.safe_load(raw)))
        except yaml.YAMLError as exc:
            problems.append((key.strip(), f"override value {raw!r} is not valid YAML: {exc}"))
    return parsed, problems


def read_spec_file(path: str | Path) -> dict:
    """Read a YAML spec into a dict; a clear SpecError if missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise SpecError([("", f"spec file not found: {path}")])
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError([("", f"malformed YAML: {exc}")], source=str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError([("", f"a spec must be a mapping of sections, got {type(data).__name__}")], source=str(path))
    return data


def load_spec(spec: str | Path | dict | Spec, overrides: list[str] | None = None) -> tuple[Spec, dict]:
    """Read, override and validate a spec.

    Args:
        spec: path to a YAML file, a dict in the same shape, or a :class:`Spec`.
        overrides: ``key=value`` strings with dotted keys (``train.lr=0.3``).

    Returns:
        (validated spec, the raw dict after overrides), the latter for expanding sweeps.

    Raises:
        SpecError: listing every problem with its key path.
    """
    source = None
    if isinstance(spec, Spec):
        raw = spec.model_dump(mode="json")
    elif isinstance(spec, dict):
        raw = copy.deepcopy(spec)
    else:
        source = str(spec)
        raw = read_spec_file(spec)
    parsed, problems = parse_overrides(list(overrides or []))
    for key, value in parsed:
        set_dotted(raw, key, value)
    try:
        validated = Spec.model_validate(raw)
    except ValidationError as err:
        problems += problems_from_validation(err, Spec)
        raise SpecError(problems, source=source) from None
    if problems:
        raise SpecError(problems, source=source)
    return validated, raw
