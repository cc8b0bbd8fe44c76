"""Taylor predictions and sharpness: exact on a quadratic, dense Hessians on tiny nets, edge of stability."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from learnlab.lr import (
    SharpnessProbe,
    adam_preconditioner,
    loss_per_learning_rate,
    sharpness,
    stability_threshold,
    taylor_predictions,
)

F64 = torch.float64


def _quadratic(gen, n: int = 64, d: int = 6):
    """Least squares L(w) = mean (x.w - y)^2: H = 2/n X^T X exactly, for every w."""
    g = gen(0)
    scales = torch.linspace(0.5, 2.0, d, dtype=F64)  # distinct eigenvalues
    x = torch.randn(n, d, generator=g, dtype=F64) * scales
    y = torch.randn(n, 1, generator=g, dtype=F64)
    model = nn.Linear(d, 1, bias=False).to(F64)
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, d, generator=g, dtype=F64))
    hessian = 2.0 / n * x.T @ x
    return model, x, y, hessian


def _dense_hessian(model, criterion, x, y):
    """Dense Hessian over all parameters by torch.autograd.functional (an independent route)."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])

    def loss(v):
        params, i = {}, 0
        for name, shape in zip(names, shapes):
            k = int(np.prod(shape))
            params[name] = v[i : i + k].view(shape)
            i += k
        return criterion(torch.func.functional_call(model, params, (x,)), y)

    return torch.autograd.functional.hessian(loss, flat), flat


def test_taylor_is_exact_on_a_quadratic(gen):
    model, x, y, hessian = _quadratic(gen)
    w = model.weight.detach().flatten()
    g = 2.0 / x.shape[0] * x.T @ (x @ w - y.flatten())
    loss0 = float(((x @ w - y.flatten()) ** 2).mean())
    lrs = torch.tensor([1e-3, 0.1, 0.3, 1.0], dtype=F64)
    pred = taylor_predictions(model, x, y, nn.MSELoss(), lrs)
    assert pred.loss == pytest.approx(loss0, rel=1e-12)
    assert pred.slope == pytest.approx(-float(g @ g), rel=1e-12)
    assert pred.curvature == pytest.approx(float(g @ hessian @ g), rel=1e-12)
    torch.testing.assert_close(pred.first, loss0 - lrs * float(g @ g), rtol=1e-12, atol=0)
    measured = loss_per_learning_rate(model, x, y, nn.MSELoss(), torch.optim.SGD(model.parameters()), lrs)
    torch.testing.assert_close(pred.second, measured, rtol=1e-10, atol=0)
    best = float(g @ g) / float(g @ hessian @ g)
    assert pred.optimal_lr == pytest.approx(best, rel=1e-12)
    around = loss_per_learning_rate(
        model, x, y, nn.MSELoss(), torch.optim.SGD(model.parameters()), [best * 0.9, best, best * 1.1]
    )
    assert around[1] < around[0] and around[1] < around[2]


def test_taylor_along_an_optimizer_step(gen):
    """With momentum state the step is theta - alpha (beta b + g); still exact on a quadratic."""
    model, x, y, _ = _quadratic(gen)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(3):
        optimizer.zero_grad()
        nn.MSELoss()(model(x), y).backward()
        optimizer.step()
    lrs = torch.tensor([0.01, 0.1, 0.5], dtype=F64)
    pred = taylor_predictions(model, x, y, nn.MSELoss(), lrs, optimizer=optimizer)
    measured = loss_per_learning_rate(model, x, y, nn.MSELoss(), optimizer, lrs)
    torch.testing.assert_close(pred.second, measured, rtol=1e-10, atol=0)
    plain = taylor_predictions(model, x, y, nn.MSELoss(), lrs)
    assert pred.slope != pytest.approx(plain.slope, rel=1e-3)  # the momentum buffer changes the direction


def test_taylor_curvature_matches_dense_hessian_on_an_mlp(gen):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 1)).to(F64)
    g = gen(1)
    x, y = torch.randn(20, 3, generator=g, dtype=F64), torch.randn(20, 1, generator=g, dtype=F64)
    criterion = nn.MSELoss()
    hessian, _ = _dense_hessian(model, criterion, x, y)
    grad = torch.cat([t.flatten() for t in torch.autograd.grad(criterion(model(x), y), list(model.parameters()))])
    pred = taylor_predictions(model, x, y, criterion, [1e-3])
    assert pred.curvature == pytest.approx(float(grad @ hessian @ grad), rel=1e-10)
    # second order beats first order at small steps: error O(alpha^3) vs O(alpha^2)
    lrs = torch.tensor([1e-3, 1e-2], dtype=F64)
    pred = taylor_predictions(model, x, y, criterion, lrs)
    actual = loss_per_learning_rate(model, x, y, criterion, torch.optim.SGD(model.parameters()), lrs)
    assert ((pred.second - actual).abs() < 1e-2 * (pred.first - actual).abs()).all()


def test_sharpness_is_exact_on_a_quadratic(gen):
    model, x, y, hessian = _quadratic(gen)
    expected = np.linalg.eigvalsh(hessian.numpy())[::-1][:3].copy()
    got = sharpness(model, x, y, nn.MSELoss(), k=3, tol=1e-12)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)


def test_sharpness_matches_dense_hessian_on_an_mlp(gen):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1)).to(F64)
    g = gen(2)
    x, y = torch.randn(30, 3, generator=g, dtype=F64), torch.randn(30, 1, generator=g, dtype=F64)
    hessian, _ = _dense_hessian(model, nn.MSELoss(), x, y)
    expected = torch.linalg.eigvalsh(hessian).flip(0)[:2]
    got = sharpness(model, x, y, nn.MSELoss(), k=2, iters=26, tol=1e-12)
    torch.testing.assert_close(got, expected, rtol=1e-8, atol=1e-10)


def test_preconditioned_sharpness_for_adam(gen):
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).to(F64)
    g = gen(3)
    x, y = torch.randn(30, 3, generator=g, dtype=F64), torch.randn(30, 1, generator=g, dtype=F64)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.9, 0.99))
    for _ in range(5):
        optimizer.zero_grad()
        nn.MSELoss()(model(x), y).backward()
        optimizer.step()
    hessian, _ = _dense_hessian(model, nn.MSELoss(), x, y)
    t = 5
    p_diag = torch.cat(
        [((optimizer.state[p]["exp_avg_sq"] / (1 - 0.99**t)).sqrt() + 1e-8).flatten() for p in model.parameters()]
    )
    d = p_diag.rsqrt()
    expected = torch.linalg.eigvalsh(d[:, None] * hessian * d[None, :]).flip(0)[:2]
    got = sharpness(model, x, y, nn.MSELoss(), k=2, preconditioner=optimizer, iters=21, tol=1e-12)
    torch.testing.assert_close(got, expected, rtol=1e-8, atol=1e-8)
    assert set(adam_preconditioner(optimizer, model)) == {n for n, _ in model.named_parameters()}
    with pytest.raises(ValueError, match="exp_avg_sq"):
        sharpness(model, x, y, nn.MSELoss(), preconditioner=torch.optim.SGD(model.parameters(), lr=0.1))


@pytest.mark.parametrize("factor, converges", [(0.9, True), (1.1, False)])
def test_gradient_descent_converges_below_two_over_sharpness(gen, factor, converges):
    """Full-batch GD on the quadratic: stable iff lr < 2 / lambda_max (lambda_max from ``sharpness``)."""
    model, x, y, _ = _quadratic(gen)
    lam = float(sharpness(model, x, y, nn.MSELoss(), tol=1e-10)[0])
    lr = factor * 2.0 / lam
    w_star = torch.linalg.lstsq(x, y).solution.flatten()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    start = float((model.weight.detach().flatten() - w_star).norm())
    for _ in range(400):
        optimizer.zero_grad()
        nn.MSELoss()(model(x), y).backward()
        optimizer.step()
    end = float((model.weight.detach().flatten() - w_star).norm())
    if converges:
        assert end < 1e-3 * start
    else:
        assert end > 1e3 * start


def test_sharpness_of_a_stack_is_each_members(gen):
    from learnlab.models import MLP

    g = gen(4)
    x = torch.randn(2, 16, 4, generator=g, dtype=F64)
    y = torch.randn(2, 16, 1, generator=g, dtype=F64)

    def criterion(out, target):
        return (out - target).pow(2).mean(dim=(-2, -1))

    stack = MLP(4, 8, 1, 1, generators=[gen(20), gen(21)], dtype=F64)
    got = sharpness(stack, x, y, criterion, k=2, stacked=True, tol=1e-10, iters=40)
    assert got.shape == (2, 2)
    for e in range(2):
        single = MLP(4, 8, 1, 1, generators=[gen(20 + e)], dtype=F64)
        torch.testing.assert_close(
            got[e], sharpness(single, x[e], y[e], criterion, k=2, tol=1e-10, iters=40), rtol=1e-7, atol=1e-9
        )
    assert not torch.allclose(got[0], got[1])


def test_sharpness_probe_and_thresholds(gen):
    model, x, y, hessian = _quadratic(gen)
    lam = float(torch.linalg.eigvalsh(hessian)[-1])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
    probe = SharpnessProbe(every=5, k=2, tol=1e-10, iters=None)
    ctx = SimpleNamespace(batch=(x, y), loss_fn=nn.MSELoss(), optimizer=optimizer)
    before = copy.deepcopy(model.state_dict())
    out = probe(model, ctx)
    assert probe.every == 5
    assert set(out) == {"sharpness", "sharpness_2", "threshold"}
    assert out["sharpness"] == pytest.approx(lam, rel=1e-9)
    assert out["threshold"] == pytest.approx((2 + 2 * 0.5) / 0.1)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert stability_threshold(torch.optim.SGD(model.parameters(), lr=0.1)) == pytest.approx(20.0)
    adam = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.9, 0.999))
    assert stability_threshold(adam, preconditioned=True) == pytest.approx(3800.0)
    with pytest.raises(ValueError, match="batch"):
        SharpnessProbe()(model, SimpleNamespace(loss_fn=nn.MSELoss()))


@pytest.mark.parametrize("momentum, nesterov", [(0.5, False), (0.9, False), (0.9, True)])
def test_momentum_thresholds_separate_convergence_from_divergence(gen, momentum, nesterov):
    """stability_threshold(opt) is the sharpness at which (Nesterov) heavy-ball GD on a quadratic turns unstable."""
    model, x, y, _ = _quadratic(gen)
    lam = float(sharpness(model, x, y, nn.MSELoss(), tol=1e-10)[0])
    w_star = torch.linalg.lstsq(x, y).solution.flatten()
    start = copy.deepcopy(model.state_dict())
    ends = []
    for factor in (0.9, 1.1):
        model.load_state_dict(start)
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0, momentum=momentum, nesterov=nesterov)
        constant = stability_threshold(optimizer)  # threshold = constant / lr
        optimizer.param_groups[0]["lr"] = factor * constant / lam  # so that lam = factor * threshold
        assert stability_threshold(optimizer) == pytest.approx(lam / factor, rel=1e-12)
        for _ in range(600):
            optimizer.zero_grad()
            nn.MSELoss()(model(x), y).backward()
            optimizer.step()
        ends.append(float((model.weight.detach().flatten() - w_star).norm()))
    first = float((start["weight"].flatten() - w_star).norm())
    assert ends[0] < 1e-2 * first  # sharpness below the threshold: converges
    assert ends[1] > 1e2 * first  # above: diverges
