"""How many rows each evaluation pass takes: a cache-sized default, tuned by timing on large sets.

The fastest pass size depends on the machine more than on the model: measured on 2 cores with
2 MB of L2 per core each, one width-512 network evaluated fastest at 2,048 rows per pass on one
CPU and at 512 on another (1.4x slower at 2,048 there), a stack of 64 width-128 MLPs at 512
rows (1.5x slower at 1,024, where a layer's activations reach glibc's mmap threshold and are
page-faulted afresh each pass). Since a metric's value does not depend on the pass size (partial
sums over fixed blocks of points; each row of a GEMM of >= 3 rows has the same bits), the size
can be picked by timing: on the CPU, an evaluation of at least ``_TUNE_MIN_PASSES`` passes runs
each candidate (the default, half and twice it) for ``_WARMUP`` + ``_TIMED`` consecutive passes
and keeps the one of least mean time per row over its timed passes but the slowest (one pass
the machine stalled does not decide; the median pass instead chose 1,024 and 2,048 rows for the
tour's network, 1.1-1.5x the floor, where the mean chose 512), for that model's shapes, members,
dtype, device and thread count, for every later evaluation in the process (consecutive passes
of one size, as the evaluation then runs them: passes of sizes in turn measured 1.5x slower per
row for the smallest, whose activations then come from colder memory). Smaller sets, and GPUs
(large passes; timing would synchronise), take the default, or the size measured before for the
same shapes.
"""

from __future__ import annotations

import statistics
import time

import torch

from learnlab.train._metrics import BLOCK

__all__ = ["chunk_rows", "PassRows", "tuned_rows"]

CHUNK = 65536  # points per draw of a streamed set: its data never depend on the forward's chunks
# bytes of one layer's activations (members x rows x widest layer) per forward pass by default, at
# most _MAX_ROWS rows: half glibc's largest mmap threshold (32 MiB), so they come from the heap
_CPU_BYTES = 16 << 20
_MAX_ROWS = 1024
_CUDA_BYTES = 256 << 20
_WARMUP = 2  # untimed passes of each candidate before its timed ones (caches, allocations of that size)
_TIMED = 10  # timed passes per candidate, consecutive: their total time per row counts
_TUNE_MIN_PASSES = 48  # an evaluation of fewer default passes is not tuned (the tuning takes 42's rows)
_TUNED: dict[tuple, int] = {}  # model key -> rows per pass measured fastest


def chunk_rows(model, members: int, device) -> int:
    """Default rows per forward pass: members x rows x the widest layer ~ a cache-sized working set
    (a multiple of ``BLOCK``, the metrics' partial sums, between BLOCK and CHUNK)."""
    widest, itemsize = 1, 4
    for p in model.parameters():
        itemsize = max(itemsize, p.element_size())
        if p.dim() >= 2:
            widest = max(widest, *p.shape[-2:])
        elif p.dim() == 1:
            widest = max(widest, p.shape[0])
    cuda = torch.device(device).type == "cuda"
    rows = (_CUDA_BYTES if cuda else _CPU_BYTES) // (max(members, 1) * widest * itemsize)
    return int(min(max(rows // BLOCK, 1) * BLOCK, CHUNK if cuda else _MAX_ROWS))


def _key(model, members: int, device) -> tuple:
    shapes = tuple((tuple(p.shape), p.dtype) for p in model.parameters())
    return (type(model).__qualname__, members, shapes, str(device), torch.get_num_threads())


def tuned_rows(model, members: int, device) -> int:
    """The rows per pass an evaluation of this model would take now: measured, else the default."""
    return _TUNED.get(_key(model, members, device), chunk_rows(model, members, device))


class PassRows:
    """The rows of each forward pass of one evaluation (see the module docstring).

    Args:
        model, members, device: the stack evaluated.
        n: the points of the set (per member).
        fixed: rows chosen by the caller (no tuning), or None.
    """

    def __init__(self, model, members: int, device, n: int, fixed: int | None = None):
        self.key = _key(model, members, device)
        default = chunk_rows(model, members, device)
        self.rows = fixed or _TUNED.get(self.key, default)
        self.plan: list[tuple[int, bool]] = []  # (rows, timed) of each tuning pass still to come
        self.times: dict[int, list[float]] = {}  # candidate -> seconds per row of each of its timed passes
        cpu = torch.device(device).type == "cpu"
        if fixed is None and self.key not in _TUNED and cpu and n >= _TUNE_MIN_PASSES * default:
            candidates = dict.fromkeys([default, max(BLOCK, default // 2 // BLOCK * BLOCK), 2 * default])
            self.plan = [(c, i >= _WARMUP) for c in candidates for i in range(_WARMUP + _TIMED)]
        self.largest = max([self.rows, *(r for r, _ in self.plan)])

    def next(self) -> int:
        """Rows of the next pass."""
        return self.plan[0][0] if self.plan else self.rows

    def timed(self, rows: int, start: float) -> None:
        """The pass of ``rows`` rows begun at ``start`` (perf_counter) is done."""
        if not self.plan:
            return
        candidate, timed = self.plan.pop(0)
        if timed:  # rows < candidate where a block of the set ended inside the pass
            self.times.setdefault(candidate, []).append((time.perf_counter() - start) / rows)
        if not self.plan:  # the mean but for the slowest pass: one the machine stalled does not decide
            per_row = {r: statistics.fmean(sorted(t)[:-1] or t) for r, t in self.times.items()}
            self.rows = _TUNED[self.key] = min(per_row, key=lambda r: (per_row[r], r))

    @property
    def tuning(self) -> bool:
        return bool(self.plan)
