"""Random streams by role, each seeded from the run's seed and only the config it depends on.

A run has four random roles (DESIGN principle 2, "comparisons are paired"):

* ``data``: its training stream (online batches, or the offline sample and its shuffles, and
  their label noise), its test sample and the ``large`` evaluation sample. Seeded by the
  run's seed and the task's fields declared ``seeding("data")`` (the inputs, or the dataset
  and its options), or by ``task.data_seed`` instead of the run's seed.
* ``target``: a random target (a teacher, an index model's directions). Seeded by the run's
  seed and the target section, unless the target gives its own ``seed``.
* ``init``: the initial draw of the weights. Seeded by the run's seed, the task's d and
  outputs and the model's fields declared ``seeding("init")`` (family, widths, depth,
  activation, ...), unless ``model.init_seed`` gives it: every parameterization and init
  scheme rescales this same draw.

Nothing else (learning rate, optimizer, schedule, steps, thresholds, probes, loggers,
parameterization) changes a stream, so runs that differ only there are paired.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from learnlab._spec_base import role_key

__all__ = ["SEEDING", "canonical_json", "derive_seed", "data_seeds", "target_seed", "init_seed"]

# the seeding scheme, recorded in every results store: a store written with another scheme
# would mix streams that do not pair, so it is not resumed
SEEDING = "roles-1"


def canonical_json(config: Any) -> str:
    """Key-order-independent JSON of a config."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)


def derive_seed(seed: int, key: str, role: str) -> int:
    """A 63-bit seed for ``role`` from ``seed`` and the canonical ``key`` of what the role depends on."""
    digest = hashlib.sha256(f"{seed}:{key}:{role}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def data_seeds(task: BaseModel, seed: int) -> Callable[[str], int]:
    """``seed_for(stream)`` for the data streams of a run: ``data`` (training batches, offline
    sample, label noise), ``test``, ``large``. From ``task.data_seed`` if given, else ``seed``,
    and the task's ``data`` fields."""
    explicit = getattr(task, "data_seed", None)
    root = seed if explicit is None else explicit
    key = canonical_json(role_key(task, "data"))
    return lambda stream: derive_seed(root, key, stream)


def target_seed(task: BaseModel, seed: int) -> int | None:
    """The seed a random target is built with: its own ``seed`` if given, else derived from ``seed``
    and the target section; None for a task without a target section."""
    target = getattr(task, "target", None)
    if target is None or "seed" not in type(target).model_fields:
        return None
    if target.seed is not None:
        return int(target.seed)
    return derive_seed(seed, canonical_json(role_key(task, "target")), "target")


def init_seed(model: BaseModel, seed: int, d: int, outputs: int) -> int:
    """The seed of a run's initial draw: ``model.init_seed`` if given, else derived from ``seed``,
    the architecture (the model's ``init`` fields) and the task's ``d`` and ``outputs``."""
    explicit = getattr(model, "init_seed", None)
    if explicit is not None:
        return int(explicit)
    return derive_seed(seed, canonical_json({**role_key(model, "init"), "d": d, "outputs": outputs}), "init")
