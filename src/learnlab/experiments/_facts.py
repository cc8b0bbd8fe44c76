"""What planning learns by building things once: user models and dataset sizes.

Validation (does a user's factory build a module that fits the task? does a dataset
have the examples asked for?), grouping (can torch.func stack the module?) and the
memory budget (how many numbers does a member hold?) need a model or a dataset built
for its task. A :class:`PlanFacts` builds each once, keeps what it shows, and lives as
long as the plan that owns it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import cast

__all__ = ["UserModelFacts", "PlanFacts"]


@dataclass(frozen=True)
class UserModelFacts:
    """``error``: why the factory does not fit the task (None if it does); ``size``: parameters
    and buffers of one member; ``stack_problem``: why torch.func cannot stack it (None if it can)."""

    error: str | None
    size: int = 0
    stack_problem: str | None = None


@dataclass
class PlanFacts:
    """Facts found while planning one sweep, each found once (keyed by the sections it depends on)."""

    user_models: dict[str, UserModelFacts] = field(default_factory=dict)
    dataset_sizes: dict[str, dict[str, int]] = field(default_factory=dict)

    def user_model(self, model: dict, task: dict, dtype: str = "float32") -> UserModelFacts:
        """The facts of a user model section for a task section (both as in a resolved config)."""
        key = json.dumps([model, task, dtype], sort_keys=True, default=str)
        if key not in self.user_models:
            self.user_models[key] = _user_model(model, task, dtype)
        return self.user_models[key]

    def dataset_size(self, task: dict) -> dict[str, int]:
        """Examples of the kept classes per split (``train``, ``test``) of a dataset task section;
        empty if the files cannot be read (the task section reports that itself)."""
        key = json.dumps({k: v for k, v in task.items() if k not in ("n_train", "n_test", "noise")}, sort_keys=True)
        if key not in self.dataset_sizes:
            from learnlab.tasks import DatasetTask, make_task

            try:
                built = cast(DatasetTask, make_task(task))  # a dataset task section
                self.dataset_sizes[key] = {split: built.available(split) for split in ("train", "test")}
            except Exception:  # noqa: BLE001 - unreadable files etc. are the task section's own problems
                self.dataset_sizes[key] = {}
        return self.dataset_sizes[key]


def _user_model(model: dict, task: dict, dtype: str) -> UserModelFacts:
    import torch

    from learnlab._imports import resolve
    from learnlab.models import build_user_members, vectorization_problem
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
