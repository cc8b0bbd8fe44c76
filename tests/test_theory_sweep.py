"""The spec's theory section (issue 17, item 3): predictions stored as metrics theory/... of each run,
equal to the theory functions called by hand on the run's own data; spec errors before any work;
run ids of specs without the section unchanged; the figures that draw them."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import learnlab
from learnlab.experiments import SpecError, build_run, plan, run_group
from learnlab.theory import (
    eigenlearning,
    gd_dynamics,
    hypercube_spectrum,
    hypercube_target_power,
    kernel_regression,
    ntk,
)

SPEC = {
    "name": "theory",
    "seed": 3,
    "task": {
        "inputs": {"name": "hypercube", "d": 6},
        "target": {"name": "parity", "indices": [[0, 1]]},
        "n_train": 40,
        "n_test": 64,
    },
    "model": {"name": "mlp", "width": 256, "depth": 1, "param": "ntk", "base_width": 1},
    "train": {"optimizer": "sgd", "lr": 0.3, "batch_size": 40, "steps": 30, "eval_every": 10},
    "theory": {"kernel": "ntk", "predict": ["kernel_regression", "dynamics", "eigenlearning"], "ridge": 1e-6},
}


def _data(config):
    built = build_run(config)
    member = built.members[0]
    x, y = member.stream.sample
    test = member.evals["test"]
    xt, yt = (torch.cat(parts) for parts in zip(*test.chunks(test.n)))
    return (x.double(), y.double()), (xt.double(), yt.double())


def test_stored_predictions_equal_the_theory_functions_on_the_runs_data():
    p = plan(SPEC)
    (result,) = run_group(p.runs)
    assert result.status == "finished", result.error
    config = p.runs[0].config
    (x, y), (xt, yt) = _data(config)
    model = config["model"]

    def kernel(a, b):
        return ntk(model, a, b)

    expected = float((kernel_regression(kernel, x, y, xt, ridge=1e-6) - yt).pow(2).mean())
    assert result.final["theory/kernel_regression/test/mse"] == pytest.approx(expected, rel=1e-9)
    dynamics = gd_dynamics(lambda a, b: ntk(model, a, b, lr_weighted="sgd"), x, y, xt, 0.3, 30, y_test=yt, every=10)
    rows = sorted((s, v) for s, n, v in result.metrics if n == "theory/dynamics/test/mse")
    assert [s for s, _ in rows] == [0, 10, 20, 30]  # the run's eval steps
    np.testing.assert_allclose([v for _, v in rows], dynamics.test_mse.numpy(), rtol=1e-9)
    assert rows[0][1] == pytest.approx(float(yt.pow(2).mean()))  # f_0 = 0
    # eigenlearning from the exact Walsh spectrum of the hypercube {-1, 1}^6 and the parity's power
    spectrum = hypercube_spectrum(kernel, 6)
    power = hypercube_target_power(build_run(config).members[0].task.target, 6)
    assert power[2] == pytest.approx(1.0)  # x_0 x_1: all of its power in degree 2
    expected = eigenlearning(spectrum.eigenvalues, n=40, ridge=1e-6, multiplicity=spectrum.multiplicities, power=power)
    assert result.final["theory/eigenlearning/test/mse"] == pytest.approx(float(expected.test_mse), rel=1e-9)
    assert result.final["theory/eigenlearning/train/mse"] == pytest.approx(float(expected.train_mse), rel=1e-9)


def test_without_the_section_run_ids_and_configs_are_unchanged():
    spec = copy.deepcopy(SPEC)
    del spec["theory"]
    config = plan(spec).runs[0].config
    assert "theory" not in config
    assert plan(SPEC).runs[0].run_id != plan(spec).runs[0].run_id  # with it: another run


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"task": {"n_train": None}}, "set task.n_train"),
        ({"train": {"optimizer": "adam"}}, "dynamics predicts gradient descent"),
        ({"model": {"name": "cnn", "image_shape": [1, 2, 3]}}, "model.name mlp"),
        ({"theory": {"kernel": "gp"}}, "theory.kernel"),
        ({"model": {"center": True}, "theory": {"kernel": "nngp"}}, "use kernel ntk"),
        ({"theory": {"predict": ["magic"]}}, "theory.predict"),
    ],
)
def test_bad_theory_sections_are_spec_errors_before_work(change, needle):
    spec = copy.deepcopy(SPEC)
    for section, values in change.items():
        spec[section].update(values)
    with pytest.raises(SpecError) as info:
        plan(spec)
    assert needle in str(info.value), str(info.value)


@pytest.mark.slow
def test_a_wide_ntk_network_follows_its_linearised_prediction(tmp_path):
    """Width 4096, NTK parameterization, small lr, centred output: the measured test MSE stays
    within 5% of the linearised network's at every eval step (and the run learns)."""
    spec = copy.deepcopy(SPEC)
    spec["model"].update(width=4096, center=True)  # f_0 = 0, as the predictions assume
    spec["train"].update(lr=0.5, steps=60)
    spec["theory"]["predict"] = ["dynamics"]
    spec["sweep"] = {"seeds": 2}
    store = learnlab.sweep(spec, out=tmp_path / "out", progress=False)
    metrics = store.metrics(names=["test/mse", "theory/dynamics/test/mse"])
    mean = metrics.groupby(["name", "step"])["value"].mean().unstack(0)
    measured, predicted = mean["test/mse"], mean["theory/dynamics/test/mse"]
    assert measured.iloc[-1] < 0.8 * measured.iloc[0]
    np.testing.assert_allclose(measured.iloc[1:], predicted.iloc[1:], rtol=0.05)
    path = tmp_path / "theory.png"
    with pytest.raises(ValueError, match="does not vary"):
        learnlab.analysis.plot_theory(store, path)
    learnlab.analysis.plot_learning_curves(store, tmp_path / "curves.png")
    store.close()


def test_plot_theory_draws_measured_and_predicted(tmp_path):
    spec = copy.deepcopy(SPEC)
    spec["theory"]["predict"] = ["kernel_regression", "eigenlearning"]
    spec["sweep"] = {"zip": {"task.n_train": [20, 40], "train.batch_size": [20, 40]}}
    store = learnlab.sweep(spec, out=tmp_path / "out", progress=False)
    fig = learnlab.analysis.plot_theory(store, tmp_path / "theory.png")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["measured", "theory: kernel regression", "theory: eigenlearning"]
    assert (tmp_path / "theory.png").stat().st_size > 10_000
    store.close()
    bare = copy.deepcopy(spec)
    del bare["theory"]
    store = learnlab.sweep(bare, out=tmp_path / "bare", progress=False)
    with pytest.raises(ValueError, match="no theory predictions"):
        learnlab.analysis.plot_theory(store, tmp_path / "none.png")
    store.close()
