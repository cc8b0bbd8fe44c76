"""What stacked learnlab models share: members, initial draws, multipliers, centering.

A stacked model holds E members along dim 0 of every parameter and buffer (so
``select_members`` can drop members of any of them). Subclasses build their weights
with :meth:`StackedModel.draw`, register multiplier buffers with
:meth:`StackedModel.member_buffer`, and implement ``_net(x, weights, biases, record)``
and ``_stack_input(x)``.

:class:`Stack` is what the training loop and its probes see of any model: E members
answering x (E, batch, d) -> (E, batch, k), and per-member views of their parameters.
learnlab's ``MLP`` and ``CNN`` are stacks; any other module is wrapped by
:func:`learnlab.models.as_stack` (a :class:`~learnlab.models.UserStack`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn
from torch.func import functional_call

from learnlab.models._depth import DepthParameterization
from learnlab.models._param import Parameterization, get_parameterization
from learnlab.models._scaling import SCALING_ATTR
from learnlab.models._spec import ACTIVATION_NAMES

__all__ = ["Stack", "StackedModel", "layer_names", "check_positive", "stacked_matmul", "ACTIVATIONS"]


@runtime_checkable
class Stack(Protocol):
    """E members trained as one module: x (E, batch, d) -> (E, batch, k).

    Names are each member's own (``weights.0`` for learnlab's MLP, ``0.weight`` for a
    user's ``nn.Sequential``); :meth:`per_member` views any tensor shaped like one of
    them (the parameter, its gradient, its optimizer state) with the member axis first.

    Attributes:
        members: E.
    """

    members: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def member_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """(name, parameter) of every parameter, in the module's order."""
        ...

    def member_buffers(self) -> list[tuple[str, torch.Tensor]]:
        """(name, buffer) of every buffer."""
        ...

    def per_member(self, tensor: torch.Tensor) -> torch.Tensor:
        """A tensor shaped like a parameter or buffer, as (E, ...)."""
        ...

    def functional(self, state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The forward pass with some parameters/buffers replaced: ``state`` maps names to
        (E', ...) tensors (every name given with the same E'; the rest are the stack's own
        when E' = E), x (E', batch, d) -> (E', batch, k)."""
        ...

    def activations(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The output and each layer's output, (E, ...) by layer name."""
        ...

    def member_state_dict(self, row: int) -> dict[str, torch.Tensor]:
        """Member ``row``'s own state (to save it, or load it into a model of one member)."""
        ...


def _identity(h: torch.Tensor) -> torch.Tensor:
    return h


ACTIVATIONS = {  # module-level functions, so models pickle
    "relu": torch.relu,
    "tanh": torch.tanh,
    "gelu": nn.functional.gelu,
    "silu": nn.functional.silu,
    "linear": _identity,
    "erf": torch.special.erf,  # the NNGP/NTK have closed forms (Williams 1997; learnlab.theory)
}
assert tuple(ACTIVATIONS) == ACTIVATION_NAMES  # the names specs are validated against (without torch)


def stacked_matmul(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """h (E, n, k) @ w (E, k, m), bit for bit the same for every stack size E.

    A single output column (m = 1) is the sum over k of h * w^T: torch.bmm takes another BLAS
    path for it with E = 1 (gemv) than with E > 1 (gemm), so a member's outputs, gradients and
    whole history would depend on how many runs it is stacked with, and a padded gemm with two
    columns runs at a few GFLOP/s. The elementwise product and the row sum give each row the
    same bits for every E and every batch (tested), and cost two passes over h, forward and
    backward.
    """
    if w.shape[-1] == 1:
        return (h * w.transpose(1, 2)).sum(-1, keepdim=True)
    return torch.bmm(h, w)


def check_positive(key: str, value: int) -> None:
    """Raise ValueError unless ``value`` is an int >= 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{key} must be a positive integer; got {value!r}")


def layer_names(n_layers: int) -> list[tuple[str, str]]:
    """(role, name) of each layer: ``input``, ``hidden.1`` ... ``hidden.{L-1}``, ``output``."""
    return [("input", "input")] + [("hidden", f"hidden.{l}") for l in range(1, n_layers - 1)] + [("output", "output")]


class StackedModel(nn.Module):
    """Base of E stacked members in an abc-parameterization (see ``MLP``, ``CNN``)."""

    weights: nn.ParameterList
    biases: nn.ParameterList | None
    center: bool

    def __init__(self, activation: str, generators, param, gamma):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
        self.activation, self._phi = activation, ACTIVATIONS[activation]
        generators = list(generators) if generators is not None else [torch.Generator().manual_seed(0)]
        self.members = len(generators)
        self._params = [get_parameterization(p) for p in self._per_member(param, "param")]
        gammas = self._per_member(gamma, "gamma")
        self._gammas = [float(g) for g in gammas]
        self._generators = generators

    def _per_member(self, value, key: str) -> list:
        single = isinstance(value, (str, Parameterization, DepthParameterization, dict, int, float))
        values = [value] * self.members if single else list(value)
        if len(values) != self.members:
            raise ValueError(
                f"got {len(values)} values of {key} for {self.members} members; give one, or one per member"
            )
        return values

    @property
    def params(self) -> list[Parameterization]:
        """The members' parameterizations."""
        return getattr(self, SCALING_ATTR).params

    @staticmethod
    def ratio_of(width: int, base_width: int) -> float:
        """n / n0, after checking base_width >= 1."""
        if not isinstance(base_width, int) or base_width < 1:
            raise ValueError(
                f"base_width must be an integer >= 1 (the width at which every parameterization is "
                f"the standard model); got {base_width!r}"
            )
        return width / base_width

    def draw(self, shape: tuple[int, ...], std: torch.Tensor, dtype, device, *, uniform: bool = False) -> torch.Tensor:
        """std_e * D_e of ``shape`` from member e's generator; (E, *shape).

        D = z ~ N(0, 1), or with ``uniform`` u = erf(z / sqrt 2) ~ U(-1, 1): every init scheme
        maps the same draw z. The product is formed in float64 and rounded once to ``dtype``.
        A zero std gives exact zeros (the draw is still taken, so later draws do not move).
        """
        draws = [torch.randn(*shape, generator=g) for g in self._generators]  # float32, on the CPU
        z = (draws[0].unsqueeze(0) if len(draws) == 1 else torch.stack(draws)).to(torch.float64)
        if uniform:
            z = torch.special.erf(z * 0.5**0.5)
        scale = std.to(torch.float64).view(-1, *([1] * len(shape)))
        out = z.mul_(scale)  # z is this function's own float64 copy
        if bool((scale == 0).any()):
            out = torch.where(scale == 0, 0.0, out)  # +0.0, whatever the sign of z
        return out.to(dtype=dtype, device=device)

    def member_buffer(self, values: torch.Tensor, ndim: int, dtype, device) -> torch.Tensor:
        """(E,) values as an (E, 1, ..., 1) tensor of ``ndim`` dims."""
        return values.to(dtype).view(-1, *([1] * (ndim - 1))).to(device)

    def finish_init(self) -> None:
        """Forget the construction-time state; snapshot the initial parameters if centered."""
        del self._generators, self._params, self._gammas  # the Scaling holds params and gammas
        if self.center:
            for l, w in enumerate(self.weights):
                self.register_buffer(f"init_weights_{l}", w.detach().clone())
            for l, b in enumerate(self.biases or []):
                self.register_buffer(f"init_biases_{l}", b.detach().clone())

    def _initial(self) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        weights = [getattr(self, f"init_weights_{l}") for l in range(len(self.weights))]
        biases = None if self.biases is None else [getattr(self, f"init_biases_{l}") for l in range(len(self.biases))]
        return weights, biases

    def _outputs(self, x: torch.Tensor, record: dict | None) -> torch.Tensor:
        out = self._net(x, self.weights, self.biases, record)
        if self.center:  # f(x) - f_0(x): the snapshot is buffers, so no gradient flows into it
            out = out - self._net(x, *self._initial(), None)
            if record is not None:
                record["output"] = out
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, squeeze = self._stack_input(x)
        out = self._outputs(x, None)
        return out.squeeze(0) if squeeze else out

    def activations(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The output and every layer's output h_l (after its multiplier and bias), by layer name.

        Names are ``input``, ``hidden.1`` ... and ``output`` (centered if ``center``).
        """
        x, squeeze = self._stack_input(x)
        record: dict[str, torch.Tensor] = {}
        out = self._outputs(x, record)
        return (out.squeeze(0) if squeeze else out), record

    # ---- the Stack protocol: every parameter and buffer already has the member axis ------
    def member_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return list(self.named_parameters())

    def member_buffers(self) -> list[tuple[str, torch.Tensor]]:
        return list(self.named_buffers())

    def per_member(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def functional(self, state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(self, state, (x,))

    def member_state_dict(self, row: int) -> dict[str, torch.Tensor]:
        return {n: (t[row : row + 1] if t.dim() > 0 else t).detach().clone() for n, t in self.state_dict().items()}

    def _net(self, x, weights, biases, record):  # pragma: no cover - abstract
        raise NotImplementedError

    def _stack_input(self, x):  # pragma: no cover - abstract
        raise NotImplementedError
