"""Richness gamma (output / gamma, base lr rule) and centering f(x) - f_0(x), per member."""

from __future__ import annotations

import pytest
import torch

from learnlab.models import CNN, MLP, build_optimizer, gamma_lr_factor

D, WIDTH = 6, 32


pytestmark = pytest.mark.usefixtures("one_thread")


def _mlp(**kw):
    kw.setdefault("generators", [torch.Generator().manual_seed(0)])
    return MLP(D, WIDTH, 2, dtype=torch.float64, **kw)


@pytest.mark.parametrize(
    "gamma, rule, factor",
    [
        (4.0, "piecewise", 4.0),
        (0.25, "piecewise", 0.0625),
        (1.0, "piecewise", 1.0),
        (4.0, "gamma2", 16.0),
        (0.25, "gamma", 0.25),
        (0.25, "none", 1.0),
    ],
)
def test_gamma_divides_the_output_and_sets_the_base_lr(gamma, rule, factor):
    assert gamma_lr_factor(gamma, rule) == pytest.approx(factor)
    plain, rich = _mlp(param="mup"), _mlp(param="mup", gamma=gamma, gamma_lr=rule)
    x = torch.randn(9, D, dtype=torch.float64)
    with torch.no_grad():
        for b in (*plain.biases, *rich.biases):
            b.fill_(0.3)
    torch.testing.assert_close(rich(x), plain(x) / gamma, rtol=1e-12, atol=1e-14)
    assert rich.mult_2.item() == pytest.approx(WIDTH**-0.5 / gamma)
    assert rich.bias_mult_2.item() == pytest.approx(1 / gamma)
    for optimizer in ("sgd", "adam"):
        base = {g["name"]: g["lr"].item() for g in build_optimizer(plain, optimizer, lr=0.1).param_groups}
        scaled = {g["name"]: g["lr"].item() for g in build_optimizer(rich, optimizer, lr=0.1).param_groups}
        assert scaled == pytest.approx({k: v * factor for k, v in base.items()}, rel=1e-12)


def test_gamma_per_member_in_a_stack():
    gens = [torch.Generator().manual_seed(1) for _ in range(3)]
    model = MLP(D, WIDTH, 1, gamma=[0.5, 1.0, 3.0], generators=gens, dtype=torch.float64)
    x = torch.randn(1, 5, D, dtype=torch.float64).expand(3, 5, D)
    out = model(x)
    torch.testing.assert_close(out[0] * 0.5, out[1], rtol=1e-12, atol=0)
    torch.testing.assert_close(out[2] * 3.0, out[1], rtol=1e-12, atol=0)
    lr = build_optimizer(model, "sgd", lr=0.2).param_groups[0]["lr"]
    torch.testing.assert_close(lr, torch.tensor([0.05, 0.2, 0.6], dtype=torch.float64))


@pytest.mark.parametrize("param", ["sp", "mup", "ntk"])
def test_centered_output_is_zero_at_init_and_equals_f_minus_f0_after_training(param):
    def gens():
        return [torch.Generator().manual_seed(s) for s in (1, 2)]

    centered = MLP(D, WIDTH, 2, param=param, center=True, generators=gens(), dtype=torch.float64)
    initial = MLP(D, WIDTH, 2, param=param, generators=gens(), dtype=torch.float64)
    x = torch.randn(2, 7, D, dtype=torch.float64)
    assert torch.count_nonzero(centered(x)) == 0 and torch.count_nonzero(initial(x)) > 0
    opt = build_optimizer(centered, "sgd", lr=0.05)
    g = torch.Generator().manual_seed(9)
    for _ in range(5):
        xb = torch.randn(2, 16, D, generator=g, dtype=torch.float64)
        loss = (centered(xb) - xb[..., :1]).pow(2).mean(dim=(1, 2)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    # the trained parameters in an uncentered model, minus the initial model: the same function
    trained = MLP(D, WIDTH, 2, param=param, generators=gens(), dtype=torch.float64)
    trained.load_state_dict({k: v for k, v in centered.state_dict().items() if not k.startswith("init_")})
    torch.testing.assert_close(centered(x), trained(x) - initial(x), rtol=1e-10, atol=1e-12)
    assert centered(x).abs().mean() > 1e-3  # it moved
    # the snapshot is not trained: buffers, not parameters
    names = {n for n, _ in centered.named_parameters()}
    assert not any(n.startswith("init_") for n in names)
    assert "init_weights_0" in dict(centered.named_buffers())


def test_centered_cnn_is_zero_at_init_and_learns():
    model = CNN(
        (1, 4, 4),
        8,
        2,
        2,
        param="mup",
        center=True,
        gamma=2.0,
        generators=[torch.Generator().manual_seed(0)],
        dtype=torch.float64,
    )
    x = torch.randn(5, 16, dtype=torch.float64)
    assert torch.count_nonzero(model(x)) == 0
    opt = build_optimizer(model, "adam", lr=0.05)
    y = torch.ones(5, 2, dtype=torch.float64)
    losses = []
    for _ in range(10):
        loss = (model(x) - y).pow(2).mean()
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[0] == pytest.approx(1.0) and losses[-1] < 0.5 * losses[0]
