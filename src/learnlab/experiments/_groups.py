"""Ensemble groups: runs that share every shape are trained together as one stacked model.

Runs whose configs differ only in per-member keys (learning rate, optimizer
hyperparameters, seeds, parameterization exponents, init seed, label noise,
thresholds, ...; see ``MEMBER_KEYS``) land in one group. A group is capped by
``max_members`` and by a memory budget estimated from the shapes, and large groups
are split so that every worker of a pool gets work.
"""

from __future__ import annotations

import math
from collections import defaultdict

from learnlab.experiments._runner import group_key
from learnlab.models._spec import MODEL_NAMES

__all__ = ["form_groups", "member_bytes", "DEFAULT_MAX_MEMBERS", "DEFAULT_MEMORY_BUDGET"]

DEFAULT_MAX_MEMBERS = 64
DEFAULT_MEMORY_BUDGET = 2 * 2**30  # bytes per group


def member_bytes(config: dict) -> int:
    """Rough bytes one member needs: parameters x 4 (weights, grads, two optimizer moments),
    activations of a batch (kept for backward), its test sample and an evaluation chunk."""
    m, t, task = config["model"], config["train"], config["task"]
    width, depth = m.get("width", 256), m.get("depth", 2)
    d = (task.get("inputs") or {}).get("d") or 3072  # datasets: at most CIFAR-10's 3*32*32
    size = 8 if t.get("dtype") == "float64" else 4
    params = d * width + (depth - 1) * width * width + width * 4 + depth * width
    if m.get("name", "mlp") not in MODEL_NAMES:  # a user model: count its parameters, width ~ sqrt of them
        from learnlab.experiments._user_models import user_model_facts

        params = max(1, user_model_facts(m, task, t.get("dtype", "float32")).size)
        width = max(1, int(math.sqrt(params)))
    activations = 3 * t.get("batch_size", 64) * width * (depth + 1)
    data = ((task.get("n_test") or 10_000) + (task.get("n_train") or 0)) * (d + 1)
    eval_chunk = 2 * 4096 * width
    return size * (4 * params + activations + data + eval_chunk)


def form_groups(
    configs: list[dict],
    *,
    max_members: int = DEFAULT_MAX_MEMBERS,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    workers: int = 1,
    groupable=None,
) -> list[list[dict]]:
    """Partition run configs into groups that can be stacked, in the order of first appearance.

    Args:
        configs: resolved run configs.
        max_members: largest group (1 = every run alone).
        memory_budget: bytes a group may use (estimated by :func:`member_bytes`).
        workers: the executor's parallelism; big groups are split into at least this many.
        groupable: predicate on a config; runs for which it is False run alone.

    Returns:
        Groups (lists of configs); every config appears in exactly one group.
    """
    buckets: dict[str, list[dict]] = defaultdict(list)
    order = []
    for config in configs:
        key = group_key(config) if (groupable is None or groupable(config)) else f"alone:{len(order)}"
        if key not in buckets:
            order.append(key)
        buckets[key].append(config)
    groups = []
    for key in order:
        bucket = buckets[key]
        cap = max(1, min(max_members, memory_budget // max(1, member_bytes(bucket[0]))))
        n_groups = max(math.ceil(len(bucket) / cap), min(workers, len(bucket)))
        size = math.ceil(len(bucket) / n_groups)
        groups += [bucket[i : i + size] for i in range(0, len(bucket), size)]
    return groups
