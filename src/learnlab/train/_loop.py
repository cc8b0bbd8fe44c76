"""The training loop: one code path for a single run and for E runs stacked as one model.

A single run is an ensemble of one. Each *member* has its own data stream, test
sample, threshold tracker and history; the model and optimizer hold all members
stacked along dim 0 (see ``learnlab.models.MLP``). Per step, the (E,) vector of
batch losses is read once; a member that diverges or crosses all its thresholds in
``stop_at_thresholds`` mode ends at that step and is dropped from the stack, so it
neither costs compute nor touches the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from learnlab.models._optim import select_members
from learnlab.tasks._stream import BatchStream
from learnlab.train._history import History
from learnlab.train._thresholds import ThresholdTracker

__all__ = ["Member", "fit", "mse_per_member"]

EVAL_CHUNK = 8192  # test points per forward pass


@dataclass
class Member:
    """One run inside the loop.

    Attributes:
        stream: its training batches.
        test: its fixed test sample (x: (n_test, d), y: (n_test, outputs)), noise-free.
        tracker: EMA threshold tracker of its train loss.
        stop_at_thresholds: end the run once every threshold is crossed.
    """

    stream: BatchStream
    test: tuple[torch.Tensor, torch.Tensor]
    tracker: ThresholdTracker
    stop_at_thresholds: bool = False
    history: History = field(default_factory=History)


def mse_per_member(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error per member: out, y (E, n, k) -> (E,)."""
    return (out - y).pow(2).mean(dim=(1, 2))


def fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    members: list[Member],
    *,
    steps: int,
    eval_every: int,
    log_every: int = 1,
    on_step: Callable[[int], None] | None = None,
) -> list[History]:
    """Train the stacked ``model`` (one row per member) for up to ``steps`` updates.

    Step t means "after t optimizer updates": at step t the test sample is evaluated
    (every ``eval_every`` steps, and at the end), then the batch loss of step t is
    read, then update t+1 is applied. Histories are recorded in place and returned.
    """
    active = list(range(len(members)))  # member index of each row of the stack
    for t in range(steps + 1):
        if t % eval_every == 0 or t == steps:
            _evaluate(model, members, active, range(len(active)), t)
        if t == steps:
            break
        batches = [members[i].stream.next() for i in active]
        x = torch.stack([b[0] for b in batches])  # (E, batch, d)
        y = torch.stack([b[1] for b in batches])  # (E, batch, outputs)
        losses = mse_per_member(model(x), y)
        ended = _bookkeep(members, active, losses.detach().tolist(), t, log_every)
        stopped = [row for row in ended if members[active[row]].history.status == "finished"]
        if stopped and t % eval_every != 0:
            _evaluate(model, members, active, stopped, t)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        optimizer.step()
        if ended:
            keep = [row for row in range(len(active)) if row not in ended]
            active = [active[row] for row in keep]
            if not active:
                break
            select_members(model, optimizer, torch.tensor(keep, dtype=torch.long))
        if on_step is not None:
            on_step(t + 1)
    for i in active:
        members[i].history.status = "finished"
        members[i].history.step = steps
    for m in members:
        m.history.thresholds = dict(m.tracker.steps)
    return [m.history for m in members]


def _bookkeep(members, active, values, t, log_every) -> list[int]:
    """Record the batch losses of step t; return the rows whose run ends at t."""
    ended = []
    for row, i in enumerate(active):
        m, value = members[i], values[row]
        if not math.isfinite(value):
            m.history.status, m.history.step = "diverged", t
            m.history.reason = f"non-finite train loss ({value}) at step {t}"
            m.history.drop_from(t)
            ended.append(row)
            continue
        m.tracker.update(t, value)
        if t % log_every == 0:
            m.history.log(t, "train/loss", value)
        if m.stop_at_thresholds and m.tracker.all_crossed:
            m.history.status, m.history.step = "finished", t
            ended.append(row)
    return ended


@torch.no_grad()
def _evaluate(model, members, active, rows, t) -> None:
    """Log test/mse at step t for the members in ``rows`` of the stack."""
    x = torch.stack([members[i].test[0] for i in active])  # (E, n_test, d)
    y = torch.stack([members[i].test[1] for i in active])
    total = torch.zeros(len(active), dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[1], EVAL_CHUNK):
        out = model(x[:, start:start + EVAL_CHUNK])
        err = (out - y[:, start:start + EVAL_CHUNK]).pow(2)
        total += err.sum(dim=(1, 2)).to(torch.float64)
    mse = (total / (y.shape[1] * y.shape[2])).tolist()
    for row in rows:
        members[active[row]].history.log(t, "test/mse", mse[row])
