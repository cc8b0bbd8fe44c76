"""CPU tuning for small training steps, applied where work starts, never on import.

:func:`tune_cpu` is called by the ``learnlab`` command, :func:`learnlab.sweep`,
:func:`learnlab.train` and in every process-pool and Ray worker. It does two things,
each measured on small stacked MLPs on a shared 2-core machine:

1. ``OMP_WAIT_POLICY=PASSIVE``: OpenMP threads that spin while waiting make small-model
   training up to ~15x slower when the cores are shared (other processes, a process pool);
   passive threads sleep instead. OpenMP reads it when torch is first imported, so it takes
   effect in this process only if torch is not imported yet, and always in workers
   started afterwards (they inherit the environment). A value you set is kept.
2. The glibc allocator, as below.

``LEARNLAB_TUNE_CPU=0`` turns both off (``LEARNLAB_TUNE_MALLOC=0`` only the allocator).

Not a tuning, and always on: ``MKL_CBWR=AUTO,STRICT``, MKL's conditional numerical
reproducibility in strict mode, set here and when ``learnlab`` is imported (a value you set
is kept). Without it MKL's matrix products round differently on one thread and on several
for some shapes (measured here: a batch of 7, the power-law target's small blocks), so a
run's bits would follow the thread count that the loop picks by timing
(:mod:`learnlab.train._threads`) and the number of workers. In strict mode every GEMM gives
the bits of one thread on any number of threads, at no measurable cost. MKL reads the
variable on its first call in the process: if something used MKL before learnlab set it,
:func:`reproducible_blas` is False and the loop keeps the thread count it finds.

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

import ctypes
import functools
import os
import sys

__all__ = ["tune_cpu", "tune_allocator", "reproducible_blas", "ask_reproducible_blas"]

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_SETTINGS = {_M_MMAP_THRESHOLD: 32 << 20, _M_TRIM_THRESHOLD: 256 << 20, _M_TOP_PAD: 16 << 20}
_GLIBC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


_OFF = ("0", "false", "no", "off")


_MKL_CBWR_ALL, _MKL_CBWR_STRICT = ~0, 0x10000


def ask_reproducible_blas() -> None:
    """Ask MKL for thread-count-independent results (``MKL_CBWR=AUTO,STRICT``, see above)."""
    os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")


@functools.cache
def reproducible_blas() -> bool:
    """Whether this process's matrix products give the same bits on any number of threads: MKL
    in strict reproducibility mode (fixed for the process once MKL first runs, so asked once)."""
    try:
        import torch

        if not torch.backends.mkl.is_available() or not sys.platform.startswith("linux"):
            return False
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        get = lib.mkl_serv_cbwr_get
    except (OSError, AttributeError, ImportError):
        return False
    get.argtypes, get.restype = (ctypes.c_int,), ctypes.c_int
    return bool(get(_MKL_CBWR_ALL) & _MKL_CBWR_STRICT)


def tune_cpu() -> None:
    """Apply the OpenMP wait policy and the allocator settings (see above; calling it again is harmless)."""
    ask_reproducible_blas()
    if os.environ.get("LEARNLAB_TUNE_CPU", "1").strip().lower() in _OFF:
        return
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    tune_allocator()


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
