"""Thresholds and divergence on a model whose loss trajectory is known in closed form.

Model f(x) = (1 + c) x_0 on x in {-1, +1}^d with target y = x_0 (a parity of degree 1):
the error is c x_0, so every batch loss (MSE) is exactly c^2 whatever the batch, and SGD
with learning rate lr maps c -> c (1 - 2 lr). So L_t = c_0^2 (1 - 2 lr)^(2t) at every
step, for the train loss and for the test MSE alike, and the tests compute the EMA and
the crossing steps by hand from that sequence.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import learnlab

TASK = {"inputs": {"name": "hypercube", "d": 3}, "target": {"name": "parity", "indices": [[0]]}, "n_test": 64}


class ScaledInput(nn.Module):
    """f(x) = (1 + c) x_0 with a trainable scalar c."""

    def __init__(self, c0: float, dtype=torch.float64):
        super().__init__()
        self.c = nn.Parameter(torch.tensor(c0, dtype=dtype))

    def forward(self, x):
        return (1 + self.c) * x[:, :1]


def _losses(c0: float, lr: float, steps: int) -> list[float]:
    return [c0**2 * (1 - 2 * lr) ** (2 * t) for t in range(steps + 1)]


def _ema_crossings(losses, thresholds, s, scale=1.0) -> dict[float, int | None]:
    """Seed 002's EMA by hand: ema_0 = L_0, ema_t = s ema_{t-1} + (1 - s) L_t; first t with ema_t < c."""
    steps, ema = {c: None for c in thresholds}, None
    for t, loss in enumerate(losses):
        ema = loss if ema is None else s * ema + (1 - s) * loss
        for c in thresholds:
            # keep the test away from ties, where rounding could decide
            assert abs(ema - c * scale) > 1e-9 * c * scale
            if steps[c] is None and ema < c * scale:
                steps[c] = t
    return steps


def _train(c0=1.0, lr=0.05, steps=60, dtype=torch.float64, **recipe):
    return learnlab.train(
        ScaledInput(c0, dtype), TASK, lr=lr, steps=steps, batch_size=8, log_every=1, progress=False, **recipe
    )


def test_train_loss_is_the_closed_form_sequence():
    history = _train(steps=10, eval_every=5)
    expected = _losses(1.0, 0.05, 10)
    got = [v for _, v in history.metrics["train/loss"]]
    assert got == pytest.approx(expected[:10], rel=1e-12)
    assert dict(history.metrics["test/mse"])[5] == pytest.approx(expected[5], rel=1e-12)


def test_thresholds_on_the_train_loss_ema_match_a_hand_computed_ema():
    thresholds = [0.9, 0.5, 0.2, 1e-9]
    history = _train(thresholds=thresholds, ema=0.9)
    expected = _ema_crossings(_losses(1.0, 0.05, 60)[:60], thresholds, 0.9)
    assert expected[1e-9] is None and expected[0.2] is not None  # the test exercises both cases
    assert history.thresholds == expected
    assert history.status == "finished" and history.step == 60


def test_relative_thresholds_are_fractions_of_the_step0_loss():
    thresholds = [0.5, 0.1]
    history = _train(c0=2.0, lr=0.03, thresholds=thresholds, ema=0.8, relative_thresholds=True)
    losses = _losses(2.0, 0.03, 60)[:60]
    expected = _ema_crossings(losses, thresholds, 0.8, scale=losses[0])
    assert None not in expected.values()
    assert history.thresholds == expected
    # the same thresholds read as absolute ones are crossed at other steps
    assert _ema_crossings(losses, thresholds, 0.8) != expected


def test_only_thresholds_mode_stops_the_run_at_the_last_crossing():
    history = _train(thresholds=[0.5, 0.3], ema=0.9, stop_at_thresholds=True, eval_every=100)
    expected = _ema_crossings(_losses(1.0, 0.05, 60)[:60], [0.5, 0.3], 0.9)
    last = max(expected.values())
    assert history.thresholds == expected
    assert history.status == "finished" and history.step == last
    assert max(s for s, _ in history.metrics["train/loss"]) == last
    assert history.metrics["test/mse"][-1][0] == last  # evaluated where it stopped


@pytest.mark.parametrize("relative", [False, True])
def test_thresholds_on_an_eval_metric_use_its_values_at_eval_steps(relative):
    # test/mse = c_t^2 exactly (|x_0| = 1), measured every 5 steps, no smoothing
    c0, lr, every = 1.5, 0.04, 5
    losses = _losses(c0, lr, 60)
    thresholds = [0.3, 0.02] if relative else [1.0, 0.05]
    scale = losses[0] if relative else 1.0
    expected = {c: next(t for t in range(0, 61, every) if losses[t] < c * scale) for c in thresholds}
    history = _train(
        c0=c0,
        lr=lr,
        thresholds=thresholds,
        threshold_metric="test/mse",
        eval_every=every,
        relative_thresholds=relative,
        stop_at_thresholds=True,
    )
    assert history.thresholds == expected
    assert history.step == max(expected.values()) and history.status == "finished"


def test_diverge_factor_ends_the_run_at_the_first_step_above_it():
    # lr = 1.5: c -> -2c, L_t = 4^t; 4^3 = 64 <= 100 < 4^4 = 256: diverged at step 4
    history = _train(lr=1.5, steps=20, diverge_factor=100.0, eval_every=2)
    assert history.status == "diverged" and history.step == 4
    assert "diverge_factor" in history.reason and "step 4" in history.reason
    assert [s for s, _ in history.metrics["train/loss"]] == [0, 1, 2, 3]
    assert [v for _, v in history.metrics["train/loss"]] == pytest.approx([1, 4, 16, 64], rel=1e-12)
    assert max(s for s, _ in history.metrics["test/mse"]) < 4


def test_the_default_diverge_factor_catches_a_loss_10_000_times_its_start():
    # L_t = 4^t: 4^6 = 4096 <= 10^4 < 4^7 = 16384, so the default ends the run at step 7
    history = _train(lr=1.5, steps=20, eval_every=2)
    assert history.status == "diverged" and history.step == 7
    assert "diverge_factor 10000" in history.reason
    assert history.final == {}  # a diverged run has no final values


def test_a_non_finite_loss_ends_the_run_as_diverged():
    # float32, lr = 1e10: c_1 = -2e10 (L_1 = 4e20), c_2 ~ 4e20, L_2 ~ 1.6e41 = inf in float32
    history = _train(lr=1e10, steps=20, dtype=torch.float32, eval_every=100, diverge_factor=None)
    assert history.status == "diverged" and history.step == 2
    assert "non-finite" in history.reason
    assert [s for s, _ in history.metrics["train/loss"]] == [0, 1]
