"""Your own model in a sweep: ``model: {name: "package.module:attr", options: {...}}``.

``attr`` is a factory (a function or an ``nn.Module`` class) called as
``attr(d=..., outputs=..., **options)`` that returns a module mapping (batch, d) to
(batch, outputs). Each member of a group is built by its own call, with torch's global
RNG seeded from the member's init seed (so its PyTorch initialisation is reproducible
and differs between seeds), and the members are stacked with
``torch.func.stack_module_state``: :class:`UserStack` holds every parameter and buffer
with a leading member axis, like learnlab's own stacked models, and runs all members in
one ``vmap``-ed ``functional_call``. A group of one calls the module as it is, so any
module trains alone; :func:`vectorization_problem` says why a module cannot be stacked
(in-place buffer updates such as BatchNorm's running statistics, data-dependent Python
control flow, ...), and the sweep then trains its runs one at a time with a warning.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from learnlab.models._param import get_parameterization
from learnlab.models._scaling import SCALING_ATTR, Scaling

__all__ = ["UserStack", "build_user_members", "vectorization_problem"]


def build_user_members(
    factory,
    options: dict,
    d: int,
    outputs: int,
    seeds: Sequence[int],
    *,
    dtype: torch.dtype = torch.float32,
    device="cpu",
) -> list[nn.Module]:
    """One module per seed, each built with torch's global RNG seeded by it (restored after)."""
    modules = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = factory(d=d, outputs=outputs, **options)
        if not isinstance(module, nn.Module):
            raise TypeError(f"the model factory returned a {type(module).__name__}, not a torch.nn.Module")
        modules.append(module.to(dtype=dtype, device=device))
    with torch.no_grad():
        out = modules[0](torch.zeros(2, d, dtype=dtype, device=device))
    if tuple(out.shape) != (2, outputs):
        raise ValueError(
            f"the model maps (batch, d) = (2, {d}) to {tuple(out.shape)}; the task needs "
            f"(batch, outputs) = (2, {outputs})"
        )
    return modules


class UserStack(nn.Module):
    """E copies of a user module with stacked parameters and buffers; x (E, batch, d) -> (E, batch, k).

    With E = 1 a 2-d x (batch, d) gives (batch, k). Parameter ``read_in.weight`` of the
    module is registered as ``p_read_in__weight`` (buffers ``b_...``), in the module's order;
    ``names`` lists the module's own names.
    """

    def __init__(self, modules: Sequence[nn.Module]):
        super().__init__()
        modules = list(modules)
        self.members = len(modules)
        params, buffers = stack_module_state(modules)
        self.names = list(params)
        self.buffer_names = list(buffers)
        # attribute names keep the module's own (read_in.weight -> p_read_in__weight), so probes
        # and state dicts read like the module's
        self._attrs = [f"p_{n.replace('.', '__')}" for n in self.names]
        self._buffer_attrs = [f"b_{n.replace('.', '__')}" for n in self.buffer_names]
        if len(set(self._attrs + self._buffer_attrs)) < len(self._attrs) + len(self._buffer_attrs):
            self._attrs = [f"p{i}" for i in range(len(self.names))]  # names that collide once flattened
            self._buffer_attrs = [f"b{i}" for i in range(len(self.buffer_names))]
        for attr, name in zip(self._attrs, self.names):
            self.register_parameter(attr, nn.Parameter(params[name].detach().clone()))
        for attr, name in zip(self._buffer_attrs, self.buffer_names):
            self.register_buffer(attr, buffers[name].clone())
        base = copy.deepcopy(modules[0]).to("meta")  # the code, not the weights
        object.__setattr__(self, "_base", base)  # not a submodule: its meta tensors are not ours
        sp = get_parameterization("sp")
        setattr(self, SCALING_ATTR, Scaling([sp] * self.members, 1.0, 2, []))  # no slots: every lr factor 1

    def _state(self, member: int | None = None) -> dict[str, torch.Tensor]:
        params = {n: getattr(self, a) for a, n in zip(self._attrs, self.names)}
        params.update({n: getattr(self, a) for a, n in zip(self._buffer_attrs, self.buffer_names)})
        return params if member is None else {n: t[member] for n, t in params.items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeeze = x.dim() == 2
        if squeeze:
            if self.members != 1:
                raise ValueError(f"x must be (members={self.members}, batch, d); got {tuple(x.shape)}")
            x = x.unsqueeze(0)
        self._base.train(self.training)
        if self.members == 1:  # the module as it is: anything a module may do, it may do here
            out = functional_call(self._base, self._state(0), (x[0],)).unsqueeze(0)
        else:
            out = vmap(lambda state, xe: functional_call(self._base, state, (xe,)))(self._state(), x)
        return out.squeeze(0) if squeeze else out

    def extra_repr(self) -> str:
        return f"members={self.members}, module={type(self._base).__name__}"


def vectorization_problem(modules: Sequence[nn.Module], d: int) -> str | None:
    """Why ``torch.func`` cannot stack these modules (a forward and backward on a tiny batch), or None."""
    try:
        stack = UserStack(modules)
        p = next(stack.parameters())
        x = torch.randn(stack.members, 3, d, dtype=p.dtype, device=p.device)
        stack(x).sum().backward()
    except Exception as exc:  # noqa: BLE001 - the reason is reported, whatever it is
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    return None
