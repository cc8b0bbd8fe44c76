"""A stack of several seeds and learning rates stores exactly what its runs alone store, for targets
computed by matrix products over the samples (the power-law target, a many-term Hermite sum, a
teacher network, a multi-index model) as for elementwise ones: a target that is not ``rowwise`` is
evaluated on each stream's batch, as its run alone evaluates it."""

from __future__ import annotations

import pytest

import learnlab.tasks._polynomial as polynomial
from learnlab.experiments import sweep
from learnlab.tasks._power_law import PowerLaw

HERMITE_TERMS = [{"monomial": {i: 1, (i + 1) % 6: 2}, "coef": 0.3 + 0.1 * i} for i in range(6)]
TARGETS = {
    "power_law": {"name": "power_law", "cutoff_mode": 300},
    "hermite-many": {"name": "hermite", "terms": HERMITE_TERMS + [{"monomial": {j: 3}, "coef": 0.2} for j in range(6)]},
    "hermite-few": {"name": "hermite", "terms": HERMITE_TERMS[:2]},
    "teacher": {"name": "teacher", "widths": [16, 16], "seed": 3},
    "multi_index": {"name": "multi_index", "r": 2, "link": "product", "seed": 5},
}


def _spec(target: dict) -> dict:
    return {
        "name": "stack-targets",
        "seed": 0,
        "task": {"inputs": {"name": "gaussian", "d": 6}, "target": target, "n_test": 128},
        "model": {"width": 32, "depth": 2},
        "train": {"optimizer": "sgd", "batch_size": 37, "steps": 25, "eval_every": 5, "log_every": 1},
        "sweep": {"grid": {"train.lr": [0.01, 0.05]}, "seeds": 3},
    }


def _stored(spec: dict, out, executor: str):
    store = sweep(spec, out=out, executor=executor)
    runs = store.runs().set_index("run_id").sort_index()
    metrics = store.metrics()
    store.close()
    return runs, metrics


@pytest.mark.parametrize("name", TARGETS)
def test_a_stack_of_seeds_and_rates_stores_what_its_runs_alone_store(name, tmp_path):
    spec = _spec(TARGETS[name])
    stacked_runs, stacked = _stored(spec, tmp_path / "ensemble", "ensemble")
    alone_runs, alone = _stored(spec, tmp_path / "serial", "serial")
    assert len(stacked_runs) == 6 and (stacked_runs["status"] == "finished").all()
    assert len(stacked) > 6 * 25 and stacked.equals(alone)
    assert stacked_runs["test/mse"].equals(alone_runs["test/mse"])


def test_evaluating_a_matrix_product_target_on_all_streams_at_once_would_be_caught(tmp_path, monkeypatch):
    """The power-law target's matrix-product plan (what GPUs run) batched over the stack's three streams
    rounds some rows differently."""
    monkeypatch.setattr(polynomial, "KERNEL", False)  # the compiled evaluator is rowwise: the plan is not
    spec = _spec(TARGETS["power_law"])
    spec["train"]["batch_size"] = 1000  # enough rows that some round differently in the larger product
    _, alone = _stored(spec, tmp_path / "serial", "serial")
    monkeypatch.setattr(PowerLaw, "rowwise_on", lambda self, x: True)  # claim what it is not
    _, batched = _stored(spec, tmp_path / "batched", "ensemble")
    assert not batched.equals(alone)
