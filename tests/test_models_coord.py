"""Coordinate check: muP keeps every layer's l1 flat in width, SP's output grows (SGD and Adam)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from learnlab import coord_check
from learnlab.cli import app
from learnlab.models import MLP, coord_slopes

D, K = 16, 8  # K outputs: the readout's l1 averages K coordinates, not one
WIDTHS = [256, 1024, 4096]  # the range 256..4096; the end points and the middle fix the slope


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, D, generator=g), torch.randn(32, K, generator=g)


def _slopes(param, optimizer, lr, steps, seeds):
    x, y = _batch()
    frame = coord_check(
        lambda width, seed: MLP(D, width, 2, K, param=param, generators=[torch.Generator().manual_seed(seed)]),
        WIDTHS,
        x,
        y,
        steps=steps,
        seeds=seeds,
        optimizer=optimizer,
        lr=lr,
    )
    assert list(frame.columns) == ["width", "layer", "step", "l1", "delta"]
    assert len(frame) == len(WIDTHS) * 3 * (steps + 1) and set(frame["layer"]) == {"input", "hidden.1", "output"}
    assert (frame.loc[frame["step"] == 0, "delta"] == 0).all() and (frame.loc[frame["step"] > 0, "delta"] > 0).all()
    return frame, coord_slopes(frame).set_index(["layer", "step"])["slope"]


def _check(optimizer, lr):
    frame, mup = _slopes("mup", optimizer, lr, steps=3, seeds=(0, 1))
    # muP at initialisation: the readout is O(n^(-1/2)) (output multiplier n^(-1/2) times
    # weights of std n^(-1/2), summed over n); everything else is O(1) from step 0 on
    assert mup[("output", 0)] == pytest.approx(-0.5, abs=0.15)
    flat = mup.drop(("output", 0))
    assert (flat.abs() < 0.1).all(), flat.to_dict()
    assert frame["l1"].between(1e-3, 1e2).all()
    # SP with a width-independent lr: the output grows like n after one step (Delta f ~ lr n)
    _, sp = _slopes("sp", optimizer, lr, steps=1, seeds=(0,))
    assert sp[("output", 1)] > 0.3, sp.to_dict()
    assert (sp[("input", 0)], sp[("hidden.1", 0)]) == pytest.approx((0.0, 0.0), abs=0.1)


@pytest.mark.slow
def test_coord_check_sgd_mup_flat_sp_output_grows():
    _check("sgd", 0.5)


@pytest.mark.slow
def test_coord_check_adam_mup_flat_sp_output_grows():
    _check("adam", 0.05)


def test_coord_check_cli_writes_csv_and_png(tmp_path, write_spec, tiny_spec):
    tiny_spec["model"].update(depth=2, param="mup")
    spec = write_spec(tiny_spec)
    out = tmp_path / "cc"
    result = CliRunner().invoke(
        app,
        [
            "coord-check",
            str(spec),
            "train.optimizer=adam",
            "--widths",
            "16,32,64",
            "--steps",
            "2",
            "--seeds",
            "2",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out / "coord_check.csv")
    assert list(frame.columns) == ["width", "layer", "step", "l1", "delta"]
    assert sorted(frame["width"].unique()) == [16, 32, 64] and sorted(frame["step"].unique()) == [0, 1, 2]
    assert frame["l1"].gt(0).all() and len(frame) == 3 * 3 * 3
    png = (out / "coord_check.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "slope" in result.output and "hidden.1" in result.output


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--widths", "16,abc"], "--widths must be comma-separated integers"),
        (["--widths", "16"], "at least two integers"),
        (["model.param=mupp"], "valid: ip, ipllr, mf, mup, ntk, sp"),
        (["model.gamma=0"], "model.gamma"),
        (["model.name=cnn", "model.image_shape=[1,2,2]"], "has 4 values per input but the task's inputs have d = 6"),
    ],
)
def test_coord_check_cli_bad_input_exits_2(tmp_path, write_spec, tiny_spec, args, needle):
    result = CliRunner().invoke(app, ["coord-check", str(write_spec(tiny_spec)), *args, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert not (tmp_path / "coord_check.csv").exists()


def test_coord_check_rejects_bad_arguments():
    x, y = _batch()
    with pytest.raises(ValueError, match="widths must be a non-empty list"):
        coord_check(lambda w, s: MLP(D, w, 1), [], x, y)
    with pytest.raises(ValueError, match="need steps >= 0"):
        coord_check(lambda w, s: MLP(D, w, 1), [8], x, y, steps=-1)


def test_coord_check_of_an_applied_user_module_records_its_layers_in_order():
    from torch import nn

    from learnlab import apply_parameterization

    def make(width, seed):
        net = nn.Sequential(nn.Linear(D, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, K))
        return apply_parameterization(net, "mup", init="lecun", generator=torch.Generator().manual_seed(seed))

    x, y = _batch()
    frame = coord_check(make, [64, 512], x, y, steps=1, seeds=(0,), optimizer="adam", lr=0.05)
    assert list(dict.fromkeys(frame["layer"])) == ["0", "2", "4"]
    slopes = coord_slopes(frame).set_index(["layer", "step"])["slope"]
    assert abs(slopes[("0", 1)]) < 0.1 and abs(slopes[("2", 1)]) < 0.1  # input, hidden: O(1)
    # mean |tanh-net hidden preactivation| at init is O(1): sigma^2 = 1 for tanh, so ~sqrt(2/pi) * O(1)
    assert frame.query("layer == '2' and step == 0")["l1"].between(0.2, 2.0).all()
