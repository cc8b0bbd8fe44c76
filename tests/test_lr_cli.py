"""``learnlab lr-probe``: one loss-vs-lr curve per config of a spec, CSV and figure, clean errors."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from learnlab.cli import app
from learnlab.cli._lr import parse_lrs


def test_parse_lrs():
    lrs = parse_lrs("1e-4:1:5")
    assert lrs == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0], rel=1e-12)
    assert parse_lrs("0.5:0.5:1") == [0.5]
    for bad in ("1e-4:1", "a:1:5", "1:0.1:5", "0:1:5", "1e-4:1:0", "1e-4:1:2.5"):
        with pytest.raises(ValueError, match="--lrs"):
            parse_lrs(bad)


def test_lr_probe_writes_one_curve_per_width(tiny_spec, write_spec, tmp_path):
    spec = write_spec(tiny_spec)
    out = tmp_path / "probe"
    result = CliRunner().invoke(
        app, ["lr-probe", str(spec), "sweep.grid={model.width: [8, 32]}", "--lrs", "1e-3:10:6", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out / "loss_vs_lr.csv")
    assert list(frame.columns) == ["model.width", "lr", "loss", "loss_min", "loss_max", "seeds"]
    assert sorted(frame["model.width"].unique()) == [8, 32]
    assert len(frame) == 12 and (frame["seeds"] == 2).all()  # 2 seeds averaged, train.lr axis collapsed
    for _, curve in frame.groupby("model.width"):
        assert curve["lr"].tolist() == pytest.approx(parse_lrs("1e-3:10:6"), rel=1e-12)
        assert (curve["loss_min"] <= curve["loss"]).all() and (curve["loss"] <= curve["loss_max"]).all()
        losses = curve["loss"].tolist()
        assert math.isfinite(losses[0]) and losses[0] != losses[-1]
    assert (out / "loss_vs_lr.png").stat().st_size > 1000
    assert "best learning rate" in result.output


def test_lr_probe_curve_is_loss_per_learning_rate(tiny_spec, write_spec, tmp_path):
    """The CSV is the library call on the run's own model, optimizer, batch and test sample."""
    from learnlab.experiments import build_run, plan
    from learnlab.lr import loss_per_learning_rate

    tiny_spec["sweep"] = {"seeds": 1}
    spec = write_spec(tiny_spec)
    result = CliRunner().invoke(app, ["lr-probe", str(spec), "--lrs", "1e-2:1:3", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(tmp_path / "loss_vs_lr.csv")
    (run,) = plan(spec).runs
    built = build_run(run.config)
    member = built.members[0]
    x, y = member.stream.next()
    source = member.evals["test"]
    ex, ey = (torch.cat(t) for t in zip(*source.chunks(source.n)))
    expected = loss_per_learning_rate(
        built.model,
        x,
        y,
        lambda o, t: (o - t).pow(2).mean(),
        built.optimizer,
        parse_lrs("1e-2:1:3"),
        eval_x=ex,
        eval_y=ey,
    )
    assert frame["loss"].tolist() == pytest.approx(expected.tolist(), rel=1e-6)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lrs", "1e-3:10"], "start:stop:count"),
        (["--lrs", "-1:10:5"], "0 < start"),
        (["model.width=-3"], "model.width"),
        (["--on", "valid"], "--on"),
    ],
)
def test_lr_probe_bad_input(tiny_spec, write_spec, tmp_path, args, message):
    spec = write_spec(tiny_spec)
    result = CliRunner().invoke(app, ["lr-probe", str(spec), *args, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_lr_is_a_lazy_subpackage_without_heavy_imports():
    import subprocess
    import sys

    code = (
        "import sys, learnlab; assert 'torch' not in sys.modules; "
        "f = learnlab.lr.loss_per_learning_rate; assert 'matplotlib' not in sys.modules; "
        "print(sorted(learnlab.lr.__all__))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "loss_per_learning_rate" in done.stdout and "range_test" in done.stdout
