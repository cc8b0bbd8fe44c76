"""The MLP's gradients without autograd (issue 18, item 3; ``learnlab.models._mlp_grad``).

``mse_grads`` must leave exactly what ``mse(model(x), y).sum().backward()`` leaves: the same
losses and the same ``.grad`` values, bit for bit, for every parameterization, activation,
output count, bias, centering and dtype; the training loop takes it where it applies and
trains exactly what autograd trains (optimizers, schedules, clipping, probes and members
leaving the stack included). Also: the one-output product ``stacked_matmul`` gives each member
and each row the same bits whatever the stack size and batch, and agrees with float64 numpy.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
from torch import nn

import learnlab
import learnlab.train._loop as loop_module
from learnlab.experiments import plan, run_group
from learnlab.models import MLP, ResMLP
from learnlab.models._mlp_grad import FUSED_ACTIVATIONS, loss_grads, mse_grads, supports
from learnlab.models._stack import stacked_matmul
from learnlab.train._losses import LOSSES, OUTPUT_GRADS, mse

CASES = list(
    itertools.product(
        FUSED_ACTIVATIONS,
        ["sp", "mup", "ntk", "mixed"],
        [True, False],  # bias
        [False, True],  # center
        [1, 3],  # outputs
    )
)


def _model(E, d, width, depth, outputs, activation, param, bias, center, dtype, seed=0):
    params = ["sp", "mup", "ipllr"][:E] * E if param == "mixed" else param
    params = params[:E] if isinstance(params, list) else params
    gens = [torch.Generator().manual_seed(seed + e) for e in range(E)]
    m = MLP(
        d,
        width,
        depth,
        outputs,
        activation=activation,
        param=params,
        bias=bias,
        center=center,
        base_width=8,
        generators=gens,
        dtype=dtype,
    )
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():  # move off the initial draw (so centering and zero biases matter)
        for p in m.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=dtype))
    return m


def _autograd(m, x, y):
    m.zero_grad(set_to_none=True)
    losses = mse(m(x), y)
    losses.sum().backward()
    return losses.detach(), [p.grad.clone() for p in m.parameters()]


def _fused(m, x, y):
    m.zero_grad(set_to_none=True)
    losses = mse_grads(m, x, y)
    return losses, [p.grad for p in m.parameters()]


def _assert_fused_equals_autograd(m, batch, d, outputs, dtype):
    assert supports(m)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(m.members, batch, d, generator=g, dtype=dtype)
    y = torch.randn(m.members, batch, outputs, generator=g, dtype=dtype)
    ref_losses, ref_grads = _autograd(m, x, y)
    losses, grads = _fused(m, x, y)
    assert torch.equal(losses, ref_losses), m
    for (name, p), a, b in zip(m.named_parameters(), ref_grads, grads):
        assert b.shape == p.shape and b.dtype == p.dtype
        assert torch.equal(a, b), (name, m, (a - b).abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("activation, param, bias, center, outputs", CASES)
def test_fused_gradients_equal_autograd_bit_for_bit(activation, param, bias, center, outputs, dtype):
    for E, batch, d, width, depth in [(1, 7, 5, 16, 1), (3, 37, 11, 24, 2), (2, 1, 3, 1, 3)]:
        m = _model(E, d, width, depth, outputs, activation, param, bias, center, dtype)
        _assert_fused_equals_autograd(m, batch, d, outputs, dtype)


def _labels(loss, E, batch, outputs, dtype, g):
    """Targets as the loss expects them: +-1 signs, one-hot or soft class labels, or values."""
    if loss in ("hinge", "logistic"):
        return torch.randint(0, 2, (E, batch, outputs), generator=g).to(dtype).mul_(2).sub_(1)
    if loss == "cross_entropy":
        logits = torch.randn(E, batch, outputs, generator=g, dtype=dtype)
        if outputs > 2:  # soft labels
            return logits.softmax(-1)
        return torch.nn.functional.one_hot(logits.argmax(-1), outputs).to(dtype)
    return torch.randn(E, batch, outputs, generator=g, dtype=dtype)


LOSS_CASES = list(
    itertools.product(
        ["cross_entropy", "hinge", "logistic"],
        ["relu", "tanh", "gelu"],
        ["sp", "mixed"],
        [False, True],  # center
    )
)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("loss, activation, param, center", LOSS_CASES)
def test_fused_gradients_of_every_builtin_loss_equal_autograd_bit_for_bit(loss, activation, param, center, dtype):
    loss_fn = LOSSES[loss]
    cases = [(1, 7, 5, 16, 1), (3, 37, 11, 24, 2), (2, 1, 3, 1, 3)]
    outputs_cases = [1, 2, 4] if loss == "cross_entropy" else [1, 3]
    for (E, batch, d, width, depth), outputs in itertools.product(cases, outputs_cases):
        g = torch.Generator().manual_seed(E * 10 + outputs)
        x = torch.randn(E, batch, d, generator=g, dtype=dtype)
        y = _labels(loss, E, batch, outputs, dtype, g)
        if loss != "cross_entropy" and E == 3:  # labels of any value (a sum of parities, say), margins of both signs
            y = 3 * torch.randn(E, batch, outputs, generator=g, dtype=dtype)
        for m in (
            _model(E, d, width, depth, outputs, activation, param, True, center, dtype),
            _residual(E, d, width, depth, outputs, activation, "sp", True, center, dtype, True, 2),
        ):
            m.zero_grad(set_to_none=True)
            ref = loss_fn(m(x), y)
            ref.sum().backward()
            ref_grads = [p.grad.clone() for p in m.parameters()]
            m.zero_grad(set_to_none=True)
            losses = loss_grads(m, x, y, OUTPUT_GRADS[loss_fn])
            assert not losses.requires_grad and torch.equal(losses, ref.detach()), (loss, m)
            for (name, p), a in zip(m.named_parameters(), ref_grads):
                assert torch.equal(a, p.grad), (loss, name, m, (a - p.grad).abs().max().item())


def test_fused_gradients_are_the_gradient_of_the_loss():
    """Not only equal to autograd: a central difference of the float64 loss agrees."""
    m = _model(2, 4, 6, 2, 1, "tanh", "mup", True, False, torch.float64)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 9, 4, generator=g, dtype=torch.float64)
    y = torch.randn(2, 9, 1, generator=g, dtype=torch.float64)
    mse_grads(m, x, y)
    w = m.weights[1]
    for index in [(0, 1, 2), (1, 5, 0)]:
        with torch.no_grad():
            old = w[index].item()
            w[index] = old + 1e-6
            up = mse(m(x), y).sum().item()
            w[index] = old - 1e-6
            down = mse(m(x), y).sum().item()
            w[index] = old
        assert w.grad[index].item() == pytest.approx((up - down) / 2e-6, rel=1e-6, abs=1e-9)


def _residual(E, d, width, depth, outputs, activation, param, bias, center, dtype, layer_norm, block_depth):
    m = ResMLP(
        d,
        width,
        depth,
        outputs,
        block_depth=block_depth,
        layer_norm=layer_norm,
        depth_param=(["depth_mup", "completep", "none"] * E)[:E],
        base_depth=2,
        activation=activation,
        param=param,
        bias=bias,
        center=center,
        base_width=8,
        generators=[torch.Generator().manual_seed(e) for e in range(E)],
        dtype=dtype,
    )
    g = torch.Generator().manual_seed(100)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=dtype))
    return m


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layer_norm, block_depth", [(False, 1), (True, 1), (True, 2), (False, 3)])
@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh"])
@pytest.mark.parametrize("param, bias, center, outputs", [("sp", True, False, 1), ("mup", False, True, 3)])
def test_fused_residual_gradients_equal_autograd_bit_for_bit(
    activation, param, bias, center, outputs, layer_norm, block_depth, dtype
):
    for E, batch, d, width, depth in [(1, 7, 5, 16, 1), (3, 37, 11, 24, 3)]:
        m = _residual(E, d, width, depth, outputs, activation, param, bias, center, dtype, layer_norm, block_depth)
        _assert_fused_equals_autograd(m, batch, d, outputs, dtype)


class _Doubled(MLP):
    """A subclass with a forward pass of its own, which the fused gradients do not know."""

    def forward(self, x):
        return 2 * super().forward(x)


def test_supports_only_what_it_computes():
    assert supports(_model(2, 3, 8, 1, 1, "relu", "sp", True, False, torch.float32))
    assert supports(ResMLP(3, 8, 2))
    assert not supports(_Doubled(3, 8, 2))  # another forward pass
    replaced = _model(1, 3, 8, 1, 1, "relu", "sp", True, False, torch.float32)
    replaced.forward = lambda x: 2 * MLP.forward(replaced, x)
    assert not supports(replaced)
    frozen = _model(1, 3, 8, 1, 1, "relu", "sp", True, False, torch.float32)
    frozen.weights[0].requires_grad_(False)
    assert not supports(frozen)
    hooked = _model(1, 3, 8, 1, 1, "relu", "sp", True, False, torch.float32)
    hooked.weights[1].register_hook(lambda grad: grad * 2)
    assert not supports(hooked)
    assert not supports(nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_output_product_is_the_same_for_every_stack_size_and_batch(dtype):
    g = torch.Generator().manual_seed(0)
    for batch, k, E in itertools.product([1, 2, 37, 1000], [1, 3, 128, 2048], [1, 3, 17]):
        h = torch.randn(E, batch, k, generator=g, dtype=dtype)
        w = torch.randn(E, k, 1, generator=g, dtype=dtype)
        out = stacked_matmul(h, w)
        ref = np.einsum("ebk,ekm->ebm", h.double().numpy(), w.double().numpy())
        tol = 1e-12 if dtype == torch.float64 else 1e-4
        np.testing.assert_allclose(out.double().numpy(), ref, rtol=tol, atol=tol * np.sqrt(k))
        for e in {0, E - 1}:
            assert torch.equal(stacked_matmul(h[e : e + 1], w[e : e + 1]), out[e : e + 1]), (batch, k, E)
        if batch > 3:
            assert torch.equal(stacked_matmul(h[:, 1:3], w), out[:, 1:3]), (batch, k, E)


SPEC = {
    "name": "fused",
    "seed": 4,
    "task": {"inputs": {"name": "gaussian", "d": 6}, "target": {"name": "hermite", "monomial": {0: 1, 1: 1}}},
    "model": {"width": 24, "depth": 2, "param": "mup", "base_width": 8, "activation": "tanh"},
    "train": {
        "optimizer": "adam", "batch_size": 16, "steps": 40, "eval_every": 10, "log_every": 5,
        "schedule": {"name": "cosine", "warmup": 5},
        "probes": [{"name": "grad_norm", "every": 10}, {"name": "param_norm", "every": 10}],
    },
    # one member clipped, one ending at its threshold (the stack shrinks), one diverging
    "sweep": {"zip": {"train.lr": [1e-3, 3e-2, 3.0], "train.clip_grad_norm": [None, 0.5, None],
                      "train.diverge_factor": [1e4, 1e4, 1.5],
                      "train.thresholds": [[], [0.9], []], "train.stop_at_thresholds": [False, True, False]}},
}  # fmt: skip


PARITY = {"inputs": {"name": "hypercube", "d": 8}, "target": {"name": "parity", "indices": [[0, 1, 2]]}}


def _runs(spec, fused: bool, monkeypatch):
    calls = []
    monkeypatch.setattr(loop_module, "supports", lambda m: fused and supports(m))
    for name in ("mse_grads", "loss_grads"):
        real = getattr(loop_module, name)
        monkeypatch.setattr(loop_module, name, lambda *a, real=real: calls.append(1) or real(*a))
    runs = run_group([r.config for r in plan(spec).runs])
    monkeypatch.undo()
    return runs, len(calls)


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"model": {"width": 24, "depth": 1, "param": "sp", "center": True}},
        {"train": {"optimizer": "momentum", "weight_decay": 1e-3}},
        {"model": {"name": "resmlp", "depth": 3, "block_depth": 2, "layer_norm": True, "depth_param": "completep"}},
        {"task": PARITY, "train": {"loss": "hinge"}},
        {"task": PARITY, "train": {"loss": "logistic"}, "model": {"activation": "relu", "param": "sp"}},
        {"task": {"dataset": "digits", "n_train": 600}, "train": {"loss": "cross_entropy"}},
    ],
    ids=[
        "adam-mup-tanh",
        "centered-sp",
        "momentum-decay",
        "resmlp-completep",
        "parity-hinge",
        "parity-logistic",
        "digits-cross-entropy",
    ],
)
def test_the_loop_trains_with_fused_gradients_what_it_trains_with_autograd(change, monkeypatch):
    spec = copy.deepcopy(SPEC)
    for section, values in change.items():
        if section == "task":
            spec[section] = values
        else:
            spec[section].update({k: v for k, v in values.items() if v is not None})
    fused, n_fused = _runs(spec, True, monkeypatch)
    plain, n_plain = _runs(spec, False, monkeypatch)
    assert n_fused > 0 and n_plain == 0  # each path was taken
    assert [r.status for r in fused] == [r.status for r in plain]
    assert {r.status for r in plain} >= {"finished", "diverged"}
    assert [r.step for r in fused] == [r.step for r in plain]
    assert min(r.step for r in plain) < 40  # members left the stack early
    for a, b in zip(plain, fused):
        assert any(name.startswith("probe/") for _, name, _ in a.metrics)
        assert len(a.metrics) == len(b.metrics)
        for ra, rb in zip(a.metrics, b.metrics):
            assert ra[:2] == rb[:2] and (ra[2] == rb[2] or (np.isnan(ra[2]) and np.isnan(rb[2]))), (ra, rb)


def test_a_loss_of_your_own_that_reads_the_parameters_trains_through_autograd():
    """A user's loss may add a penalty on the parameters: its gradient must reach them (the fused
    path, which differentiates the loss with respect to the outputs only, would drop it)."""
    task = {"inputs": {"name": "gaussian", "d": 4}, "target": {"name": "hermite", "monomial": {0: 1}}}
    net = MLP(4, 8, 1, 1, generators=[torch.Generator().manual_seed(0)], dtype=torch.float64)
    plain, penalised = copy.deepcopy(net), copy.deepcopy(net)
    c, lr = 0.25, 0.1

    def penalty(model):
        return c * sum(p.pow(2).sum() for p in model.parameters())

    def train(model, loss):
        learnlab.train(model, task, loss=loss, steps=1, batch_size=8, lr=lr, eval_every=1, progress=False)

    start = [p.detach().clone() for p in net.parameters()]
    train(plain, lambda out, y: (out - y).pow(2).mean())
    train(penalised, lambda out, y: (out - y).pow(2).mean() + penalty(penalised))
    for p0, a, b in zip(start, plain.parameters(), penalised.parameters()):  # one SGD step: - lr * 2c p0
        torch.testing.assert_close(b - a, -lr * 2 * c * p0, rtol=1e-9, atol=1e-12)
