"""Specs: YAML files with ``name``, ``seed``, ``task``, ``model``, ``train``, ``sweep``.

A spec is validated in full before anything runs: the file, the overrides, and every
run the sweep expands to. All problems are reported at once, with their key paths.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_serializer, model_validator

from learnlab._callables import replace_callables
from learnlab._errors import SpecError, problems_from_validation
from learnlab._spec_base import Section, per_member
from learnlab.experiments._facts import PlanFacts
from learnlab.models._spec import ModelSpec
from learnlab.tasks._spec import TaskSpec
from learnlab.theory._spec import TheorySpec
from learnlab.train._spec import TrainSpec

__all__ = [
    "Spec",
    "RunConfig",
    "cross_checks",
    "SweepSpec",
    "SlurmSpec",
    "load_spec",
    "validate_config",
    "parse_overrides",
    "set_dotted",
]


MAX_RUNS = 100_000  # runs in one spec (one output folder): more is a spec error, said before expanding


def parse_time(value: int | str) -> int:
    """A SLURM time limit (minutes, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``)
    in whole minutes (rounded up, at least 1).

    Raises:
        ValueError: for anything else, naming the forms that are allowed.
    """
    forms = "minutes (e.g. 90), MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"
    if isinstance(value, bool):
        raise ValueError(f"a time limit is {forms}; got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"a time limit must be at least 1 minute; got {value}")
        return value
    text = str(value).strip()
    days, dash, rest = text.partition("-")
    if not dash:
        days, rest = "0", text
    parts = rest.split(":")
    if not days.isdigit() or not all(p.isdigit() for p in parts) or not 1 <= len(parts) <= 3:
        raise ValueError(f"a time limit is {forms}; got {value!r}")
    numbers = [int(p) for p in parts]
    if dash:  # D-HH, D-HH:MM, D-HH:MM:SS
        h, m, s = (numbers + [0, 0])[:3]
    elif len(numbers) == 1:
        h, m, s = 0, numbers[0], 0
    elif len(numbers) == 2:
        h, m, s = 0, *numbers
    else:
        h, m, s = numbers
    seconds = ((int(days) * 24 + h) * 60 + m) * 60 + s
    if seconds < 1:
        raise ValueError(f"a time limit must be positive; got {value!r}")
    return math.ceil(seconds / 60)


class SlurmSpec(Section):
    """What each job of ``--executor slurm`` asks SLURM for (``--slurm-*`` flags override these).

    Not part of any run's config: the same runs on another cluster have the same ids."""

    partition: str | None = None
    time: int | str | None = None  # minutes, or HH:MM:SS, D-HH:MM:SS, ... (the partition's default if unset)
    cpus: int | None = Field(default=None, ge=1)  # per job; also its torch threads
    gpus: int = Field(default=0, ge=0)  # per job (1 when unset and runs have train.device: cuda)
    mem: str | None = None  # per job, as sbatch --mem takes it (e.g. 16G, 4000M)
    qos: str | None = None
    account: str | None = None
    max_jobs: int | None = Field(default=None, ge=1)  # array tasks running at once
    runs_per_job: int | None = Field(default=None, ge=1)  # runs packed into one array task (groups are never split)
    max_requeues: int = Field(
        default=3, ge=0
    )  # times a job may be requeued or resubmitted after a time-out, preemption
    setup: list[str] = Field(default_factory=list)  # shell lines each job runs first (module load ..., source ...)
    sbatch: dict[str, str | int] = Field(default_factory=dict)  # any other sbatch flag: {constraint: a100}

    @field_validator("time")
    @classmethod
    def _time(cls, value):
        if value is not None:
            try:
                parse_time(value)
            except ValueError as exc:  # the value itself is named by the spec error
                raise ValueError(str(exc).split("; got ")[0]) from None
        return value

    @field_validator("mem")
    @classmethod
    def _mem(cls, value):
        if value is not None and not re.fullmatch(r"[1-9][0-9]*[KMGT]?B?", str(value), re.IGNORECASE):
            raise ValueError(f"memory is a count with an optional unit K, M, G or T (e.g. 16G, 4000M); got {value!r}")
        return value

    @field_validator("partition", "qos", "account")
    @classmethod
    def _word(cls, value):
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.,:+-]+", value):
            raise ValueError(f"must be a SLURM name (letters, digits, _ . , : + -); got {value!r}")
        return value


class SweepSpec(Section):
    """Which runs: a Cartesian ``grid`` and lists advanced together (``zip``), times ``seeds``."""

    grid: dict[str, list[Any]] = Field(default_factory=dict)
    zip: dict[str, list[Any]] = Field(default_factory=dict)
    seeds: int | list[int] = 1  # a count (seeds 0..n-1) or the seeds themselves
    slurm: SlurmSpec = Field(default_factory=SlurmSpec)  # for --executor slurm; not part of the runs

    def run_count(self) -> int:
        """Runs the sweep expands to, excluded points counted (an upper bound, known without expanding)."""
        points = math.prod(len(v) for v in self.grid.values()) * (len(next(iter(self.zip.values()))) if self.zip else 1)
        return points * (self.seeds if isinstance(self.seeds, int) else len(self.seeds))

    exclude: list[dict[str, Any]] = Field(default_factory=list)  # partial configs (dotted keys) to skip

    @field_validator("grid", "zip")
    @classmethod
    def _non_empty_axes(cls, axes: dict[str, list[Any]]):
        empty = [k for k, v in axes.items() if len(v) == 0]
        if empty:
            raise ValueError(f"axes {empty} have no values")
        if "seed" in axes:
            raise ValueError(
                "seed cannot be a grid or zip axis: repeat runs with sweep.seeds "
                "(a count, e.g. 3, or a list of seeds, e.g. [0, 1, 2])"
            )
        return axes

    @field_validator("seeds")
    @classmethod
    def _seeds_counted(cls, seeds: int | list[int]):
        count = seeds if isinstance(seeds, int) else len(seeds)
        if not 1 <= count <= MAX_RUNS:
            raise ValueError(
                f"must be a count from 1 to {MAX_RUNS:,} or a list of 1 to {MAX_RUNS:,} seeds (e.g. 3 or [0, 1, 2]); "
                f"got {'a list of ' + str(count) if isinstance(seeds, list) else count}"
            )
        if isinstance(seeds, list) and len(set(seeds)) < len(seeds):
            raise ValueError("lists a seed twice: each seed makes one run of every point")
        return seeds

    @model_validator(mode="after")
    def _exclude_names_axes(self):
        axes = set(self.grid) | set(self.zip)
        bad = sorted({k for partial in self.exclude for k in partial if k not in axes})
        if bad:
            raise ValueError(f"exclude names {bad}, which are not sweep axes; axes: {sorted(axes) or 'none'}")
        return self

    @field_validator("zip")
    @classmethod
    def _equal_lengths(cls, axes: dict[str, list[Any]]):
        lengths = {k: len(v) for k, v in axes.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"zip lists must have equal lengths; got {lengths}")
        return axes


class RunConfig(Section):
    """One fully resolved run: what its id hashes, what the store records."""

    seed: int = per_member(0, examples=(0, 1))
    task: TaskSpec
    model: ModelSpec = Field(default_factory=ModelSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    theory: TheorySpec | None = None  # kernel predictions stored beside the run (docs/theory.md)

    @model_serializer(mode="wrap")
    def _without_theory(self, handler):
        """``theory`` only when asked for: the resolved configs (and run ids) of other runs stay
        as they were before the section existed."""
        data = handler(self)
        if isinstance(data, dict) and data.get("theory") is None:
            data.pop("theory", None)
        return data

    @model_validator(mode="after")
    def _metrics_of_the_task(self):
        """``train.metrics: null`` resolves to the metrics that match the loss and the task's labels."""
        if self.train.metrics is None:
            self.train.metrics = self.train.measured(self.task.label_kind())
        return self


def cross_checks(run: RunConfig, facts: PlanFacts) -> list[tuple[str, str]]:
    """What the recipe asks of the task, as (key path, problem) pairs; ``facts`` builds user
    models and reads datasets once per plan."""
    problems = []
    online = getattr(run.task, "n_train", None) is None and getattr(run.task, "dataset", None) is None
    if online and run.train.epochs is not None:
        problems.append(("train.epochs", "needs an offline task (set task.n_train); use train.steps online"))
    if online and "train" in run.train.eval_sets:
        problems.append(("train.eval_sets", "eval set 'train' needs an offline task (set task.n_train)"))
    d = getattr(getattr(run.task, "inputs", None), "d", None)
    if d is not None:
        problems += [("model.image_shape", msg) for msg in run.model.problems_with_inputs(d)]
    if "grid" in run.train.eval_sets:
        inputs = getattr(run.task, "inputs", None)
        if inputs is None or getattr(inputs, "name", None) != "box" or inputs.d > 2:
            problems.append(("train.eval_sets", "eval set 'grid' needs task.inputs.name = box with d <= 2"))
    if run.model.user:
        model, task = run.model.model_dump(mode="json"), run.task.model_dump(mode="json")
        error = facts.user_model(model, task, run.train.dtype).error
        if error:
            problems.append(("model", error))
    if getattr(run.task, "dataset", None) is not None:
        problems += _dataset_size_problems(run, facts)
    if run.theory is not None:
        problems += _theory_problems(run)
    return problems


def _theory_problems(run: RunConfig) -> list[tuple[str, str]]:
    """What the ``theory`` section needs of the run: learnlab's MLP, a regression loss, an
    offline task (its training sample is what the kernel fits), SGD for the dynamics."""
    theory = run.theory
    assert theory is not None  # the caller checked
    problems = []
    if run.model.name != "mlp":
        problems.append(("theory", f"kernels are those of model.name mlp; got {run.model.name!r}"))
    if run.model.center and theory.kernel == "nngp":
        problems.append(("theory.kernel", "with model.center the NNGP of f - f_0 is 0: use kernel ntk (unchanged)"))
    if run.train.loss != "mse":
        problems.append(("theory", f"predictions are for train.loss mse; got {run.train.loss!r}"))
    n_train = getattr(run.task, "n_train", None)
    if n_train is None:
        problems.append(("theory", "predictions need an offline task: set task.n_train (the sample the kernel fits)"))
    elif n_train > 20_000:
        problems.append(("theory", f"task.n_train {n_train} > 20000: the kernel's Gram matrix would not fit"))
    if "dynamics" in theory.predict and run.train.optimizer != "sgd":
        problems.append(
            ("theory.predict", f"dynamics predicts gradient descent (train.optimizer sgd); got {run.train.optimizer!r}")
        )
    return problems


def _dataset_size_problems(run: RunConfig, facts: PlanFacts) -> list[tuple[str, str]]:
    """n_train / n_test against the examples of the kept classes."""
    sizes, problems = facts.dataset_size(run.task.model_dump(mode="json")), []
    for split, n in (("train", run.task.n_train), ("test", run.task.n_test)):
        if n is not None and split in sizes and n > sizes[split]:
            problems.append(
                (
                    f"task.n_{split}",
                    f"{run.task.dataset} has {sizes[split]} {split} examples of the "
                    f"kept classes; asked for {n}: lower it, or null for the whole split",
                )
            )
    return problems


def validate_config(config: dict, source: str | None = None) -> RunConfig:
    """A resolved run config, validated; SpecError with every problem's key path otherwise."""
    try:
        return RunConfig.model_validate(config)
    except ValidationError as err:
        raise SpecError(problems_from_validation(err, RunConfig), source=source) from None


class Spec(RunConfig):
    """A whole spec: a base run plus the sweep around it (``base`` is resolved on reading)."""

    name: str = "experiment"
    base: str | None = None  # the template this spec was read on top of (provenance only)
    sweep: SweepSpec = Field(default_factory=SweepSpec)


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
            problems.append(("", f"override {_short(item)} is not of the form key=value"))
            continue
        try:
            parsed.append((key.strip(), _yaml(raw, "override")))
        except ValueError as exc:
            problems.append((key.strip()[:80], f"override {_short(item)}: {exc}"))
    return parsed, problems


MAX_SPEC_BYTES = 10 * 2**20  # a spec is text a person writes
MAX_SPEC_NODES = 1_000_000  # values in a spec, aliases expanded (a YAML "billion laughs" stops here)


def _yaml(text: str, name: str):
    """Safe-loaded YAML; ValueError naming ``name``, the line and column, and the problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ValueError(f"{name}{where}: malformed YAML ({problem or exc})") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{name}: malformed YAML ({exc})") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        digits = re.search(r"value has (\d+) digits", str(exc))
        problem = f"an integer of {digits[1]} digits is out of range (at most 2**63 - 1)" if digits else str(exc)
        raise ValueError(f"{name}: {problem}") from None
    except RecursionError:
        raise ValueError(f"{name}: nested too deeply") from None
    _count_nodes(data, name)
    return data


def _short(text: str, limit: int = 60) -> str:
    """``text`` quoted, shortened to about ``limit`` characters."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text):,} characters)"


def _count_nodes(data, name: str) -> None:
    """ValueError if ``data`` holds more than MAX_SPEC_NODES values (shared aliases counted each time)."""
    stack, count = [(data, 0)], 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_SPEC_NODES or depth > 100:
            what = f"more than {MAX_SPEC_NODES:,} values" if count > MAX_SPEC_NODES else "more than 100 levels"
            raise ValueError(f"{name}: holds {what} (YAML aliases counted each time they are used)")
        if isinstance(node, dict):
            stack += [(k, depth + 1) for k in node] + [(v, depth + 1) for v in node.values()]
        elif isinstance(node, list):
            stack += [(v, depth + 1) for v in node]


def read_spec_file(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """Read a YAML spec into a dict, merged over its ``base:`` template (recursively).

    ``base`` is a path relative to the spec's folder; the spec's keys override the
    template's, section by section (nested mappings merge, everything else replaces).

    Raises:
        SpecError: missing or malformed file, or a ``base`` cycle.
    """
    path = Path(path)
    if not path.is_file():
        where = f" (base of {_seen[-1]})" if _seen else ""
        what = "is a folder, not a spec file" if path.is_dir() else "not found"
        raise SpecError([("base" if _seen else "", f"spec file {what}: {path}{where}")])
    try:
        data = _yaml(_spec_text(path), str(path))
    except ValueError as exc:
        raise SpecError([("", str(exc))], source=str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError([("", f"a spec must be a mapping of sections, got {type(data).__name__}")], source=str(path))
    base = data.get("base")
    if base is None:
        return data
    if not isinstance(base, str):
        raise SpecError([("base", f"must be a path to a YAML spec, got {base!r}")], source=str(path))
    base_path = (path.parent / base).resolve()
    chain = (*_seen, path.resolve())
    if base_path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, base_path))
        raise SpecError([("base", f"templates form a cycle: {cycle}")], source=str(path))
    merged = merge(read_spec_file(base_path, chain), {k: v for k, v in data.items() if k != "base"})
    merged["base"] = str(base_path)
    return merged


def _spec_text(path: Path) -> str:
    """A spec file's text: UTF-8 (a byte-order mark is allowed); ValueError naming the file otherwise."""
    try:
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise ValueError(f"{path}: {size:,} bytes is too big for a spec (at most {MAX_SPEC_BYTES:,})")
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValueError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}); "
            "save the spec as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def merge(base: dict, override: dict) -> dict:
    """``override`` on top of ``base``: nested mappings merge, other values replace."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def unknown_axis_keys(sweep) -> list[tuple[str, str]]:
    """Grid/zip axes whose dotted key names no spec field, found without expanding the sweep.

    ``expand`` validates every point, but it only runs once the base spec is valid; this
    cheap walk over the section models lets one round of errors name axis typos too. It
    stops at a tagged union (``task.target.*``), whose fields depend on the tag.
    """
    if not isinstance(sweep, dict):
        return []
    out = []
    for kind in ("grid", "zip"):
        axes = sweep.get(kind)
        for key in axes if isinstance(axes, dict) else ():
            model: type[BaseModel] = RunConfig
            for part in str(key).split("."):
                fields = model.model_fields
                if part not in fields:
                    out.append(
                        (f"sweep.{kind}.{key}", f"unknown key {part!r} (valid keys here: {', '.join(sorted(fields))})")
                    )
                    break
                annotation = fields[part].annotation
                if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                    break
                model = annotation
    return out


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
        # what was set, not the defaults it was completed with: a default of one tagged section
        # (gaussian's spectrum) must not follow a sweep point that switches it (to sphere)
        raw = spec.model_dump(mode="json", exclude_unset=True)
    elif isinstance(spec, dict):
        raw = replace_callables(spec)  # notebook functions -> "callable:..." references
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
        problems += unknown_axis_keys(raw.get("sweep"))
        raise SpecError(problems, source=source) from None
    if validated.sweep.run_count() > MAX_RUNS:
        sweep = validated.sweep
        axes = [f"{k} ({len(v)})" for k, v in sweep.grid.items()]
        axes += [f"zip ({len(next(iter(sweep.zip.values())))})"] if sweep.zip else []
        seeds = sweep.seeds if isinstance(sweep.seeds, int) else len(sweep.seeds)
        problems.append(
            (
                "sweep",
                f"expands to {validated.sweep.run_count():,} runs ({' x '.join([*axes, f'seeds ({seeds})'])}); "
                f"one spec runs at most {MAX_RUNS:,}: split it into several specs and output folders",
            )
        )
    if problems:
        raise SpecError(problems, source=source)
    return validated, raw
