"""The training loop: one code path for a single run and for E runs stacked as one model.

A single run is an ensemble of one. Each *member* has its own data stream, evaluation
sets, threshold tracker and history; the model and optimizer hold all members stacked
along dim 0 (see ``learnlab.models.MLP``). Per step the (E,) vector of batch losses is
read once; a member that diverges or crosses all its thresholds in
``stop_at_thresholds`` mode ends at that step and is dropped from the stack, so it
neither costs compute nor touches the others.

On an accelerator the losses are not read every step (a host synchronisation): they are kept
on the device and read every ``log_every`` steps, before an evaluation and before a checkpoint
(``LoopSettings.defer_losses``). A member found to have diverged at an earlier step t then ends
at t exactly as it would have (its records from t on are dropped) and leaves the stack; the
others never see it. Members that stop at train-loss thresholds need the value at once: with
any of them in the stack, the losses are read every step.

Step t means "after t optimizer updates". Iteration t: checkpoint (if due), evaluate
(if due), draw batch t, forward, record the batch losses (divergence, thresholds),
backward, clip, probes (if due), update t + 1.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from learnlab._cpu import one_thread
from learnlab._devices import to_device
from learnlab.models._mlp_grad import loss_grads, mse_grads, supports
from learnlab.models._optim import select_members
from learnlab.tasks._stream import BatchStream, next_stacked
from learnlab.train._evaluation import EvalSource, evaluate
from learnlab.train._history import History
from learnlab.train._losses import OUTPUT_GRADS, mse
from learnlab.train._member_state import load_member, save_member, unshare_streams
from learnlab.train._probes_api import ProbeContext, split_probe_output
from learnlab.train._schedule import lr_factor
from learnlab.train._thresholds import ThresholdTracker

__all__ = ["Member", "LoopSettings", "fit"]


@dataclass
class Member:
    """One run inside the loop, with everything that may differ between the runs of a stack.

    Attributes:
        stream: its training batches.
        evals: eval set name -> its source (``test`` always).
        tracker: threshold tracker of ``threshold_metric`` (train-loss EMA or an eval metric).
        threshold_metric: ``train/loss`` or ``<set>/<metric>``.
        stop_at_thresholds: end the run once every threshold is crossed.
        diverge_factor: a batch loss above this times the step-0 loss ends the run as diverged.
        task: its task (for probes and the ``coef`` metric).
        components: (label, fn) basis functions of its target for ``coef``.
        probes: its probes (members asking for the same probe share one object).
        schedule: its learning-rate schedule (a ``ScheduleSpec``); None = constant.
        clip_grad_norm: its gradient is clipped to this norm (None = not clipped).
        keep_final: keep its final parameters and buffers (``final_state``) and, if it runs to
            the last step, the loop state a longer run continues from (``resume_state``).
    """

    stream: BatchStream
    evals: dict[str, EvalSource]
    tracker: ThresholdTracker
    threshold_metric: str = "train/loss"
    stop_at_thresholds: bool = False
    diverge_factor: float | None = None
    task: object = None
    components: list = field(default_factory=list)
    probes: Sequence = ()
    schedule: object = None
    clip_grad_norm: float | None = None
    keep_final: bool = False
    history: History = field(default_factory=History)
    artifacts: dict[str, list] = field(default_factory=dict)
    loss0: float | None = None
    final_state: dict | None = None  # its own state when it ended (keep_final)
    resume_state: dict | None = None  # its loop state at the last step, before the final evaluation (keep_final)


@dataclass
class LoopSettings:
    """What all members of a stack share: the length of training and what is evaluated."""

    steps: int
    eval_every: int = 100
    log_every: int = 10
    metrics: Sequence[str] = ("mse",)
    loss_fn: Callable = mse
    compile: bool = False  # torch.compile the forward pass and loss of each training step
    fused: bool = True  # an MLP's gradients without autograd for a built-in loss (same bits; models._mlp_grad)
    defer_losses: bool | None = None  # read losses in batches (module docstring); None: off the CPU


def fit(
    model,
    optimizer,
    members: list[Member],
    settings: LoopSettings,
    *,
    on_step: Callable[[int], object] | None = None,
    checkpoint=None,
    resume: dict[int, dict] | None = None,
    on_end: Callable[[int, History], object] | None = None,
) -> list[History]:
    """Train the stacked ``model`` (one row per member) and return each member's History.

    Args:
        model: a :class:`~learnlab.models.Stack` (learnlab's models, or any module through
            :func:`~learnlab.models.as_stack`), x (E, batch, d) -> (E, batch, k).
        optimizer: its optimizer (per-member hyperparameters allowed).
        members: one :class:`Member` per row of the stack.
        settings: the shared recipe.
        on_step: called with the number of updates done (progress bars).
        checkpoint: an object with ``every``, ``save(state)`` and ``load() -> state | None``
            (see ``learnlab.train._checkpoint``); resuming is bit-identical. A
            :class:`~learnlab.train._checkpoint.Checkpointer` also saves at the next step when
            ``request``-ed (a SLURM job's time-limit signal), whatever ``every`` is.
        resume: member index -> the ``resume_state`` of a shorter run of its config: every
            member continues from its own, all at the same step (a longer run, extended, ends
            bit-identical to one run from scratch). A checkpoint, if there is one, wins.
        on_end: called as ``on_end(member index, history)`` when a member's run is over: as it
            leaves the stack (diverged, or stopped at its thresholds), or at the last step.
    """
    loop = _Loop(model, optimizer, members, settings, on_end)
    start = loop.restore(checkpoint.load()) if checkpoint is not None else 0
    if start == 0 and resume:
        start = loop.resume(resume)
    from learnlab.train._checkpoint import RUNNING

    if checkpoint is not None:
        RUNNING.append(checkpoint)
    try:
        for t in range(start, settings.steps + 1):
            requested = getattr(checkpoint, "requested", None) is not None  # a save asked for now (see request)
            if checkpoint is not None and t > start and (t % checkpoint.every == 0 or requested):
                if not loop.settle():
                    break
                checkpoint.save(loop.state(t))
                if requested:
                    checkpoint.saved()  # what asked for the save goes on (a SLURM requeue exits here)
            if not loop.iteration(t):
                break
            if on_step is not None and t < settings.steps:
                on_step(t + 1)
    finally:
        if checkpoint is not None:
            RUNNING.remove(checkpoint)
    return loop.finish()


class _Loop:
    def __init__(self, model, optimizer, members, settings, on_end=None):
        self.model, self.optimizer, self.members, self.s = model, optimizer, members, settings
        self.on_end = on_end
        self.active = list(range(len(members)))  # member index of each row of the stack
        # (E, ...) per parameter, by each member's own parameter names
        self.init_params = {n: model.per_member(p).detach().clone() for n, p in model.member_parameters()}
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self._scheduled = False
        self._train_loss = self._plain_loss
        self._pending: list[tuple[int, torch.Tensor, set[int]]] = []  # (step, losses on device, rows skipped)
        self._limits: tuple = (None, None)  # (key, tensor) of _clip_limits
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self._defer = settings.defer_losses if settings.defer_losses is not None else device.type != "cpu"
        self._defer = self._defer and not self._stops_at_loss()  # those need each step's value at once
        # the same losses and .grad bits as autograd's, without its graph (learnlab.models._mlp_grad)
        builtin = settings.loss_fn is mse or settings.loss_fn in OUTPUT_GRADS  # a user's may read the parameters
        self._fused = settings.fused and not settings.compile and builtin and supports(model)
        if settings.compile:
            # dynamic=None: a second stack size (members that ended) compiles one dynamic graph
            self._train_loss = torch.compile(self._plain_loss)

    def _plain_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.s.loss_fn(self.model(x), y)

    def _fused_grads(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.s.loss_fn is mse:
            return mse_grads(self.model, x, y)
        return loss_grads(self.model, x, y, OUTPUT_GRADS[self.s.loss_fn])

    # ---- one iteration -----------------------------------------------------------
    def iteration(self, t: int) -> bool:
        s = self.s
        due = t % s.eval_every == 0 or t == s.steps
        if (due or t % s.log_every == 0) and not self.settle():
            return False
        if t == s.steps:  # before the last evaluation, which a longer run does not make here
            for row, i in enumerate(self.active):
                if self.members[i].keep_final:
                    self.members[i].resume_state = self.member_state(row, t)
        ended = self._evaluate(t) if due else []
        if t == s.steps:
            return False
        self._set_lr(t)
        x, y = next_stacked([self.members[i].stream for i in self.active])  # (E, batch, d), (E, batch, k)
        self.optimizer.zero_grad(set_to_none=True)  # before the pass: a compiled pass sees no stale .grad
        losses = self._fused_grads(x, y) if self._fused else self._train_loss(x, y)  # fused: .grad set
        if self._defer:
            self._pending.append((t, losses.detach(), set(ended)))
        else:
            ended += self._record_losses(losses.detach().tolist(), t, skip=set(ended))
        stopped = [r for r in ended if self.members[self.active[r]].history.status == "finished"]
        if stopped and t % s.eval_every != 0:
            self._evaluate(t, rows=stopped)
        self._keep_final(sorted(set(ended)))  # theta_t, before the update they will not take
        if not self._fused:
            losses.sum().backward()
        self._clip()
        self._probe(t, (x, y), skip=set(ended))
        self.optimizer.step()
        if ended and self._pending:  # rows are about to move: record the kept losses first
            late = self._read_pending()
            self._keep_final(late)
            ended += late
        return self._drop(sorted(set(ended)))

    def _stops_at_loss(self) -> bool:
        return any(
            self.members[i].stop_at_thresholds and self.members[i].threshold_metric == "train/loss" for i in self.active
        )

    def settle(self) -> bool:
        """Read the losses kept on the device (one host synchronisation) and record them step by
        step; members that diverged meanwhile end at their step and leave the stack. False when
        no member is left."""
        if not self._pending:
            return True
        ended = self._read_pending()
        self._keep_final(ended)
        return self._drop(ended)

    def _read_pending(self) -> list[int]:
        """Record the kept losses (all of the current rows); the rows that ended, not yet dropped."""
        pending, self._pending = self._pending, []
        values = torch.stack([losses for _, losses, _ in pending]).cpu().tolist()
        ended: list[int] = []
        for (t, _, skip), row_values in zip(pending, values):
            ended += self._record_losses(row_values, t, skip=skip | set(ended))
        return sorted(set(ended))

    def _record_losses(self, values, t, skip) -> list[int]:
        ended = []
        for row, i in enumerate(self.active):
            if row in skip:
                continue
            m, value = self.members[i], values[row]
            if m.loss0 is None:
                m.loss0 = value
            reason = _divergence(value, m.loss0, m.diverge_factor)
            if reason is not None:
                m.history.status, m.history.step = "diverged", t
                m.history.reason = f"{reason} at step {t}"
                m.history.drop_from(t)
                m.artifacts = {k: [(st, v) for st, v in rows if st < t] for k, rows in m.artifacts.items()}
                ended.append(row)
                continue
            if t % self.s.log_every == 0:
                m.history.log(t, "train/loss", value)
            if m.threshold_metric == "train/loss":
                m.tracker.update(t, value)
                if m.stop_at_thresholds and m.tracker.all_crossed:
                    m.history.status, m.history.step = "finished", t
                    ended.append(row)
        return ended

    def _evaluate(self, t, rows=None) -> list[int]:
        """Log eval metrics at step t; return rows whose eval-metric thresholds end them."""
        rows = range(len(self.active)) if rows is None else rows
        members = [self.members[i] for i in self.active]
        comps = [m.components for m in members] if any(m.startswith("coef") for m in self.s.metrics) else None
        metrics = [m if not m.startswith("coef") else "coef" for m in self.s.metrics]
        ended = []
        for name in members[0].evals:
            values = evaluate(self.model, [m.evals[name] for m in members], metrics, comps)
            for row in rows:
                for metric, per_member in values.items():
                    members[row].history.log(t, f"{name}/{metric}", per_member[row])
        for row in rows:
            m = members[row]
            if m.threshold_metric != "train/loss" and m.history.metrics.get(m.threshold_metric):
                m.tracker.update(t, m.history.metrics[m.threshold_metric][-1][1])
                if m.stop_at_thresholds and m.tracker.all_crossed and m.history.status == "running":
                    m.history.status, m.history.step = "finished", t
                    ended.append(row)
        return ended

    def _probe(self, t, batch, skip) -> None:
        """Each probe due at step t runs once for the whole stack; its values go to the rows that asked."""
        due: dict[int, tuple[Callable[[Any, ProbeContext], dict[str, Any]], list[int]]] = {}
        for row, i in enumerate(self.active):
            for probe in self.members[i].probes:
                if t % getattr(probe, "every", 100) == 0:
                    due.setdefault(id(probe), (probe, []))[1].append(row)
        if not due:
            return
        with one_thread():  # a probe's values have one thread's bits in every process (learnlab._cpu)
            self._run_probes(t, batch, skip, due)

    def _run_probes(self, t, batch, skip, due) -> None:
        ctx = ProbeContext(
            step=t,
            batch=batch,
            init_params=self.init_params,
            optimizer=self.optimizer,
            tasks=[self.members[i].task for i in self.active],
            loss_fn=self.s.loss_fn,
            members=len(self.active),
        )
        for probe, rows in due.values():
            for name, value in probe(self.model, ctx).items():
                scalars, tensors = split_probe_output(name, value, len(self.active))
                for row in rows:
                    m = self.members[self.active[row]]
                    if row in skip and m.history.status == "diverged":
                        continue
                    for key, vals in scalars.items():
                        m.history.log(t, f"probe/{key}", vals[row])
                    for key, tensor in tensors.items():
                        m.artifacts.setdefault(key, []).append((t, tensor[row].clone()))

    def _set_lr(self, t) -> None:
        """Each group's lr = its built lr x the member's schedule factor at step t."""
        factors = [
            1.0 if m.schedule is None else lr_factor(m.schedule, t, self.s.steps)
            for m in (self.members[i] for i in self.active)
        ]
        if not self._scheduled and all(f == 1.0 for f in factors):
            return
        self._scheduled = True
        factor: float | torch.Tensor
        if len(set(factors)) == 1:
            factor = factors[0]  # a float: the same bits as a member's run alone
        else:
            factor = torch.tensor(factors, dtype=torch.float64)
        for k, group in enumerate(self.optimizer.param_groups):
            base = self.base_lrs[k]
            group["lr"] = base * (factor.to(base.device) if isinstance(factor, torch.Tensor) else factor)

    @torch.no_grad()
    def _clip(self) -> None:
        """clip_grad_norm_ applied to each member that asks, with its own max norm:
        g <- g * min(1, max_norm / (||g|| + 1e-6)), ||g|| over all of the member's gradients."""
        max_norms = [self.members[i].clip_grad_norm for i in self.active]
        if all(c is None for c in max_norms):
            return
        grads = [self.model.per_member(p.grad) for _, p in self.model.member_parameters() if p.grad is not None]
        if not grads:
            return
        sq = sum(g.pow(2).flatten(1).sum(dim=1) for g in grads)  # (E,)
        limit = self._clip_limits(tuple(max_norms), sq)
        coef = (limit / (sq.sqrt() + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))

    def _clip_limits(self, max_norms: tuple, like: torch.Tensor) -> torch.Tensor:
        """(E,) max norms on the device, inf where a member does not clip; moved once per stack."""
        key = (max_norms, like.dtype, like.device)
        if self._limits[0] != key:
            limits = torch.tensor([math.inf if c is None else c for c in max_norms], dtype=like.dtype)
            self._limits = (key, to_device(limits, like.device))
        return self._limits[1]

    def _drop(self, ended: list[int]) -> bool:
        """Remove ended rows from the stack; False when no member is left."""
        if not ended:
            return True
        for row in ended:
            self._over(self.active[row])
        keep = [row for row in range(len(self.active)) if row not in ended]
        self.active = [self.active[row] for row in keep]
        if not self.active:
            return False
        idx = torch.tensor(keep, dtype=torch.long)
        select_members(self.model, self.optimizer, idx)
        self.init_params = {n: p.index_select(0, idx.to(p.device)) for n, p in self.init_params.items()}
        self.base_lrs = [
            lr.index_select(0, idx.to(lr.device)) if isinstance(lr, torch.Tensor) and lr.dim() == 1 else lr
            for lr in self.base_lrs
        ]
        return True

    def _keep_final(self, rows) -> None:
        """Snapshot the state of the members in ``rows`` that keep it (the stack gives each its own)."""
        for row in rows:
            member = self.members[self.active[row]]
            if member.keep_final:
                member.final_state = self.model.member_state_dict(row)

    def finish(self) -> list:
        self.settle()
        self._keep_final(range(len(self.active)))
        for i in self.active:
            self.members[i].history.status = "finished"
            self.members[i].history.step = self.s.steps
            self._over(i)
        for m in self.members:  # also those that ended before a restored checkpoint
            m.history.thresholds = dict(m.tracker.steps)
            m.history.artifacts = m.artifacts
        return [m.history for m in self.members]

    def _over(self, i: int) -> None:
        """Member i's run is over: its history gets its thresholds and artifacts, and is handed on."""
        m = self.members[i]
        m.history.thresholds = dict(m.tracker.steps)
        m.history.artifacts = m.artifacts
        if self.on_end is not None:
            self.on_end(i, m.history)

    # ---- checkpoints ---------------------------------------------------------------
    def state(self, t: int) -> dict:
        return {
            "step": t,
            "active": list(self.active),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "init_params": self.init_params,
            "base_lrs": self.base_lrs,
            "members": [save_member(m) for m in self.members],
        }

    def member_state(self, row: int, t: int) -> dict:
        """Row ``row``'s whole loop state at step t, by its own parameter names, without the member axis."""
        model, member = self.model, self.members[self.active[row]]
        named = [*model.member_parameters(), *model.member_buffers()]
        optimizer = {}
        for name, p in model.member_parameters():
            optimizer[name] = {
                k: model.per_member(v)[row].clone() if isinstance(v, torch.Tensor) and v.dim() > 0 else v
                for k, v in self.optimizer.state.get(p, {}).items()
            }
        return {
            "step": t,
            "model": {n: model.per_member(v)[row].detach().clone() for n, v in named},
            "optimizer": optimizer,
            "init_params": {n: v[row].clone() for n, v in self.init_params.items()},
            "member": copy.deepcopy(save_member(member)),  # a snapshot: the run goes on recording
        }

    @torch.no_grad()
    def resume(self, states: dict[int, dict]) -> int:
        """Load each row's ``member_state`` (all at one step); returns that step."""
        steps = {s["step"] for s in states.values()}
        if len(steps) != 1 or set(states) != set(range(len(self.members))):
            raise ValueError(
                f"every member resumes, all at one step; got steps {sorted(steps)} for rows {sorted(states)}"
            )
        model = self.model
        params = model.member_parameters()
        for row, state in states.items():
            for name, value in [*params, *model.member_buffers()]:
                model.per_member(value)[row].copy_(state["model"][name])
            for name, p in params:
                slot = self.optimizer.state[p]
                for key, value in state["optimizer"][name].items():
                    if isinstance(value, torch.Tensor) and value.dim() > 0:
                        if key not in slot:
                            slot[key] = torch.zeros_like(p)
                        model.per_member(slot[key])[row].copy_(value)
                    else:
                        slot[key] = value
            for name, value in state["init_params"].items():
                self.init_params[name][row] = value
            load_member(self.members[row], state["member"])
        unshare_streams(self.members, [states[row]["member"] for row in range(len(self.members))])
        return steps.pop()

    def restore(self, state) -> int:
        if state is None:
            return 0
        if state["active"] != self.active:
            keep = torch.tensor(state["active"], dtype=torch.long)
            select_members(self.model, self.optimizer, keep)
            self.active = list(state["active"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.init_params, self.base_lrs = state["init_params"], state["base_lrs"]
        for m, ms in zip(self.members, state["members"]):
            load_member(m, ms)
        unshare_streams(self.members, state["members"])
        return state["step"]


def _divergence(value: float, loss0: float, factor: float | None) -> str | None:
    if not math.isfinite(value):
        return f"non-finite train loss ({value})"
    if factor is not None and value > factor * loss0:
        return f"train loss {value:.4g} > diverge_factor {factor:g} x step-0 loss {loss0:.4g}"
    return None
