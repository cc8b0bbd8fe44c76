"""Your own model in a sweep (issue 7): ``model.name: "package.module:attr"``, stacked with
torch.func when it can be, trained alone with a warning naming the reason when it cannot,
and a factory that does not fit the task is a spec error before anything runs."""

from __future__ import annotations

import math
import sys
import textwrap

import pytest
import torch

from learnlab.experiments import SpecError, plan, run_group, sweep
from learnlab.models import ModelSpec

MODULE = "learnlab_test_user_models"
SOURCE = textwrap.dedent('''
    from torch import nn

    def mlp(d, outputs, width=32):
        return nn.Sequential(nn.Linear(d, width), nn.Tanh(), nn.Linear(width, outputs))

    class WithBatchNorm(nn.Module):
        def __init__(self, d, outputs, width=16):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(d, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, outputs))

        def forward(self, x):
            return self.body(x)

    class DataDependent(nn.Module):
        """Python control flow on tensor values: fine alone, not under vmap."""

        def __init__(self, d, outputs):
            super().__init__()
            self.lin = nn.Linear(d, outputs)

        def forward(self, x):
            h = self.lin(x)
            return h if bool((h > 0).any()) else -h

    def too_wide(d, outputs):
        return nn.Linear(d, outputs + 2)
''')


@pytest.fixture(scope="module", autouse=True)
def user_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user_models")
    (folder / f"{MODULE}.py").write_text(SOURCE)
    sys.path.insert(0, str(folder))
    yield
    sys.path.remove(str(folder))
    sys.modules.pop(MODULE, None)


def _spec(model: str, dtype: str = "float64", steps: int = 60, **options) -> dict:
    return {
        "name": "user",
        "seed": 2,
        "task": {
            "inputs": {"name": "gaussian", "d": 6},
            "target": {"name": "hermite", "monomial": {0: 1, 1: 1}},
            "n_test": 128,
        },
        "model": {"name": f"{MODULE}:{model}", "options": options},
        "train": {
            "optimizer": "momentum",
            "batch_size": 16,
            "steps": steps,
            "eval_every": 20,
            "log_every": 5,
            "dtype": dtype,
        },
        "sweep": {"grid": {"train.lr": [0.01, 0.03, 0.05]}, "seeds": 2},
    }


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-4), ("float64", 1e-10)])
def test_a_user_model_is_stacked_and_every_member_equals_its_serial_run(dtype, tol):
    p = plan(_spec("mlp", dtype, width=24), executor="ensemble")
    configs = [r.config for r in p.runs]
    (group,) = p.groups
    assert len(group) == 6
    stacked = run_group(configs)
    assert {r.status for r in stacked} == {"finished"}
    for config, member in zip(configs, stacked):
        (solo,) = run_group([config])
        a, b = {(s, n): v for s, n, v in solo.metrics}, {(s, n): v for s, n, v in member.metrics}
        assert a.keys() == b.keys()
        for key, value in a.items():
            assert abs(value - b[key]) <= tol * max(abs(value), 1e-12), (key, value, b[key])
    # runs of one seed start from one initial model (paired across learning rates), seeds differ
    start = {}
    for config, member in zip(configs, stacked):
        start.setdefault(config["seed"], set()).add(dict(((s, n), v) for s, n, v in member.metrics)[(0, "test/mse")])
    assert [len(v) for v in start.values()] == [1, 1] and len(set.union(*start.values())) == 2


def test_a_model_torch_func_cannot_stack_trains_alone_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match=r"cannot stack it \(.*\); its runs train one at a time"):
        result = plan(_spec("DataDependent"), executor="ensemble")
    assert [len(g) for g in result.groups] == [1] * 6
    with pytest.warns(UserWarning, match="data-dependent control flow"):  # the reason, from torch.func
        store = sweep(_spec("DataDependent"), out=tmp_path, executor="ensemble")
    runs = store.runs()
    store.close()
    assert (runs["status"] == "finished").all(), runs["error"].tolist()
    assert all(math.isfinite(v) for v in runs["test/mse"])


def test_a_factory_that_does_not_fit_the_task_fails_before_anything_runs(tmp_path):
    with pytest.raises(SpecError, match=r"maps \(batch, d\) = \(2, 6\) to \(2, 3\)"):
        plan(_spec("too_wide"))
    with pytest.raises(SpecError, match="unexpected keyword argument 'depth'"):
        plan(_spec("mlp", depth=3))
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "section,needle",
    [
        ({"name": "no_such_module_here:f"}, "cannot import module"),
        ({"name": "mlp", "options": {"width": 3}}, "options are the keyword arguments of a user model"),
        ({"name": f"{MODULE}:mlp", "width": 64}, "width shape learnlab's own models"),
        ({"name": f"{MODULE}:mlp", "param": "mup"}, "trains as its factory builds it"),
        ({"name": "mlpp"}, "unknown model 'mlpp'"),
    ],
)
def test_bad_user_model_sections_say_what_to_do(section, needle):
    with pytest.raises(ValueError, match=needle):
        ModelSpec.model_validate(section)


def test_batch_norm_buffers_are_stacked_per_member():
    """Running statistics are buffers with a member axis: each member updates its own."""
    p = plan(_spec("WithBatchNorm", steps=20), executor="ensemble")
    configs = [r.config for r in p.runs]
    (group,) = p.groups
    assert len(group) == 6
    assert {r.status for r in run_group(configs)} == {"finished"}


def test_the_user_stack_keeps_each_members_own_module():
    from learnlab_test_user_models import mlp

    from learnlab.models._user import UserStack, build_user_members

    modules = build_user_members(mlp, {"width": 8}, 4, 1, [0, 1, 2])
    stack = UserStack(modules)
    x = torch.randn(3, 5, 4)
    with torch.no_grad():
        expected = torch.stack([m(x[e]) for e, m in enumerate(modules)])
        torch.testing.assert_close(stack(x), expected)
    assert not torch.equal(expected[0], expected[1])  # different seeds, different draws
    again = build_user_members(mlp, {"width": 8}, 4, 1, [1])[0]
    assert all(torch.equal(a, b) for a, b in zip(again.parameters(), modules[1].parameters()))


def test_an_evaluation_pass_of_a_user_stack_equals_its_forward():
    """``inference`` (evaluation's pass) calls a module held whole directly, and vmaps a stack of
    several: the same values as ``forward``, and the module's own hooks still run."""
    from learnlab_test_user_models import mlp

    from learnlab.models._user import UserStack, as_stack, build_user_members

    several = UserStack(build_user_members(mlp, {"width": 8}, 4, 1, [0, 1, 2]))
    module = build_user_members(mlp, {"width": 8}, 4, 1, [5])[0]
    one = as_stack(module)
    seen = []
    module.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        x = torch.randn(3, 5, 4)
        assert torch.equal(several.inference(x), several(x))
        assert torch.equal(one.inference(x[:1]), one(x[:1]))
        assert one.inference(x[:1]).shape == (1, 5, 1)
    assert seen == [(5, 1), (5, 1), (5, 1)]


def test_the_memory_budget_counts_a_user_models_own_parameters():
    from learnlab.experiments._groups import form_groups, member_bytes

    small = plan(_spec("mlp", width=8)).runs
    big = plan(_spec("mlp", width=4096)).runs
    one = member_bytes(big[0].validated())
    assert one > 10 * member_bytes(small[0].validated())  # 4096-wide: ~500x the parameters
    groups = form_groups(big, memory_budget=3 * one)
    assert max(len(g) for g in groups) == 3


def test_stacked_parameters_keep_the_modules_names():
    from learnlab_test_user_models import WithBatchNorm

    from learnlab.models._user import UserStack, build_user_members

    stack = UserStack(build_user_members(WithBatchNorm, {}, 4, 1, [0, 1]))
    names = [n for n, _ in stack.named_parameters()]
    assert names[:2] == ["p_body__0__weight", "p_body__0__bias"]
    assert "b_body__1__running_mean" in dict(stack.named_buffers())
    assert stack.names[0] == "body.0.weight"
    views = dict(stack.member_parameters())  # what probes see: the module's own names, member axis first
    assert list(views)[:2] == ["body.0.weight", "body.0.bias"] and views["body.0.weight"].shape[0] == 2


def test_coord_check_of_a_user_model_says_what_to_do_instead(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from learnlab.cli import app

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(_spec("mlp")))
    result = CliRunner().invoke(app, ["coord-check", str(spec), "--widths", "16,32", "--out", str(tmp_path / "cc")])
    assert result.exit_code == 2
    assert "coord-check varies model.width of learnlab's mlp, cnn or resmlp" in result.output
    assert not (tmp_path / "cc").exists()
