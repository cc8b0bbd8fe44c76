"""CPU tuning for small training steps, applied where work starts, never on import.

:func:`tune_cpu` is called by the ``learnlab`` command, :func:`learnlab.sweep`,
:func:`learnlab.train`, ``learnlab.lr``'s ``loss_per_learning_rate`` and ``range_test``, and in
every process-pool and Ray worker. It does two things,
each measured on small stacked MLPs on a shared 2-core machine:

1. How long OpenMP threads spin before they sleep while they wait. PyTorch's default (GNU
   OpenMP spins ~300,000 times, milliseconds) made stacked training 10-40x slower when two
   2-thread runs shared 2 cores: a thread spins through its time slice while the one it waits
   for is descheduled. Sleeping at once (``OMP_WAIT_POLICY=PASSIVE``, learnlab's setting until
   December 2026) costs a futex wake-up at every parallel op instead, ~20% of a run alone.
   Spinning 1,000 times first (the count GNU OpenMP itself falls back to when it has more
   threads than CPUs) keeps a run alone as fast as the default, and two runs sharing the cores
   within 16% of ``PASSIVE``. Measured side by side on 2 cores, 3 fresh processes per setting
   (medians): a 10^6-point evaluation of the README tour's network; a stack of 64 MLPs
   20 -> 128 -> 128 -> 1, 300 SGD steps at batch 32, alone and two such processes at once:

   =======================  ==========  ===========  ==================
   setting                  evaluation  stack alone  two stacks at once
   =======================  ==========  ===========  ==================
   PyTorch's default        0.233 s     0.457 s      10-43 s
   ``PASSIVE``              0.287 s     0.538 s      0.85 s
   ``GOMP_SPINCOUNT=1000``  0.229 s     0.466 s      0.99 s
   =======================  ==========  ===========  ==================

   So on Linux, where PyTorch's wheels use GNU OpenMP, learnlab sets ``GOMP_SPINCOUNT=1000``,
   and ``KMP_BLOCKTIME=0`` for the Intel and LLVM runtimes (builds that link those sleep at once);
   elsewhere ``OMP_WAIT_POLICY=PASSIVE``. OpenMP reads them when torch is first imported, so they
   take effect in this process only if torch is not imported yet, and always in workers started
   afterwards (they inherit the environment). If you set any of ``OMP_WAIT_POLICY``,
   ``GOMP_SPINCOUNT`` or ``KMP_BLOCKTIME``, learnlab sets none of them.
2. The glibc allocator, as below.

``LEARNLAB_TUNE_CPU=0`` turns both off (``LEARNLAB_TUNE_MALLOC=0`` only the allocator).

Keep freed tensor memory in the process on Linux/glibc, so a training step's tensors
are not page-faulted in afresh every step.

glibc serves allocations above ``M_MMAP_THRESHOLD`` (128 KiB at start, adapting up to a
few MiB) with a fresh ``mmap`` and gives them back with ``munmap`` when freed, and trims
the heap top once more than ``M_TRIM_THRESHOLD`` is free. A CPU training loop frees and
re-allocates the same few-MiB activations every step, so each step touches new pages:
measured here, a stacked step of 64 small MLPs ran 1.2-1.8x faster, and the
power-law target ~2x, with the settings below. PyTorch has no caching allocator on
the CPU, so learnlab sets them once, where work starts:

* ``M_MMAP_THRESHOLD`` = 32 MiB (the largest glibc accepts on 64-bit): smaller blocks
  come from the heap and are reused;
* ``M_TRIM_THRESHOLD`` = 256 MiB: up to that much freed heap stays mapped;
* ``M_TOP_PAD`` = 16 MiB: the heap grows in larger steps.

The cost is resident memory: up to ~256 MiB of freed heap is kept. Set
``LEARNLAB_TUNE_MALLOC=0`` to leave the allocator alone; any ``MALLOC_*_`` variable of
glibc's own in the environment also leaves it alone (yours win). Elsewhere than on glibc
this does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys

__all__ = ["tune_cpu", "tune_openmp", "tune_allocator", "one_thread"]

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_SETTINGS = {_M_MMAP_THRESHOLD: 32 << 20, _M_TRIM_THRESHOLD: 256 << 20, _M_TOP_PAD: 16 << 20}
_GLIBC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


_OFF = ("0", "false", "no", "off")
_OPENMP_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def tune_cpu() -> None:
    """Apply the OpenMP spin and the allocator settings (see above; calling it again is harmless)."""
    if os.environ.get("LEARNLAB_TUNE_CPU", "1").strip().lower() in _OFF:
        return
    tune_openmp()
    tune_allocator()


def tune_openmp() -> None:
    """Set how long OpenMP threads spin before sleeping (see above), unless you set any of it."""
    if any(name in os.environ for name in _OPENMP_VARIABLES):
        return
    if sys.platform.startswith("linux"):
        os.environ["GOMP_SPINCOUNT"] = "1000"  # GNU OpenMP: PyTorch's Linux wheels
        os.environ["KMP_BLOCKTIME"] = "0"  # Intel and LLVM OpenMP: sleep at once
    else:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def _is_glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        return False


def tune_allocator() -> bool:
    """Apply the settings above; True if they were applied."""
    if os.environ.get("LEARNLAB_TUNE_MALLOC", "1").strip().lower() in _OFF:
        return False
    if any(name in os.environ for name in _GLIBC_VARIABLES):
        return False
    if not sys.platform.startswith("linux") or not _is_glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in _SETTINGS.items())


@contextlib.contextmanager
def one_thread():
    """Run the block on one intra-op thread (the count in force is restored after).

    MKL rounds some matrix products differently on one thread and on several (measured on an
    AMD EPYC with MKL 2024: 232 of 2,932 shapes, ``MKL_CBWR`` modes included), so whatever must
    have the same bits in every process, whatever its thread count (a target's values, a probe's),
    is computed here on one thread: the bits a one-thread worker, a SLURM job with one CPU and a
    run alone all get.
    """
    import torch

    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
