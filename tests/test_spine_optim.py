"""learnlab's optimizers against torch.optim (the peer library), 20 steps in float64."""

from __future__ import annotations

import copy

import pytest
import torch

from learnlab.models import MLP, SGD, Adam, build_optimizer

D, WIDTH, STEPS = 5, 8, 20

# Tolerance: both sides do the same arithmetic in float64 except for the order of a few
# products (e.g. Adam's (lr / bias1) * m / denom vs m / denom * (lr / bias1)), i.e. a few
# ulps per step; 20 steps of a small, well-conditioned problem keep that below 1e-12.
TOL = dict(rtol=1e-11, atol=1e-12)

TORCH_OPT = {
    "sgd": lambda groups, lr, wd: torch.optim.SGD(groups, lr=lr, weight_decay=wd),
    "momentum": lambda groups, lr, wd: torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=wd),
    "nesterov": lambda groups, lr, wd: torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd),
    "adam": lambda groups, lr, wd: torch.optim.Adam(groups, lr=lr, weight_decay=wd),
    "adamw": lambda groups, lr, wd: torch.optim.AdamW(groups, lr=lr, weight_decay=wd),
}
LR = {"sgd": 0.05, "momentum": 0.02, "nesterov": 0.02, "adam": 3e-3, "adamw": 3e-3}


def _batches(gen, members: int):
    g = gen(123)
    out = []
    for _ in range(STEPS):
        x = torch.randn(members, 16, D, generator=g, dtype=torch.float64)
        y = torch.sin(x.sum(-1, keepdim=True))
        out.append((x, y))
    return out


def _train(model, opt, batches, member=None):
    for x, y in batches:
        if member is not None:
            x, y = x[member], y[member]
        loss = (model(x) - y).pow(2).mean(dim=(-2, -1)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()


def _torch_groups(model: MLP, optimizer: str, lr: float) -> list[dict]:
    """Per-layer lrs written by hand: lr * n^(-c_l) with n0 = 1.

    sp: c = 0 everywhere. muP for SGD: c = 0; muP for Adam (MuAdam): c = (1/2, 1, 1/2) on the
    weights, hidden biases take the input row's 1/2, the output bias 0. Adam's eps scales with
    the gradient, n^-(c_adam - c): for muP the same factors as its Adam lrs.
    """
    n = model.width
    if model.params[0].name == "mup" and optimizer in ("adam", "adamw"):
        c_w, c_b = [0.5, 1.0, 0.5], [0.5, 0.5, 0.0]
    else:
        c_w, c_b = [0.0] * 3, [0.0] * 3
    adam = optimizer in ("adam", "adamw")
    groups = []
    for l in range(3):
        for p, c in ((model.weights[l], c_w[l]), (model.biases[l], c_b[l])):
            groups.append({"params": [p], "lr": lr * n**-c} | ({"eps": 1e-8 * n**-c} if adam else {}))
    return groups


@pytest.mark.parametrize("param", ["sp", "mup"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam", "adamw"])
def test_build_optimizer_matches_torch_optim(gen, optimizer, weight_decay, param):
    ours = MLP(D, WIDTH, 2, param=param, generators=[gen(1)], dtype=torch.float64)
    ref = copy.deepcopy(ours)
    lr = LR[optimizer]
    opt = build_optimizer(ours, optimizer, lr=lr, momentum=0.9, weight_decay=weight_decay)
    assert len(opt.param_groups) == 6  # one group per parameter tensor
    ref_opt = TORCH_OPT[optimizer](_torch_groups(ref, optimizer, lr), lr, weight_decay)
    batches = _batches(gen, 1)
    _train(ours, opt, batches, member=0)
    _train(ref, ref_opt, batches, member=0)
    moved = False
    for p, q, p0 in zip(
        ours.parameters(),
        ref.parameters(),
        MLP(D, WIDTH, 2, param=param, generators=[gen(1)], dtype=torch.float64).parameters(),
    ):
        torch.testing.assert_close(p, q, **TOL)
        moved |= not torch.allclose(p, p0)
    assert moved, "the parameters must have changed"


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam", "adamw"])
def test_our_classes_with_float_hyperparameters_match_torch_optim(gen, optimizer):
    ours = MLP(D, WIDTH, 1, generators=[gen(2)], dtype=torch.float64)
    ref = copy.deepcopy(ours)
    lr, wd = LR[optimizer], 0.05
    if optimizer in ("adam", "adamw"):
        opt = Adam(
            ours.parameters(), lr=lr, betas=(0.8, 0.99), eps=1e-6, weight_decay=wd, decoupled=optimizer == "adamw"
        )
        cls = torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam
        ref_opt = cls(ref.parameters(), lr=lr, betas=(0.8, 0.99), eps=1e-6, weight_decay=wd)
    else:
        mom = 0.0 if optimizer == "sgd" else 0.7
        opt = SGD(ours.parameters(), lr=lr, momentum=mom, nesterov=optimizer == "nesterov", weight_decay=wd)
        ref_opt = torch.optim.SGD(
            ref.parameters(), lr=lr, momentum=mom, nesterov=optimizer == "nesterov", weight_decay=wd
        )
    batches = _batches(gen, 1)
    _train(ours, opt, batches, member=0)
    _train(ref, ref_opt, batches, member=0)
    for p, q in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, **TOL)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam", "adamw"])
def test_per_member_hyperparameters_equal_standalone_torch_runs(gen, optimizer):
    """A stacked model with a tensor lr (and momentum, weight decay) per member: member e
    follows exactly the trajectory of a standalone model trained by torch.optim with its own
    hyperparameters."""
    scale = LR[optimizer]
    lrs, moms, wds = [scale, 2 * scale, 0.5 * scale], [0.9, 0.5, 0.0], [0.0, 0.01, 0.1]
    seeds = [7, 8, 9]
    stacked = MLP(D, WIDTH, 2, generators=[gen(s) for s in seeds], dtype=torch.float64)
    opt = build_optimizer(stacked, optimizer, lr=lrs, momentum=moms, weight_decay=wds)
    batches = _batches(gen, 3)
    _train(stacked, opt, batches)
    for e, seed in enumerate(seeds):
        solo = MLP(D, WIDTH, 2, generators=[gen(seed)], dtype=torch.float64)
        if optimizer in ("adam", "adamw"):
            cls = torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam
            ref_opt = cls(solo.parameters(), lr=lrs[e], weight_decay=wds[e])
        else:
            mom = 0.0 if optimizer == "sgd" else moms[e]
            # torch refuses nesterov without momentum; with momentum 0 it is plain SGD
            ref_opt = torch.optim.SGD(
                solo.parameters(),
                lr=lrs[e],
                weight_decay=wds[e],
                momentum=mom,
                nesterov=optimizer == "nesterov" and mom > 0,
            )
        _train(solo, ref_opt, batches, member=e)
        for p, q in zip(stacked.parameters(), solo.parameters()):
            torch.testing.assert_close(p[e], q[0], **TOL)


def test_build_optimizer_rejects_bad_input(gen):
    model = MLP(D, WIDTH, 1, generators=[gen(0), gen(1)])
    with pytest.raises(ValueError, match="unknown optimizer"):
        build_optimizer(model, "rmsprop")
    with pytest.raises(ValueError, match="lr: got 3 values for 2 members"):
        build_optimizer(model, "sgd", lr=[0.1, 0.2, 0.3])


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam", "adamw"])
def test_a_closure_is_evaluated_with_gradients_and_its_loss_returned_as_torch_does(gen, optimizer):
    """step(closure) re-evaluates the loss (zero_grad + backward inside) and returns it, like torch.optim."""
    ours = MLP(D, WIDTH, 2, generators=[gen(4)], dtype=torch.float64)
    ref = copy.deepcopy(ours)
    opt = build_optimizer(ours, optimizer, lr=LR[optimizer], momentum=0.9, weight_decay=0.01)
    ref_opt = TORCH_OPT[optimizer](_torch_groups(ref, optimizer, LR[optimizer]), LR[optimizer], 0.01)
    losses = {"ours": [], "ref": []}
    for x, y in _batches(gen, 1):
        for key, model, o in (("ours", ours, opt), ("ref", ref, ref_opt)):

            def closure(model=model, o=o, x=x[0], y=y[0]):
                o.zero_grad()
                loss = (model(x) - y).pow(2).mean()
                loss.backward()
                return loss

            with torch.no_grad():  # the optimizer turns gradients on for the closure itself
                losses[key].append(float(o.step(closure)))
    assert losses["ours"] == pytest.approx(losses["ref"], rel=1e-11)
    assert losses["ours"][-1] < losses["ours"][0]
    for p, q in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, **TOL)
    assert opt.step() is None  # no closure, no loss
