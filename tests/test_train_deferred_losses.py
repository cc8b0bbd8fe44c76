"""Losses read in batches instead of every step (issue 18, item 4: no host synchronisation inside
the training step on an accelerator). Forced on here on the CPU, a stack gives exactly what it
gives reading every step: statuses, end steps, thresholds, every metric and probe value, also for
members that diverge between two reads and members stopped by eval-metric thresholds."""

from __future__ import annotations

import copy
import dataclasses

import pytest

import learnlab.experiments._build as build
from learnlab.experiments import plan, run_group

SPEC = {
    "name": "deferred",
    "seed": 5,
    "task": {
        "inputs": {"name": "gaussian", "d": 8},
        "target": {"name": "hermite", "monomial": {0: 1, 1: 1}},
        "noise": 0.1,
        "n_test": 256,
    },
    "model": {"width": 16, "depth": 2},
    "train": {
        "optimizer": "sgd",
        "batch_size": 16,
        "steps": 150,
        "eval_every": 20,
        "log_every": 7,
        "diverge_factor": 1e3,
        "probes": [{"name": "param_norm", "every": 3}],
        "threshold_metric": "test/mse",
    },
    # lr 5 diverges between two reads; the second member stops at its test/mse threshold
    "sweep": {
        "zip": {
            "train.lr": [0.02, 0.1, 0.05, 5.0],
            "train.thresholds": [[0.9, 0.5], [0.8], [], [0.5]],
            "train.stop_at_thresholds": [False, True, False, False],
        }
    },
}


def _run(monkeypatch, defer: bool | None, spec=SPEC):
    original = build.loop_settings

    def settings(*args, **kwargs):
        return dataclasses.replace(original(*args, **kwargs), defer_losses=defer)

    monkeypatch.setattr(build, "loop_settings", settings)
    return run_group([r.config for r in plan(spec).runs])


def _outputs(result):
    return result.status, result.step, result.thresholds, sorted(result.metrics)


def test_reading_losses_in_batches_changes_nothing(monkeypatch):
    every_step, batched = _run(monkeypatch, False), _run(monkeypatch, True)
    assert {r.status for r in every_step} == {"finished", "diverged"}
    diverged = next(r for r in every_step if r.status == "diverged")
    assert diverged.step % SPEC["train"]["log_every"] != 0  # it diverged between two reads
    assert any(r.status == "finished" and r.step < SPEC["train"]["steps"] for r in every_step)  # stopped early
    for a, b in zip(every_step, batched):
        assert _outputs(b) == _outputs(a)


def test_members_stopping_at_train_loss_thresholds_read_every_step(monkeypatch):
    spec = {**SPEC, "train": {**SPEC["train"], "threshold_metric": "train/loss"}}
    every_step, batched = _run(monkeypatch, False, spec), _run(monkeypatch, True, spec)
    for a, b in zip(every_step, batched):
        assert _outputs(b) == _outputs(a)


@pytest.mark.parametrize("defer", [None, False])
def test_on_the_cpu_losses_are_read_every_step_by_default(monkeypatch, defer):
    from learnlab.train._loop import LoopSettings, _Loop

    seen = []
    original = _Loop.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(self._defer)

    monkeypatch.setattr(_Loop, "__init__", spy)
    _run(monkeypatch, defer)
    assert seen == [False]
    assert LoopSettings(steps=1).defer_losses is None


def test_a_crash_resumed_from_a_checkpoint_equals_the_uninterrupted_run(monkeypatch, tmp_path, interrupt):
    """Kept losses are read before each checkpoint: a run resumed from one, with losses read
    every 7 steps and checkpoints every 5, equals the uninterrupted run read every step."""
    from test_train_checkpoint import ONLINE, _configs

    spec = copy.deepcopy(ONLINE)
    spec["train"]["log_every"] = 7
    configs = _configs(spec)
    original = build.loop_settings

    def settings(defer):
        return lambda *args, **kwargs: dataclasses.replace(original(*args, **kwargs), defer_losses=defer)

    monkeypatch.setattr(build, "loop_settings", settings(False))
    whole = run_group(configs, out=tmp_path / "whole")
    monkeypatch.setattr(build, "loop_settings", settings(True))
    interrupt["step"] = 17
    crashed = run_group(configs, out=tmp_path / "resumed")
    assert [r.status for r in crashed] == ["failed", "failed"]
    resumed = run_group(configs, out=tmp_path / "resumed")
    for a, b in zip(whole, resumed):
        assert (a.status, a.step, a.thresholds, a.final) == (b.status, b.step, b.thresholds, b.final)
        assert sorted(a.metrics) == sorted(b.metrics)  # read later, logged in another order
