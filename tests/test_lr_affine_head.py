"""The fast path's split first layer (``learnlab.lr._head``): f(x; theta + a u) = f(x; theta) + a f(x; u)
for a first Linear/Conv layer, so only the rest runs per learning rate. Checked against the
exact step-and-restore path, and that the split is taken only where it is exact."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import learnlab.lr._loss_per_lr as lpl
from learnlab.lr import loss_per_learning_rate
from learnlab.lr._head import affine_head
from learnlab.models import MLP, build_optimizer

F64 = torch.float64
LRS = torch.logspace(-3, 0, 9, dtype=F64)


def _conv_net():
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 1))


CASES = {
    "linear": (
        lambda: nn.Sequential(nn.Linear(7, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2)),
        (7,),
        2,
    ),
    "conv": (_conv_net, (2, 5, 5), 1),
    "learnlab-mlp": (lambda: MLP(7, 16, 2, 2, param="mup", generators=[torch.Generator().manual_seed(3)]), (7,), 2),
}


@pytest.fixture
def count_splits(monkeypatch):
    used = []
    original = lpl._split_head

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        used.append(out is not None)
        return out

    monkeypatch.setattr(lpl, "_split_head", spy)
    return used


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("budget", [1, 1 << 30], ids=["one-alpha-at-a-time", "vmap-chunks"])
@pytest.mark.parametrize("opt", ["sgd", "momentum"])
def test_split_first_layer_equals_the_exact_path(case, budget, opt, count_splits):
    torch.manual_seed(0)
    build, shape, outputs = CASES[case]
    model = build().to(F64)
    if case == "learnlab-mlp":
        optimizer = build_optimizer(model, "sgd" if opt == "sgd" else "momentum", lr=0.1, momentum=0.9)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.0 if opt == "sgd" else 0.9)
    x, y = torch.randn(12, *shape, dtype=F64), torch.randn(12, outputs, dtype=F64)
    ex, ey = torch.randn(30, *shape, dtype=F64), torch.randn(30, outputs, dtype=F64)
    if opt == "momentum":  # a momentum buffer, so the step is theta + a (g + m b): still affine
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    loss = nn.MSELoss()
    exact = loss_per_learning_rate(model, x, y, loss, optimizer, LRS, eval_x=ex, eval_y=ey, method="exact")
    fast = loss_per_learning_rate(
        model, x, y, loss, optimizer, LRS, eval_x=ex, eval_y=ey, method="fast", memory_budget=budget
    )
    assert count_splits == [True]  # the fast path split the first layer
    torch.testing.assert_close(fast, exact, rtol=1e-12, atol=1e-14)


def test_no_split_where_it_would_not_be_exact():
    tied = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 4))
    tied[2].weight = tied[0].weight  # the same tensor in two layers: not a separate head
    assert affine_head(tied) is None
    assert affine_head(nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 1))) is None  # not affine in its input's layer
    assert affine_head(nn.Linear(4, 1)) is None  # nothing after it

    class Skip(nn.Sequential):  # a subclass may feed x past the first layer
        def forward(self, x):
            return super().forward(x) + x.sum(-1, keepdim=True)

    assert affine_head(Skip(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 1))) is None
    gens = [torch.Generator().manual_seed(0)]
    assert affine_head(MLP(4, 8, 2, center=True, generators=gens)) is None  # f - f0 needs the whole net
    assert affine_head(MLP(4, 8, 2, generators=gens + [torch.Generator().manual_seed(1)])) is None  # a stack
    assert affine_head(MLP(4, 8, 2, generators=gens)) is not None
