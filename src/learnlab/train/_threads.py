"""How many intra-op threads a training loop on the CPU uses: chosen by timing its steps.

Small steps (a stack of small MLPs, a single small model) are where thread count matters
most and where no rule fits every machine: on 2 quiet cores a stack of 64 MLPs
30-128-128-1 at batch 64 steps 1.6x faster on two threads than on one, while a single one
of them is 3-4x faster on one, and with the cores shared (other processes, a process
pool) two threads can be many times slower than one, as OpenMP waits for a descheduled
thread. So for small steps the loop times blocks of steps on one thread and on all of
them, keeps the faster, and checks again now and then, as the load changes.

Results do not depend on the choice, which is why only a stack of two or more learnlab MLPs or
ResMLPs is tuned: its matrix products go through MKL's batched GEMM, which computes each member's
product on one thread whatever the thread count, its other kernels are elementwise or reduce
over fixed orders, and a target's values and a probe's are computed on one thread
(:func:`learnlab._cpu.one_thread`). A single model's product is one GEMM that MKL splits over
the threads, and for some shapes its rounding follows the split (measured on an AMD EPYC: 55 of
180 small MLPs, e.g. 5 -> 32 -> 32 -> 1 at batch 32, trained differently on 1 and 2 threads),
so a small run alone (or any other small stack) trains on one thread, always: the bits of the
same run in a stack, in a one-thread worker and in a SLURM job with one CPU
(tests/test_train_threads.py checks whole histories). A step above ``SMALL_STEP_FLOPS`` trains
on all threads, with bits that may differ in the last place from the same run on another number
of threads.
"""

from __future__ import annotations

import contextlib
import statistics
import time

import torch
from torch import nn

from learnlab.models._mlp import MLP
from learnlab.models._resmlp import ResMLP

__all__ = ["SMALL_STEP_FLOPS", "ThreadTuner", "step_threads"]

SMALL_STEP_FLOPS = 2e9  # above this, all threads always win; below, the tuner decides


class ThreadTuner:
    """An ``on_step`` hook that picks 1 or ``threads`` intra-op threads by timing steps.

    It runs ``trial`` + 1 steps on each choice (the first of each block is not counted:
    it wakes the thread pool), keeps the one with the smaller median step time for
    ``every`` steps, and then tries both again.

    With ``model`` given, once fewer than two members are left in it (the others ended) its
    products are single GEMMs again, not MKL's batched ones, and it trains on one thread to the end.

    Args:
        threads: the most threads to use (>= 2).
        trial: steps timed per choice.
        every: steps between two trials.
        model: the stack trained.
    """

    def __init__(self, threads: int, trial: int = 12, every: int = 1000, model: nn.Module | None = None):
        self.model = model
        self.choices: tuple[int, ...] = (threads, 1)
        self.trial, self.every = trial, every
        self.times: dict[int, list[float]] = {}
        self.chosen: int | None = None
        self._plan: list[int] = []  # thread counts of the coming steps, one entry a step
        self._last: float | None = None
        self._current = torch.get_num_threads()
        self._start_trial()

    def _start_trial(self) -> None:
        self.times = {c: [] for c in self.choices}
        self._plan = [c for c in self.choices for _ in range(self.trial + 1)]
        self._previous: int | None = None  # thread count of the step before, within this trial
        self._set(self._plan[0])

    def _set(self, threads: int) -> None:
        if threads != self._current:
            torch.set_num_threads(threads)
            self._current = threads

    def __call__(self, step: int) -> None:
        """Called after each update with the number of updates done."""
        if self.model is not None and getattr(self.model, "members", 2) < 2:  # alone now: one thread
            self.choices, self._plan, self.chosen = (1,), [], 1
            self._set(1)
            return
        now = time.perf_counter()
        elapsed = None if self._last is None else now - self._last
        self._last = now
        if not self._plan:  # between trials
            if step % self.every == 0:
                self._start_trial()
            return
        threads = self._plan.pop(0)  # the step that just ended ran on this many threads
        if elapsed is not None and threads == self._previous:
            self.times[threads].append(elapsed)
        self._previous = threads
        if self._plan:
            self._set(self._plan[0])
            return
        medians = {c: statistics.median(t) for c, t in self.times.items() if t}
        self.chosen = min(medians, key=medians.__getitem__) if medians else self.choices[0]
        self._set(self.chosen)


@contextlib.contextmanager
def step_threads(model: nn.Module, batch_size: int):
    """Yield an ``on_step`` hook that tunes the thread count of a small CPU step of a stack of
    MLPs, or None (a small step of any other model runs on one thread; a large one on all).

    The thread count in force before is restored on exit.
    """
    first = next(model.parameters(), None)
    flops = 6 * sum(p.numel() for p in model.parameters()) * batch_size
    before = torch.get_num_threads()
    if first is None or first.device.type != "cpu" or flops >= SMALL_STEP_FLOPS or before == 1:
        yield None
        return
    batched = type(model) in (MLP, ResMLP) and getattr(model, "members", 1) > 1  # MKL's batched GEMM
    try:
        if batched:
            yield ThreadTuner(before, model=model)
        else:
            torch.set_num_threads(1)
            yield None
    finally:
        torch.set_num_threads(before)
