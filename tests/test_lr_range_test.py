"""learnlab.lr.range_test: ramps, the suggested rate on a quadratic, and state given back."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from learnlab.lr import range_test

F64 = torch.float64


def _problem(gen, n: int = 64, d: int = 5):
    g = gen(0)
    x = torch.randn(n, d, generator=g, dtype=F64) * torch.linspace(0.5, 1.5, d, dtype=F64)
    y = x @ torch.randn(d, 1, generator=g, dtype=F64) + 0.1 * torch.randn(n, 1, generator=g, dtype=F64)
    model = nn.Linear(d, 1).to(F64)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64))
    return model, x, y


def test_ramp_losses_and_divergence_on_a_quadratic(gen):
    """Losses fall at small rates and blow up past 2 / lambda_max; the suggestion lies between."""
    model, x, y = _problem(gen)
    xb = torch.cat([x, torch.ones(x.shape[0], 1, dtype=F64)], dim=1)  # bias as a feature
    lam = float(torch.linalg.eigvalsh(2.0 / x.shape[0] * xb.T @ xb)[-1])
    result = range_test(
        model, (x, y), nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.1), start=1e-4, stop=100.0, steps=60
    )
    assert result.stopped == "diverged"
    n = len(result.losses)
    assert 10 < n < 60
    torch.testing.assert_close(result.learning_rates, (1e-4 * (1e6) ** (torch.arange(60, dtype=F64) / 59))[:n])
    assert result.losses[5] < result.losses[0]
    assert result.learning_rates[-1] > 2.0 / lam  # it only diverged once past the stability edge
    assert 1e-3 < result.suggested_lr < 2.0 / lam
    assert torch.isfinite(result.smoothed).all() and result.smoothed.shape == result.losses.shape


def test_linear_ramp_and_batch_sources(gen):
    model, x, y = _problem(gen)
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)] * 3
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = range_test(model, iter(batches), nn.MSELoss(), optimizer, start=1e-3, stop=0.05, steps=10, mode="linear")
    assert result.stopped == "completed"
    torch.testing.assert_close(result.learning_rates, torch.linspace(1e-3, 0.05, 10, dtype=F64))
    calls = []

    def draw():
        calls.append(1)
        return x, y

    result = range_test(model, draw, nn.MSELoss(), optimizer, start=1e-3, stop=0.05, steps=10, mode="linear")
    assert len(calls) == 11  # one batch per step, plus the loss after the last step
    with pytest.raises(ValueError, match="ran out"):
        range_test(model, iter(batches[:3]), nn.MSELoss(), optimizer, start=1e-3, stop=0.05, steps=10)


def test_model_and_optimizer_are_given_back(gen):
    model, x, y = _problem(gen)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):
        optimizer.zero_grad()
        nn.MSELoss()(model(x), y).backward()
        optimizer.step()
    model.eval()
    params = [(p, p.detach().clone()) for p in model.parameters()]
    grads = [(p, p.grad, p.grad.clone()) for p in model.parameters()]
    state = copy.deepcopy(optimizer.state_dict())
    rng = torch.get_rng_state()
    result = range_test(model, (x, y), nn.MSELoss(), optimizer, start=1e-4, stop=1.0, steps=20)
    assert len(result.losses) > 3 and result.losses[-1] != result.losses[0]  # it did train
    assert all(torch.equal(p, value) for p, value in params)
    assert all(p.grad is obj and torch.equal(obj, value) for p, obj, value in grads)
    after = optimizer.state_dict()
    assert after["param_groups"] == state["param_groups"]
    for key, entries in state["state"].items():
        for name, value in entries.items():
            assert torch.equal(torch.as_tensor(after["state"][key][name]), torch.as_tensor(value))
    assert not model.training
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"start": 1.0, "stop": 0.1}, "start < stop"),
        ({"start": 0.0}, "start < stop"),
        ({"steps": 2}, "steps"),
        ({"mode": "cosine"}, "mode"),
        ({"ema": 1.0}, "ema"),
    ],
)
def test_bad_settings(gen, kwargs, match):
    model, x, y = _problem(gen)
    with pytest.raises(ValueError, match=match):
        range_test(model, (x, y), nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.1), **kwargs)


@pytest.mark.parametrize("entry", ["range_test", "loss_per_learning_rate"])
def test_lr_probes_tune_the_cpu_where_work_starts_and_not_on_bad_input(gen, entry, monkeypatch):
    """Like learnlab.train: they allocate per-lr tensors that glibc would map afresh each time
    (a 1.26M-parameter probe took 0.60 s or 0.79-0.84 s by the process's allocator history)."""
    import learnlab._cpu
    from learnlab.lr import loss_per_learning_rate

    calls = []
    monkeypatch.setattr(learnlab._cpu, "tune_allocator", lambda: calls.append(1) or True)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # a value of the user's is kept (see tune_cpu)
    model, x, y = _problem(gen)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def probe(**bad):
        if entry == "range_test":
            return range_test(model, (x, y), nn.MSELoss(), opt, start=1e-4, stop=1e-2, steps=5, **bad)
        return loss_per_learning_rate(model, x, y, nn.MSELoss(), opt, [1e-3, 1e-2], **bad)

    with pytest.raises(ValueError):
        probe(ema=2.0) if entry == "range_test" else probe(method="nope")
    assert calls == []  # bad input fails before any work starts, tuning included
    probe()
    assert calls == [1]
