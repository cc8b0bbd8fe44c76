"""Devices a sweep may name: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``; and moving the
small CPU tensors a training step derives (per-member hyperparameters, index lists) to one."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["resolve_device", "check_device", "to_device"]


def check_device(device: str) -> None:
    """ValueError unless this machine has ``device`` (``cpu`` and ``auto`` always exist: said
    without importing torch, so a plan on a CPU checks its devices for free)."""
    if device not in ("cpu", "auto"):
        resolve_device(device)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda if available, else mps, else cpu; others are checked to exist.

    Raises:
        ValueError: naming the device, if this machine does not have it.
    """
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(
            f"device {device!r} is not a device name ({exc}); use cpu, cuda, cuda:N, mps or auto"
        ) from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise ValueError(f"device {device!r} is not available on this machine")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' is not available on this machine")
    return dev


def to_device(t: torch.Tensor, device: torch.device | str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``t.to(device, dtype)``, without making the host wait for a GPU.

    A CPU tensor copied to CUDA from ordinary (pageable) memory is a synchronous copy: the host
    waits until every kernel already queued on the stream has run, so the next step's work is not
    queued while the GPU computes this one. Staged in pinned memory and copied with
    ``non_blocking``, the copy is queued like a kernel (PyTorch keeps the pinned block until it
    is done) and the values are those of ``t.to(dtype)``, rounded on the CPU. Any other move is
    a plain ``.to``.
    """
    import torch

    device = torch.device(device)
    if t.device.type == "cpu" and device.type == "cuda":
        staged = t if dtype is None else t.to(dtype)
        return staged.pin_memory().to(device, non_blocking=True)
    return t.to(device=device, dtype=dtype)
