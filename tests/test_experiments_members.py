"""Every per-member field, enumerated from its declaration (issue 12): a stack of two members that
differ only in it equals the two runs alone: statuses, histories, thresholds, probe artifacts,
saved weights and logger files. A field declared per-member tomorrow is tested here without a
line added: its two ``examples`` are the two members."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from learnlab._spec_base import member_fields
from learnlab.experiments import RunConfig, plan, run_group

FIELDS = member_fields(RunConfig)

BASE = {
    "name": "members",
    "seed": 0,
    "task": {
        "inputs": {"name": "gaussian", "d": 5},
        "target": {"name": "single_index", "link": "identity"},  # a random direction: a target seed acts
        "n_test": 64,
    },
    "model": {"name": "mlp", "width": 8, "depth": 1, "base_width": 4},
    "train": {
        "optimizer": "momentum",
        "lr": 0.05,
        "batch_size": 8,
        "steps": 24,
        "eval_every": 4,
        "log_every": 1,
        "thresholds": [0.5],
        "dtype": "float64",
    },
}
# which optimizer lets a key act (the rest: momentum, whose momentum and lr both act)
OPTIMIZER = {"train.betas": "adam", "train.eps": "adam"}
# a rising loss, so that a divergence factor can end a run; a residual network deeper than its base
RESIDUAL = {"model.name": "resmlp", "model.depth": 2}
CONTEXT = {
    "train.diverge_factor": {"train.lr": 1.0},
    "model.depth_param": RESIDUAL,
    "model.branch_multiplier": RESIDUAL,
}
# keys that change nothing a finished run leaves behind (a checkpoint is removed when its group ends)
INVISIBLE = {"train.checkpoint_every"}


def _set(tree: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    for part in parents:
        tree = tree[part]
    tree[last] = value


def _spec(path: str) -> dict:
    spec = copy.deepcopy(BASE)
    spec["train"]["optimizer"] = OPTIMIZER.get(path, "momentum")
    for key, value in CONTEXT.get(path, {}).items():
        _set(spec, key, value)
    values = list(FIELDS[path].examples)
    spec["sweep"] = {"seeds": values} if path == "seed" else {"zip": {path: values}}  # seeds are not an axis
    return spec


def _outputs(result, out: Path) -> dict:
    """What a finished run leaves behind, comparable across output folders."""
    rid = result.run_id
    files = {}
    for path in sorted(out.rglob("*")):
        relative = path.relative_to(out)
        if path.is_file() and rid in str(relative):
            if path.suffix == ".pt":  # probe tensors, saved weights
                files[str(relative)] = _load(path)
            else:  # logger files, named by host, process and time: their folder
                files[str(relative.parent)] = None
    return {
        "status": result.status,
        "step": result.step,
        "error": result.error,
        "final": result.final,
        "thresholds": result.thresholds,
        "metrics": sorted(result.metrics),
        "artifacts": result.artifacts,
        "files": files,
    }


def _load(path: Path):
    data = torch.load(path, weights_only=True)
    return _flat(data)


def _flat(value):
    if isinstance(value, torch.Tensor):
        return tuple(value.flatten().tolist()), tuple(value.shape)
    if isinstance(value, dict):
        return {k: _flat(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_flat(v) for v in value]
    return value


def test_the_declaration_lists_the_keys_a_stack_lets_differ():
    assert len(FIELDS) >= 20
    for path, field in FIELDS.items():
        assert len(field.examples) == 2 and field.examples[0] != field.examples[1], path


@pytest.mark.parametrize("path", sorted(FIELDS))
def test_a_stack_differing_only_in_one_per_member_key_equals_its_runs_alone(path, tmp_path):
    p = plan(_spec(path), executor="ensemble")
    assert len(p.runs) == 2 and [len(g) for g in p.groups] == [2], f"{path} is per member: one stack"
    by_id = {r.run_id: r for r in run_group(p.groups[0], out=tmp_path / "stack")}
    alone = [run_group([run], out=tmp_path / f"alone{i}")[0] for i, run in enumerate(p.runs)]
    got = [_outputs(by_id[r.run_id], tmp_path / "stack") for r in alone]  # a group orders runs by their data
    expected = [_outputs(r, tmp_path / f"alone{i}") for i, r in enumerate(alone)]
    for member in (0, 1):
        assert got[member]["status"] != "failed", got[member]["error"]
        for key in expected[member]:
            assert got[member][key] == expected[member][key], (path, member, key)
    if path not in INVISIBLE:  # the key acts, so a stack that read member 0's value would be caught
        kinds = [{Path(f).parts[0] for f in e["files"]} for e in expected]  # artifacts, checkpoints, logs
        differs = [key for key in expected[0] if key != "files" and expected[0][key] != expected[1][key]]
        differs += ["files"] if kinds[0] != kinds[1] else []
        assert differs, f"{path}: the two examples {FIELDS[path].examples} leave the same outputs"
