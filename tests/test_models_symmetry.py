"""abc symmetry (Yang & Hu 2021) and the shared initial draw, in float64.

(a, b, c) -> (a + theta, b - theta, c - 2 theta) leaves SGD's trajectory unchanged (the
effective weights m W start and move identically), and c_adam -> c_adam - theta with
eps -> eps + theta (Adam's eps scaled like the gradient) does for Adam. Tolerances: the
two runs differ only by rounding of products with powers of the width ratio (a few ulps
per step); 1e-5 relative is the issue's bound and leaves a margin of ~1e8 over what we
see (~1e-13).
"""

from __future__ import annotations

import pytest
import torch

from learnlab.experiments import build_run
from learnlab.models import CNN, MLP, PARAMETERIZATIONS, build_model, build_optimizer

D, STEPS = 8, 25


pytestmark = pytest.mark.usefixtures("one_thread")


def _batches(n_steps=STEPS, d=D, seed=3):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_steps):
        x = torch.randn(32, d, generator=g, dtype=torch.float64)
        out.append((x, x[:, :2].sum(-1, keepdim=True) + 0.5 * torch.tanh(2 * x[:, 2:3])))
    return out


def _losses(model, optimizer, lr, batches, **kw):
    opt = build_optimizer(model, optimizer, lr=lr, **kw)
    losses = []
    for x, y in batches:
        loss = (model(x) - y).pow(2).mean()
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return torch.tensor(losses, dtype=torch.float64)


def _pair(row_a, row_b, width, depth=2, base_width=1):
    def make(row):
        return MLP(
            D,
            width,
            depth,
            param=row,
            base_width=base_width,
            generators=[torch.Generator().manual_seed(11)],
            dtype=torch.float64,
        )

    return make(row_a), make(row_b)


@pytest.mark.parametrize("name, lr", [("mup", 0.2), ("ntk", 0.5), ("sp", 0.02), ("mf", 0.2)])
@pytest.mark.parametrize("theta", [-0.5, 0.25, 1.0])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_sgd_trajectory_is_invariant_under_the_abc_shift(name, lr, theta, optimizer):
    row = PARAMETERIZATIONS[name]
    base, moved = _pair(row, row.shifted(theta), width=128, base_width=2)
    first = _losses(base, optimizer, lr, _batches(), momentum=0.5)
    second = _losses(moved, optimizer, lr, _batches(), momentum=0.5)
    assert first[-1] < 0.9 * first[0], "the runs must actually learn"
    torch.testing.assert_close(second, first, rtol=1e-5, atol=0)
    # the parameters themselves differ: the symmetry is not a no-op
    assert not torch.allclose(base.weights[1], moved.weights[1])


@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.2), ("nesterov", 0.05), ("adam", 0.05), ("adamw", 0.05)])
@pytest.mark.parametrize("depth", [1, 3])
def test_mup_and_mf_train_identically(optimizer, lr, depth):
    mup, mf = _pair("mup", "mf", width=256, depth=depth)
    kw = dict(momentum=0.9, weight_decay=0.0)  # Adam's eps moves with the gradient: the default keeps the symmetry
    first, second = _losses(mup, optimizer, lr, _batches(), **kw), _losses(mf, optimizer, lr, _batches(), **kw)
    assert first[-1] < 0.9 * first[0]
    torch.testing.assert_close(second, first, rtol=1e-5, atol=0)


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_adam_symmetry_is_exact_with_a_large_eps(optimizer):
    """eps = 1e-3 is not negligible beside |g| ~ 1/n: muP and mf agree because eps moves with the
    gradient; with eps left unscaled (exponents 0) the two rows part."""
    kw = dict(eps=1e-3, weight_decay=0.0)
    mup, mf = _pair("mup", "mf", width=256, depth=2)
    first, second = _losses(mup, optimizer, 0.05, _batches(), **kw), _losses(mf, optimizer, 0.05, _batches(), **kw)
    torch.testing.assert_close(second, first, rtol=1e-5, atol=0)
    flat = [0.0, 0.0, 0.0]
    mup, mf = _pair({"like": "mup", "eps": flat}, {"like": "mf", "eps": flat}, width=256, depth=2)
    first, second = _losses(mup, optimizer, 0.05, _batches(), **kw), _losses(mf, optimizer, 0.05, _batches(), **kw)
    assert not torch.allclose(second, first, rtol=1e-3, atol=0)


def test_ip_differs_from_mf_beyond_one_hidden_layer():
    deep = _pair("ip", "mf", width=256, depth=2)
    a, b = (_losses(m, "sgd", 0.003, _batches(5)) for m in deep)
    assert not torch.allclose(a, b, rtol=1e-3)
    shallow = _pair("ip", "mf", width=256, depth=1)
    a, b = (_losses(m, "sgd", 0.003, _batches(5)) for m in shallow)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=0)


def test_models_in_different_parameterizations_share_the_standard_gaussian_draws(tiny_spec, resolve):
    """Runs of one seed start from one draw in every row: W_l / s_l is the same D(z_l) (issue 13),
    without an init_seed; model.init_seed shares a draw across seeds too."""
    tiny_spec["model"].update(width=32, depth=2, base_width=8)
    tiny_spec["sweep"] = {"grid": {"model.param": ["sp", "mup", "ntk", "ipllr"]}, "seeds": 1}
    configs = resolve(tiny_spec)
    draws = []
    for config in configs:
        model = build_run(config).model
        std = [model.learnlab_scaling.init_std(s) for s in model.learnlab_scaling.slots]
        draws.append([(w[0].double() / s.item()) for w, s in zip(model.weights, std)])
    for other in draws[1:]:
        for z, z_ref in zip(other, draws[0]):
            torch.testing.assert_close(z, z_ref, rtol=1e-6, atol=1e-6)
    # and they are U(-1, 1) (the default torch scheme): |u| < 1, std 1/sqrt(3) over the 32 x 32 draw
    assert draws[0][1].abs().max().item() < 1 and abs(draws[0][1].std().item() - 3**-0.5) < 0.05
    # another seed gives other draws; one init_seed gives one draw whatever the seed
    other = build_run(resolve(tiny_spec, "seed=1")[0]).model
    assert not torch.allclose(other.weights[1], build_run(configs[0]).model.weights[1])
    pinned = [build_run(resolve(tiny_spec, f"seed={s}", "model.init_seed=99")[0]).model for s in (0, 1)]
    assert pinned[0].weights[1].equal(pinned[1].weights[1])


def test_cnn_members_share_draws_across_rows():
    def make(param):
        return CNN((2, 5, 5), 16, 2, 3, param=param, generators=[torch.Generator().manual_seed(4)], dtype=torch.float64)

    sp, mup = make("sp"), make("mup")
    for l, (a, b) in enumerate(zip(sp.weights, mup.weights)):
        ra = a / b
        assert ra.std().item() < 1e-10 * ra.abs().mean().item(), l
    built = build_model(
        {"name": "cnn", "image_shape": [2, 5, 5], "width": 16, "depth": 2, "param": "sp"},
        50,
        3,
        generators=[torch.Generator().manual_seed(4)],
        dtype=torch.float64,
    )
    assert built.weights[0].equal(sp.weights[0])
    with pytest.raises(ValueError, match=r"image_shape \[2, 5, 5\] has 50 values per input but .* d = 49"):
        build_model({"name": "cnn", "image_shape": [2, 5, 5], "width": 16}, 49, 3)
