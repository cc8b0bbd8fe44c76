"""Residual MLPs and depth parameterizations (issue 16): the forward pass against a slow loop written
here, depth rows equal the plain network at the base depth, the depth symmetry, Adam's eps per layer
by hand, and the depth coordinate check (flat residual stream under depth-muP and CompleteP)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from learnlab.models import (
    DepthParameterization,
    ResMLP,
    build_model,
    build_optimizer,
    coord_check,
    coord_slopes,
    get_depth_parameterization,
)

D, WIDTH = 5, 16


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _data(n: int = 12, seed: int = 0):
    g = _gen(seed)
    x = torch.randn(n, D, generator=g, dtype=torch.float64)
    return x, torch.sin(x[:, :1] * x[:, 1:2])


def _slow_forward(model: ResMLP, x: torch.Tensor, beta: float, layer_norm: bool) -> torch.Tensor:
    """The residual MLP written out for one member in numpy: multipliers computed here from the
    model's width ratio (SP: all 1) and the branch multiplier ``beta`` given by the caller."""
    w = [p.detach()[0].numpy() for p in model.weights]
    b = [p.detach()[0, 0].numpy() for p in model.biases]
    relu = lambda v: np.maximum(v, 0.0)  # noqa: E731

    def norm(v):
        if not layer_norm:
            return v
        mu, var = v.mean(-1, keepdims=True), v.var(-1, keepdims=True)
        return (v - mu) / np.sqrt(var + 1e-5)

    h = x.numpy() @ w[0] + b[0]
    k = model.block_depth
    for block in range(model.depth):
        u = norm(h)
        for j in range(1, k + 1):
            l = block * k + j
            scale = beta if j == k else 1.0  # the branch multiplier on the branch's last layer
            u = scale * (relu(u) @ w[l] + b[l])
        h = h + u
    return relu(norm(h)) @ w[-1] + b[-1]


@pytest.mark.parametrize("block_depth, layer_norm", [(1, False), (2, False), (2, True)])
@pytest.mark.parametrize("row, alpha", [("none", 0.0), ("depth_mup", 0.5), ("completep", 1.0)])
def test_forward_against_a_slow_loop(block_depth, layer_norm, row, alpha):
    depth, base_depth, beta0 = 8, 2, 0.7
    model = ResMLP(
        D,
        WIDTH,
        depth,
        block_depth=block_depth,
        layer_norm=layer_norm,
        depth_param=row,
        base_depth=base_depth,
        branch_multiplier=beta0,
        generators=[_gen(3)],
        dtype=torch.float64,
    )
    x, _ = _data()
    beta = beta0 * (depth / base_depth) ** -alpha
    expected = _slow_forward(model, x, beta, layer_norm)
    np.testing.assert_allclose(model(x).detach().numpy(), expected, rtol=1e-12, atol=1e-12)
    # evaluation goes through ``inference``: the residual pass too, not the MLP's chain of layers
    np.testing.assert_allclose(model.inference(x).numpy(), expected, rtol=1e-12, atol=1e-12)


def test_evaluation_measures_the_residual_network():
    """The loop's evaluation of a ResMLP stack is the mse of its own forward pass."""
    from learnlab.train._evaluation import evaluate, fixed_source

    model = ResMLP(D, WIDTH, 3, layer_norm=True, generators=[_gen(1), _gen(2)], dtype=torch.float64)
    x, y = _data(40)
    (mse,) = evaluate(model, [fixed_source(x, y), fixed_source(x, y)], ["mse"]).values()
    expected = ((model(x.expand(2, *x.shape)) - y).pow(2).mean(dim=(1, 2))).detach()
    np.testing.assert_allclose(mse, expected.numpy(), rtol=1e-12)


def _train(model, optimizer: str, steps: int = 5, lr: float = 0.02):
    opt = build_optimizer(model, optimizer, lr=lr, weight_decay=0.01 if optimizer == "adamw" else 0.0)
    x, y = (t.to(model.weights[0].dtype) for t in _data())
    for _ in range(steps):
        loss = (model(x) - y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("row", ["depth_mup", "completep"])
def test_a_depth_row_at_the_base_depth_is_the_plain_network(optimizer, row):
    """At depth = base_depth every factor is exactly 1: the same bits as depth_param none."""

    def make(depth_param):
        return ResMLP(D, WIDTH, 4, block_depth=2, depth_param=depth_param, base_depth=4, param="mup",
                      base_width=8, generators=[_gen(5)])  # fmt: skip

    plain, scaled = _train(make("none"), optimizer), _train(make(row), optimizer)
    for p, q in zip(plain.parameters(), scaled.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("theta", [0.5, -1.0])
def test_the_depth_symmetry_trains_the_same_function(optimizer, theta):
    """Moving theta from a branch's init into its multiplier (block depth 1), with the lr and eps
    moved by the rule, leaves the function after training unchanged (float64)."""
    row = get_depth_parameterization("depth_mup")

    def make(depth_param):
        return ResMLP(D, WIDTH, 8, depth_param=depth_param, base_depth=2, param="mup", base_width=8,
                      generators=[_gen(9)], dtype=torch.float64)  # fmt: skip

    base, moved = _train(make(row), optimizer, lr=0.01), _train(make(row.shifted(theta)), optimizer, lr=0.01)
    x, _ = _data(seed=1)
    torch.testing.assert_close(base(x), moved(x), rtol=1e-9, atol=1e-11)
    # a wrong rule (lr not moved) trains another function: the test can fail
    wrong = DepthParameterization(
        "wrong", alpha=row.alpha + theta, init=row.init - theta, lr=row.lr, lr_adam=row.lr_adam
    )
    other = _train(make(wrong), optimizer, lr=0.01)
    assert not torch.allclose(base(x), other(x), rtol=1e-6, atol=1e-8)


def test_adam_eps_and_lr_per_layer_by_hand():
    """muP at width ratio n / n0 = 4 and CompleteP at depth ratio L / L0 = 4, Adam: per tensor,
    lr factor n^-c_adam (CompleteP's Adam lr is constant in depth) and eps factor
    n^-(c_adam - c) * (L / L0)^-1 inside the branches."""
    n, r = 4.0, 4.0
    model = ResMLP(D, 32, 8, block_depth=2, depth_param="completep", base_depth=2, param="mup", base_width=8)
    opt = build_optimizer(model, "adam", lr=1e-3, eps=1e-8)
    got = {g["name"]: (float(g["lr"][0]), float(g["eps"] if isinstance(g["eps"], float) else g["eps"][0]))
           for g in opt.param_groups}  # fmt: skip
    last = 8 * 2 + 1
    expected = {"weights.0": (n**-0.5, n**-0.5), "biases.0": (n**-0.5, n**-0.5)}
    for l in range(1, last):  # branch layers: hidden exponents; biases take the input row's
        expected[f"weights.{l}"] = (1 / n, 1 / n / r)
        expected[f"biases.{l}"] = (n**-0.5, n**-0.5 / r)
    expected[f"weights.{last}"] = (n**-0.5, n**-0.5)
    expected[f"biases.{last}"] = (1.0, 1.0)
    assert set(got) == set(expected)
    for name, (lr, eps) in expected.items():
        assert got[name][0] == pytest.approx(1e-3 * lr, rel=1e-12), name
        assert got[name][1] == pytest.approx(1e-8 * eps, rel=1e-12), name


def test_sgd_lr_per_layer_by_hand():
    """SGD: depth-muP keeps the branch lr, CompleteP multiplies it by L / L0 (module docstring)."""
    for row, factor in (("depth_mup", 1.0), ("completep", 4.0)):
        model = ResMLP(D, WIDTH, 8, depth_param=row, base_depth=2)
        lrs = {g["name"]: float(g["lr"][0]) for g in build_optimizer(model, "sgd", lr=0.1).param_groups}
        assert lrs["weights.0"] == pytest.approx(0.1) and lrs["weights.9"] == pytest.approx(0.1)
        assert all(lrs[f"weights.{l}"] == pytest.approx(0.1 * factor) for l in range(1, 9)), row


def _depth_frame(row: str, optimizer: str, lr: float):
    x, y = _data(64, seed=2)
    x, y = x.float(), y.float()

    def make(depth: int, seed: int):
        return ResMLP(D, 128, depth, depth_param=row, base_depth=2, param="mup", base_width=128,
                      generators=[_gen(100 + seed)])  # fmt: skip

    return coord_check(make, [2, 4, 8, 16, 32], x, y, steps=3, seeds=range(3), optimizer=optimizer, lr=lr,
                       axis="depth")  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("row, optimizer, lr", [("depth_mup", "sgd", 0.1), ("depth_mup", "adam", 3e-3),
                                                ("completep", "adam", 3e-3)])  # fmt: skip
def test_depth_coord_check_is_flat_under_depth_mup_and_completep(row, optimizer, lr):
    frame = _depth_frame(row, optimizer, lr)
    slopes = coord_slopes(frame)
    stream = slopes[slopes["layer"].isin(["block.1", "block.last"])]
    assert len(stream) == 2 * 4 and stream["slope"].abs().max() <= 0.05, stream
    if optimizer == "adam":  # the stream's change after each step: flat too
        deltas = coord_slopes(frame[frame["step"] > 0], "delta")
        last = deltas[deltas["layer"] == "block.last"]
        assert last["slope"].abs().max() <= 0.1, last


@pytest.mark.slow
def test_depth_coord_check_grows_without_the_branch_multiplier():
    slopes = coord_slopes(_depth_frame("none", "sgd", 0.1))
    at_init = slopes[(slopes["layer"] == "block.last") & (slopes["step"] == 0)]["slope"].item()
    assert at_init > 0.5  # the stream grows by a factor (1 + c) per block


def test_build_model_and_specs():
    section = {"name": "resmlp", "width": WIDTH, "depth": 3, "block_depth": 2, "depth_param": "completep",
               "base_depth": 3, "param": "mup", "base_width": 8}  # fmt: skip
    stacked = build_model([section, {**section, "depth_param": "none"}], D, 1, generators=[_gen(1), _gen(1)])
    assert isinstance(stacked, ResMLP) and stacked.members == 2
    x = torch.randn(1, 7, D).expand(2, 7, D)
    out = stacked(x)
    torch.testing.assert_close(out[0], out[1])  # at the base depth the rows agree, from one draw
    deeper = copy.deepcopy(section) | {"depth": 6}
    stacked = build_model([deeper, {**deeper, "depth_param": "none"}], D, 1, generators=[_gen(1), _gen(1)])
    assert [m.name for m in stacked.depth_params] == ["completep", "none"]
    assert float(stacked.mult_2[0]) == pytest.approx(0.5) and float(stacked.mult_2[1]) == 1.0
    assert float(stacked.mult_1[0]) == 1.0  # not a branch's last layer
    assert math.isclose(stacked.depth / stacked.base_depth, 2.0)
