"""Notebook-style callables (defined in ``__main__``) handed to ``learnlab.sweep`` reach pool workers.

The Ray half of this lives in test_sweep_ray_cluster.py, which already has a cluster up.
"""

from __future__ import annotations

import copy

import pytest

from learnlab.experiments import sweep

# What a notebook cell holds: the function's module is __main__, so no worker can import
# it by name; cloudpickle must ship it by value.
NOTEBOOK_CELL = """
import torch

def product_target(x):
    return x[:, :1] * x[:, 1:2] + 0.5 * torch.tanh(x[:, 2:3])

def scaled_target(x):
    return 2.0 * (x[:, :1] * x[:, 1:2] + 0.5 * torch.tanh(x[:, 2:3]))
"""

SPEC = {
    "name": "notebook",
    "seed": 1,
    "task": {"inputs": {"name": "gaussian", "d": 4}, "target": {"name": "callable", "function": None}, "n_test": 128},
    "model": {"width": 16, "depth": 1},
    "train": {"lr": 0.05, "batch_size": 16, "steps": 30, "eval_every": 10},
    "sweep": {"grid": {"train.lr": [0.05, 0.1]}, "seeds": 2},
}


def notebook_functions() -> dict:
    """The cell's functions, defined as if typed into a notebook (``__module__ == "__main__"``)."""
    namespace = {"__name__": "__main__"}
    exec(compile(NOTEBOOK_CELL, "<notebook cell>", "exec"), namespace)
    functions = {name: namespace[name] for name in ("product_target", "scaled_target")}
    assert all(f.__module__ == "__main__" for f in functions.values())
    return functions


def spec_with(function) -> dict:
    spec = copy.deepcopy(SPEC)
    spec["task"]["target"]["function"] = function
    return spec


def outcomes(store) -> dict:
    """run_id -> (status, error, final test/mse); closes the store."""
    with store:
        runs = store.runs().set_index("run_id")
    return {rid: (row["status"], row["error"], row["test/mse"]) for rid, row in runs.iterrows()}


@pytest.mark.slow
def test_main_module_callables_reach_process_pool_workers(tmp_path):
    functions = notebook_functions()
    spec = spec_with(functions["product_target"])
    serial = outcomes(sweep(spec, out=tmp_path / "serial", executor="serial"))
    pooled = outcomes(sweep(spec, out=tmp_path / "processes", executor="processes", workers=2))
    assert len(serial) == 4 and {v[0] for v in serial.values()} == {"finished"}
    assert pooled == serial  # same run ids, and the workers trained on the same function
    # the function is what is learned: another one gives other runs and other losses
    scaled = outcomes(sweep(spec_with(functions["scaled_target"]), out=tmp_path / "scaled", executor="serial"))
    assert {v[0] for v in scaled.values()} == {"finished"}
    assert not set(scaled) & set(serial)
    assert sorted(v[2] for v in scaled.values()) != sorted(v[2] for v in serial.values())
