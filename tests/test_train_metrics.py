"""Evaluation metrics on models with a known error, against closed forms and numpy.

The models here output ``target(x) + c * phi(x)`` for a known phi, so the error is known
point by point; they also record the inputs of every evaluation call (calls made without
grad), so numpy can recompute every metric on exactly the points the loop evaluated.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import learnlab
from learnlab.tasks import make_task
from learnlab.train import METRICS
from learnlab.train._evaluation import evaluate, fixed_source

REL_EPS = 1e-8  # the documented eps of the relative errors |e| / (|y| + eps)
ERRORS = ["mse", "l1", "l2", "linf", "rel_mse", "rel_l1", "rel_l2", "rel_linf"]


class KnownError(nn.Module):
    """f(x) = target(x) + c * x_1; records the inputs of evaluation (no-grad) calls."""

    def __init__(self, target, c: float):
        super().__init__()
        self.target, self.c = target, c
        self.unused = nn.Parameter(torch.zeros((), dtype=torch.float64))  # gradient 0: f never changes
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        if not torch.is_grad_enabled():
            self.seen.append(x.clone())
        return self.target(x) + self.c * x[:, 1:2] + 0 * self.unused


def _numpy_metrics(err: np.ndarray, y: np.ndarray) -> dict[str, float]:
    rel = np.abs(err) / (np.abs(y) + REL_EPS)
    return {
        "mse": np.mean(err**2),
        "l1": np.mean(np.abs(err)),
        "l2": np.sqrt(np.mean(err**2)),
        "linf": np.max(np.abs(err)),
        "rel_mse": np.mean(rel**2),
        "rel_l1": np.mean(rel),
        "rel_l2": np.sqrt(np.mean(rel**2)),
        "rel_linf": np.max(rel),
    }


def test_error_of_constant_size_gives_closed_form_metrics():
    # x in {-1, 1}^4, y = x0 x2 in {-1, 1}, f = y + c x1: |e| = c and |y| = 1 at every point
    c = 0.25
    task = make_task(
        {"inputs": {"name": "hypercube", "d": 4}, "target": {"name": "parity", "indices": [[0, 2]]}, "n_test": 500}
    )
    model = KnownError(task.target, c)
    history = learnlab.train(
        model, task, lr=0.1, steps=2, eval_every=1, batch_size=8, metrics=[*ERRORS, "accuracy"], progress=False
    )
    rel = c / (1 + REL_EPS)
    expected = {
        "mse": c**2,
        "l1": c,
        "l2": c,
        "linf": c,
        "rel_mse": rel**2,
        "rel_l1": rel,
        "rel_l2": rel,
        "rel_linf": rel,
        "accuracy": 1.0,
    }  # |c| < 1: sign f = sign y everywhere
    for name, value in expected.items():
        steps = [s for s, _ in history.metrics[f"test/{name}"]]
        assert steps == [0, 1, 2]
        for _, got in history.metrics[f"test/{name}"]:
            assert got == pytest.approx(value, rel=1e-14)


def test_large_set_is_streamed_and_equals_the_same_points_evaluated_at_once():
    # Gaussian x, y = h_2(x0) = (x0^2 - 1) / sqrt 2, f = y + c x1: e = c x1. 150_000 points are
    # evaluated in chunks of at most 65_536; numpy evaluates the concatenated points at once.
    c, n_large = 0.5, 150_000
    task = make_task(
        {"inputs": {"name": "gaussian", "d": 3}, "target": {"name": "hermite", "monomial": {0: 2}}, "n_test": 1000}
    )
    model = KnownError(task.target, c)
    history = learnlab.train(
        model,
        task,
        lr=0.1,
        steps=1,
        eval_every=1,
        batch_size=8,
        metrics=ERRORS,
        eval_sets=["test", "large"],
        large_n=n_large,
        progress=False,
    )
    check, *calls = model.seen  # learnlab.train first checks the model on a zero (2, d) batch
    assert check.shape == (2, 3) and not check.any()
    test_calls = [x for x in calls if x.shape[0] == 1000]
    large_calls = [x for x in calls if x.shape[0] != 1000]
    assert len(test_calls) == 2 and len(large_calls) >= 2 * 3  # two evaluations (steps 0 and 1), >= 3 chunks each
    assert max(x.shape[0] for x in large_calls) <= 65_536
    sizes = torch.tensor([x.shape[0] for x in large_calls]).cumsum(0)
    per_eval = int((sizes == n_large).nonzero()[0]) + 1  # the passes of the first evaluation (tuned sizes: their own)
    first, second = torch.cat(large_calls[:per_eval]), torch.cat(large_calls[per_eval:])
    assert first.shape == (n_large, 3)
    assert torch.equal(first, second)  # the large set is the same fresh sample at every evaluation
    x = first.numpy()
    y = (x[:, 0] ** 2 - 1) / math.sqrt(2)
    expected = _numpy_metrics(c * x[:, 1], y)
    for step in (0, 1):
        for name in ERRORS:
            got = dict(history.metrics[f"large/{name}"])[step]
            assert got == pytest.approx(expected[name], rel=1e-9), name
    # and the closed form: E e^2 = c^2 E x1^2 = c^2, up to sampling error (5 sigma; Var x1^2 = 2)
    assert expected["mse"] == pytest.approx(c**2, abs=5 * c**2 * math.sqrt(2 / n_large))
    test_x = test_calls[0].numpy()
    test_expected = _numpy_metrics(c * test_x[:, 1], (test_x[:, 0] ** 2 - 1) / math.sqrt(2))
    assert dict(history.metrics["test/linf"])[0] == pytest.approx(test_expected["linf"], rel=1e-12)


def test_coef_is_the_learned_functions_coefficient_on_each_target_parity():
    # staircase y = x0 + x0 x1; f = 0.7 x0 + 0.2 x0 x1 + 0.1 x3: coef/S = mean f chi_S on the test points
    task = make_task(
        {"inputs": {"name": "hypercube", "d": 4}, "target": {"name": "parity", "indices": [[0], [0, 1]]}, "n_test": 300}
    )

    def f(x):
        return (0.7 * x[:, 0] + 0.2 * x[:, 0] * x[:, 1] + 0.1 * x[:, 3]).unsqueeze(1)

    model = KnownError(f, 0.0)
    history = learnlab.train(model, task, lr=0.1, steps=1, eval_every=1, batch_size=8, metrics=["coef"], progress=False)
    x = model.seen[1].numpy()  # seen[0]: learnlab.train's check that the model fits the task
    fx = 0.7 * x[:, 0] + 0.2 * x[:, 0] * x[:, 1] + 0.1 * x[:, 3]
    assert dict(history.metrics["test/coef/x0"])[0] == pytest.approx(np.mean(fx * x[:, 0]), rel=1e-12)
    assert dict(history.metrics["test/coef/x0x1"])[0] == pytest.approx(np.mean(fx * x[:, 0] * x[:, 1]), rel=1e-12)
    assert abs(np.mean(fx * x[:, 0]) - 0.7) < 0.2  # the right coefficient, up to the sample's cross terms


class _Stacked(nn.Module):
    """(E, n, d) -> (E, n, k): member e outputs out[e] (a fixed table looked up by position)."""

    def __init__(self, table):
        super().__init__()
        self.table, self.pos = table, 0

    def forward(self, x):
        n = x.shape[1]
        out = self.table[:, self.pos : self.pos + n]
        self.pos += n
        return out


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_streaming_in_any_chunk_size_gives_the_whole_set_metrics(gen, chunk):
    n, members = 200, 2
    x = torch.randn(n, 3, generator=gen(0), dtype=torch.float64)
    y = torch.randn(n, 1, generator=gen(1), dtype=torch.float64)
    out = y.unsqueeze(0) + torch.randn(members, n, 1, generator=gen(2), dtype=torch.float64)
    got = evaluate(_Stacked(out), [fixed_source(x, y)] * members, ERRORS, chunk=chunk)
    for e in range(members):
        expected = _numpy_metrics((out[e] - y).numpy().ravel(), y.numpy().ravel())
        for name in ERRORS:
            assert got[name][e] == pytest.approx(expected[name], rel=1e-12)


def test_accuracy_is_argmax_agreement_for_several_outputs(gen):
    n = 50
    labels = torch.randint(0, 4, (n,), generator=gen(0))
    y = torch.nn.functional.one_hot(labels, 4).double()
    logits = torch.randn(1, n, 4, generator=gen(1), dtype=torch.float64)
    got = evaluate(_Stacked(logits), [fixed_source(torch.zeros(n, 2), y)], ["accuracy"])["accuracy"][0]
    assert got == pytest.approx((logits[0].argmax(dim=1) == labels).double().mean().item(), rel=1e-15)
    assert set(ERRORS) | {"accuracy"} <= set(METRICS)
