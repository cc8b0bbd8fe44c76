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

__all__ = ["UserStack", "as_stack", "build_user_members", "vectorization_problem"]


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
    """E user modules as one :class:`~learnlab.models.Stack`: x (E, batch, d) -> (E, batch, k).

    With several modules, every parameter and buffer is stacked with a leading member
    axis (``torch.func.stack_module_state``) and all members run in one ``vmap``-ed
    ``functional_call``. Parameter ``read_in.weight`` of the module is registered as
    ``p_read_in__weight`` (buffers ``b_...``); :meth:`member_parameters` gives the
    module's own names. With one module, that module itself is held (as ``module``) and
    trained in place: an optimizer built on its parameters drives it, and anything a
    module may do (in-place buffer updates, data-dependent control flow) it may do here.
    With E = 1 a 2-d x (batch, d) gives (batch, k).
    """

    _base: nn.Module  # the template module of a vmapped stack (set with object.__setattr__)

    def __init__(self, modules: Sequence[nn.Module]):
        super().__init__()
        modules = list(modules)
        if not modules:
            raise ValueError("UserStack needs at least one module")
        self.members = len(modules)
        if self.members == 1:
            self.module = modules[0]
            self.names = [n for n, _ in self.module.named_parameters()]
            self.buffer_names = [n for n, _ in self.module.named_buffers()]
        else:
            self._stack(modules)
        sp = get_parameterization("sp")
        setattr(self, SCALING_ATTR, Scaling([sp] * self.members, 1.0, 2, []))  # no slots: every lr factor 1

    def _stack(self, modules: list[nn.Module]) -> None:
        params, buffers = stack_module_state(modules)
        self.names, self.buffer_names = list(params), list(buffers)
        # attribute names keep the module's own (read_in.weight -> p_read_in__weight), so state
        # dicts read like the module's
        attrs = [f"p_{n.replace('.', '__')}" for n in self.names]
        buffer_attrs = [f"b_{n.replace('.', '__')}" for n in self.buffer_names]
        if len(set(attrs + buffer_attrs)) < len(attrs) + len(buffer_attrs):
            attrs = [f"p{i}" for i in range(len(self.names))]  # names that collide once flattened
            buffer_attrs = [f"b{i}" for i in range(len(self.buffer_names))]
        self._attrs, self._buffer_attrs = attrs, buffer_attrs
        for attr, name in zip(attrs, self.names):
            self.register_parameter(attr, nn.Parameter(params[name].detach().clone()))
        for attr, name in zip(buffer_attrs, self.buffer_names):
            self.register_buffer(attr, buffers[name].clone())
        base = copy.deepcopy(modules[0]).to("meta")  # the code, not the weights
        object.__setattr__(self, "_base", base)  # not a submodule: its meta tensors are not ours

    @property
    def owns_module(self) -> bool:
        """Whether this stack holds one module itself (trained in place)."""
        return "module" in self._modules

    # ---- the Stack protocol ----------------------------------------------------------
    def member_parameters(self) -> list[tuple[str, nn.Parameter]]:
        if self.owns_module:
            return list(self.module.named_parameters())
        return [(n, getattr(self, a)) for a, n in zip(self._attrs, self.names)]

    def member_buffers(self) -> list[tuple[str, torch.Tensor]]:
        if self.owns_module:
            return list(self.module.named_buffers())
        return [(n, getattr(self, a)) for a, n in zip(self._buffer_attrs, self.buffer_names)]

    def per_member(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.unsqueeze(0) if self.owns_module else tensor

    def functional(self, state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        if self.owns_module:  # state: (1, ...) tensors
            return functional_call(self.module, {n: t[0] for n, t in state.items()}, (x[0],)).unsqueeze(0)
        full = {**dict(self.member_parameters()), **dict(self.member_buffers()), **state}
        self._base.train(self.training)
        return vmap(lambda member, xe: functional_call(self._base, member, (xe,)))(full, x)

    def activations(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The output and, for a module held whole, the output of every leaf submodule (``0``,
        ``1``, ... for an ``nn.Sequential``), (E, ...) each; a vmapped stack records only the output."""
        x, squeeze = self._stack_input(x)
        if not self.owns_module:
            out = self(x)
            return (out.squeeze(0) if squeeze else out), {}
        from learnlab.models._coord import forward_with_outputs

        leaves = [(n, m) for n, m in self.module.named_modules() if n and not any(True for _ in m.children())]
        out, record = forward_with_outputs(self.module, x[0], leaves)
        record = {n: h.unsqueeze(0) for n, h in record.items()}
        return (out if squeeze else out.unsqueeze(0)), record

    def member_state_dict(self, row: int) -> dict[str, torch.Tensor]:
        """Member ``row``'s state in the module's own format (``module.load_state_dict`` takes it)."""
        if self.owns_module:
            return {n: t.detach().clone() for n, t in self.module.state_dict().items()}
        tensors = [*self.member_parameters(), *self.member_buffers()]
        return {n: t[row].detach().clone() for n, t in tensors}

    # ---- nn.Module -------------------------------------------------------------------
    def _stack_input(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        if x.dim() == 2:
            if self.members != 1:
                raise ValueError(f"x must be (members={self.members}, batch, d); got {tuple(x.shape)}")
            return x.unsqueeze(0), True
        return x, False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, squeeze = self._stack_input(x)
        if self.owns_module:  # the module as it is
            out = self.module(x[0]).unsqueeze(0)
        else:
            out = self.functional({}, x)
        return out.squeeze(0) if squeeze else out

    def inference(self, x: torch.Tensor) -> torch.Tensor:
        """The forward of an evaluation pass, x (E, n, d) -> (E, n, k), as :meth:`forward`: a module
        held whole is called directly (this wrapper's own module call and checks were ~3% of a
        512-row pass of the README tour's network)."""
        module = self._modules.get("module")
        if module is not None:
            return module(x[0]).unsqueeze(0)
        return self.functional({}, x)

    def extra_repr(self) -> str:
        module = self.module if self.owns_module else self._base
        return f"members={self.members}, module={type(module).__name__}"


def as_stack(model: nn.Module) -> nn.Module:
    """``model`` as a :class:`~learnlab.models.Stack`: learnlab's models and user stacks as
    they are; any other module wrapped (not copied) in a :class:`UserStack` of one."""
    from learnlab.models._stack import StackedModel

    if isinstance(model, (StackedModel, UserStack)):
        return model
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    return UserStack([model])


def vectorization_problem(modules: Sequence[nn.Module], d: int) -> str | None:
    """Why ``torch.func`` cannot stack these modules (a forward and backward on a tiny batch), or None."""
    try:
        stack = UserStack(modules)
        p = next(stack.parameters())
        x = torch.randn(stack.members, 3, d, generator=torch.Generator().manual_seed(0), dtype=p.dtype)
        x = x.to(p.device)  # the global RNG is left alone
        stack(x).sum().backward()
    except Exception as exc:  # noqa: BLE001 - the reason is reported, whatever it is
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    return None
