"""The probe protocol: measurements taken inside the loop (seed 002's "grabs", seed 000's eval_fns).

A probe is any callable ``probe(model, ctx) -> dict[str, value]`` with an ``every``
attribute (steps between calls; default 100). ``model`` is the
:class:`~learnlab.models.Stack` being trained: call it on x (E, batch, d); ask it for
per-member views of its parameters (``model.member_parameters()``, ``model.per_member``).
Values are per member:

* a float (single run), or a tensor of shape (E,) -> a scalar stored in the run's
  metric history as ``probe/<name>``;
* a tensor of shape (E, ...) with more dims -> an artifact (saved per run to
  ``OUT/artifacts/<run_id>.pt`` as {name: [(step, tensor), ...]}).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["Probe", "ProbeContext", "split_probe_output"]


@runtime_checkable
class Probe(Protocol):
    """A measurement: called every ``every`` steps with the model and a :class:`ProbeContext`."""

    every: int

    def __call__(self, model: torch.nn.Module, ctx: ProbeContext) -> dict[str, Any]: ...


@dataclass
class ProbeContext:
    """What a probe may look at, at step ``step`` (after ``step`` updates).

    Attributes:
        step: number of optimizer updates done.
        batch: the current training batch, stacked: x (E, batch, d), y (E, batch, k).
        init_params: the initial value of every parameter, same names and shapes as
            ``model.named_parameters()``.
        optimizer: the optimizer (gradients of this step are in ``p.grad``).
        tasks: the task of each member.
        loss_fn: the loss, (E, n, k) x (E, n, k) -> (E,).
        members: E, the number of members in the stack now.
        extra: anything a caller wants to hand its own probes.
    """

    step: int
    batch: tuple[torch.Tensor, torch.Tensor]
    init_params: dict[str, torch.Tensor]
    optimizer: torch.optim.Optimizer
    tasks: list
    loss_fn: Any
    members: int = 1
    extra: dict = field(default_factory=dict)


def split_probe_output(name: str, value, members: int):
    """-> (scalars {name: [E values]}, tensors {name: tensor (E, ...)}) for a probe's output."""
    if isinstance(value, (int, float)):
        return {name: [float(value)] * members}, {}
    value = torch.as_tensor(value).detach()
    if value.dim() == 0:
        return {name: [float(value)] * members}, {}
    if value.dim() == 1 and value.shape[0] == members:
        return {name: value.to(torch.float64).cpu().tolist()}, {}
    if value.shape[0] != members:
        raise ValueError(f"probe {name!r} returned shape {tuple(value.shape)}; expected (members={members}, ...)")
    return {}, {name: value.cpu()}
