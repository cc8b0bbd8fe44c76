"""Teacher networks: a frozen random ReLU MLP, one per teacher seed (seed 001).

Teacher-student setting of "Training ReLU networks to high uniform accuracy is
intractable" (Berner, Grohs & Voigtlaender, 2023): hidden widths e.g. [32] * 5,
weights and biases U(-1/2, 1/2), inputs uniform on [-1/2, 1/2]^d.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from learnlab.tasks._targets import on_device

__all__ = ["Teacher", "teacher_weights"]


def _returning(t: torch.Tensor) -> Callable[[], torch.Tensor]:
    """``make`` for :func:`on_device`: a function returning ``t``."""
    return lambda: t


def teacher_weights(
    d: int, widths: tuple[int, ...], outputs: int, seed: int, init: str = "uniform"
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The teacher's layers [(W_l: (fan_out, fan_in), b_l: (fan_out,)), ...], CPU float64.

    ``uniform``: every weight and bias U(-1/2, 1/2) (seed 001). ``gaussian``: W ~ N(0, 2 / fan_in)
    in hidden layers (He et al., 2015, so ReLU activations keep their scale) and
    N(0, 1 / fan_in) in the readout, biases 0. Drawn layer by layer, W then b, from a CPU
    generator seeded with ``seed`` only, so a teacher is the same on every device and run.
    """
    g = torch.Generator().manual_seed(seed)
    sizes = [d, *widths, outputs]
    layers = []
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if init == "uniform":
            w = torch.rand(fan_out, fan_in, generator=g, dtype=torch.float64) - 0.5
            b = torch.rand(fan_out, generator=g, dtype=torch.float64) - 0.5
        elif init == "gaussian":
            gain = 2.0 if layer < len(sizes) - 2 else 1.0
            w = torch.randn(fan_out, fan_in, generator=g, dtype=torch.float64) * math.sqrt(gain / fan_in)
            b = torch.zeros(fan_out, dtype=torch.float64)
        else:
            raise ValueError(f"unknown teacher init {init!r}; valid: uniform, gaussian")
        layers.append((w, b))
    return layers


@dataclass(frozen=True)
class Teacher:
    """y = W_L relu(... relu(W_1 x + b_1) ...) + b_L, frozen; see :func:`teacher_weights`."""

    d: int
    widths: tuple[int, ...]
    seed: int = 0
    init: str = "uniform"
    outputs: int = 1
    labels: str = "value"
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def layers(self, like: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if "cpu64" not in self._cache:
            self._cache["cpu64"] = teacher_weights(self.d, self.widths, self.outputs, self.seed, self.init)
        base: list[tuple[torch.Tensor, torch.Tensor]] = self._cache["cpu64"]
        return [
            (on_device(self._cache, f"w{i}", _returning(w), like), on_device(self._cache, f"b{i}", _returning(b), like))
            for i, (w, b) in enumerate(base)
        ]

    @torch.no_grad()
    def __call__(self, x):
        layers = self.layers(x)
        h = x
        for w, b in layers[:-1]:
            h = torch.relu(torch.addmm(b, h, w.T))
        w, b = layers[-1]
        return torch.addmm(b, h, w.T)
