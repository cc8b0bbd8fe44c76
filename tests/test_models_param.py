"""The parameterization table against closed forms written out by hand, and its bad input."""

from __future__ import annotations

import math

import pytest
import torch

from learnlab.experiments import SpecError, load_spec
from learnlab.models import MLP, PARAMETERIZATIONS, ModelSpec, build_optimizer, get_parameterization

D, DEPTH = 10, 2

# Per row, for a depth-2 relu MLP with n0 = 1 and width n: weight multipliers m_l, init
# scales s_l (for the he scheme: sigma^2 = 1 for the input layer, 2 after relu), SGD and Adam
# lr factors, and the bias multipliers / lr factors (non-output biases take the input layer's
# a, c; the output bias 0). Written from the papers' definitions, not from learnlab's table.
ROOT2 = math.sqrt(2)
CLOSED = {
    "sp": dict(
        m=lambda n: (1, 1, 1),
        s=lambda n: (D**-0.5, ROOT2 * n**-0.5, ROOT2 * n**-0.5),
        sgd=lambda n: (1, 1, 1),
        adam=lambda n: (1, 1, 1),
        bias_m=lambda n: (1, 1, 1),
        bias_sgd=lambda n: (1, 1, 1),
        bias_adam=lambda n: (1, 1, 1),
    ),
    "ntk": dict(
        m=lambda n: (1, n**-0.5, n**-0.5),
        s=lambda n: (D**-0.5, ROOT2, ROOT2),
        sgd=lambda n: (1, 1, 1),
        adam=lambda n: (n**-0.5, 1 / n, n**-0.5),
        bias_m=lambda n: (1, 1, 1),
        bias_sgd=lambda n: (1, 1, 1),
        bias_adam=lambda n: (n**-0.5, n**-0.5, 1),
    ),
    "mup": dict(
        m=lambda n: (n**0.5, 1, n**-0.5),
        s=lambda n: ((D * n) ** -0.5, ROOT2 * n**-0.5, ROOT2 * n**-0.5),
        sgd=lambda n: (1, 1, 1),
        adam=lambda n: (n**-0.5, 1 / n, n**-0.5),
        bias_m=lambda n: (n**0.5, n**0.5, 1),
        bias_sgd=lambda n: (1, 1, 1),
        bias_adam=lambda n: (n**-0.5, n**-0.5, 1),
    ),
    "mf": dict(
        m=lambda n: (1, n**-0.5, 1 / n),
        s=lambda n: (D**-0.5, ROOT2, ROOT2),
        sgd=lambda n: (n, n, n),
        adam=lambda n: (1, n**-0.5, 1),
        bias_m=lambda n: (1, 1, 1),
        bias_sgd=lambda n: (n, n, 1),
        bias_adam=lambda n: (1, 1, 1),
    ),
    "ip": dict(
        m=lambda n: (1, 1 / n, 1 / n),
        s=lambda n: (D**-0.5, ROOT2, ROOT2),
        sgd=lambda n: (n, n * n, n),
        adam=lambda n: (1, 1, 1),
        bias_m=lambda n: (1, 1, 1),
        bias_sgd=lambda n: (n, n, 1),
        bias_adam=lambda n: (1, 1, 1),
    ),
}
CLOSED["ipllr"] = CLOSED["ip"]  # after the warm-up (tested in test_models_optim.py)


@pytest.mark.parametrize("init", ["torch", "lecun", "he"])
@pytest.mark.parametrize("param", sorted(CLOSED))
@pytest.mark.parametrize("width", [64, 256, 1024])
def test_multipliers_init_and_lrs_match_the_closed_forms(param, width, init):
    eta, seed = 0.3, 5
    model = MLP(
        D, width, DEPTH, param=param, init=init, generators=[torch.Generator().manual_seed(seed)], dtype=torch.float64
    )
    rows = CLOSED[param]
    g = torch.Generator().manual_seed(seed)
    dims = [D, width, width, 1]
    for l in range(3):
        # the stored weight is s_l times the scheme's map of the generator's standard draw z_l, exactly:
        # he: s_l z; lecun: s_l z / sqrt(sigma^2); torch: U(-1, 1) = erf(z / sqrt 2) with sigma^2 = 1
        z = torch.randn(dims[l], dims[l + 1], generator=g).to(torch.float64)
        zb = torch.randn(1, dims[l + 1], generator=g).to(torch.float64)  # the layer's bias draw follows its weight's
        sigma = ROOT2 if l > 0 else 1.0  # the table's s_l are he's
        scale = rows["s"](width)[l] * (1 if init == "he" else 1 / sigma)
        draw = torch.special.erf(z / ROOT2) if init == "torch" else z
        torch.testing.assert_close(model.weights[l][0], scale * draw, rtol=1e-12, atol=0)
        if init == "torch":  # biases U(+-1/sqrt(fan_in)) like the weight's column; the output bias 1/sqrt(n)
            bound = scale if l < 2 else width**-0.5
            torch.testing.assert_close(model.biases[l][0], bound * torch.special.erf(zb / ROOT2), rtol=1e-12, atol=0)
        else:
            assert not model.biases[l].any()
        assert getattr(model, f"mult_{l}").item() == pytest.approx(rows["m"](width)[l], rel=1e-12)
        assert getattr(model, f"bias_mult_{l}").item() == pytest.approx(rows["bias_m"](width)[l], rel=1e-12)
    for name, key in [("sgd", "sgd"), ("momentum", "sgd"), ("adam", "adam"), ("adamw", "adam")]:
        lrs = {grp["name"]: grp["lr"].item() for grp in build_optimizer(model, name, lr=eta).param_groups}
        for l in range(3):
            assert lrs[f"weights.{l}"] == pytest.approx(eta * rows[key](width)[l], rel=1e-12), (name, l)
            assert lrs[f"biases.{l}"] == pytest.approx(eta * rows[f"bias_{key}"](width)[l], rel=1e-12), (name, l)


@pytest.mark.parametrize("param", sorted(PARAMETERIZATIONS))
def test_at_the_base_width_every_row_is_the_standard_model(param):
    """n = n0: multipliers 1, fan-in init sigma / sqrt(fan_in), one learning rate."""
    n0 = 48
    model = MLP(
        D, n0, 3, param=param, base_width=n0, generators=[torch.Generator().manual_seed(1)], dtype=torch.float64
    )
    ref = MLP(D, n0, 3, param="sp", base_width=1, generators=[torch.Generator().manual_seed(1)], dtype=torch.float64)
    for w, w_ref in zip(model.weights, ref.weights):
        torch.testing.assert_close(w, w_ref, rtol=1e-14, atol=0)
    assert all(b.item() == 1.0 for name, b in model.named_buffers())
    for opt in ("sgd", "adam"):
        assert {grp["lr"].item() for grp in build_optimizer(model, opt, lr=0.1).param_groups} == {0.1}


def test_custom_exponents_per_layer_and_like():
    row = get_parameterization({"a": [0, 0.25, 0.5, 1], "b": [0, 0.5, 0.5, 0.5], "c": [0, 1, 1, 0]})
    assert row.exponents("a", 4) == [0, 0.25, 0.5, 1]
    assert row.exponents("c_adam", 4) == [0, 1, 1, 0]  # defaults to c
    model = MLP(D, 100, 3, param={"a": [0, 0.25, 0.5, 1], "b": [0, 0.5, 0.5, 0.5], "c": [0, 1, 1, 0]})
    assert [getattr(model, f"mult_{l}").item() for l in range(4)] == pytest.approx([1, 100**-0.25, 0.1, 0.01])
    ipllr3 = get_parameterization({"like": "ipllr", "n_warmup": 3})
    assert ipllr3.n_warmup == 3 and ipllr3.a == PARAMETERIZATIONS["ipllr"].a
    # ipllr warm-up exponents: -(L+1)/2, -(L+2)/2, ..., -(L+1)/2 (Hajjar et al. 2021), L = depth
    for depth in (1, 2, 5):
        L = depth
        expected = [-(L + 1) / 2] + [-(L + 2) / 2] * (depth - 1) + [-(L + 1) / 2]
        assert PARAMETERIZATIONS["ipllr"].exponents("warmup_c", depth + 1) == expected


def test_mf_is_mup_moved_by_one_half_and_ip_equals_mf_at_depth_one():
    mup, mf, ip = (PARAMETERIZATIONS[k] for k in ("mup", "mf", "ip"))
    moved = mup.shifted(0.5)
    for key in ("a", "b", "c", "c_adam"):
        assert moved.exponents(key, 5) == mf.exponents(key, 5), key
        assert ip.exponents(key, 2) == mf.exponents(key, 2), key


@pytest.mark.parametrize(
    "model, path, needle",
    [
        ({"param": "mupp"}, "model.param", "valid: ip, ipllr, mf, mup, ntk, sp"),
        (
            {"depth": 3, "param": {"a": [0, 0], "b": [0, 0, 0], "c": [0, 0, 0]}},
            "model.param",
            "expected 3 (input, hidden, output) or depth + 1 = 4",
        ),
        ({"depth": 2, "param": {"like": "mup", "c_adam": [1, 1, 1, 1, 1]}}, "model.param", "'c_adam': 5"),
        ({"param": {"a": [0, 0, 0]}}, "model.param", "custom exponents need b, c"),
        ({"param": {"like": "nope"}}, "model.param", "unknown parameterization 'nope'"),
        ({"gamma": 0}, "model.gamma", "gamma must be a finite number > 0"),
        ({"gamma": -2.5}, "model.gamma", "got -2.5"),
        ({"base_width": 0}, "model.base_width", "base_width must be >= 1"),
        ({"name": "cnn"}, "model", "needs image_shape"),
        ({"gamma_lr": "linear"}, "model.gamma_lr", "piecewise"),
        ({"image_shape": [1, 2, 3]}, "model", "image_shape is only used by model.name cnn"),
        ({"width": True}, "model.width", "expected an integer, got the boolean true"),
        ({"name": "cnn", "image_shape": [1, 6, 1], "kernel_size": 2}, "model", "kernel_size must be odd"),
    ],
)
def test_bad_model_sections_are_spec_errors_naming_the_key(tiny_spec, model, path, needle):
    tiny_spec["model"].update(model)
    with pytest.raises(SpecError) as info:
        load_spec(tiny_spec)
    text = str(info.value)
    assert f"  - {path}" in text and needle in text, text


def test_python_api_bad_input_says_what_to_do():
    with pytest.raises(ValueError, match="valid: ip, ipllr, mf, mup, ntk, sp"):
        MLP(3, 8, 1, param="mu-p")
    with pytest.raises(ValueError, match="c has 2 entries; expected 3"):
        MLP(3, 8, 3, param={"a": [0, 0, 0], "b": [0, 0, 0], "c": [0, 0]})
    with pytest.raises(ValueError, match="gamma must be > 0"):
        MLP(3, 8, 1, gamma=0.0)
    with pytest.raises(ValueError, match="base_width must be an integer >= 1"):
        MLP(3, 8, 1, base_width=0)
    with pytest.raises(ValueError, match="unknown gamma_lr rule 'fast'"):
        MLP(3, 8, 1, gamma_lr="fast")
    with pytest.raises(ValueError, match="2 values of param for 3 members"):
        MLP(3, 8, 1, param=["sp", "mup"], generators=[torch.Generator() for _ in range(3)])


def test_spec_round_trips_new_keys(tiny_spec):
    tiny_spec["model"].update(
        param={"like": "ipllr", "n_warmup": 2}, gamma=0.5, gamma_lr="gamma2", center=True, base_width=4
    )
    spec, _ = load_spec(tiny_spec)
    again = ModelSpec.model_validate(spec.model.model_dump(mode="json"))
    assert again == spec.model
    assert get_parameterization(again.parameterization_arg()).n_warmup == 2


def test_unit_multipliers_skip_the_multiply_with_the_same_bits():
    """sp has every multiplier 1, so the forward pass skips them; the bits equal the general form
    (written out here), and loading multipliers that are not 1 switches the general form back on."""
    gens = [torch.Generator().manual_seed(s) for s in range(3)]
    model = MLP(D, 32, DEPTH, generators=gens)
    assert model._unit == (True,) * (DEPTH + 1)
    for b in model.biases:
        torch.nn.init.normal_(b)
    x = torch.randn(3, 16, D)
    h = x
    for l, (w, b) in enumerate(zip(model.weights, model.biases)):
        h = torch.addcmul(
            b * getattr(model, f"bias_mult_{l}"),
            torch.bmm(h, w) if w.shape[-1] > 1 else (h * w.transpose(1, 2)).sum(-1, keepdim=True),
            getattr(model, f"mult_{l}"),
        )
        h = torch.relu(h) if l < DEPTH else h
    assert torch.equal(model(x), h)
    state = model.state_dict()
    state["mult_1"] = torch.full_like(state["mult_1"], 0.5)
    model.load_state_dict(state)
    assert model._unit == (True, False, True)
    assert not torch.allclose(model(x), h)  # the loaded 0.5 is applied
    mup = MLP(D, 32, DEPTH, param="mup", generators=gens)
    assert not all(mup._unit)
