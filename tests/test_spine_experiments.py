"""Experiments layer (issue 2): sweep expansion, run ids, derived seeds, the store, resumption."""

from __future__ import annotations

import copy
import itertools
import math
import random

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from learnlab.experiments import (
    SpecError,
    derive_seed,
    open_store,
    plan,
    run_group,
    run_id,
    sweep,
)
from learnlab.models import MLP

BASE = {
    "name": "exp-tests",
    "seed": 0,
    "task": {"inputs": {"name": "hypercube", "d": 6}, "target": {"name": "parity", "indices": [[0, 1]]}},
}

# Axes a grid may sweep, each with values that are valid and pairwise distinct after validation.
AXES = {
    "model.width": st.integers(1, 4096),
    "model.depth": st.integers(1, 6),
    "train.lr": st.floats(1e-4, 10.0, allow_nan=False),
    "train.batch_size": st.integers(1, 512),
    "task.n_test": st.integers(1, 10_000),
    "task.noise": st.floats(0.0, 0.5, allow_nan=False),  # parity: a label-flip probability,
}


@st.composite
def sweeps(draw, with_zip: bool):
    keys = draw(st.lists(st.sampled_from(sorted(AXES)), min_size=0, max_size=3, unique=True))
    grid = {k: draw(st.lists(AXES[k], min_size=1, max_size=3, unique=True)) for k in keys}
    zipped = {}
    if with_zip:
        free = [k for k in sorted(AXES) if k not in grid]
        zkeys = draw(st.lists(st.sampled_from(free), min_size=1, max_size=2, unique=True))
        n = draw(st.integers(1, 3))
        zipped = {k: draw(st.lists(AXES[k], min_size=n, max_size=n, unique=True)) for k in zkeys}
    seeds = draw(st.integers(1, 3))
    return grid, zipped, seeds


def _spec(grid, zipped=None, seeds=1, **top):
    spec = copy.deepcopy(BASE)
    spec.update(top)
    spec["sweep"] = {"grid": grid, "seeds": seeds}
    if zipped:
        spec["sweep"]["zip"] = zipped
    return spec


def _get(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


# ---------------------------------------------------------------------------- expansion


@settings(max_examples=40, deadline=None)
@given(sweeps(with_zip=False))
def test_grid_size_is_the_product_of_axis_lengths_times_seeds(case):
    grid, _, seeds = case
    runs = plan(_spec(grid, seeds=seeds)).runs
    assert len(runs) == math.prod(len(v) for v in grid.values()) * seeds
    # every combination appears exactly once per seed, with its values in the resolved config
    combos = [tuple(_get(r.config, k) for k in grid) + (r.config["seed"],) for r in runs]
    expected = [(*values, s) for values in itertools.product(*grid.values()) for s in range(seeds)]
    assert sorted(combos) == sorted(expected)
    assert len({r.run_id for r in runs}) == len(runs), "distinct configs must get distinct run ids"


@settings(max_examples=30, deadline=None)
@given(sweeps(with_zip=True))
def test_zip_axes_advance_together(case):
    grid, zipped, seeds = case
    runs = plan(_spec(grid, zipped, seeds)).runs
    n_zip = len(next(iter(zipped.values())))
    assert len(runs) == math.prod(len(v) for v in grid.values()) * n_zip * seeds
    zipped_rows = {tuple(_get(r.config, k) for k in zipped) for r in runs}
    assert zipped_rows == set(zip(*zipped.values())), "zip lists pair up index by index"


def test_seeds_count_and_explicit_list():
    runs = plan(_spec({"train.lr": [0.1, 0.2]}, seeds=3, seed=10)).runs
    assert sorted(r.config["seed"] for r in runs) == [10, 10, 11, 11, 12, 12]
    spec = _spec({}, seed=0)
    spec["sweep"]["seeds"] = [5, 7]
    assert sorted(r.config["seed"] for r in plan(spec).runs) == [5, 7]


# ---------------------------------------------------------------------------- run ids


def _shuffled(tree, rng: random.Random):
    """The same tree with every dict's keys in a random order."""
    if isinstance(tree, dict):
        keys = list(tree)
        rng.shuffle(keys)
        return {k: _shuffled(tree[k], rng) for k in keys}
    if isinstance(tree, list):
        return [_shuffled(v, rng) for v in tree]
    return tree


SPEC_WITH_EVERYTHING = {
    "name": "order",
    "seed": 3,
    "task": {
        "inputs": {"name": "hypercube", "d": 8},
        "target": {"name": "parity", "indices": [[0, 1], [2]]},
        "noise": 0.1,
        "n_test": 64,
    },
    "model": {"name": "mlp", "width": 8, "depth": 2, "activation": "relu", "param": "mup", "base_width": 8},
    "train": {
        "optimizer": "adam",
        "lr": 0.01,
        "batch_size": 8,
        "steps": 5,
        "eval_every": 5,
        "thresholds": [0.5, 0.1],
        "ema": 0.9,
    },
    "sweep": {"grid": {"model.width": [8, 16], "train.lr": [0.01, 0.1]}, "zip": {}, "seeds": 2},
}


@settings(max_examples=25, deadline=None)
@given(st.randoms(use_true_random=False))
def test_run_id_is_stable_under_key_reordering(rng):
    reference = plan(SPEC_WITH_EVERYTHING).runs
    shuffled = _shuffled(SPEC_WITH_EVERYTHING, rng)
    # the order of runs may follow the order of the grid's axes; the set of ids may not
    assert sorted(r.run_id for r in plan(shuffled).runs) == sorted(r.run_id for r in reference)
    for r in reference:
        assert run_id(_shuffled(r.config, rng)) == r.run_id
        assert run_id(r.config) == r.run_id


@settings(max_examples=50, deadline=None)
@given(
    st.sampled_from(
        [
            "model.width",
            "model.depth",
            "train.lr",
            "train.batch_size",
            "task.n_test",
            "task.noise",
            "seed",
            "train.ema",
            "model.activation",
            "train.optimizer",
        ]
    ),
    st.data(),
)
def test_run_id_differs_when_any_config_value_differs(key, data):
    (config,) = plan(BASE).runs
    other = {
        "model.width": 300,
        "model.depth": 4,
        "train.lr": 0.123,
        "train.batch_size": 7,
        "task.n_test": 99,
        "task.noise": 0.5,
        "seed": 42,
        "train.ema": 0.5,
        "model.activation": "tanh",
        "train.optimizer": "adam",
    }[key]
    (changed,) = plan(BASE, [f"{key}={other}"]).runs
    assert changed.run_id != config.run_id
    assert changed.run_id == plan(BASE, [f"{key}={other}"]).runs[0].run_id  # deterministic


def test_equal_resolved_configs_share_a_run_id():
    # an explicit default and an int for a float resolve to the same config, hence the same run
    (a,) = plan(BASE).runs
    (b,) = plan(BASE, ["train.momentum=0.9", "train.lr=0.1", "model.width=256"]).runs
    (c,) = plan(BASE, ["train.lr=1"]).runs
    (d,) = plan(BASE, ["train.lr=1.0"]).runs
    assert a.run_id == b.run_id
    assert c.run_id == d.run_id != a.run_id


# ---------------------------------------------------------------------------- derived seeds
# (which config each role's seed depends on: tests/test_experiments_randomness.py)


def test_derived_seeds_differ_across_roles_seeds_and_keys():
    seeds = [derive_seed(seed, key, role) for seed in range(3) for key in ("a", "b") for role in ("init", "data")]
    assert len(set(seeds)) == len(seeds) == 12
    assert all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(0, "a", "init") == derive_seed(0, "a", "init")


# ---------------------------------------------------------------------------- store round trip

TINY_TRAIN = {
    "optimizer": "sgd",
    "lr": 0.05,
    "batch_size": 16,
    "steps": 20,
    "eval_every": 10,
    "log_every": 5,
    "thresholds": [5.0, 1e-9],
}


def _tiny(tiny_spec, **sweep_spec):
    spec = copy.deepcopy(tiny_spec)
    spec["train"] = dict(TINY_TRAIN)
    if sweep_spec:
        spec["sweep"] = sweep_spec
    return spec


def test_yaml_spec_to_store_round_trip(tiny_spec, write_spec, tmp_path):
    spec = _tiny(tiny_spec, grid={"train.lr": [0.05, 0.1], "model.width": [8, 16]}, seeds=1)
    path = write_spec(yaml.safe_dump(spec))
    p = plan(path)
    assert len(p.runs) == 4
    store = sweep(path, out=tmp_path / "out", executor="serial")
    try:
        assert store.path == tmp_path / "out" / "results.db"
        # the stored config is the resolved config (defaults filled in), key for key
        assert store.configs() == {r.run_id: r.config for r in p.runs}
        for r in p.runs:
            assert r.config["train"]["momentum"] == 0.9 and r.config["model"]["activation"] == "relu"
        runs = store.runs().set_index("run_id")
        assert set(runs.index) == {r.run_id for r in p.runs}
        assert (runs["status"] == "finished").all()
        for r in p.runs:
            row = runs.loc[r.run_id]
            assert row["model.width"] == r.config["model"]["width"]
            assert row["train.lr"] == r.config["train"]["lr"]
            assert row["seed"] == r.config["seed"] == 0
            assert row["task.inputs.d"] == 6
            assert math.isnan(row["steps_to/1e-09"])
        metrics = store.metrics()
        assert list(metrics.columns) == ["run_id", "step", "name", "value"]
        assert set(metrics["name"]) == {"train/loss", "test/mse", "test/accuracy"}  # a parity: +-1 labels
        # final metrics in runs() are the last records of each history
        last = metrics.sort_values("step").groupby(["run_id", "name"])["value"].last()
        for r in p.runs:
            assert runs.loc[r.run_id, "test/mse"] == last[(r.run_id, "test/mse")]
            assert runs.loc[r.run_id, "train/loss"] == last[(r.run_id, "train/loss")]
    finally:
        store.close()


def test_metrics_long_format_equals_the_run_history(tiny_spec, resolve, tmp_path):
    spec = _tiny(tiny_spec)
    spec["sweep"] = {}
    (config,) = resolve(spec)
    (result,) = run_group([config])  # runs are deterministic: the same history again
    store = sweep(spec, out=tmp_path, executor="serial")
    try:
        frame = store.metrics()
        assert set(frame["run_id"]) == {run_id(config)}
        got = sorted(zip(frame["step"], frame["name"], frame["value"]))
        assert got == sorted(result.metrics)
        assert sorted(frame.loc[frame["name"] == "test/mse", "step"]) == [0, 10, 20]
        assert sorted(frame.loc[frame["name"] == "train/loss", "step"]) == [0, 5, 10, 15]
        only = store.metrics(names=["test/mse"], run_ids=[run_id(config)])
        assert set(only["name"]) == {"test/mse"} and len(only) == 3
        assert only["value"].dtype == float and only["step"].is_monotonic_increasing
        row = store.runs().iloc[0]
        # the initial loss (~1-2) is already below 5: crossed at step 0, a real value, not missing
        assert result.thresholds == {"5.0": 0, "1e-09": None}
        assert row["steps_to/5.0"] == 0 and math.isnan(row["steps_to/1e-09"])
        assert row["step"] == 20 and row["status"] == "finished"
    finally:
        store.close()


# ---------------------------------------------------------------------------- resumption


def _finished_times(out) -> dict[str, float]:
    with open_store(out) as store:
        return dict(zip(store.runs()["run_id"], store.runs()["finished"]))


def test_rerunning_a_sweep_executes_zero_new_runs(tiny_spec, tmp_path):
    spec = _tiny(tiny_spec, grid={"train.lr": [0.05, 0.1]}, seeds=2)
    calls = []
    sweep(spec, out=tmp_path, executor="serial", on_result=lambda r, done, total: calls.append(r.run_id)).close()
    assert len(calls) == 4
    before = _finished_times(tmp_path)
    again = []
    sweep(spec, out=tmp_path, executor="serial", on_result=lambda r, done, total: again.append(r.run_id)).close()
    assert again == []
    assert _finished_times(tmp_path) == before
    # growing the sweep runs only the new points
    spec["sweep"]["grid"]["train.lr"].append(0.2)
    grown = []
    sweep(spec, out=tmp_path, executor="serial", on_result=lambda r, done, total: grown.append(r)).close()
    assert len(grown) == 2 and {r.status for r in grown} == {"finished"}
    assert all(_finished_times(tmp_path)[rid] == t for rid, t in before.items())


def test_a_failed_run_is_recorded_and_rerun_alone(tiny_spec, tmp_path, monkeypatch):
    spec = _tiny(tiny_spec, grid={"model.width": [8, 13]}, seeds=2)
    original = MLP.forward

    def broken(self, x):
        if self.width == 13:
            raise RuntimeError("boom: width 13 is cursed")
        return original(self, x)

    monkeypatch.setattr(MLP, "forward", broken)
    store = sweep(spec, out=tmp_path, executor="serial")
    runs = store.runs()
    store.close()
    failed = runs[runs["model.width"] == 13]
    assert list(failed["status"]) == ["failed", "failed"]
    for error in failed["error"]:
        assert "Traceback" in error and "boom: width 13 is cursed" in error
    assert list(runs.loc[runs["model.width"] == 8, "status"]) == ["finished", "finished"], "the sweep went on"
    before = _finished_times(tmp_path)

    monkeypatch.setattr(MLP, "forward", original)
    rerun = []
    sweep(spec, out=tmp_path, executor="serial", on_result=lambda r, done, total: rerun.append(r.run_id)).close()
    assert sorted(rerun) == sorted(failed["run_id"])
    with open_store(tmp_path) as again:
        after = again.runs().set_index("run_id")
    assert (after["status"] == "finished").all()
    assert after.loc[list(failed["run_id"]), "error"].isna().all(), "the old traceback is replaced"
    for rid in runs.loc[runs["model.width"] == 8, "run_id"]:
        assert after.loc[rid, "finished"] == before[rid]


def test_an_interrupt_marks_outstanding_runs_interrupted(tiny_spec, tmp_path):
    spec = _tiny(tiny_spec, grid={"train.lr": [0.05, 0.1]}, seeds=2)
    seen = []

    def ctrl_c(result, done, total):
        seen.append(result.run_id)
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(spec, out=tmp_path, executor="serial", on_result=ctrl_c)
    with open_store(tmp_path) as store:
        runs = store.runs().set_index("run_id")
    assert runs.loc[seen[0], "status"] == "finished", "a committed result stays"
    others = runs.drop(index=seen[0])
    assert len(others) == 3 and (others["status"] == "interrupted").all()
    assert others["error"].str.contains("interrupted").all()
    resumed = []
    sweep(spec, out=tmp_path, executor="serial", on_result=lambda r, d, t: resumed.append(r.run_id)).close()
    assert sorted(resumed) == sorted(others.index)


def test_diverged_runs_are_results_and_are_not_rerun(tiny_spec, tmp_path):
    spec = _tiny(tiny_spec, grid={"train.lr": [0.05, 50.0]}, seeds=1)
    store = sweep(spec, out=tmp_path, executor="serial")
    runs = store.runs().set_index("train.lr")
    store.close()
    assert runs.loc[50.0, "status"] == "diverged" and 0 < runs.loc[50.0, "step"] < 20
    assert "diverge_factor 10000" in runs.loc[50.0, "error"]  # the default catches it before it overflows
    assert runs.loc[50.0, ["test/mse", "train/loss"]].isna().all()  # a diverged run has no final values
    assert runs.loc[50.0, "diverged_at"] == runs.loc[50.0, "step"]
    assert runs.loc[0.05, "status"] == "finished"
    again = []
    sweep(spec, out=tmp_path, executor="serial", on_result=lambda r, d, t: again.append(r)).close()
    assert again == []


# ---------------------------------------------------------------------------- validation


def test_an_invalid_sweep_point_is_reported_before_anything_runs(tmp_path):
    spec = _spec({"task.inputs.d": [8, 2]})
    spec["task"]["target"]["indices"] = [[0, 5]]
    with pytest.raises(SpecError) as info:
        sweep(spec, out=tmp_path / "out", executor="serial")
    problems = info.value.problems
    assert any(path.startswith("task.target") and "5" in msg for path, msg in problems)
    assert not (tmp_path / "out").exists(), "nothing is written for an invalid spec"


def test_spec_error_lists_every_problem_with_its_key_path():
    spec = copy.deepcopy(BASE)
    spec["model"] = {"widht": 3, "depth": 0}
    spec["train"] = {"lr": -1}
    spec["task"]["target"]["indices"] = [[0, 6]]
    spec["sweep"] = {"grid": {"model.nope": [1]}, "zip": {"train.lr": [0.1, 0.2], "model.width": [3]}}
    with pytest.raises(SpecError) as info:
        plan(spec)
    paths = [path for path, _ in info.value.problems]
    text = str(info.value)
    for key in ("model.widht", "model.depth", "train.lr", "task.target", "sweep.zip"):
        assert any(p.startswith(key) for p in paths), f"{key} missing from {paths}"
        assert key in text
    assert text.splitlines()[0] == f"invalid spec: {len(paths)} problems"
    assert len(text.splitlines()) == len(paths) + 1, "one line per problem"


# ---------------------------------------------------------------------------- regressions of fixed bugs


def test_a_seed_axis_is_either_honoured_or_rejected():
    spec = _spec({"seed": [0, 1, 2]})
    try:
        runs = plan(spec).runs
    except SpecError as err:  # rejecting it with a pointer to sweep.seeds is fine too
        assert any("seed" in path or "seed" in msg for path, msg in err.problems)
        return
    assert sorted(r.config["seed"] for r in runs) == [0, 1, 2]


def test_a_parity_index_set_with_a_repeated_index_is_rejected():
    # x_i^2 = 1 on the hypercube: [[0, 0, 1]] would silently be the target x1
    with pytest.raises(SpecError) as info:
        plan(BASE, ["task.target.indices=[[0, 0, 1]]"])
    assert any(path.startswith("task.target") for path, _ in info.value.problems)


@pytest.mark.parametrize("override, key", [("train.lr=.inf", "train.lr"), ("model.width=true", "model.width")])
def test_infinite_lr_and_boolean_width_are_rejected(override, key):
    with pytest.raises(SpecError) as info:
        plan(BASE, [override])
    assert [path for path, _ in info.value.problems] == [key]


def test_a_bad_axis_key_is_reported_together_with_other_problems():
    spec = _spec({"model.widht": [8, 16]})
    spec["train"] = {"lr": -1}
    with pytest.raises(SpecError) as info:
        plan(spec)
    paths = [path for path, _ in info.value.problems]
    assert any(p.startswith("train.lr") for p in paths)
    assert any("model.widht" in p for p in paths), f"the axis typo is missing from {paths}"
