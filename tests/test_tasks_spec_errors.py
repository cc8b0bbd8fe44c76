"""Bad task sections fail at spec validation, naming what was got and what is valid."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from learnlab.experiments import SpecError, load_spec
from learnlab.tasks import TaskSpec

CUBE = {"name": "hypercube", "d": 5}
GAUSS = {"name": "gaussian", "d": 5}


def _problems(task: dict) -> str:
    spec = {"name": "t", "task": task, "model": {"name": "mlp", "width": 8, "depth": 1}}
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    return str(info.value)


def test_unknown_names_list_the_valid_ones():
    msg = _problems({"inputs": {"name": "gausian", "d": 3}, "target": {"name": "parity", "indices": [[0]]}})
    for name in ("gaussian", "power_law_gaussian", "hypercube", "sphere", "box"):
        assert name in msg
    msg = _problems({"inputs": CUBE, "target": {"name": "partiy", "indices": [[0]]}})
    for name in (
        "parity",
        "staircase",
        "hermite",
        "single_index",
        "multi_index",
        "teacher",
        "sine",
        "power_law",
        "callable",
    ):
        assert name in msg
    assert "mnist" in _problems({"dataset": "mnits"})


@pytest.mark.parametrize(
    "task, needle",
    [
        (
            {"inputs": CUBE, "target": {"name": "parity", "indices": [[0, 5]]}},
            "index [5] out of range for inputs.d = 5",
        ),
        ({"inputs": GAUSS, "target": {"name": "hermite", "monomial": {7: 1}}}, "index [7] out of range"),
        ({"inputs": CUBE, "target": {"name": "staircase", "degree": 6}}, "staircase degree 6 exceeds inputs.d = 5"),
        ({"inputs": GAUSS, "target": {"name": "power_law", "target_monomials": [{9: 1}]}}, "index [9] out of range"),
        (
            {"inputs": GAUSS, "target": {"name": "single_index", "direction": [1, 0]}},
            "direction has 2 values, expected inputs.d = 5",
        ),
        ({"inputs": GAUSS, "target": {"name": "multi_index", "r": 6}}, "r = 6 directions do not fit"),
    ],
)
def test_index_out_of_range(task, needle):
    assert needle in _problems(task)


def test_negative_degree_and_cutoff_mode_below_one():
    msg = _problems({"inputs": GAUSS, "target": {"name": "hermite", "monomial": {0: -2}}})
    assert "task.target.monomial.0" in msg and "greater than or equal to 0" in msg and "-2" in msg
    assert "greater than or equal to 1" in _problems({"inputs": CUBE, "target": {"name": "staircase", "degree": -1}})
    msg = _problems({"inputs": GAUSS, "target": {"name": "power_law", "cutoff_mode": 0}})
    assert "task.target.cutoff_mode" in msg and "greater than or equal to 1" in msg and "got 0" in msg


def test_unreachable_module_attr():
    msg = _problems({"inputs": GAUSS, "target": {"name": "callable", "function": "no_such_pkg_xyz.mod:f"}})
    assert "cannot import module 'no_such_pkg_xyz.mod'" in msg and "ModuleNotFoundError" in msg
    msg = _problems({"inputs": GAUSS, "target": {"name": "callable", "function": "math:sqr"}})
    assert "'math' has no attribute 'sqr'" in msg and "did you mean sqrt" in msg
    assert "package.module:attr" in _problems({"inputs": GAUSS, "target": {"name": "callable", "function": "nocolon"}})
    msg = _problems({"inputs": GAUSS, "target": {"name": "multi_index", "link": "no_such_pkg_xyz:g"}})
    assert "cannot import module" in msg


def test_missing_dataset_files_is_a_spec_error(tmp_path):
    msg = _problems({"dataset": "cifar10", "data_dir": str(tmp_path)})
    assert "data_batch_1" in msg and "test_batch" in msg and str(tmp_path) in msg


@pytest.mark.parametrize(
    "task, needle",
    [
        ({"inputs": GAUSS, "target": {"name": "parity", "indices": [[0]]}}, "needs inputs.name = hypercube"),
        ({"inputs": CUBE, "target": {"name": "power_law"}}, "needs gaussian or power_law_gaussian inputs"),
        ({"inputs": GAUSS, "target": {"name": "sine"}}, "needs inputs.d = 1"),
        ({"inputs": CUBE, "target": {"name": "staircase", "indices": [[0], [1, 2]]}}, "not a merged staircase"),
        ({"inputs": CUBE, "target": {"name": "staircase"}}, "exactly one of degree"),
        ({"inputs": CUBE, "target": {"name": "parity", "indices": [[0, 0, 1]]}}, "repeats index [0]"),
        (
            {"inputs": GAUSS, "target": {"name": "hermite", "monomial": {0: 1}, "terms": [{"monomial": {0: 1}}]}},
            "exactly one",
        ),
        (
            {"inputs": GAUSS, "target": {"name": "teacher", "widths": [4], "outputs": 2, "labels": "sign"}},
            "labels: sign needs 1 output",
        ),
        ({"inputs": GAUSS, "target": {"name": "hermite", "monomial": {0: 1}, "labels": "onehot"}}, "onehot needs"),
        ({"inputs": CUBE, "target": {"name": "parity", "indices": [[0]]}, "noise": 1.5}, "flip probability"),
        (
            {"inputs": CUBE, "target": {"name": "parity", "indices": [[0]]}, "classes": [[0], [1]]},
            "apply to datasets only",
        ),
        (
            {
                "inputs": {"name": "gaussian", "d": 2, "spectrum": [1.0]},
                "target": {"name": "hermite", "monomial": {0: 1}},
            },
            "spectrum has 1 values but d = 2",
        ),
        ({"inputs": {"name": "box", "d": 1, "low": 1, "high": 0}, "target": {"name": "sine"}}, "low < high"),
        ({"inputs": GAUSS, "target": {"name": "single_index", "link": "softplus"}}, "unknown link 'softplus'"),
        ({"dataset": "digits", "classes": [[0], [0, 1]]}, "repeat a class"),
        ({"dataset": "digits", "classes": [[0], [12]]}, "classes [12] do not exist"),
        ({"dataset": "digits", "n_train": 5000}, "n_train = 5000 but digits has 1200"),
        ({"dataset": "digits", "inputs": GAUSS}, "dataset replaces inputs and target"),
        ({}, "a task needs inputs and target"),
    ],
)
def test_cross_field_problems(task, needle):
    assert needle in _problems(task)


def test_unknown_key_lists_valid_keys():
    msg = _problems({"inputs": {"name": "box", "d": 1, "lo": 0}, "target": {"name": "sine"}})
    assert "unknown key" in msg and "low" in msg and "high" in msg


def test_valid_sections_round_trip_through_json():
    for task in [
        {
            "inputs": {"name": "power_law_gaussian", "d": 200, "alpha": 2.0, "offset": 6},
            "target": {"name": "power_law", "cutoff_mode": 100},
        },
        {"inputs": {"name": "box", "d": 1, "low": -0.5, "high": 0.5}, "target": {"name": "sine", "f": 5}},
        {"inputs": {"name": "gaussian", "d": 5}, "target": {"name": "hermite", "monomial": {0: 2, 3: 1}}},
        {"inputs": CUBE, "target": {"name": "parity", "indices": [[0, 1, 2]], "normalize": False}},
        {"inputs": {"name": "box", "d": 3}, "target": {"name": "teacher", "widths": [32, 32, 32, 32, 32], "seed": 4}},
    ]:
        spec = TaskSpec.model_validate(task)
        again = TaskSpec.model_validate(spec.model_dump(mode="json"))
        assert again == spec


def test_validation_error_type_for_direct_use():
    with pytest.raises(ValidationError):
        TaskSpec.model_validate({"inputs": CUBE, "target": {"name": "parity", "indices": [[9]]}})
