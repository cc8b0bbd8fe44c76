"""``train.compile`` (issue 18, item 3): the stack's forward pass and loss under torch.compile train
what the eager pass trains, within float rounding (inductor fuses and reorders element-wise work,
so not bit for bit), also when members leave the stack early; the key leaves other run ids alone."""

from __future__ import annotations

import copy
import math

import pytest

from learnlab.experiments import plan, run_group

# torch.compile's import path touches torch.jit, which warns of its own deprecation (torch's, not ours)
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
]

SPEC = {
    "name": "compiled",
    "seed": 2,
    "task": {"inputs": {"name": "gaussian", "d": 8}, "target": {"name": "hermite", "monomial": {0: 1, 1: 1}}},
    "model": {"width": 32, "depth": 2, "param": "mup", "base_width": 16},
    "train": {"optimizer": "adam", "batch_size": 32, "steps": 60, "eval_every": 20, "log_every": 5},
    # the last member ends early at its threshold: the compiled step then sees a smaller stack
    "sweep": {"zip": {"train.lr": [1e-3, 3e-3, 3e-2], "train.thresholds": [[], [], [0.9]],
                      "train.stop_at_thresholds": [False, False, True]}},
}  # fmt: skip


def _runs(dtype: str, compile: bool):
    spec = copy.deepcopy(SPEC)
    spec["train"]["dtype"] = dtype
    spec["train"]["compile"] = compile
    return run_group([r.config for r in plan(spec).runs])


@pytest.mark.slow
@pytest.mark.parametrize("dtype, tol", [("float64", 1e-10), ("float32", 1e-4)])
def test_a_compiled_stack_trains_what_the_eager_stack_trains(dtype, tol):
    eager, compiled = _runs(dtype, False), _runs(dtype, True)
    assert [r.status for r in compiled] == [r.status for r in eager]
    assert [r.step for r in compiled] == [r.step for r in eager]
    assert eager[2].step < 60  # the scenario: a member left the stack early
    for a, b in zip(eager, compiled):
        metrics_a = {(s, n): v for s, n, v in a.metrics}
        metrics_b = {(s, n): v for s, n, v in b.metrics}
        assert metrics_a.keys() == metrics_b.keys()
        for key, value in metrics_a.items():
            assert math.isclose(metrics_b[key], value, rel_tol=tol, abs_tol=tol * 1e-3), (key, value, metrics_b[key])


def test_the_key_is_recorded_only_when_set():
    off = plan(SPEC).runs[0]
    spec = copy.deepcopy(SPEC)
    spec["train"]["compile"] = False
    assert "compile" not in off.config["train"] and plan(spec).runs[0].run_id == off.run_id
    spec["train"]["compile"] = True
    on = plan(spec).runs[0]
    assert on.config["train"]["compile"] is True and on.run_id != off.run_id
