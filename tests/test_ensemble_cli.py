"""``learnlab run --executor ensemble`` on the command line (issue 7's bad input)."""

from __future__ import annotations

import copy

from typer.testing import CliRunner

from learnlab.cli import app
from learnlab.experiments import open_store

runner = CliRunner()


def _run(spec: dict, write_spec, out) -> str:
    result = runner.invoke(app, ["run", str(write_spec(spec)), "--out", str(out), "--executor", "ensemble"])
    assert result.exit_code == 0, result.output
    return result.output


def test_ensemble_on_a_sweep_where_nothing_stacks_says_so_and_runs_every_run(tiny_spec, write_spec, tmp_path):
    spec = copy.deepcopy(tiny_spec)
    spec["train"]["steps"] = 10
    spec["sweep"] = {"grid": {"model.width": [8, 16]}, "seeds": 1}  # different shapes: nothing to stack
    output = _run(spec, write_spec, tmp_path / "alone")
    assert "each run is a group of one" in output
    with open_store(tmp_path / "alone") as store:
        assert sorted(store.runs()["status"]) == ["finished", "finished"]

    spec["sweep"] = {"grid": {"train.lr": [0.05, 0.1]}, "seeds": 1}  # one stack of two: nothing to say
    assert "group of one" not in _run(spec, write_spec, tmp_path / "stacked")
