"""Ensembles: every member of a stacked group equals its serial run (issue 7).

The reference is the same run trained alone (a group of one). The per-member
arithmetic is made independent of the stack size (see models' ``stacked_matmul``),
so the tolerances below (1e-4 relative in float32, 1e-10 in float64, as the issue
asks) have a wide margin: in practice the histories agree bit for bit.
"""

from __future__ import annotations

import math

import pytest

from learnlab.experiments import plan, run_group
from learnlab.experiments._groups import form_groups, member_bytes

TOL = {"float32": 1e-4, "float64": 1e-10}


def _spec(optimizer: str, dtype: str, steps: int = 500) -> dict:
    lrs = {"sgd": [0.02, 0.05, 0.1, 5.0], "momentum": [0.005, 0.01, 0.02, 5.0], "adam": [1e-3, 3e-3, 1e-2, 10.0]}
    return {
        "name": "ens",
        "seed": 3,
        "task": {
            "inputs": {"name": "gaussian", "d": 8},
            "target": {"name": "hermite", "monomial": {0: 1, 1: 1}},
            "noise": 0.1,
            "n_test": 256,
        },
        "model": {"width": 16, "depth": 2},
        "train": {
            "optimizer": optimizer,
            "batch_size": 16,
            "steps": steps,
            "eval_every": 50,
            "log_every": 5,
            "dtype": dtype,
            "diverge_factor": 1e4,
        },
        # the last learning rate diverges mid-run; thresholds make members stop at different steps
        "sweep": {
            "zip": {
                "train.lr": lrs[optimizer],
                "train.thresholds": [[0.9, 0.5], [0.8], [], [0.5]],
                "train.stop_at_thresholds": [True, False, False, True],
            },
            "seeds": 1,
        },
    }


def _as_dict(result):
    return {(step, name): value for step, name, value in result.metrics}


def _assert_same(solo, member, tol):
    assert solo.status == member.status, (solo.status, member.status, solo.error, member.error)
    assert solo.step == member.step
    assert solo.thresholds == member.thresholds
    a, b = _as_dict(solo), _as_dict(member)
    assert a.keys() == b.keys()
    for key in a:
        if math.isnan(a[key]):
            assert math.isnan(b[key]), key
        else:
            assert abs(a[key] - b[key]) <= tol * max(abs(a[key]), 1e-12), (key, a[key], b[key])


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_every_member_equals_its_serial_run(optimizer, dtype):
    configs = [r.config for r in plan(_spec(optimizer, dtype)).runs]
    stacked = run_group(configs)
    statuses = {r.status for r in stacked}
    assert "diverged" in statuses and "finished" in statuses  # the scenario is exercised
    assert len({r.step for r in stacked}) >= 3  # members ended at different steps
    for config, member in zip(configs, stacked):
        (solo,) = run_group([config])
        _assert_same(solo, member, TOL[dtype])


def test_probes_per_member_equal_the_serial_ones():
    spec = _spec("sgd", "float64", steps=60)
    spec["train"]["probes"] = [{"name": "param_norm", "every": 20}, {"name": "grad_norm", "every": 20}]
    configs = [r.config for r in plan(spec).runs]
    stacked = run_group(configs)
    for config, member in zip(configs, stacked):
        (solo,) = run_group([config])
        probes = {k: v for k, v in _as_dict(solo).items() if k[1].startswith("probe/")}
        assert probes, "the probes recorded nothing"
        for key, value in probes.items():
            assert _as_dict(member)[key] == pytest.approx(value, rel=1e-12)


def test_runs_with_a_different_width_land_in_different_groups():
    spec = _spec("sgd", "float32", steps=10)
    spec["sweep"] = {"grid": {"model.width": [16, 32], "train.lr": [0.01, 0.02, 0.03]}, "seeds": 2}
    runs = plan(spec).runs
    groups = form_groups(runs, max_members=64)
    assert sorted(len(g) for g in groups) == [6, 6]
    for group in groups:
        assert len({r.config["model"]["width"] for r in group}) == 1


def test_group_size_respects_max_members_and_the_memory_budget():
    spec = _spec("sgd", "float32", steps=10)
    spec["sweep"] = {"grid": {"train.lr": [0.01 * (i + 1) for i in range(10)]}, "seeds": 1}
    runs = plan(spec).runs
    assert max(len(g) for g in form_groups(runs, max_members=4)) <= 4
    budget = 3 * member_bytes(runs[0].validated())
    groups = form_groups(runs, memory_budget=budget)
    assert max(len(g) for g in groups) == 3
    assert sorted(r.config["train"]["lr"] for g in groups for r in g) == sorted(r.config["train"]["lr"] for r in runs)
    # a pool's workers all get work: 10 runs over 4 workers -> at least 4 groups
    assert len(form_groups(runs, workers=4)) >= 4


def test_groups_gather_the_runs_that_share_their_data():
    """An lr x seed grid planned lr by lr: cut in plan order, every group would hold many seeds (a
    data stream each); ordered by data first, a group holds the lrs of one or two seeds."""
    spec = _spec("sgd", "float32", steps=10)
    spec["sweep"] = {"grid": {"train.lr": [0.001 * (i + 1) for i in range(8)]}, "seeds": 6}
    runs = plan(spec).runs
    assert len({r.config["seed"] for r in runs[:4]}) > 1  # the plan's order mixes seeds
    groups = form_groups(runs, max_members=8)
    assert [len({r.config["seed"] for r in g}) for g in groups] == [1] * 6
    assert sorted(r.run_id for g in groups for r in g) == sorted(r.run_id for r in runs)
    spec["task"]["data_seed"] = 11  # one data seed for all: the data no longer follow the run's seed
    assert [len(g) for g in form_groups(plan(spec).runs, max_members=64)] == [48]
    halves = form_groups(runs, max_members=12)  # a group of 12: two seeds whole, none split across groups
    assert [len({r.config["seed"] for r in g}) for g in halves] == [2] * 4


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_members_with_their_own_adam_betas_and_eps_equal_their_serial_runs(optimizer):
    """Adam's betas and eps are per-member hyperparameters: one group, and each member's
    history has the same bits as its run alone (where they are plain floats)."""
    spec = _spec("adam", "float32", steps=120)
    spec["train"] = {**spec["train"], "optimizer": optimizer, "lr": 3e-3, "weight_decay": 0.01}
    spec["sweep"] = {
        "zip": {"train.betas": [[0.9, 0.999], [0.8, 0.99], [0.95, 0.9999]], "train.eps": [1e-8, 1e-6, 1e-3]},
        "seeds": 1,
    }
    configs = [r.config for r in plan(spec).runs]
    (group,) = form_groups(configs, max_members=64)
    assert len(group) == 3
    stacked = run_group(configs)
    for config, member in zip(configs, stacked):
        (solo,) = run_group([config])
        assert solo.status == member.status == "finished"
        assert solo.metrics == member.metrics


def test_runs_differing_in_their_teacher_seed_are_one_group_with_their_own_teachers():
    spec = _spec("sgd", "float64", steps=40)
    spec["task"] = {
        "inputs": {"name": "gaussian", "d": 8},
        "target": {"name": "teacher", "widths": [8, 8]},
        "n_test": 128,
    }
    spec["sweep"] = {"grid": {"task.target.seed": [0, 1, 2], "train.lr": [0.01, 0.05]}, "seeds": 1}
    configs = [r.config for r in plan(spec).runs]
    (group,) = form_groups(configs, max_members=64)
    assert len(group) == 6
    stacked = run_group(configs)
    finals = {}
    for config, member in zip(configs, stacked):
        (solo,) = run_group([config])
        _assert_same(solo, member, TOL["float64"])
        finals.setdefault(config["task"]["target"]["seed"], set()).add(member.final["test/mse"])
    assert len({min(v) for v in finals.values()}) == 3  # three different teachers were learned
