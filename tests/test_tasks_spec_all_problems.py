"""Every independent problem of the task section is reported in one pass, each at its own key path.

Regression: a target that did not fit the inputs (or any field that failed its own
validation) stopped the whole-task checks, so ``binarize`` without a dataset or a noise
above 1 for +-1 labels only showed up on the next try.
"""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from learnlab.cli import app
from learnlab.experiments import SpecError, load_spec

MODEL = {"name": "mlp", "width": 8, "depth": 1}
INDEX = ("task.target", "index [9] out of range for inputs.d = 4: indices must be in [0, 3]")
BINARIZE = ("task.binarize", "binarize apply to datasets only (set task.dataset, or remove them)")
NOISE = ("task.noise", "noise = 3.0 is a label-flip probability for sign labels: expected a value in [0, 1]")
N_TEST = ("task.n_test", "n_test: null means 'the whole test split' and needs a dataset; give a size")
# a parity target out of range for d, plus three problems that have nothing to do with it
TASK = {
    "inputs": {"name": "hypercube", "d": 4},
    "target": {"name": "parity", "indices": [[0, 9]]},
    "binarize": True,
    "noise": 3,
    "n_test": None,
}


def _problems(task: dict) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        load_spec({"name": "t", "task": task, "model": MODEL})
    return info.value.problems


def test_a_target_that_does_not_fit_the_inputs_hides_no_other_problem():
    problems = _problems(TASK)
    for problem in (INDEX, BINARIZE, NOISE, N_TEST):
        assert problem in problems, (problem, problems)
    assert len(problems) == 4, problems


def test_the_cli_lists_every_task_problem_and_writes_nothing(tmp_path):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump({"name": "t", "task": TASK, "model": MODEL}))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(spec_file), "--out", str(out), "--dry-run"])
    assert result.exit_code == 2, result.output
    assert "4 problems" in result.output
    for path, msg in (INDEX, BINARIZE, NOISE, N_TEST):
        assert f"  - {path}: {msg}" in result.output, result.output
    assert not out.exists()


def test_a_target_with_its_own_error_hides_no_independent_problem():
    # the target fails its own validation: the noise check, which needs its label kind, is skipped
    problems = _problems({**TASK, "target": {"name": "parity", "indices": [[0, 0]]}})
    paths = [path for path, _ in problems]
    assert any(p == "task.target.indices" and "repeats index [0]" in m for p, m in problems), problems
    assert BINARIZE in problems and N_TEST in problems, problems
    assert "task.noise" not in paths and "task" not in paths, problems  # not "a task needs inputs and target"


def test_bad_inputs_hide_no_independent_problem():
    task = {
        "inputs": {"name": "hypercube", "d": 0},
        "target": {"name": "teacher", "widths": [4], "outputs": 2, "labels": "sign"},
        "classes": [[0], [1]],
        "noise": 3,
    }
    problems = _problems(task)
    paths = [path for path, _ in problems]
    assert "task.inputs.d" in paths, problems
    assert ("task.target", "labels: sign needs 1 output, the target has 2; use labels: onehot") in problems
    assert ("task.classes", "classes apply to datasets only (set task.dataset, or remove them)") in problems
    assert (
        "task.noise",
        "noise = 3.0 is a label-flip probability for sign labels: expected a value in [0, 1]",
    ) in problems


def test_every_dataset_problem_at_once_even_with_a_bad_field():
    task = {
        "dataset": "digits",
        "inputs": {"name": "gaussian", "d": 2, "spectrum": [1.0]},
        "classes": [[0], [12]],
        "n_train": 5000,
        "noise": 3,
    }
    problems = _problems(task)
    paths = [path for path, _ in problems]
    assert any(p == "task.inputs" and "spectrum has 1 values" in m for p, m in problems), problems
    assert ("task.dataset", "dataset replaces inputs and target: remove inputs/target or dataset") in problems
    assert ("task.classes", "classes [12] do not exist: valid classes are 0..9") in problems
    assert "task.n_train" in paths and "task.noise" in paths, problems


def test_an_unknown_dataset_still_gets_its_other_checks():
    problems = _problems({"dataset": "mnits", "target": {"name": "sine"}, "classes": [[0], []]})
    paths = [path for path, _ in problems]
    assert "task.dataset" in paths and "task.classes" in paths, problems
    assert ("task.dataset", "dataset replaces inputs and target: remove inputs/target or dataset") in problems
    assert ("task.classes", "classes has an empty group") in problems


@pytest.mark.parametrize(
    "target,needles",
    [
        (
            {
                "name": "multi_index",
                "r": 3,
                "directions": [[1, 0, 0, 0]],
                "link": "max",
                "terms": [{"monomial": {5: 1}}],
            },
            ["r = 3 but directions has 1 rows", "give link or terms, not both", "terms use projection indices [5]"],
        ),
        (
            {"name": "single_index", "direction": [0, 0, 0, 0], "link": "bogus", "coefficients": [1.0]},
            ["give link or coefficients, not both", "unknown link 'bogus'", "direction is the zero vector"],
        ),
    ],
)
def test_every_problem_inside_one_index_target_at_once(target, needles):
    with pytest.raises(SpecError) as err:
        load_spec({"task": {"inputs": {"name": "gaussian", "d": 4}, "target": target}})
    text = str(err.value)
    assert all(n in text for n in needles), text


def test_dataset_sizes_after_class_selection_are_checked_before_any_run():
    """digits has 597 test examples, but only ~120 of classes 0 and 1: asking for more fails
    when the sweep is planned, before any run (not in every run)."""
    pytest.importorskip("sklearn")
    from learnlab.experiments import plan

    with pytest.raises(SpecError) as err:
        plan({"task": {"dataset": "digits", "classes": [[0], [1]], "n_test": 300, "n_train": 1000}})
    problems = dict(err.value.problems)
    assert "asked for 300" in problems["task.n_test"] and "of the kept classes" in problems["task.n_test"]
    assert "asked for 1000" in problems["task.n_train"]
    plan({"task": {"dataset": "digits", "classes": [[0], [1]], "n_test": 100}})  # fits: no error
