"""learnlab.lr.loss_per_learning_rate against a naive deep-copy loop, and nothing mutated."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from learnlab.lr import loss_per_learning_rate

F64 = torch.float64
LRS = torch.tensor([1e-3, 1e-2, 0.05, 0.2, 1.0], dtype=F64)

OPTIMIZERS = {
    "sgd": lambda groups: torch.optim.SGD(groups, lr=0.1),
    "momentum": lambda groups: torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=1e-2),
    "nesterov": lambda groups: torch.optim.SGD(groups, lr=0.1, momentum=0.9, nesterov=True),
    "adam": lambda groups: torch.optim.Adam(groups, lr=1e-2),
    "adamw": lambda groups: torch.optim.AdamW(groups, lr=1e-2, weight_decay=0.1),
    "rmsprop": lambda groups: torch.optim.RMSprop(groups, lr=1e-2, momentum=0.5),
    "adagrad": lambda groups: torch.optim.Adagrad(groups, lr=0.1),
}


def _net(gen, *, dropout: float = 0.0, batchnorm: bool = False) -> nn.Module:
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    layers = [nn.Linear(5, 12)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(12))
    layers += [nn.Tanh(), nn.Dropout(dropout), nn.Linear(12, 2)]
    return nn.Sequential(*layers).to(F64)


def _groups(model: nn.Module) -> list[dict]:
    """Three param groups with different learning rates (first Linear, rest, last bias)."""
    params = list(model.parameters())
    return [{"params": params[:2], "lr": 0.1}, {"params": params[2:-1], "lr": 0.03}, {"params": params[-1:], "lr": 0.5}]


def _warm_up(model, optimizer, criterion, x, y, steps: int = 2) -> None:
    for _ in range(steps):
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()


def naive(model, x, y, criterion, optimizer, lrs, eval_x, eval_y, relative):
    """Seed 004's idea, written plainly: a deep copy of (model, optimizer) per learning rate."""
    rng = torch.get_rng_state()
    first = torch.as_tensor(optimizer.param_groups[0]["lr"], dtype=F64)
    out = []
    for alpha in lrs.tolist():
        torch.set_rng_state(rng)  # the same dropout mask for every gradient
        m, opt = copy.deepcopy((model, optimizer))
        for p in m.parameters():
            p.grad = None
        criterion(m(x), y).backward()
        for group in opt.param_groups:
            lr = group["lr"]
            new = (
                alpha * torch.as_tensor(lr, dtype=F64) / first
                if relative
                else torch.full_like(torch.as_tensor(lr, dtype=F64), alpha)
            )
            group["lr"] = new.to(lr.dtype) if isinstance(lr, torch.Tensor) else float(new)
        opt.step()
        m.eval()
        with torch.no_grad():
            out.append(criterion(m(eval_x), eval_y).to(F64))
    torch.set_rng_state(rng)
    return torch.stack(out)


def _batch(gen, n: int, d: int = 5, k: int = 2):
    return torch.randn(n, d, generator=gen, dtype=F64), torch.randn(n, k, generator=gen, dtype=F64)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("relative", [True, False])
@pytest.mark.parametrize("method", ["fast", "exact"])
def test_matches_naive_deep_copy_loop(gen, name, relative, method):
    g = gen(1)
    model = _net(g)
    x, y = _batch(g, 24)
    ex, ey = _batch(g, 40)
    criterion = nn.MSELoss()
    optimizer = OPTIMIZERS[name](_groups(model))
    _warm_up(model, optimizer, criterion, x, y)
    expected = naive(model, x, y, criterion, optimizer, LRS, ex, ey, relative)
    got = loss_per_learning_rate(
        model, x, y, criterion, optimizer, LRS, eval_x=ex, eval_y=ey, relative=relative, method=method
    )
    assert got.dtype == F64 and got.shape == LRS.shape
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)
    assert expected[0] != expected[-1]  # the learning rate matters here


def test_relative_keeps_group_ratios_and_absolute_does_not(gen):
    g = gen(2)
    model = _net(g)
    x, y = _batch(g, 16)
    optimizer = torch.optim.SGD(_groups(model), lr=0.1)
    rel = loss_per_learning_rate(model, x, y, nn.MSELoss(), optimizer, LRS, relative=True)
    same = loss_per_learning_rate(model, x, y, nn.MSELoss(), optimizer, LRS, relative=False)
    assert not torch.allclose(rel, same)
    # with equal group lrs the two modes coincide
    for group in optimizer.param_groups:
        group["lr"] = 0.2
    rel = loss_per_learning_rate(model, x, y, nn.MSELoss(), optimizer, LRS, relative=True)
    torch.testing.assert_close(
        rel, loss_per_learning_rate(model, x, y, nn.MSELoss(), optimizer, LRS, relative=False), rtol=1e-12, atol=0
    )


def test_sgd_equals_closed_form(gen):
    """Plain SGD: loss(alpha) = L(theta - alpha g) computed by hand with torch.func."""
    g = gen(3)
    model = _net(g)
    x, y = _batch(g, 32)
    criterion = nn.MSELoss()
    params = {n: p.detach() for n, p in model.named_parameters()}
    grads = torch.func.grad(lambda p: criterion(torch.func.functional_call(model, p, (x,)), y))(params)
    expected = torch.stack(
        [
            criterion(torch.func.functional_call(model, {n: params[n] - a * grads[n] for n in params}, (x,)), y)
            for a in LRS.tolist()
        ]
    )
    got = loss_per_learning_rate(model, x, y, criterion, torch.optim.SGD(model.parameters()), LRS)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=0)


@pytest.mark.parametrize("method", ["fast", "exact"])
def test_dropout_batchnorm_and_mode(gen, method):
    """Gradient in train mode (dropout, batch statistics), losses in eval mode, as the naive loop."""
    g = gen(4)
    model = _net(g, dropout=0.3, batchnorm=True)
    x, y = _batch(g, 32)
    criterion = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _warm_up(model, optimizer, criterion, x, y)
    model.train()
    expected = naive(model, x, y, criterion, optimizer, LRS, x, y, True)
    got = loss_per_learning_rate(model, x, y, criterion, optimizer, LRS, method=method)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)


def _snapshot(model, optimizer):
    return {
        "params": [(p, p.data_ptr(), p.detach().clone()) for p in model.parameters()],
        "buffers": [(n, b.detach().clone()) for n, b in model.named_buffers()],
        "grads": [(p, p.grad, None if p.grad is None else p.grad.clone()) for p in model.parameters()],
        "modes": [(m, m.training) for m in model.modules()],
        "state": {
            p: {k: (v, v.clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)) for k, v in s.items()}
            for p, s in optimizer.state.items()
        },
        "state_object": optimizer.state,
        "lrs": [
            (g["lr"], g["lr"].clone() if isinstance(g["lr"], torch.Tensor) else g["lr"]) for g in optimizer.param_groups
        ],
        "keys": [sorted(g) for g in optimizer.param_groups],
        "rng": torch.get_rng_state(),
    }


def _assert_unchanged(model, optimizer, before) -> None:
    for (p, ptr, value), q in zip(before["params"], model.parameters()):
        assert p is q and p.data_ptr() == ptr and torch.equal(p, value)
    for (name, value), (name2, b) in zip(before["buffers"], model.named_buffers()):
        assert name == name2 and torch.equal(b, value)
    for p, grad, value in before["grads"]:
        assert p.grad is grad and (grad is None or torch.equal(grad, value))
    assert all(m.training == mode for m, mode in before["modes"])
    assert optimizer.state is before["state_object"]
    assert set(optimizer.state) == set(before["state"])
    for p, entries in before["state"].items():
        assert set(optimizer.state[p]) == set(entries)
        for key, (obj, value) in entries.items():
            now = optimizer.state[p][key]
            assert now is obj
            assert torch.equal(now, value) if isinstance(value, torch.Tensor) else now == value
    for group, (obj, value), keys in zip(optimizer.param_groups, before["lrs"], before["keys"]):
        assert group["lr"] is obj and sorted(group) == keys
        assert torch.equal(obj, value) if isinstance(value, torch.Tensor) else obj == value
    assert torch.equal(torch.get_rng_state(), before["rng"])


@pytest.mark.parametrize("method", ["auto", "exact"])
@pytest.mark.parametrize("name", ["momentum", "adamw"])
def test_nothing_is_mutated(gen, method, name):
    g = gen(5)
    model = _net(g, dropout=0.2, batchnorm=True)
    x, y = _batch(g, 32)
    criterion = nn.MSELoss()
    optimizer = OPTIMIZERS[name](_groups(model))
    _warm_up(model, optimizer, criterion, x, y)
    criterion(model(x), y).backward()  # leave some gradients lying around
    model[0].weight.grad = None  # ... and one missing
    model.train()
    model[1].eval()  # a mixed mode: BatchNorm frozen, dropout on
    before = _snapshot(model, optimizer)
    expected_next = torch.rand(3)
    torch.set_rng_state(before["rng"])
    loss_per_learning_rate(model, x, y, criterion, optimizer, LRS, method=method)
    _assert_unchanged(model, optimizer, before)
    assert torch.equal(torch.rand(3), expected_next)


def test_fresh_optimizer_state_stays_empty(gen):
    g = gen(6)
    model = _net(g)
    x, y = _batch(g, 8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_per_learning_rate(model, x, y, nn.MSELoss(), optimizer, LRS)
    assert len(optimizer.state) == 0
    assert all(p.grad is None for p in model.parameters())


def test_non_affine_optimizer_falls_back_to_exact(gen):
    """ASGD's step size eta = lr / (1 + lambd lr t)^alpha is not linear in lr: auto = exact."""
    g = gen(7)
    model = _net(g)
    x, y = _batch(g, 16)
    criterion = nn.MSELoss()
    optimizer = torch.optim.ASGD(model.parameters(), lr=0.1, lambd=10.0)
    _warm_up(model, optimizer, criterion, x, y)
    with pytest.raises(ValueError, match="affine"):
        loss_per_learning_rate(model, x, y, criterion, optimizer, LRS, method="fast")
    expected = naive(model, x, y, criterion, optimizer, LRS, x, y, True)
    got = loss_per_learning_rate(model, x, y, criterion, optimizer, LRS)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)


def test_shape_of_learning_rates_and_chunking(gen):
    g = gen(8)
    model = _net(g)
    x, y = _batch(g, 16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
    lrs = torch.logspace(-3, 0, 12, dtype=F64).reshape(3, 4)
    ref = loss_per_learning_rate(model, x, y, nn.MSELoss(), optimizer, lrs, method="exact")
    for budget in (1, 10**4, 10**9):  # one alpha at a time, a few, all at once (vmap)
        got = loss_per_learning_rate(model, x, y, nn.MSELoss(), optimizer, lrs, memory_budget=budget)
        assert got.shape == (3, 4)
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=0)
    listed = loss_per_learning_rate(model, x, y, nn.MSELoss(), optimizer, [0.1, 0.5])
    torch.testing.assert_close(
        listed,
        ref.new_tensor(
            [
                float(loss_per_learning_rate(model, x, y, nn.MSELoss(), optimizer, 0.1)),
                float(loss_per_learning_rate(model, x, y, nn.MSELoss(), optimizer, 0.5)),
            ]
        ),
        rtol=1e-12,
        atol=0,
    )


def test_float32_fast_path_matches_deep_copy(gen):
    g = gen(9)
    model = _net(g).float()
    x, y = (t.float() for t in _batch(g, 64))
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(_groups(model), lr=1e-3)
    _warm_up(model, optimizer, criterion, x, y)
    expected = naive(model, x, y, criterion, optimizer, LRS, x, y, True)
    got = loss_per_learning_rate(model, x, y, criterion, optimizer, LRS, method="fast")
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("optimizer_name", ["sgd", "momentum", "adam", "adamw"])
@pytest.mark.parametrize("members", [1, 2])
def test_learnlab_stacked_mlp_and_tensor_learning_rates(gen, optimizer_name, members):
    """learnlab's MLP (weights (E, fan_in, fan_out)) and optimizers (per-member lr tensors, one group per layer)."""
    from learnlab.models import MLP, build_optimizer

    model = MLP(6, 16, 2, 1, param="mup", generators=[gen(10 + e) for e in range(members)], dtype=F64)
    optimizer = build_optimizer(model, optimizer_name, lr=[0.05 * (e + 1) for e in range(members)])
    g = gen(11)
    x = torch.randn(members, 20, 6, generator=g, dtype=F64)
    y = torch.randn(members, 20, 1, generator=g, dtype=F64)
    if members == 1:  # a stack of one takes (batch, d) like any module
        x, y = x[0], y[0]

    def criterion(out, target):  # one loss per member for a stack, a scalar for a single model
        return (out - target).pow(2).mean(dim=(-2, -1))

    _warm_up(model, optimizer, lambda o, t: criterion(o, t).sum(), x, y)
    assert isinstance(optimizer.param_groups[0]["lr"], torch.Tensor)
    expected = naive(model, x, y, lambda o, t: criterion(o, t).sum(), optimizer, LRS, x, y, True)
    for method in ("fast", "exact"):
        got = loss_per_learning_rate(model, x, y, criterion, optimizer, LRS, method=method)
        assert got.shape == ((5,) if members == 1 else (5, members))
        total = got if members == 1 else got.sum(dim=1)
        torch.testing.assert_close(total, expected, rtol=1e-6, atol=0)
