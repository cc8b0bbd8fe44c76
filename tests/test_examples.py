"""Every example in examples/ validates and runs end to end (shortened), so none can rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from learnlab.experiments import open_store, plan

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SPECS = sorted(EXAMPLES.glob("*.yaml"))


def test_there_are_examples():
    assert {p.name for p in SPECS} >= {
        "quickstart.yaml",
        "parity_scaling.yaml",
        "uniform_accuracy.yaml",
        "power_law_scaling.yaml",
        "mutransfer.yaml",
        "digits_classification.yaml",
    }


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_example_spec_validates(spec):
    assert len(plan(spec).runs) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_example_spec_runs_shortened(spec, tmp_path):
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "learnlab",
        "run",
        str(spec),
        "train.steps=12",
        "train.eval_every=6",
        "task.n_test=64",
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    store = open_store(out)
    runs = store.runs()
    store.close()
    assert len(runs) == len(plan(spec).runs)
    assert runs["status"].isin(["finished", "diverged"]).all(), runs["error"].dropna().tolist()


@pytest.mark.slow
def test_custom_model_example_runs(tmp_path):
    out = tmp_path / "custom"
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "custom_model.py"), "--out", str(out), "--steps", "10"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "report.html").is_file()
    store = open_store(out)
    assert (store.runs()["status"] == "finished").all()
    store.close()
