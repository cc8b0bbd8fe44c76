"""What the driver needs to know about a user model (``model.name: "pkg.mod:attr"``), found once.

Validation (does the factory build a module that fits the task?), grouping (can torch.func
stack it?) and the memory budget (how many numbers does a member hold?) all need the model
built for its task. :func:`user_model_facts` builds two members once per (model section,
task section, dtype) and caches what they show.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["UserModelFacts", "user_model_facts"]


@dataclass(frozen=True)
class UserModelFacts:
    """``error``: why the factory does not fit the task (None if it does); ``size``: parameters
    and buffers of one member; ``stack_problem``: why torch.func cannot stack it (None if it can)."""

    error: str | None
    size: int = 0
    stack_problem: str | None = None


_FACTS: dict[str, UserModelFacts] = {}


def user_model_facts(model: dict, task: dict, dtype: str = "float32") -> UserModelFacts:
    """The cached facts of a user model section for a task section (both as in a resolved config)."""
    key = json.dumps([model, task, dtype], sort_keys=True, default=str)
    if key not in _FACTS:
        _FACTS[key] = _find(model, task, dtype)
    return _FACTS[key]


def _find(model: dict, task: dict, dtype: str) -> UserModelFacts:
    import torch

    from learnlab._imports import resolve
    from learnlab.models._user import build_user_members, vectorization_problem
    from learnlab.tasks import make_task

    try:
        built = make_task(task)
        members = build_user_members(
            resolve(model["name"]),
            model.get("options", {}),
            built.d,
            built.outputs,
            [0, 1],
            dtype=getattr(torch, dtype),
        )
    except Exception as exc:  # noqa: BLE001 - reported as the spec's problem
        return UserModelFacts(f"{model['name']}(d=..., outputs=..., **options) fails: {type(exc).__name__}: {exc}")
    size = sum(t.numel() for t in (*members[0].parameters(), *members[0].buffers()))
    return UserModelFacts(None, size, vectorization_problem(members, built.d))
