"""Parameterization-aware optimizers: ipllr warm-up, user param groups, torch optimizers, stacks."""

from __future__ import annotations

import copy

import pytest
import torch

from learnlab.models import MLP, build_optimizer, lr_factors, select_members

D, WIDTH = 5, 64


pytestmark = pytest.mark.usefixtures("one_thread")


def _batches(members=None, steps=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (16, D) if members is None else (members, 16, D)
    out = []
    for _ in range(steps):
        x = torch.randn(*shape, generator=g, dtype=torch.float64)
        out.append((x, torch.sin(x.sum(-1, keepdim=True))))
    return out


def _step(model, opt, x, y):
    loss = (model(x) - y).pow(2).mean(dim=(-2, -1)).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()


def _ipllr(width=WIDTH, depth=2):
    return MLP(D, width, depth, param="ipllr", generators=[torch.Generator().manual_seed(3)], dtype=torch.float64)


def test_ipllr_warmup_factors_match_hajjar_et_al():
    """Step 0: c = (-(L+1)/2, -(L+2)/2, -(L+1)/2) instead of IP's (-1, -2, -1), L = 2, so the
    factors on the built lrs are n^(1/2), 1, n^(1/2); hidden biases follow the input row."""
    n = WIDTH
    factors = lr_factors(_ipllr(), "sgd", 0)
    names = [name for name, _ in _ipllr().named_parameters()]
    expected = {
        "weights.0": n**0.5,
        "weights.1": 1.0,
        "weights.2": n**0.5,
        "biases.0": n**0.5,
        "biases.1": n**0.5,
        "biases.2": 1.0,
    }
    assert {k: f.item() for k, f in zip(names, factors)} == pytest.approx(expected, rel=1e-12)
    assert lr_factors(_ipllr(), "sgd", 1) is None  # n_warmup = 1
    assert lr_factors(_ipllr(), "adam", 0) is None  # Adam: no warm-up
    assert lr_factors(MLP(D, n, 2, param="mup"), "sgd", 0) is None
    deep = lr_factors(_ipllr(depth=4), "sgd", 0)  # L = 4: input n^(5/2 - 1), hidden n^(3 - 2)
    assert deep[0].item() == pytest.approx(n**1.5) and deep[1].item() == pytest.approx(n**1.0)


def test_learnlab_sgd_applies_the_warmup_like_torch_sgd_driven_by_lr_factors():
    """Our SGD reads the warm-up from its groups; torch.optim.SGD gets the same lrs from
    lr_factors each step (the hook for optimizers learnlab does not own)."""
    ours, ref = _ipllr(), _ipllr()
    opt = build_optimizer(ours, "sgd", lr=0.01)
    ref_opt = build_optimizer(ref, torch.optim.SGD(ref.parameters(), lr=0.01), ignore_warmup=True)
    base = [g["lr"] for g in ref_opt.param_groups]
    before = [p.detach().clone() for p in ours.parameters()]
    for t, (x, y) in enumerate(_batches(steps=3)):
        factors = lr_factors(ref, "sgd", t)
        for group, lr, f in zip(ref_opt.param_groups, base, factors or [1.0] * len(base)):
            group["lr"] = lr * float(f)
        _step(ours, opt, x, y)
        _step(ref, ref_opt, x, y)
        if t == 0:  # the first update of the input layer uses lr * n (IP) * n^(1/2) (warm-up)
            step0 = before[0] - ours.weights[0].detach()
            torch.testing.assert_close(step0, 0.01 * WIDTH * WIDTH**0.5 * ours.weights[0].grad, rtol=1e-10, atol=1e-14)
    for p, q in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def test_torch_optimizer_refuses_a_warmup_it_cannot_apply():
    model = _ipllr()
    with pytest.raises(ValueError, match="warm-up .* cannot apply; use build_optimizer"):
        build_optimizer(model, torch.optim.SGD(model.parameters(), lr=0.1))


def test_user_param_groups_keep_their_settings_and_get_scaled_lrs():
    model = MLP(D, WIDTH, 2, param="mup", generators=[torch.Generator().manual_seed(0)])
    weights, biases = list(model.weights), list(model.biases)
    opt = build_optimizer(
        model,
        "adamw",
        lr=1e-3,
        weight_decay=0.1,
        param_groups=[
            {"params": weights, "lr": 2e-3},
            {"params": biases, "weight_decay": 0.0},
        ],
    )
    groups = {g["name"]: g for g in opt.param_groups}
    assert len(groups) == 6
    # muP Adam: c_adam = (1/2, 1, 1/2) on weights, biases take the input row 1/2, the output bias 0
    assert groups["weights.1"]["lr"].item() == pytest.approx(2e-3 / WIDTH)
    assert groups["weights.0"]["lr"].item() == pytest.approx(2e-3 / WIDTH**0.5)
    assert groups["biases.0"]["lr"].item() == pytest.approx(1e-3 / WIDTH**0.5)
    assert groups["biases.2"]["lr"].item() == pytest.approx(1e-3)
    assert groups["weights.1"]["weight_decay"].item() == 0.1 and groups["biases.1"]["weight_decay"].item() == 0.0
    with pytest.raises(ValueError, match="not a trainable parameter of the model"):
        build_optimizer(model, "sgd", param_groups=[{"params": [torch.nn.Parameter(torch.zeros(2))]}])
    with pytest.raises(ValueError, match="repeats a parameter"):
        build_optimizer(model, "sgd", param_groups=[{"params": weights}, {"params": weights[:1]}])


def test_a_torch_optimizer_is_split_per_tensor_and_scaled_in_place_once():
    model = MLP(D, WIDTH, 2, param="mup", generators=[torch.Generator().manual_seed(0)], dtype=torch.float64)
    opt = torch.optim.AdamW(
        [
            {"params": list(model.weights), "weight_decay": 0.3},
            {"params": list(model.biases), "lr": 5e-3, "weight_decay": 0.0},
        ],
        lr=1e-3,
    )
    same = build_optimizer(model, opt)
    assert same is opt and len(opt.param_groups) == 6
    lrs = {id(g["params"][0]): g for g in opt.param_groups}
    hidden = lrs[id(model.weights[1])]
    assert hidden["lr"] == pytest.approx(1e-3 / WIDTH) and hidden["weight_decay"] == 0.3
    assert isinstance(hidden["lr"], float) and hidden["amsgrad"] is False  # torch's defaults kept
    assert lrs[id(model.biases[0])]["lr"] == pytest.approx(5e-3 / WIDTH**0.5)
    with pytest.raises(ValueError, match="already scaled"):
        build_optimizer(model, opt)
    x, y = _batches(steps=1)[0]
    _step(model, opt, x, y)  # torch accepts the rebuilt groups
    lbfgs = torch.optim.LBFGS(model.parameters())
    with pytest.raises(ValueError, match="pass rule='sgd'"):
        build_optimizer(model, lbfgs)
    rmsprop = build_optimizer(model, torch.optim.RMSprop(model.parameters(), lr=0.1))
    assert {g["name"]: g["lr"] for g in rmsprop.param_groups}["weights.1"] == pytest.approx(0.1 / WIDTH)
    stacked = MLP(D, WIDTH, 2, generators=[torch.Generator(), torch.Generator()])
    with pytest.raises(ValueError, match="stacks 2 members"):
        build_optimizer(stacked, torch.optim.SGD(stacked.parameters(), lr=0.1))


# Adam lr factors per layer (weights.0..2, biases.0..2) written from Tensor Programs V:
# muP c_adam = (1/2, 1, 1/2), biases (1/2, 1/2, 0); NTK the same; mf = muP moved by 1/2:
# (0, 1/2, 0), biases (0, 0, 0).
ADAM_LRS = {
    "mup": lambda n: [n**-0.5, 1 / n, n**-0.5, n**-0.5, n**-0.5, 1.0],
    "ntk": lambda n: [n**-0.5, 1 / n, n**-0.5, n**-0.5, n**-0.5, 1.0],
    "mf": lambda n: [1.0, n**-0.5, 1.0, 1.0, 1.0, 1.0],
}
# Adam eps factors: the gradient's scale n^-(c_adam - c): muP and NTK (c = 0) as their lrs; mf
# (c = -1 everywhere, c_adam = (0, 1/2, 0)): 1/n, n^-3/2, 1/n, biases 1/n, 1/n and the output bias 1.
ADAM_EPS = {
    "mup": ADAM_LRS["mup"],
    "ntk": ADAM_LRS["ntk"],
    "mf": lambda n: [1 / n, n**-1.5, 1 / n, 1 / n, 1 / n, 1.0],
}


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_stacked_members_in_different_rows_equal_standalone_torch_adam(optimizer):
    """Member e (its own row, lr and weight decay) follows torch.optim on a standalone copy
    whose per-layer lrs are written by hand."""
    rows, lrs, wds = ["mup", "ntk", "mf"], [0.02, 0.05, 0.01], [0.0, 0.1, 0.01]
    seeds = [1, 2, 3]
    stacked = MLP(
        D, WIDTH, 2, param=rows, generators=[torch.Generator().manual_seed(s) for s in seeds], dtype=torch.float64
    )
    opt = build_optimizer(stacked, optimizer, lr=lrs, weight_decay=wds)
    batches = _batches(members=3)
    for x, y in batches:
        _step(stacked, opt, x, y)
    for e, (row, seed) in enumerate(zip(rows, seeds)):
        solo = MLP(D, WIDTH, 2, param=row, generators=[torch.Generator().manual_seed(seed)], dtype=torch.float64)
        params = [*solo.weights, *solo.biases]
        factors = zip(params, ADAM_LRS[row](WIDTH), ADAM_EPS[row](WIDTH))
        groups = [{"params": [p], "lr": lrs[e] * f, "eps": 1e-8 * g} for p, f, g in factors]
        cls = torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam
        ref = cls(groups, lr=lrs[e], weight_decay=wds[e])
        for x, y in batches:
            _step(solo, ref, x[e], y[e])
        for p, q in zip(stacked.parameters(), solo.parameters()):
            torch.testing.assert_close(p[e], q[0], rtol=1e-10, atol=1e-12)


def test_select_members_keeps_rows_gammas_warmups_and_centering():
    rows = ["mup", "ipllr", "sp"]
    gens = [torch.Generator().manual_seed(s) for s in (5, 6, 7)]
    model = MLP(D, WIDTH, 2, param=rows, gamma=[1.0, 2.0, 0.5], center=True, generators=gens, dtype=torch.float64)
    opt = build_optimizer(model, "sgd", lr=[0.1, 0.01, 0.05])
    keep = torch.tensor([1, 2])
    select_members(model, opt, keep)
    assert [p.name for p in model.params] == ["ipllr", "sp"] and model.learnlab_scaling.gammas == [2.0, 0.5]
    assert model.members == 2 and model.init_weights_1.shape[0] == 2
    assert all(g["lr"].shape == (2,) for g in opt.param_groups)
    x = torch.randn(2, 4, D, dtype=torch.float64)
    torch.testing.assert_close(model(x), torch.zeros(2, 4, 1, dtype=torch.float64))  # still centered at init
    solo = MLP(
        D,
        WIDTH,
        2,
        param="ipllr",
        gamma=2.0,
        center=True,
        generators=[torch.Generator().manual_seed(6)],
        dtype=torch.float64,
    )
    solo_opt = build_optimizer(solo, "sgd", lr=0.01)
    for xb, yb in _batches(members=2, steps=3):
        _step(model, opt, xb, yb)
        _step(solo, solo_opt, xb[0], yb[0])
    torch.testing.assert_close(model(x)[0], solo(x[0]), rtol=1e-10, atol=1e-12)
    assert copy.deepcopy(model).learnlab_scaling.params[0].name == "ipllr"


def test_independent_weight_decay_decays_every_tensor_at_the_base_rate():
    """adamw with independent decay: lr_l * wd_l = eta * wd for every tensor (muP's hidden lr is
    eta / n, so its decay is wd * n); a step with zero gradients shrinks every tensor by the
    same factor 1 - eta * wd. The coupled default decays hidden weights n times slower."""
    eta, wd = 0.01, 0.1
    model = MLP(D, WIDTH, 2, param="mup", generators=[torch.Generator().manual_seed(0)], dtype=torch.float64)
    before = [p.detach().clone() for p in model.parameters()]
    opt = build_optimizer(model, "adamw", lr=eta, weight_decay=wd, independent_weight_decay=True)
    for group in opt.param_groups:
        assert float(group["lr"][0] * group["weight_decay"][0]) == pytest.approx(eta * wd, rel=1e-12), group["name"]
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for p, p0 in zip(model.parameters(), before):
        torch.testing.assert_close(p.detach(), p0 * (1 - eta * wd), rtol=1e-12, atol=0)
    coupled = build_optimizer(model, "adamw", lr=eta, weight_decay=wd)
    hidden = next(g for g in coupled.param_groups if g["name"] == "weights.1")
    assert float(hidden["lr"][0] * hidden["weight_decay"][0]) == pytest.approx(eta * wd / WIDTH)
    with pytest.raises(ValueError, match="adamw"):
        build_optimizer(model, "adam", lr=eta, weight_decay=wd, independent_weight_decay=True)
