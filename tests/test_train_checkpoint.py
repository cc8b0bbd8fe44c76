"""An interrupted run resumes from its last checkpoint and ends bit-identical to an
uninterrupted one: every metric value, every probe tensor, the final parameters and the
optimizer state. Checkpoints load with ``torch.load(weights_only=True)``.

Interruptions: a probe (named in the spec as ``"module:attr"``) that raises once at a
chosen step, which the sweep runner records as a failed run; and a ``fit`` stopped by an
exception from its ``on_step`` callback.
"""

from __future__ import annotations

import copy

import pytest
import torch

from learnlab.experiments import build_group, plan, run_group
from learnlab.train import Checkpointer, fit

ONLINE = {
    "task": {
        "inputs": {"name": "gaussian", "d": 4},
        "target": {"name": "hermite", "monomial": {0: 1, 1: 1}},
        "noise": 0.1,
        "n_test": 64,
    },
    "model": {"width": 16, "depth": 2},
    "train": {
        "optimizer": "adam",
        "lr": 0.01,
        "schedule": {"name": "cosine", "warmup": 3},
        "steps": 30,
        "batch_size": 16,
        "eval_every": 10,
        "log_every": 1,
        "thresholds": [0.9, 0.5],
        "checkpoint_every": 5,
    },
    "sweep": {"grid": {"train.lr": [0.01, 0.02]}},
}
OFFLINE = {
    "task": {
        "inputs": {"name": "hypercube", "d": 5},
        "target": {"name": "parity", "indices": [[0, 1]]},
        "n_train": 40,
        "n_test": 64,
    },
    "model": {"width": 16, "depth": 1},
    "train": {
        "optimizer": "momentum",
        "lr": 0.05,
        "schedule": {"name": "step", "every": 8, "gamma": 0.5},
        "steps": 30,
        "batch_size": 16,
        "eval_every": 10,
        "log_every": 1,
        "checkpoint_every": 5,
        "eval_sets": ["test", "train"],
    },
    "sweep": {"grid": {"train.momentum": [0.8, 0.9]}},
}


def _configs(spec):
    spec = copy.deepcopy(spec)
    spec["train"]["probes"] = [
        {"name": "interrupt_probe:Interrupt", "every": 1},
        {"name": "ntk", "every": 5, "options": {"n": 4}},
        {"name": "param_norm", "every": 5},
    ]
    return [r.config for r in plan(spec).runs]


def _artifacts(out, result):
    return torch.load(out / result.artifacts, weights_only=True)


@pytest.mark.parametrize("spec", [ONLINE, OFFLINE], ids=["online-adam-cosine", "offline-momentum-step"])
def test_a_run_resumed_after_a_crash_equals_an_uninterrupted_run(tmp_path, interrupt, spec):
    configs = _configs(spec)
    whole = run_group(configs, out=tmp_path / "whole")
    assert [r.status for r in whole] == ["finished", "finished"]

    interrupt["step"] = 17
    crashed = run_group(configs, out=tmp_path / "resumed")
    assert [r.status for r in crashed] == ["failed", "failed"]
    assert "simulated interruption" in crashed[0].error
    (path,) = (tmp_path / "resumed" / "checkpoints").glob("group-*.pt")
    state = torch.load(path, weights_only=True)
    assert state["step"] == 15  # the last multiple of checkpoint_every before the crash

    resumed = run_group(configs, out=tmp_path / "resumed")
    assert not path.exists()  # removed once the group finished
    for a, b in zip(whole, resumed):
        assert (a.run_id, a.status, a.step) == (b.run_id, b.status, b.step)
        assert a.metrics == b.metrics  # every value, bit for bit
        assert a.final == b.final and a.thresholds == b.thresholds
        arts_a, arts_b = _artifacts(tmp_path / "whole", a), _artifacts(tmp_path / "resumed", b)
        assert [s for s, _ in arts_a["ntk"]] == [0, 5, 10, 15, 20, 25]
        assert all(sa == sb and torch.equal(ta, tb) for (sa, ta), (sb, tb) in zip(arts_a["ntk"], arts_b["ntk"]))


class Stop(Exception):
    pass


def test_fit_resumed_from_a_checkpoint_ends_with_bit_identical_parameters(tmp_path):
    spec = copy.deepcopy(ONLINE)
    spec["train"]["dtype"] = "float32"
    configs = [r.config for r in plan(spec).runs]

    whole = build_group(configs)
    whole_histories = fit(whole.model, whole.optimizer, whole.members, whole.settings)

    checkpoint = Checkpointer(tmp_path / "ck.pt", every=5)
    first = build_group(configs)

    def stop_at_12(done):
        if done == 12:
            raise Stop

    with pytest.raises(Stop):
        fit(first.model, first.optimizer, first.members, first.settings, on_step=stop_at_12, checkpoint=checkpoint)
    assert torch.load(tmp_path / "ck.pt", weights_only=True)["step"] == 10

    second = build_group(configs)  # a fresh process would rebuild everything from the config
    histories = fit(second.model, second.optimizer, second.members, second.settings, checkpoint=checkpoint)

    for name, value in whole.model.state_dict().items():
        assert torch.equal(second.model.state_dict()[name], value), name
    for p, q in zip(whole.model.parameters(), second.model.parameters()):
        for key, value in whole.optimizer.state[p].items():
            other = second.optimizer.state[q][key]
            assert torch.equal(other, value) if isinstance(value, torch.Tensor) else other == value
    for a, b in zip(whole_histories, histories):
        assert a.metrics == b.metrics and a.thresholds == b.thresholds and a.status == b.status


def test_save_final_keeps_the_final_weights(tmp_path):
    spec = copy.deepcopy(OFFLINE)
    spec["train"].update(save_final=True, checkpoint_every=None)
    configs = [r.config for r in plan(spec).runs]
    results = run_group(configs, out=tmp_path)
    built = build_group(configs)
    fit(built.model, built.optimizer, built.members, built.settings)
    for e, result in enumerate(results):
        saved = torch.load(tmp_path / "checkpoints" / f"{result.run_id}.pt", weights_only=True)
        weights = saved.get("model", saved)
        for name, value in built.model.state_dict().items():
            assert torch.equal(weights[name].reshape(value[e : e + 1].shape), value[e : e + 1])
