"""Paired experiments (issue 13): each random role is seeded from the run's seed and only the
config it depends on; init means what it says; one run is one result everywhere."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy import stats
from typer.testing import CliRunner

import learnlab
from learnlab.cli import app
from learnlab.experiments import build_group, build_run, open_store, plan, run_group
from learnlab.models import MLP
from learnlab.tasks import next_stacked

SPEC = {
    "name": "paired",
    "seed": 0,
    "task": {"inputs": {"name": "gaussian", "d": 8}, "target": {"name": "single_index", "link": "relu"}, "n_test": 128},
    "model": {"name": "mlp", "width": 32, "depth": 2},
    "train": {"optimizer": "momentum", "lr": 0.05, "batch_size": 16, "steps": 40, "eval_every": 10, "log_every": 1},
}


def _spec(**sections) -> dict:
    spec = copy.deepcopy(SPEC)
    for section, values in sections.items():
        spec[section] = {**spec.get(section, {}), **values} if isinstance(values, dict) else values
    return spec


def _history(result) -> dict:
    return {(step, name): value for step, name, value in result.metrics}


def test_sp_and_mup_at_the_base_width_are_the_same_run():
    """At width = base width every row is the standard model: same draw, same data, same history."""
    spec = _spec(model={"base_width": 32}, sweep={"grid": {"model.param": ["sp", "mup", "ntk", "mf"]}})
    results = run_group(plan(spec).runs[:1]) + [run_group([r])[0] for r in plan(spec).runs[1:]]
    reference = _history(results[0])
    assert len(reference) > 40
    for result in results[1:]:
        assert _history(result) == reference  # bit for bit: every multiplier and lr factor is exactly 1


def test_mup_weights_are_per_layer_multiples_of_the_sp_weights_of_the_same_seed():
    spec = _spec(model={"base_width": 8}, sweep={"grid": {"model.param": ["sp", "mup", "ntk"]}})
    sp, *others = [build_run(r).model for r in plan(spec).runs]
    for other in others:
        for layer, (w, w_sp) in enumerate(zip(other.weights, sp.weights)):
            ratio = (w.double() / w_sp.double()).flatten()
            assert ratio.std().item() < 1e-6 * ratio.abs().mean().item(), (other.params[0].name, layer)
    # and the multiple is the rows' init-scale ratio, (n / n0)^(b_sp - b_mup) per layer: 1/2 at the read-in
    ratio = (others[0].weights[0].double() / sp.weights[0].double()).mean().item()
    assert ratio == pytest.approx((32 / 8) ** -0.5, rel=1e-6)


def test_a_learning_rate_grid_starts_every_member_from_one_draw_on_one_data_stream():
    spec = _spec(sweep={"grid": {"train.lr": [0.01, 0.03, 0.1, 0.3]}, "seeds": 2})
    runs = plan(spec).runs
    built = build_group([r for r in runs if r.config["seed"] == 0])
    assert built.model.members == 4
    for name, p in built.model.member_parameters():
        assert all(torch.equal(p[0], p[e]) for e in range(1, 4)), name
    # one stream for the four (drawn once per step), and it is each run's own stream when built alone
    assert all(m.stream is built.members[0].stream for m in built.members)
    x, y = next_stacked([m.stream for m in built.members])
    for row, run in enumerate(r for r in runs if r.config["seed"] == 0):
        alone = build_run(run).members[0].stream.next()
        assert torch.equal(x[row], alone[0]) and torch.equal(y[row], alone[1])
    tests = [next(m.evals["test"].chunks(10**6)) for m in built.members]
    for tx, ty in tests[1:]:
        assert torch.equal(tx, tests[0][0]) and torch.equal(ty, tests[0][1])
    assert all(m.evals["test"] is built.members[0].evals["test"] for m in built.members)  # drawn once
    alone_test = next(build_run(runs[0]).members[0].evals["test"].chunks(10**6))
    assert torch.equal(alone_test[0], tests[0][0]) and torch.equal(alone_test[1], tests[0][1])
    # another seed: another draw and other data
    other = build_group([r for r in runs if r.config["seed"] == 1])
    assert not torch.equal(other.model.weights[0][0], built.model.weights[0][0])
    assert not torch.equal(other.members[0].stream.next()[0], x[0])
    both = build_group(runs)  # two seeds in one stack: two test sets
    assert len({id(m.evals["test"]) for m in both.members}) == 2


@pytest.mark.parametrize(
    "override",
    ["train.optimizer=adam", "train.steps=80", "train.thresholds=[0.5]", "train.eval_every=20", "model.param=mup"],
)
def test_what_changes_nothing_random_leaves_every_stream_alone(override):
    """Optimizer, steps, thresholds, evaluation and parameterization do not touch a stream."""
    base = build_run(plan(_spec(model={"base_width": 32})).runs[0])
    other = build_run(plan(_spec(model={"base_width": 32}), [override]).runs[0])
    assert torch.equal(base.members[0].stream.next()[0], other.members[0].stream.next()[0])
    assert all(
        torch.equal(next(a.chunks(10**6))[1], next(b.chunks(10**6))[1])
        for a, b in zip(base.members[0].evals.values(), other.members[0].evals.values())
    )
    assert torch.equal(
        base.model.weights[1] / base.model.weights[1].norm(), other.model.weights[1] / other.model.weights[1].norm()
    )


@pytest.mark.parametrize("override", ["task.noise=0.1", "task.target.link=tanh", "task.n_test=64"])
def test_the_data_depends_on_the_inputs_only(override):
    """Label noise, the target and the sample sizes do not move the inputs a run sees."""
    base = build_run(plan(_spec()).runs[0]).members[0]
    other = build_run(plan(_spec(), [override]).runs[0]).members[0]
    assert torch.equal(base.stream.next()[0], other.stream.next()[0])


def test_explicit_seeds_override_the_derived_ones():
    a = build_run(plan(_spec(task={"data_seed": 5}, model={"init_seed": 9})).runs[0])
    b = build_run(plan(_spec(seed=1, task={"data_seed": 5}, model={"init_seed": 9})).runs[0])
    assert torch.equal(a.members[0].stream.next()[0], b.members[0].stream.next()[0])
    assert torch.equal(a.model.weights[0], b.model.weights[0])
    # a random target follows the run's seed unless its own seed is given
    t = [build_run(plan(_spec(seed=s)).runs[0]).tasks[0].target.direction for s in (0, 1)]
    assert t[0] != t[1]
    pinned = [build_run(plan(_spec(seed=s), ["task.target.seed=3"]).runs[0]).tasks[0].target.direction for s in (0, 1)]
    assert pinned[0] == pinned[1]


def test_a_longer_run_begins_as_the_shorter_one_bit_for_bit():
    (short,) = run_group(plan(_spec(train={"steps": 25})).runs)
    (long,) = run_group(plan(_spec(train={"steps": 60})).runs)
    a, b = _history(short), _history(long)
    assert {k: v for k, v in a.items() if k[0] < 25} == {k: v for k, v in b.items() if k[0] < 25}
    assert len([k for k in a if k[0] < 25]) > 25


def test_extend_continues_saved_runs_and_equals_running_them_from_scratch(write_spec, tmp_path):
    spec = _spec(train={"steps": 30, "save_final": True}, sweep={"grid": {"train.lr": [0.02, 0.05, 40.0]}})
    path, out, scratch = write_spec(spec), tmp_path / "out", tmp_path / "scratch"
    runner = CliRunner()
    assert runner.invoke(app, ["run", str(path), "--out", str(out)]).exit_code == 0
    extended = runner.invoke(app, ["run", str(path), "--out", str(out), "train.steps=70", "--extend"])
    assert extended.exit_code == 0, extended.output
    said = " ".join(extended.output.split())
    assert "2 continue a shorter run's saved state" in said
    assert "1 take the result of a shorter run that ended early" in said  # lr 40 diverged
    assert runner.invoke(app, ["run", str(path), "--out", str(scratch), "train.steps=70"]).exit_code == 0
    with open_store(scratch) as s:
        expected = s.runs().set_index("run_id")
        expected_metrics = s.metrics()
    with open_store(out) as s:
        got = s.runs().set_index("run_id").loc[expected.index]
        got_metrics = s.metrics(run_ids=list(expected.index))
    assert sorted(got["status"]) == ["diverged", "finished", "finished"]
    for column in ("status", "step", "test/mse"):
        assert got[column].equals(expected[column]), column
    assert got_metrics.reset_index(drop=True).equals(expected_metrics.reset_index(drop=True))
    # without saved states (or runs) there is nothing to continue: from scratch, and it says so
    again = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "new"), "train.steps=70", "--extend"])
    assert again.exit_code == 0 and "3 run from scratch: no shorter run of its config" in " ".join(again.output.split())


def test_learnlab_train_is_the_sweep_run_of_the_same_config_and_seed(write_spec, tmp_path):
    spec = _spec(seed=4, train={"probes": [{"name": "param_norm", "every": 10}], "thresholds": [0.5]})
    out = tmp_path / "out"
    assert CliRunner().invoke(app, ["run", str(write_spec(spec)), "--out", str(out)]).exit_code == 0
    with open_store(out) as store:
        stored = store.metrics()
    history = learnlab.train(spec["model"], spec["task"], seed=4, progress=False, **spec["train"])
    rows = sorted((s, n, v) for n, values in history.metrics.items() for s, v in values)
    assert rows == sorted(zip(stored["step"], stored["name"], stored["value"]))
    assert len(rows) > 50


@pytest.mark.parametrize("fan_in", [3, 17, 256, 4096])
def test_sp_with_the_default_init_draws_like_torch_nn_linear(fan_in):
    """Weights and biases of learnlab's SP layers have nn.Linear's distribution (two-sample KS)."""
    n = 20_000
    fan_out = max(4, n // fan_in)
    members = max(1, n // (fan_in * fan_out)) + 1
    model = MLP(fan_in, fan_out, 1, outputs=1, generators=[torch.Generator().manual_seed(e) for e in range(members)])
    ours_w = model.weights[0].detach().flatten().numpy()
    ours_b = model.biases[0].detach().flatten().numpy()
    torch.manual_seed(0)
    layers = [torch.nn.Linear(fan_in, fan_out) for _ in range(members)]
    ref_w = np.concatenate([layer.weight.detach().flatten().numpy() for layer in layers])
    ref_b = np.concatenate([layer.bias.detach().flatten().numpy() for layer in layers])
    assert stats.ks_2samp(ours_w, ref_w).pvalue > 1e-3
    # the test has the power to see a sqrt(2) or a sqrt(3) (He's or a Gaussian of the same std) error
    assert stats.ks_2samp(ours_w * 2**0.5, ref_w).pvalue < 1e-6
    gaussian = np.random.default_rng(0).normal(0, ref_w.std(), ref_w.size)
    assert stats.ks_2samp(gaussian, ref_w).pvalue < 1e-6
    if ref_b.size >= 200:  # biases: U(+-1/sqrt(fan_in)), as many as the layers have
        assert stats.ks_2samp(ours_b, ref_b).pvalue > 1e-3
        assert stats.ks_2samp(ours_b * 2**0.5, ref_b).pvalue < 1e-3


def test_a_store_written_with_the_old_seeding_is_read_but_not_resumed(tiny_spec, write_spec, tmp_path):
    out = tmp_path / "out"
    path = write_spec(tiny_spec)
    assert CliRunner().invoke(app, ["run", str(path), "--out", str(out)]).exit_code == 0
    import sqlite3

    with sqlite3.connect(out / "results.db") as db:  # what a store of the earlier scheme looks like
        db.execute("DELETE FROM meta WHERE key = 'seeding'")
        db.execute("UPDATE runs SET status = 'interrupted'")
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out)])
    assert result.exit_code == 2 and "earlier learnlab" in result.output and "new --out" in result.output
    assert CliRunner().invoke(app, ["status", str(out)]).exit_code == 0
    with open_store(out) as store:
        assert set(store.statuses().values()) == {"interrupted"}
