"""Work on copies, give back the originals: the state a learning-rate measurement may touch.

Inside ``with Preserved(model, optimizer) as saved:`` every parameter and buffer points
at a working copy of its data (``t.data`` is swapped), gradients are cleared, and the
optimizer works on a clone of its state. On exit the original storages (never written
to), gradient tensors, train/eval flags, optimizer state object, param-group entries and
attributes, and the global RNG states are put back, so the caller sees exactly what it had.
"""

from __future__ import annotations

import copy
from collections import defaultdict

import torch
from torch import nn

__all__ = ["Preserved", "clone_state"]


def _clone(value):
    if isinstance(value, torch.Tensor):
        return value.clone()
    return copy.deepcopy(value)


def clone_state(state: dict) -> defaultdict:
    """A deep copy of an optimizer's ``state`` keyed by the same parameter objects."""
    return defaultdict(dict, {p: {k: _clone(v) for k, v in s.items()} for p, s in state.items()})


class _Rng:
    """The global CPU RNG state and, if CUDA is initialised, every CUDA device's."""

    def __init__(self):
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


class Preserved:
    """Context manager: the model and optimizer work on copies; all is restored on exit.

    Args:
        model: the module whose parameters, buffers, gradients and modes are kept.
        optimizer: optional; its state, param groups and attributes are kept.

    Inside the block, ``reset()`` puts the working parameters back to their original
    values and gives the optimizer a fresh clone of its original state.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None):
        self.model, self.optimizer = model, optimizer

    def __enter__(self) -> Preserved:
        model, opt = self.model, self.optimizer
        self._rng = _Rng()
        self._modes = [(m, m.training) for m in model.modules()]
        self.params = list(model.parameters())
        self._grads = [(p, p.grad) for p in self.params]
        seen, self._data = set(), []
        for t in [*self.params, *model.buffers()]:
            if id(t) not in seen:
                seen.add(id(t))
                self._data.append((t, t.data))  # the original storage, an alias
                t.data = t.data.clone()
        self.original = {id(t): data for t, data in self._data}
        for p in self.params:
            p.grad = None
        if opt is not None:
            self._opt_vars = dict(vars(opt))
            self.groups = [dict(g) for g in opt.param_groups]  # original entries, lr included
            self._state = opt.state
            opt.state = clone_state(self._state)
        return self

    def reset(self) -> None:
        """Parameters back to their original values; the optimizer on a fresh state clone."""
        with torch.no_grad():
            for p in self.params:
                p.data.copy_(self.original[id(p)])
        if self.optimizer is not None:
            self.optimizer.state = clone_state(self._state)

    def __exit__(self, *exc) -> None:
        opt = self.optimizer
        if opt is not None:
            for group, saved in zip(opt.param_groups, self.groups):
                group.clear()
                group.update(saved)
            for key in [k for k in vars(opt) if k not in self._opt_vars]:
                delattr(opt, key)
            for key, value in self._opt_vars.items():
                if getattr(opt, key, None) is not value:
                    setattr(opt, key, value)
        for t, data in self._data:
            t.data = data
        for p, grad in self._grads:
            p.grad = grad
        for m, training in self._modes:
            m.training = training
        self._rng.restore()
