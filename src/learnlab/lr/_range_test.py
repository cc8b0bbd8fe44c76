"""The learning-rate range test (Smith 2017, "Cyclical learning rates"): a short run with a rising lr.

Step i of the run uses lr_i on a ramp from ``start`` to ``stop``:

    exponential: lr_i = start (stop / start)^(i / (steps - 1))
    linear:      lr_i = start + (stop - start) i / (steps - 1)

and records the training loss after that step. The suggested rate is where the smoothed
loss falls fastest: argmin_i d smoothed / d log lr_i (d / d lr_i for a linear ramp). The
run stops early when the smoothed loss exceeds ``diverge`` times its minimum or is not
finite. Model and optimizer are given back exactly as they were.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from learnlab._cpu import tune_cpu
from learnlab.lr._checks import check_batch, check_model_and_optimizer, group_ratios, set_learning_rates
from learnlab.lr._state import Preserved

__all__ = ["RAMPS", "RangeTestResult", "range_test"]

RAMPS = ("exponential", "linear")


@dataclass
class RangeTestResult:
    """What a range test measured.

    Attributes:
        learning_rates: (m,) the rates of the steps taken (m <= steps if it stopped early).
        losses: (m,) the training loss after each step (on the next batch, before its step).
        smoothed: (m,) bias-corrected EMA of ``losses``.
        suggested_lr: rate of steepest descent of ``smoothed`` (NaN with fewer than 3 steps).
        stopped: why the run ended: ``"completed"``, ``"diverged"`` or ``"non-finite"``.
    """

    learning_rates: torch.Tensor
    losses: torch.Tensor
    smoothed: torch.Tensor
    suggested_lr: float
    stopped: str


def range_test(
    model: nn.Module,
    batches,
    criterion,
    optimizer: torch.optim.Optimizer,
    *,
    start: float = 1e-6,
    stop: float = 10.0,
    steps: int = 100,
    mode: str = "exponential",
    relative: bool = True,
    ema: float = 0.9,
    diverge: float = 4.0,
) -> RangeTestResult:
    """Train for up to ``steps`` steps on a learning-rate ramp; model and optimizer restored after.

    Args:
        model: any ``nn.Module`` (trained in its current train/eval mode).
        batches: a fixed batch ``(x, y)``, a callable returning one per call (e.g. a learnlab
            ``BatchStream.next``), or an iterable of batches.
        criterion: ``criterion(model(x), y)`` -> scalar (or per-member losses, summed).
        optimizer: any ``torch.optim.Optimizer`` on the model's parameters.
        start, stop: the ramp's first and last learning rate (0 < start < stop).
        steps: number of steps (>= 3).
        mode: ``exponential`` or ``linear`` ramp.
        relative: keep per-group lr ratios (True) or give every group the same lr.
        ema: smoothing s of the loss, ema <- s ema + (1 - s) loss (bias-corrected).
        diverge: stop once the smoothed loss exceeds this multiple of its minimum.

    Returns:
        A :class:`RangeTestResult`. The model's parameters, buffers, gradients, modes, the
        optimizer's state and lrs, and the global RNG are as before; ``batches`` has advanced.
    """
    lrs = _ramp(start, stop, steps, mode)
    if not 0 <= ema < 1 or not diverge > 1:
        raise ValueError(f"need 0 <= ema < 1 and diverge > 1; got ema={ema}, diverge={diverge}")
    params = check_model_and_optimizer(model, optimizer)
    ratios = group_ratios(optimizer, relative)
    tune_cpu()  # work starts: the allocator keeps the per-lr tensors (learnlab._cpu)
    draw = _batch_source(batches)
    losses, stopped = [], "completed"
    with Preserved(model, optimizer) as saved:
        originals = [g["lr"] for g in saved.groups]
        loss = _loss(model, criterion, draw())
        for lr in lrs.tolist():
            set_learning_rates(optimizer, lr, ratios, originals)
            loss.sum().backward()
            optimizer.step()
            for p in params:
                p.grad = None
            loss = _loss(model, criterion, draw())
            losses.append(float(loss.detach().sum()))
            stopped = _verdict(losses, ema, diverge)
            if stopped != "completed":
                break
    taken = lrs[: len(losses)]
    values = torch.tensor(losses, dtype=torch.float64)
    smoothed = _smooth(values, ema)
    return RangeTestResult(taken, values, smoothed, _steepest(taken, smoothed, mode), stopped)


def _ramp(start: float, stop: float, steps: int, mode: str) -> torch.Tensor:
    if mode not in RAMPS:
        raise ValueError(f"mode must be one of {RAMPS}; got {mode!r}")
    if not (isinstance(steps, int) and steps >= 3):
        raise ValueError(f"steps must be an integer >= 3; got {steps!r}")
    if not (math.isfinite(start) and math.isfinite(stop) and 0 < start < stop):
        raise ValueError(f"need 0 < start < stop (finite); got start={start}, stop={stop}")
    i = torch.arange(steps, dtype=torch.float64) / (steps - 1)
    if mode == "exponential":
        return start * (stop / start) ** i
    return start + (stop - start) * i


def _batch_source(batches):
    """A function returning the next (x, y)."""
    if isinstance(batches, tuple) and len(batches) == 2 and all(isinstance(b, torch.Tensor) for b in batches):
        return lambda: batches
    if callable(batches):
        return batches
    iterator = iter(batches)

    def draw():
        try:
            return next(iterator)
        except StopIteration:
            raise ValueError(
                "batches ran out before the range test ended; pass more batches, a callable, or a fixed (x, y)"
            ) from None

    return draw


def _loss(model, criterion, batch) -> torch.Tensor:
    x, y = batch
    check_batch(x, y)
    with torch.enable_grad():
        return criterion(model(x), y)


def _verdict(losses: list[float], ema: float, diverge: float) -> str:
    if not math.isfinite(losses[-1]):
        return "non-finite"
    smoothed = _smooth(torch.tensor(losses, dtype=torch.float64), ema)
    return "diverged" if smoothed[-1] > diverge * smoothed.min() else "completed"


def _smooth(values: torch.Tensor, ema: float) -> torch.Tensor:
    """Bias-corrected EMA: m_t = s m_{t-1} + (1 - s) v_t, reported as m_t / (1 - s^(t+1))."""
    out, m = torch.empty_like(values), 0.0
    for t, v in enumerate(values.tolist()):
        m = ema * m + (1 - ema) * v
        out[t] = m / (1 - ema ** (t + 1))
    return out


def _steepest(lrs: torch.Tensor, smoothed: torch.Tensor, mode: str) -> float:
    finite = torch.isfinite(smoothed)
    n = int(finite.long().cumprod(0).sum())  # the finite prefix
    if n < 3:
        return math.nan
    x = lrs[:n].log() if mode == "exponential" else lrs[:n]
    (slope,) = torch.gradient(smoothed[:n], spacing=(x,))
    return float(lrs[int(slope.argmin())])
