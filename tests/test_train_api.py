"""``learnlab.train`` with plain PyTorch pieces, user probes (callables and ``"module:attr"``
in specs), probe artifacts referenced from the store, and bad input failing before any run.
"""

from __future__ import annotations

import copy
import textwrap

import pytest
import torch
from torch import nn

import learnlab
from learnlab.experiments import SpecError, open_store, plan, sweep
from learnlab.train import PROBES, make_probes
from learnlab.train._spec import ProbeSpec

TASK = {"inputs": {"name": "gaussian", "d": 3}, "target": {"name": "hermite", "monomial": {0: 1, 2: 1}}, "n_test": 128}
SPEC = {
    "name": "api",
    "task": TASK,
    "model": {"width": 8, "depth": 1},
    "train": {"lr": 0.05, "steps": 20, "batch_size": 16, "eval_every": 10, "dtype": "float64"},
}


class Recorder:
    every = 1

    def __init__(self):
        self.batches = []

    def __call__(self, model, ctx):
        self.batches.append((ctx.batch[0][0].clone(), ctx.batch[1][0].clone()))
        return {}


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1)).double()


def test_a_user_module_with_a_torch_loss_and_optimizer_trains_like_a_bare_loop():
    net, rec = _net(), Recorder()
    reference = copy.deepcopy(net)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    history = learnlab.train(
        net,
        TASK,
        optimizer=opt,
        loss=nn.SmoothL1Loss(),
        steps=25,
        batch_size=16,
        eval_every=5,
        log_every=1,
        probes=[rec],
        progress=False,
    )
    ref_opt, ref_loss, losses = torch.optim.Adam(reference.parameters(), lr=1e-2), nn.SmoothL1Loss(), []
    for x, y in rec.batches:
        loss = ref_loss(reference(x), y)
        losses.append(loss.item())
        ref_opt.zero_grad()
        loss.backward()
        ref_opt.step()
    for p, q in zip(net.parameters(), reference.parameters()):
        assert torch.equal(p, q)  # the same operations in the same order: bit for bit
    assert [v for _, v in history.metrics["train/loss"]] == losses
    frame = history.to_frame()
    assert list(frame.columns) == ["step", "name", "value"]
    assert len(frame) == sum(len(rows) for rows in history.metrics.values())
    assert frame[frame.name == "test/mse"].step.tolist() == [0, 5, 10, 15, 20, 25]


def test_callable_probes_log_scalars_per_step():
    calls = []

    def weight_sq(model, ctx):
        calls.append(ctx.step)
        return {"w_sq": float(model.module[0].weight.detach().pow(2).sum())}

    weight_sq.every = 4
    history = learnlab.train(
        _net(), TASK, steps=12, batch_size=16, probes=[weight_sq, PROBES["param_norm"](every=4)], progress=False
    )
    assert calls == [0, 4, 8]
    ours = dict(history.metrics["probe/w_sq"])
    builtin = dict(history.metrics["probe/param_norm/0.weight"])
    assert sorted(ours) == sorted(builtin) == [0, 4, 8]
    for step, value in ours.items():
        assert value == pytest.approx(builtin[step] ** 2, rel=1e-12)


def test_learnlab_train_returns_probe_tensors():
    history = learnlab.train(_net(), TASK, steps=4, batch_size=16, probes=[PROBES["ntk"](every=2, n=3)], progress=False)
    steps = [s for s, _ in history.artifacts["ntk"]]
    assert steps == [0, 2]


PROBE_MODULE = textwrap.dedent('''
    import torch

    def read_in_sq(model, ctx, power=2.0):
        """Scalar per member: ||W_0||_F^power."""
        w = model.weights[0].detach().flatten(1)
        return {"read_in": w.norm(dim=1) ** power}

    class Tagged:
        """A tensor per member (an artifact): step * scale, shape (E, 2, 2)."""

        def __init__(self, scale=1.0):
            self.scale = scale

        def __call__(self, model, ctx):
            return {"tagged": torch.full((ctx.members, 2, 2), ctx.step * self.scale)}
''')


def test_probes_named_in_a_spec_and_their_artifacts_in_the_store(tmp_path, monkeypatch):
    (tmp_path / "user_probes.py").write_text(PROBE_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = copy.deepcopy(SPEC)
    spec["train"]["probes"] = [
        {"name": "user_probes:read_in_sq", "every": 5, "options": {"power": 2.0}},
        {"name": "user_probes:Tagged", "every": 10, "options": {"scale": 0.5}},
        {"name": "param_norm", "every": 5},
        {"name": "ntk", "every": 10, "options": {"n": 4}},
    ]
    spec["sweep"] = {"seeds": 2}
    out = tmp_path / "out"
    store = sweep(spec, out=out, executor="serial")
    runs = store.runs()
    assert len(runs) == 2 and set(runs["status"]) == {"finished"}
    metrics = store.metrics()
    for rid, rel_path in zip(runs["run_id"], runs["artifacts"]):
        mine = metrics[(metrics.run_id == rid) & (metrics.name == "probe/read_in")]
        norms = metrics[(metrics.run_id == rid) & (metrics.name == "probe/param_norm/weights.0")]
        assert mine.step.tolist() == norms.step.tolist() == [0, 5, 10, 15]
        assert mine.value.to_numpy() == pytest.approx(norms.value.to_numpy() ** 2, rel=1e-12)
        path = out / rel_path
        assert path.is_file() and path.parent.name == "artifacts"
        arts = torch.load(path, weights_only=True)
        assert sorted(arts) == ["ntk", "tagged"]
        assert [(s, t.tolist()) for s, t in arts["tagged"]] == [(0, [[0.0] * 2] * 2), (10, [[5.0] * 2] * 2)]
        assert [(s, tuple(t.shape)) for s, t in arts["ntk"]] == [(0, (4, 4)), (10, (4, 4))]
    store.close()
    assert open_store(out).runs()["artifacts"].tolist() == runs["artifacts"].tolist()


# ----------------------------------------------------------------------------- bad input


def _spec(**train):
    spec = copy.deepcopy(SPEC)
    spec["train"].update(train)
    return spec


@pytest.mark.parametrize(
    "train, expected",
    [
        ({"optimizer": "adagrad"}, ["sgd", "momentum", "nesterov", "adam", "adamw"]),
        ({"loss": "huber"}, ["mse", "cross_entropy", "hinge", "logistic"]),
        ({"metrics": ["mse", "r2"]}, ["'r2'", "l1", "linf", "rel_l2", "accuracy", "coef"]),
        ({"epochs": 3, "steps": None}, ["train.epochs", "n_train"]),
    ],
)
def test_bad_recipes_fail_at_planning_and_say_what_is_valid(train, expected):
    with pytest.raises(SpecError) as err:
        plan(_spec(**train))
    for word in expected:
        assert word in str(err.value)


def test_make_probes_names_the_valid_probes_options_and_import_errors():
    with pytest.raises(ValueError, match="unknown probe 'ntk2'; valid: param_norm, grad_norm, dist_init"):
        make_probes([ProbeSpec(name="ntk2")])
    with pytest.raises(ValueError, match=r"probe 'ntk' has no options \['m'\]; valid: n, alignment, centered"):
        make_probes([ProbeSpec(name="ntk", options={"m": 3})])
    with pytest.raises(ValueError, match="cannot import module 'no_such_module_xyz'"):
        make_probes([ProbeSpec(name="no_such_module_xyz:probe")])
    from learnlab.train._probes import _probe_class

    assert [type(p).__name__ for p in make_probes([ProbeSpec(name=n) for n in PROBES])] == [
        _probe_class(n).__name__ for n in PROBES
    ]


@pytest.mark.parametrize(
    "train, expected",
    [
        ({"probes": [{"name": "ntk2"}]}, "valid: param_norm"),
        ({"probes": [{"name": "ntk", "options": {"m": 3}}]}, "no options"),
        ({"probes": [{"name": "no_such_module_xyz:probe"}]}, "cannot import module 'no_such_module_xyz'"),
        ({"loss": "no_such_module_xyz:loss"}, "cannot import module 'no_such_module_xyz'"),
    ],
)
def test_bad_probes_and_references_fail_at_planning(train, expected):
    with pytest.raises(SpecError, match=expected):
        plan(_spec(**train))
