"""Models layer (issue 2): the stacked, parameterized MLP against slow explicit references."""

from __future__ import annotations

import math

import pytest
import torch

from learnlab.models import MLP

# Closed-form multipliers m_l = (n / n0)^(-a_l) of a depth-2 MLP (input, hidden, output),
# written out by hand from Yang & Hu's abc table (sp: a = 0; muP: a = (-1/2, 0, 1/2)).
# Hidden biases take the input layer's exponent (a bias is a weight from the constant 1),
# the output bias takes 0 (docs of learnlab.models._param).


def _multipliers(param: str, ratio: float) -> tuple[list[float], list[float]]:
    """(weight multipliers, bias multipliers) per layer of a depth-2 MLP."""
    if param == "sp":
        return [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]
    if param == "mup":
        return [ratio**0.5, 1.0, ratio**-0.5], [ratio**0.5, ratio**0.5, 1.0]
    raise AssertionError(param)


def _slow_forward(model: MLP, x: torch.Tensor, param: str) -> torch.Tensor:
    """Loop over members: h <- relu(h @ (m W) + bm b), no activation after the last layer."""
    ratio = model.width / model.base_width
    mults, bias_mults = _multipliers(param, ratio)
    outs = []
    for e in range(model.members):
        h = x[e]
        for l in range(3):
            w = model.weights[l][e].detach()
            b = model.biases[l][e, 0].detach()
            h = h @ (mults[l] * w) + bias_mults[l] * b
            if l < 2:
                h = torch.clamp(h, min=0.0)
        outs.append(h)
    return torch.stack(outs)


@pytest.mark.parametrize("param", ["sp", "mup"])
@pytest.mark.parametrize("width, base_width", [(8, 1), (32, 4)])
def test_forward_equals_a_slow_explicit_computation(gen, param, width, base_width):
    d, members = 5, 3
    model = MLP(
        d,
        width,
        2,
        outputs=2,
        param=param,
        base_width=base_width,
        generators=[gen(e) for e in range(members)],
        dtype=torch.float64,
    )
    with torch.no_grad():  # non-zero biases so that their multipliers matter
        for b in model.biases:
            b.normal_(generator=gen(99))
    x = torch.randn(members, 7, d, generator=gen(100), dtype=torch.float64)
    torch.testing.assert_close(model(x), _slow_forward(model, x, param), rtol=1e-12, atol=1e-12)
    # a single member takes and returns 2-d tensors like an ordinary module
    single = MLP(d, width, 2, outputs=2, param=param, base_width=base_width, generators=[gen(0)], dtype=torch.float64)
    assert single(x[0]).shape == (7, 2)


def _expected_init_std(param: str, d: int, width: int, base_width: int) -> list[float]:
    """Std of W_l (the stored parameter), by hand.

    s_l = sigma_l / sqrt(fan_in at base width) * (n / n0)^(-b_l), sigma^2 = 1 for the input
    layer and 2 (He, relu) for layers reading relu(h). sp: b = (0, 1/2, 1/2); muP: b = 1/2.
    """
    r = width / base_width
    if param == "sp":
        return [1 / math.sqrt(d), math.sqrt(2 / base_width) / math.sqrt(r), math.sqrt(2 / base_width) / math.sqrt(r)]
    return [
        1 / math.sqrt(d) / math.sqrt(r),
        math.sqrt(2 / base_width) / math.sqrt(r),
        math.sqrt(2 / base_width) / math.sqrt(r),
    ]


def _expected_effective_std(param: str, d: int, width: int, base_width: int) -> list[float]:
    """Std of m_l * W_l: sp = (1/sqrt(d), sqrt(2/n), sqrt(2/n)) for any n0 (the PyTorch fan-in
    model); muP = (1/sqrt(d), sqrt(2/n), sqrt(2 n0)/n) -- the muP readout shrinks like 1/n."""
    if param == "sp":
        return [1 / math.sqrt(d), math.sqrt(2 / width), math.sqrt(2 / width)]
    return [1 / math.sqrt(d), math.sqrt(2 / width), math.sqrt(2 * base_width) / width]


@pytest.mark.parametrize("init", ["he", "torch"])
@pytest.mark.parametrize("param", ["sp", "mup"])
@pytest.mark.parametrize("width, base_width", [(256, 1), (512, 16)])
def test_init_std_per_layer_matches_the_closed_form(gen, param, width, base_width, init):
    """he: the Gaussian stds written out above; torch: U(+-bound) with bound = that std at
    sigma^2 = 1, so std = bound / sqrt(3) (the uniform's), biases too (not zero)."""
    d, members = 40, 8
    model = MLP(
        d,
        width,
        2,
        param=param,
        base_width=base_width,
        init=init,
        generators=[gen(e) for e in range(members)],
        dtype=torch.float64,
    )
    sigma = [1.0, math.sqrt(2), math.sqrt(2)]  # the he scheme's, divided out for torch
    factor = [1.0] * 3 if init == "he" else [1 / (s * math.sqrt(3)) for s in sigma]
    raw = [s * f for s, f in zip(_expected_init_std(param, d, width, base_width), factor)]
    eff = [s * f for s, f in zip(_expected_effective_std(param, d, width, base_width), factor)]
    mults, _ = _multipliers(param, width / base_width)
    for l, w in enumerate(model.weights):
        n = w.numel()
        # sample std of n draws has relative std <= 1/sqrt(2n) (uniform: smaller); allow 6 of them
        tol = 6 / math.sqrt(2 * n)
        got = w.detach().std().item()
        assert got == pytest.approx(raw[l], rel=tol), f"layer {l}: std {got} vs {raw[l]}"
        got_eff = (getattr(model, f"mult_{l}") * w).detach().std().item()
        assert got_eff == pytest.approx(eff[l], rel=tol), f"layer {l}: effective std {got_eff} vs {eff[l]}"
        assert getattr(model, f"mult_{l}").flatten().tolist() == pytest.approx([mults[l]] * members, rel=1e-12)
        assert w.detach().mean().abs().item() < 6 * raw[l] / math.sqrt(n)
        if init == "torch":  # every entry inside its bound
            assert w.detach().abs().max().item() <= math.sqrt(3) * raw[l]
    for l, b in enumerate(model.biases):
        if init == "he":
            assert torch.count_nonzero(b) == 0  # Gaussian schemes: biases start at zero
        else:  # U(+-1/sqrt(fan_in)): the weight's bound for input and hidden layers, 1/sqrt(n) at the output
            bound = math.sqrt(3) * raw[l] if l < 2 else 1 / math.sqrt(width)
            assert b.abs().max().item() <= bound and b.abs().max().item() > bound / 2


def test_stacked_member_equals_a_single_mlp_from_the_same_generator(gen):
    d, width = 6, 16
    params = ["sp", "mup", "sp"]
    stacked = MLP(d, width, 2, param=params, generators=[gen(10), gen(11), gen(12)], dtype=torch.float64)
    x = torch.randn(3, 9, d, generator=gen(0), dtype=torch.float64)
    out = stacked(x)
    for e, seed in enumerate([10, 11, 12]):
        single = MLP(d, width, 2, param=params[e], generators=[gen(seed)], dtype=torch.float64)
        for w_stacked, w_single in zip(stacked.weights, single.weights):
            torch.testing.assert_close(w_stacked[e], w_single[0], rtol=0, atol=0)
        torch.testing.assert_close(out[e], single(x[e]), rtol=1e-13, atol=1e-13)
    # different generators really give different members
    assert not torch.equal(stacked.weights[1][0], stacked.weights[1][2])


def test_mlp_rejects_unknown_activation_and_wrong_input_shape(gen):
    with pytest.raises(ValueError, match="activation"):
        MLP(3, 4, 1, activation="swishy")
    stacked = MLP(3, 4, 1, generators=[gen(0), gen(1)])
    with pytest.raises(ValueError, match="members=2"):
        stacked(torch.zeros(5, 3))
