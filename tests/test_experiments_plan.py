"""One plan, one member (issue 12): a spec is planned once and that plan is what runs; what may
differ between the members of a stack is declared once, on the field, and each member owns it."""

from __future__ import annotations

import copy

import pytest
import torch
from typer.testing import CliRunner

from learnlab.cli import app
from learnlab.experiments import Plan, Spec, load_spec, member_paths, open_store, plan, run_group, sweep
from learnlab.models import MLP

TAGGED = {
    "name": "tagged",
    "seed": 0,
    "task": {"inputs": {"name": "gaussian", "d": 6}, "target": {"name": "teacher", "widths": [8]}, "n_test": 64},
    "model": {"name": "mlp", "width": 8, "depth": 1},
    "train": {"optimizer": "sgd", "lr": 0.05, "batch_size": 8, "steps": 12, "eval_every": 6},
}


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(
    "grid",
    [
        {"task.inputs.name": ["gaussian", "sphere", "box"]},  # a tag inside the section
        {"task.inputs": [{"name": "gaussian", "d": 6, "spectrum": [2, 1, 1, 1, 1, 1]}, {"name": "sphere", "d": 6}]},
    ],
)
def test_a_grid_that_switches_a_tagged_section_runs_from_the_cli(grid, write_spec, tmp_path):
    """Bug 1: the dry run passed, the run crashed with 'task.inputs.spectrum: unknown key'."""
    spec = {**copy.deepcopy(TAGGED), "sweep": {"grid": grid, "seeds": 2}}
    path = write_spec(spec)
    out = tmp_path / "out"
    _cli("run", str(path), "--out", str(out), "--dry-run")
    _cli("run", str(path), "--out", str(out))
    with open_store(out) as store:
        runs = store.runs()
    values = next(iter(grid.values()))
    assert len(runs) == 2 * len(values) and set(runs["status"]) == {"finished"}
    names = [v if isinstance(v, str) else v["name"] for v in values]
    assert sorted(runs["task.inputs.name"]) == sorted(names * 2)


def test_a_spec_object_with_a_tagged_grid_plans_like_its_dict():
    spec = {**copy.deepcopy(TAGGED), "sweep": {"grid": {"task.inputs.name": ["gaussian", "sphere"]}}}
    validated, _ = load_spec(spec)
    assert isinstance(validated, Spec)
    assert [r.run_id for r in plan(validated).runs] == [r.run_id for r in plan(spec).runs]


def test_every_member_of_a_mixed_save_final_stack_that_asked_has_its_weights(write_spec, tmp_path):
    """Bug 2: loop settings came from member 0, so its save_final: false won for the whole stack."""
    spec = {**copy.deepcopy(TAGGED), "sweep": {"grid": {"train.save_final": [False, True]}, "seeds": 2}}
    p = plan(spec, executor="ensemble")
    assert [len(g) for g in p.groups] == [4], "save_final is per member: one stack"
    assert p.groups[0][0].config["train"]["save_final"] is False, "member 0 does not ask"
    out = tmp_path / "out"
    _cli("run", str(write_spec(spec)), "--out", str(out), "--executor", "ensemble")
    for run in p.runs:
        path = out / "checkpoints" / f"{run.run_id}.pt"
        assert path.is_file() == run.config["train"]["save_final"], run.run_id
    # the stacked member's weights are those of its run alone
    asked = next(r for r in p.runs if r.config["train"]["save_final"])
    run_group([asked], out=tmp_path / "alone")
    stacked = torch.load(out / "checkpoints" / f"{asked.run_id}.pt", weights_only=True)
    alone = torch.load(tmp_path / "alone" / "checkpoints" / f"{asked.run_id}.pt", weights_only=True)
    assert stacked.keys() == alone.keys() and all(torch.equal(stacked[k], alone[k]) for k in alone)
    model = MLP(6, 8, 1, 1)
    model.load_state_dict(stacked)  # a member's own state, loadable into a model of one member


def test_the_plan_is_what_runs(tiny_spec, tmp_path, monkeypatch):
    """sweep(plan) executes the plan's groups as they are: nothing is planned or grouped again."""
    import learnlab.experiments._executors as executors
    import learnlab.experiments._plan as planning

    tiny_spec["sweep"] = {"grid": {"train.lr": [0.05, 0.1, 0.2], "model.width": [8, 16]}, "seeds": 2}
    p = plan(tiny_spec, executor="ensemble", max_members=3)
    assert isinstance(p, Plan) and p.executor == "ensemble"
    ran = []
    real = executors.run_group
    monkeypatch.setattr(executors, "run_group", lambda runs, *a, **k: ran.append(runs) or real(runs, *a, **k))
    monkeypatch.setattr(planning, "form_groups", lambda *a, **k: pytest.fail("the plan was grouped again"))
    store = sweep(p, out=tmp_path / "out")
    assert [[r.run_id for r in g] for g in ran] == [[r.run_id for r in g] for g in p.groups]
    assert set(store.statuses().values()) == {"finished"}
    store.close()


def test_a_plan_made_for_an_output_folder_leaves_out_what_is_done(tiny_spec, tmp_path):
    out = tmp_path / "out"
    first = plan(tiny_spec, out=out)
    assert not first.done and len(first.todo) == len(first.runs) == 4
    sweep(first).close()
    again = plan(tiny_spec, out=out)
    assert again.done == {r.run_id for r in again.runs} and again.groups == []
    assert "4 already done" in again.summary() and "nothing to run" in again.summary()


def test_the_dry_run_marks_done_runs_and_prints_the_plan(tiny_spec, write_spec, tmp_path):
    out = tmp_path / "out"
    path = write_spec(tiny_spec)
    assert "4 runs; 4 to run in" in _cli("run", str(path), "--out", str(out), "--dry-run")
    _cli("run", str(path), "--out", str(out))
    output = _cli("run", str(path), "--out", str(out), "--dry-run")
    assert "4 already done; nothing to run" in output and output.count("done") >= 5


def test_sweep_of_a_plan_refuses_planning_arguments(tiny_spec, tmp_path):
    p = plan(tiny_spec, out=tmp_path / "a")
    with pytest.raises(ValueError, match="max_members belong to plan"):
        sweep(p, max_members=2)
    with pytest.raises(ValueError, match="overrides belong to plan"):
        sweep(p, ["train.lr=0.3"])
    with pytest.raises(ValueError, match="the plan was made for out="):
        sweep(p, out=tmp_path / "b")
    with pytest.raises(ValueError, match="needs an output folder"):
        sweep(plan(tiny_spec))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_per_member_fields_are_declared_on_the_fields():
    paths = set(member_paths())
    assert {"seed", "train.lr", "train.save_final", "train.probes", "model.param", "task.target.seed"} <= paths
    assert not paths & {"train.steps", "train.batch_size", "model.width", "task.inputs", "train.optimizer"}


def test_the_memory_estimate_reads_the_validated_config_of_a_cnn():
    """A CNN's estimate counts its own convolutions over its image, not an MLP of a default width."""
    from learnlab.experiments._groups import member_bytes
    from learnlab.models import build_model
    from learnlab.tasks import make_task

    def run(width: int, side: int):
        spec = {
            "task": {
                "inputs": {"name": "gaussian", "d": 3 * side * side},
                "target": {"name": "teacher", "widths": [4]},
            },
            "model": {"name": "cnn", "width": width, "depth": 2, "image_shape": [3, side, side]},
            "train": {"batch_size": 32, "steps": 1},
        }
        return plan(spec).runs[0].validated()

    def params(config) -> int:
        task = make_task(config.task)
        return sum(p.numel() for p in build_model(config.model, task.d, task.outputs).parameters())

    small, wide, big_image = run(8, 8), run(32, 8), run(8, 16)
    assert member_bytes(small) >= 4 * 4 * params(small)  # weights, gradients, two moments, float32
    # a wider CNN costs at least its extra parameters (x4), its width^2 hidden convolutions included
    assert member_bytes(wide) - member_bytes(small) >= 4 * 4 * (params(wide) - params(small)) > 0
    # a larger image costs its larger feature maps, kept for backward (batch x width x H x W per conv)
    assert member_bytes(big_image) - member_bytes(small) >= 4 * 32 * 8 * (16 * 16 - 8 * 8) * 2
