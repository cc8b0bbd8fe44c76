"""The command line (issue 2): run / status / export / schema, and bad input.

In-process through typer's CliRunner (serial executor), plus one subprocess test of the
installed console script ``learnlab`` and of ``python -m learnlab``.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from learnlab.cli import app
from learnlab.experiments import open_store

runner = CliRunner()

TRAIN = {
    "optimizer": "sgd",
    "lr": 0.05,
    "batch_size": 16,
    "steps": 20,
    "eval_every": 10,
    "log_every": 5,
    "thresholds": [5.0],
}


def _spec(tiny_spec) -> dict:
    spec = copy.deepcopy(tiny_spec)
    spec["train"] = dict(TRAIN)
    return spec


def _finished(out: Path) -> dict[str, float]:
    with open_store(out) as store:
        runs = store.runs()
    return dict(zip(runs["run_id"], runs["finished"]))


def _invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


# ---------------------------------------------------------------------------- happy path


def test_run_writes_the_store_and_figure_and_a_rerun_executes_nothing(tiny_spec, write_spec, tmp_path):
    path = write_spec(_spec(tiny_spec))
    out = tmp_path / "out"
    first = _invoke("run", path, "--out", out, "--executor", "serial")
    assert first.exit_code == 0, first.output
    assert (out / "results.db").is_file()
    png = (out / "learning_curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    with open_store(out) as store:
        runs = store.runs()
    assert len(runs) == 4 and (runs["status"] == "finished").all()
    assert sorted(runs["train.lr"].unique()) == [0.05, 0.1]
    assert "summary" in first.output and "4/4" in first.output  # the table and the progress bar
    before = _finished(out)

    second = _invoke("run", path, "--out", out, "--executor", "serial")
    assert second.exit_code == 0, second.output
    assert _finished(out) == before, "a re-run must execute zero new runs"
    assert len(before) == 4

    # an override makes other runs: refused in that folder, unless appended next to the old ones
    refused = _invoke("run", path, "train.steps=10", "--out", out, "--executor", "serial")
    assert refused.exit_code == 2 and "--append" in refused.output and _finished(out) == before
    third = _invoke("run", path, "train.steps=10", "--out", out, "--executor", "serial", "--append")
    assert third.exit_code == 0, third.output
    said = " ".join(third.output.split())
    assert "this spec's 4 runs;" in said and "holds 8" in said  # the summary is of this spec's runs, and says so
    after = _finished(out)
    assert len(after) == 8 and all(after[k] == v for k, v in before.items())


def test_status_export_and_schema(tiny_spec, write_spec, tmp_path):
    spec = _spec(tiny_spec)
    spec["sweep"] = {"grid": {"train.lr": [0.05, 80.0]}, "seeds": 1}  # one finishes, one diverges
    out = tmp_path / "out"
    assert _invoke("run", write_spec(spec), "--out", out, "--executor", "serial").exit_code == 0

    status = _invoke("status", out)
    assert status.exit_code == 0, status.output
    assert "finished" in status.output and "diverged" in status.output
    assert "diverge_factor" in " ".join(status.output.split())  # the diverged run's reason (the default 1e4)

    dest = tmp_path / "csv"
    export = _invoke("export", out, "--to", dest)
    assert export.exit_code == 0, export.output
    runs, metrics = pd.read_csv(dest / "runs.csv"), pd.read_csv(dest / "metrics.csv")
    with open_store(out) as store:
        assert sorted(runs["run_id"]) == sorted(store.runs()["run_id"])
        assert len(metrics) == len(store.metrics())
    assert {"run_id", "status", "model.width", "train.lr", "seed", "test/mse", "steps_to/5.0"} <= set(runs.columns)
    assert list(metrics.columns) == ["run_id", "step", "name", "value"]

    schema = _invoke("schema")
    assert schema.exit_code == 0
    parsed = json.loads(schema.stdout)
    assert {"task", "model", "train", "sweep", "name", "seed"} <= set(parsed["properties"])
    assert parsed.get("additionalProperties") is False, "unknown top-level keys are errors"


def test_status_of_a_missing_folder_is_bad_input(tmp_path):
    result = _invoke("status", tmp_path / "nowhere")
    assert result.exit_code == 2
    assert "nowhere" in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------------------- bad input

# (what to write into spec.yaml (None = no file), extra CLI args, text every message must contain)
BAD = {
    "missing file": (None, [], ["not found", "spec.yaml"]),
    "malformed yaml": ("name: x\ntask: {inputs: [unclosed\n", [], ["malformed YAML", "spec.yaml"]),
    "unknown key": ({"model": {"widht": 3}}, [], ["model.widht", "unknown key", "width"]),
    "negative lr": ({"train": {"lr": -1}}, [], ["train.lr", "-1"]),
    "parity index >= d": ({"task": {"target": {"name": "parity", "indices": [[0, 6]]}}}, [], ["task.target", "6"]),
    "override of an unknown key": ({}, ["model.widht=3"], ["model.widht", "unknown key"]),
    "override of a bad value": ({}, ["model.width=0"], ["model.width"]),
    "grid axis naming an unknown key": ({"sweep": {"grid": {"model.widht": [8, 16]}}}, [], ["model.widht"]),
    "zip with unequal lengths": (
        {"sweep": {"zip": {"train.lr": [0.1, 0.2], "model.width": [8]}}},
        [],
        ["sweep.zip", "equal"],
    ),
}


def _merge(base: dict, patch: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "sweep":
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _assert_bad_input(result, expected: list[str], out: Path):
    assert result.exit_code == 2, result.output
    text = result.output
    for piece in expected:
        assert piece in text, f"{piece!r} missing from:\n{text}"
    assert "Traceback" not in text
    assert not (out / "results.db").exists() and not out.exists(), "nothing may be written"


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_readable_message(case, tiny_spec, tmp_path):
    content, extra, expected = BAD[case]
    path = tmp_path / "spec.yaml"
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, dict):
        path.write_text(yaml.safe_dump(_merge(_spec(tiny_spec), content)))
    out = tmp_path / "out"
    result = _invoke("run", path, *extra, "--out", out, "--executor", "serial")
    _assert_bad_input(result, expected, out)
    if content is not None and not isinstance(content, str):
        assert str(path) in result.output, "the message names the file"


def test_every_problem_is_listed_at_once(tiny_spec, write_spec, tmp_path):
    spec = _merge(
        _spec(tiny_spec),
        {"model": {"widht": 3}, "train": {"lr": -1}, "task": {"target": {"name": "parity", "indices": [[0, 9]]}}},
    )
    out = tmp_path / "out"
    result = _invoke("run", write_spec(spec), "model.depth=0", "--out", out, "--executor", "serial")
    _assert_bad_input(result, ["model.widht", "train.lr", "task.target", "model.depth", "4 problems"], out)
    # one message: a header, then one line per problem
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert sum("invalid spec" in ln for ln in lines) == 1
    assert sum(ln.lstrip().startswith("- ") for ln in lines) == 4


# ---------------------------------------------------------------------------- the real entry points


@pytest.mark.slow
def test_console_script_and_python_m(tiny_spec, write_spec, tmp_path):
    """The installed ``learnlab`` script (default processes executor) and ``python -m learnlab``."""
    script = Path(sys.executable).parent / "learnlab"
    assert script.is_file(), "the console script is installed next to the interpreter"
    path, out = write_spec(_spec(tiny_spec)), tmp_path / "out"
    env_run = dict(capture_output=True, text=True, timeout=300, cwd=tmp_path)
    first = subprocess.run([str(script), "run", str(path), "--out", str(out), "--workers", "2"], **env_run)
    assert first.returncode == 0, first.stdout + first.stderr
    assert (out / "results.db").is_file() and (out / "learning_curves.png").is_file()
    before = _finished(out)
    assert len(before) == 4
    again = subprocess.run(
        [sys.executable, "-m", "learnlab", "run", str(path), "--out", str(out), "--executor", "serial"], **env_run
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert _finished(out) == before
    bad = subprocess.run(
        [sys.executable, "-m", "learnlab", "run", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "bad")],
        **env_run,
    )
    assert bad.returncode == 2
    assert "missing.yaml" in bad.stderr and "Traceback" not in bad.stdout + bad.stderr
    assert not (tmp_path / "bad").exists()
