"""The ``task`` section of a spec, validated by pydantic.

Either a synthetic task (``inputs`` + ``target``) or a real dataset (``dataset`` and its
options). Every check that can fail runs here, before any work starts: indices against
d, which inputs a target needs, label kinds, dataset files and optional packages.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from learnlab._spec_base import Samples, Section, per_member, seeding
from learnlab.tasks._datasets import DATASETS, DatasetFilesError, check_files
from learnlab.tasks._spec_inputs import InputsSpec
from learnlab.tasks._spec_targets import TargetSpec, target_indices

__all__ = ["TaskSpec", "InputsSpec", "TargetSpec", "DATASET_KEYS"]

DatasetName = Literal["mnist", "fashion_mnist", "cifar10", "digits", "mnist1d"]
# keys that only a dataset task may set, with their "unset" values
DATASET_KEYS = {
    "data_dir": None,
    "classes": None,
    "binarize": False,
    "center": False,
    "normalize": False,
    "grayscale": False,
}
_MULTI_OUTPUT = {"teacher", "callable", "multi_index"}


class TaskSpec(Section):
    """What is learned: inputs and target (or a real dataset), label noise and sample sizes."""

    # the data (training stream, test and evaluation sets, label noise) is seeded by the run's seed
    # and the fields marked "data"; a random target by the run's seed and the target section
    inputs: InputsSpec | None = seeding("data", default=None, description="input distribution (synthetic tasks)")
    target: TargetSpec | None = seeding("target", default=None, description="target function (synthetic tasks)")
    dataset: DatasetName | None = seeding("data", default=None, description="a real dataset instead of inputs/target")
    data_dir: str | None = Field(None, description="folder holding the dataset files (else $LEARNLAB_DATA)")
    classes: list[list[NonNegativeInt]] | None = seeding(
        "data", default=None, description="class groups, e.g. [[0], [1]] (2 groups: +-1 labels; more: one-hot)"
    )
    binarize: bool = seeding(
        "data", default=False, description="two groups: classes [[0..4], [5..9]] unless classes is given"
    )
    center: bool = seeding("data", default=False, description="subtract the training split's mean image")
    normalize: bool = seeding("data", default=False, description="scale every example to unit norm (seed 002)")
    grayscale: bool = seeding("data", default=False, description="average the colour channels (cifar10)")
    data_seed: int | None = per_member(
        None,
        examples=(None, 3),
        description="seed of the data instead of the run's seed (runs sharing it see the same data)",
    )
    noise: NonNegativeFloat = per_member(
        0.0, examples=(0.0, 0.1), description="label noise: Gaussian std, or flip probability for classes"
    )
    n_train: Samples | None = Field(None, description="fixed training sample size; null = online (datasets: all)")
    n_test: Samples | None = Field(2048, description="test sample size (datasets: default all)")

    @model_validator(mode="before")
    @classmethod
    def _dataset_defaults(cls, data):
        # a dataset's test set defaults to the whole official test split
        if isinstance(data, dict) and data.get("dataset") is not None and "n_test" not in data:
            data = {**data, "n_test": None}
        return data

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem(cls, data, handler):
        """Field errors and whole-task problems in one error, each at its own key path.

        pydantic skips ``after`` validators once any field fails, so a bad target (or bad
        inputs) would hide every other problem of the section. The whole-task checks run
        here instead: on the fields that did validate, skipping only the checks that need a
        field that failed (e.g. the noise check needs the target's label kind).
        """
        try:
            task = handler(data)
        except ValidationError as err:
            errors = err.errors()
            if not isinstance(data, dict) or any(not e["loc"] for e in errors):
                raise
            failed = {str(e["loc"][0]) for e in errors}
            try:  # the fields that did validate (the failed ones fall back to their defaults)
                partial = handler({k: v for k, v in data.items() if k not in failed})
            except ValidationError:
                raise err from None
            problems = partial._problems(failed)
            if not problems:
                raise
            raise _spec_error(cls, errors, problems, data) from None
        problems = task._problems(set())
        if problems:
            raise _spec_error(cls, [], problems, data if isinstance(data, dict) else task.model_dump())
        return task

    def label_kind(self) -> str:
        """``value``, ``sign`` or ``onehot``: what ``noise`` means for this task."""
        return self._label_kind(self.dataset is not None)

    def _label_kind(self, dataset: bool) -> str:
        if dataset:
            groups = self.classes if self.classes is not None else ([0, 1] if self.binarize else range(10))
            return "sign" if len(groups) == 2 else "onehot"
        t = self.target
        if t is not None and t.name == "parity" and len(t.indices) == 1:
            return "sign"
        return getattr(t, "labels", "value")

    def _problems(self, failed: set[str]) -> list[tuple[str | None, str]]:
        """(key in the task section or None for the section itself, problem) pairs.

        ``failed``: keys whose own validation failed (already reported); they hold their
        defaults here, and checks that need them are skipped.
        """
        if self.dataset is not None or "dataset" in failed:
            return self._dataset_problems(failed)
        return self._synthetic_problems(failed)

    def _synthetic_problems(self, failed: set[str]) -> list[tuple[str | None, str]]:
        problems: list[tuple[str | None, str]] = []
        if any(getattr(self, k) is None and k not in failed for k in ("inputs", "target")):
            problems.append(
                (
                    None,
                    (
                        "a task needs inputs and target (e.g. inputs: {name: hypercube, d: 20}, "
                        "target: {name: parity, indices: [[0, 1, 2]]}) or a dataset (e.g. dataset: mnist)"
                    ),
                )
            )
        if self.target is not None:
            problems += [("target", msg) for msg in _target_problems(self.target, self.inputs)]
        for key in sorted(k for k, unset in DATASET_KEYS.items() if getattr(self, k) != unset):
            problems.append((key, f"{key} apply to datasets only (set task.dataset, or remove them)"))
        if self.n_test is None:
            problems.append(("n_test", "n_test: null means 'the whole test split' and needs a dataset; give a size"))
        if "target" not in failed:  # what noise means depends on the target's labels
            problems += [("noise", msg) for msg in _noise_problems(self.noise, self._label_kind(False))]
        return problems

    def _dataset_problems(self, failed: set[str]) -> list[tuple[str | None, str]]:
        info = DATASETS.get(self.dataset) if self.dataset is not None else None  # None: the name failed
        problems: list[tuple[str | None, str]] = []
        if any(getattr(self, k) is not None or k in failed for k in ("inputs", "target")):
            problems.append(("dataset", "dataset replaces inputs and target: remove inputs/target or dataset"))
        if info is not None and info.files:
            if "data_dir" not in failed:  # else where to look is unknown
                assert self.dataset is not None  # info is that of the dataset
                try:  # present, and each file's header, size and labels as the format says (cached)
                    check_files(self.dataset, self.data_dir)
                except DatasetFilesError as exc:
                    key = "data_dir" if self.data_dir is not None else "dataset"
                    problems += [(key, msg) for msg in exc.problems]
        elif info is not None and self.data_dir is not None:
            problems.append(("data_dir", f"dataset {self.dataset!r} has no files; remove data_dir"))
        module = {"digits": "sklearn", "mnist1d": "mnist1d"}.get(self.dataset) if self.dataset is not None else None
        if info is not None and module and importlib.util.find_spec(module) is None:
            problems.append(
                (
                    "dataset",
                    (f"dataset {self.dataset!r} needs the package {module!r}: pip install 'learnlab[{info.extra}]'"),
                )
            )
        if "binarize" not in failed:
            problems += [
                ("classes", msg)
                for msg in _class_problems(self.classes, self.binarize, info.classes if info is not None else None)
            ]
        sizes = (info.train_size, info.test_size) if info is not None else (None, None)
        for key, size, split in zip(("n_train", "n_test"), sizes, ("training", "test")):
            value = getattr(self, key)
            if size is not None and value is not None and value > size:
                problems.append(
                    (
                        key,
                        (
                            f"{key} = {value} but {self.dataset} has {size} {split} examples; "
                            "lower it or set it to null for all of them"
                        ),
                    )
                )
        if not failed & {"classes", "binarize"}:  # what noise means depends on the class groups
            problems += [("noise", msg) for msg in _noise_problems(self.noise, self._label_kind(True))]
        return problems


def _spec_error(cls, errors: list[dict], problems: list[tuple[str | None, str]], data: dict) -> ValidationError:
    """One ValidationError: pydantic's own ``errors`` plus ``problems`` at ``task.<key>``."""
    line_errors: list[InitErrorDetails] = [
        {"type": PydanticCustomError(e["type"], e["msg"]), "loc": e["loc"], "input": e["input"]} for e in errors
    ]
    # the input is the task mapping (as before), so the messages read exactly as the checks word them
    line_errors += [
        {"type": PydanticCustomError("value_error", "Value error, " + msg), "loc": (key,) if key else (), "input": data}
        for key, msg in problems
    ]
    return ValidationError.from_exception_data(cls.__name__, line_errors)


def _target_problems(target, inputs) -> list[str]:
    """What is wrong with a valid target: its labels, and (given valid inputs) how it fits them."""
    name = target.name
    problems = []
    if inputs is not None:
        problems += _target_input_problems(target, inputs)
    outputs = getattr(target, "outputs", 1) if name in _MULTI_OUTPUT else 1
    labels = getattr(target, "labels", "value")
    if labels == "sign" and outputs != 1:
        problems.append(f"labels: sign needs 1 output, the target has {outputs}; use labels: onehot")
    if labels == "onehot" and outputs < 2:
        problems.append("labels: onehot needs a target with outputs >= 2 (teacher, callable, multi_index)")
    return problems


def _target_input_problems(target, inputs) -> list[str]:
    d, name = inputs.d, target.name
    problems = []
    bad = [i for i in target_indices(target) if i >= d]
    if bad:
        problems.append(f"index {bad} out of range for inputs.d = {d}: indices must be in [0, {d - 1}]")
    if name == "staircase" and target.degree is not None and target.degree > d:
        problems.append(f"staircase degree {target.degree} exceeds inputs.d = {d}")
    if name in ("parity", "staircase") and inputs.name != "hypercube":
        problems.append(f"a {name} target needs inputs.name = hypercube, got {inputs.name}")
    if name == "power_law" and inputs.name not in ("gaussian", "power_law_gaussian"):
        problems.append(f"a power_law target needs gaussian or power_law_gaussian inputs, got {inputs.name}")
    if name == "sine" and d != 1:
        problems.append(f"the sine target is 1-d: needs inputs.d = 1, got {d}")
    if name == "single_index" and target.direction is not None and len(target.direction) != d:
        problems.append(f"direction has {len(target.direction)} values, expected inputs.d = {d}")
    if name == "multi_index":
        if target.directions is not None and any(len(row) != d for row in target.directions):
            problems.append(f"directions rows have lengths {[len(r) for r in target.directions]}, expected {d} each")
        if target.r > d:
            problems.append(f"r = {target.r} directions do not fit in inputs.d = {d}")
    return problems


def _class_problems(classes, binarize: bool, n_classes: int | None) -> list[str]:
    """``n_classes`` None: the dataset is unknown (its name failed), so class numbers are not checked."""
    if classes is None:
        return []
    problems = []
    flat = [c for g in classes for c in g]
    if any(len(g) == 0 for g in classes):
        problems.append("classes has an empty group")
    if len(classes) < 2:
        problems.append(f"classes needs at least 2 groups, got {len(classes)}")
    if binarize and len(classes) != 2:
        problems.append(f"binarize needs exactly 2 class groups, got {len(classes)}")
    if n_classes is not None:
        bad = sorted({c for c in flat if c >= n_classes})
        if bad:
            problems.append(f"classes {bad} do not exist: valid classes are 0..{n_classes - 1}")
    if len(set(flat)) != len(flat):
        problems.append(f"classes {classes} repeat a class: groups must be disjoint")
    return problems


def _noise_problems(noise: float, kind: str) -> list[str]:
    if kind != "value" and noise > 1:
        return [f"noise = {noise} is a label-flip probability for {kind} labels: expected a value in [0, 1]"]
    return []
