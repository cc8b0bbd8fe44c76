"""The loop's optimizers, schedules, losses and gradient clipping against torch's own.

A probe with ``every = 1`` records every training batch the loop draws; a bare loop with
``torch.optim`` + ``torch.optim.lr_scheduler`` + ``torch.nn.functional`` then replays the
same batches on a copy of the initial model, and the final parameters must agree. All
float64; the only differences are the order of a few products per step (learnlab's
per-member optimizers broadcast lr tensors), so 30 steps stay within ~1e-12.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import learnlab
from learnlab.experiments import build_group, plan
from learnlab.models import MLP
from learnlab.train import LOSSES, fit

STEPS = 30
TASK = {"inputs": {"name": "gaussian", "d": 4}, "target": {"name": "hermite", "monomial": {0: 1, 1: 1}}, "n_test": 64}
SIGN_TASK = {"inputs": {"name": "hypercube", "d": 4}, "target": {"name": "parity", "indices": [[0, 1]]}, "n_test": 64}
TOL = dict(rtol=1e-10, atol=1e-12)

TORCH_OPT = {
    "sgd": lambda p, lr, wd: torch.optim.SGD(p, lr=lr, weight_decay=wd),
    "momentum": lambda p, lr, wd: torch.optim.SGD(p, lr=lr, momentum=0.9, weight_decay=wd),
    "nesterov": lambda p, lr, wd: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd),
    "adam": lambda p, lr, wd: torch.optim.Adam(p, lr=lr, weight_decay=wd),
    "adamw": lambda p, lr, wd: torch.optim.AdamW(p, lr=lr, weight_decay=wd),
}
LR = {"sgd": 0.05, "momentum": 0.02, "nesterov": 0.02, "adam": 3e-3, "adamw": 3e-3}


class Recorder:
    """A probe that keeps every batch: (x (E, batch, d), y (E, batch, k))."""

    every = 1

    def __init__(self):
        self.batches = []

    def __call__(self, model, ctx):
        self.batches.append((ctx.batch[0].clone(), ctx.batch[1].clone()))
        return {}


def _mlp(gen):
    return MLP(4, 8, 2, 1, generators=[gen(0)], dtype=torch.float64)


def _replay(model, opt, batches, loss_fn, scheduler=None):
    for x, y in batches:
        loss = loss_fn(model(x[0]), y[0])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()


def _assert_same_params(trained, reference):
    for (name, p), q in zip(trained.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, **TOL, msg=name)


@pytest.mark.parametrize("name", list(TORCH_OPT))
def test_each_optimizer_matches_torch_optim(gen, name):
    model, rec = _mlp(gen), Recorder()
    reference = copy.deepcopy(model)
    learnlab.train(
        model,
        TASK,
        optimizer=name,
        lr=LR[name],
        weight_decay=0.01,
        steps=STEPS,
        batch_size=16,
        probes=[rec],
        progress=False,
    )
    assert len(rec.batches) == STEPS
    _replay(reference, TORCH_OPT[name](reference.parameters(), LR[name], 0.01), rec.batches, F.mse_loss)
    _assert_same_params(model, reference)
    assert (model.weights[0] - _mlp(gen).weights[0]).abs().max() > 1e-3  # it did train


SCHEDULES = {
    "cosine": (
        {"name": "cosine", "final_factor": 0.1},
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS, eta_min=0.1 * 0.05),
    ),
    "exponential": (
        {"name": "exponential", "final_factor": 0.01},
        lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.01 ** (1 / STEPS)),
    ),
    "step": (
        {"name": "step", "every": 7, "gamma": 0.5},
        lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5),
    ),
    "warmup": (
        {"name": "constant", "warmup": 5},
        lambda opt: torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / 5, end_factor=1.0, total_iters=4),
    ),
    "warmup+step": (
        {"name": "step", "every": 10, "gamma": 0.3, "warmup": 4},
        lambda opt: torch.optim.lr_scheduler.ChainedScheduler(
            [
                torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / 4, end_factor=1.0, total_iters=3),
                torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.3),
            ]
        ),
    ),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_each_schedule_matches_torch_lr_scheduler(gen, name):
    spec, make_scheduler = SCHEDULES[name]
    model, rec = _mlp(gen), Recorder()
    reference = copy.deepcopy(model)
    learnlab.train(
        model,
        TASK,
        optimizer="momentum",
        lr=0.05,
        schedule=spec,
        steps=STEPS,
        batch_size=16,
        probes=[rec],
        progress=False,
    )
    opt = TORCH_OPT["momentum"](reference.parameters(), 0.05, 0.0)
    _replay(reference, opt, rec.batches, F.mse_loss, make_scheduler(opt))
    _assert_same_params(model, reference)


# -------------------------------------------------------------------------------- losses


def _hinge_reference(out, y):
    # multi_margin_loss on scores (-f/2, f/2) with margin 1 is max(0, 1 - y f) / 2
    scores = torch.cat([-out / 2, out / 2], dim=1)
    return 2 * F.multi_margin_loss(scores, (y[:, 0] > 0).long(), margin=1.0)


def test_losses_match_torch_functional_per_member(gen):
    members, n, classes = 3, 20, 5
    out = torch.randn(members, n, classes, generator=gen(0), dtype=torch.float64)
    labels = torch.randint(0, classes, (members, n), generator=gen(1))
    probs = torch.softmax(torch.randn(members, n, classes, generator=gen(2), dtype=torch.float64), dim=-1)
    f = torch.randn(members, n, 1, generator=gen(3), dtype=torch.float64)
    sign = torch.where(torch.rand(members, n, 1, generator=gen(4)) < 0.5, -1.0, 1.0).double()
    ce_hard = LOSSES["cross_entropy"](out, F.one_hot(labels, classes).double())
    ce_soft = LOSSES["cross_entropy"](out, probs)
    for e in range(members):
        assert ce_hard[e].item() == pytest.approx(F.cross_entropy(out[e], labels[e]).item(), rel=1e-13)
        assert ce_soft[e].item() == pytest.approx(F.cross_entropy(out[e], probs[e]).item(), rel=1e-13)
        assert LOSSES["logistic"](f, sign)[e].item() == pytest.approx(
            F.soft_margin_loss(f[e], sign[e]).item(), rel=1e-13
        )
        assert LOSSES["hinge"](f, sign)[e].item() == pytest.approx(_hinge_reference(f[e], sign[e]).item(), rel=1e-13)
        assert LOSSES["mse"](out, probs)[e].item() == pytest.approx(F.mse_loss(out[e], probs[e]).item(), rel=1e-13)


@pytest.mark.parametrize("loss, reference", [("hinge", _hinge_reference), ("logistic", F.soft_margin_loss)])
def test_training_with_a_named_loss_follows_torch(gen, loss, reference):
    model, rec = _mlp(gen), Recorder()
    ref_model = copy.deepcopy(model)
    learnlab.train(model, SIGN_TASK, loss=loss, lr=0.1, steps=STEPS, batch_size=16, probes=[rec], progress=False)
    _replay(ref_model, torch.optim.SGD(ref_model.parameters(), lr=0.1), rec.batches, reference)
    _assert_same_params(model, ref_model)


# ------------------------------------------------------------------------------ clipping


class ClipCheck:
    """Recompute each member's unclipped gradient, clip it with torch's clip_grad_norm_ and
    compare with the gradient the loop hands the optimizer."""

    every = 1

    def __init__(self, max_norm: float):
        self.max_norm, self.worst, self.norms = max_norm, 0.0, []

    def __call__(self, model, ctx):
        x, y = ctx.batch
        params = list(model.parameters())
        losses = ctx.loss_fn(model(x), y)
        for e in range(ctx.members):
            grads = torch.autograd.grad(losses[e], params, retain_graph=True)
            copies = [p[e].detach().clone().requires_grad_() for p in params]
            for c, g in zip(copies, grads):
                c.grad = g[e].clone()
            self.norms.append((e, float(torch.nn.utils.clip_grad_norm_(copies, self.max_norm))))
            for c, p in zip(copies, params):
                self.worst = max(self.worst, float((c.grad - p.grad[e]).abs().max()))
        return {}


def test_gradient_clipping_is_clip_grad_norm_per_member():
    spec = {
        "task": TASK,
        "model": {"width": 8, "depth": 1},
        "train": {"optimizer": "sgd", "steps": 20, "batch_size": 16, "clip_grad_norm": 1.0, "dtype": "float64"},
        "sweep": {"grid": {"train.lr": [0.05, 0.5]}},
    }
    built = build_group([r.config for r in plan(spec).runs])
    check = ClipCheck(1.0)
    for member in built.members:  # one probe object: the loop runs it once for the whole stack
        member.probes = [check]
    fit(built.model, built.optimizer, built.members, built.settings)
    assert len(check.norms) == 2 * 20
    assert check.worst < 1e-14
    for e in (0, 1):  # each member is sometimes clipped and sometimes not
        norms = [v for m, v in check.norms if m == e]
        assert min(norms) < 1.0 < max(norms)
