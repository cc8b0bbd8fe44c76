"""A stack of E MLPs trained as one module (a single model is a stack of one).

Every member has its own weights, multipliers and initial draw; the forward pass is
one batched matmul per layer, x: (E, batch, d) -> (E, batch, outputs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from learnlab.models._param import Parameterization
from learnlab.models._scaling import SCALING_ATTR, Scaling, Slot
from learnlab.models._stack import ACTIVATIONS, StackedModel, check_positive, layer_names, stacked_matmul

__all__ = ["MLP", "ACTIVATIONS", "mlp_scaling"]


def mlp_scaling(
    d: int,
    width: int,
    depth: int,
    outputs: int,
    *,
    bias: bool,
    params: list[Parameterization],
    gammas: list[float],
    base_width: int,
    gamma_lr: str,
    init: str,
) -> Scaling:
    """The :class:`Scaling` of an MLP (one slot per weight matrix), without drawing its weights:
    ``learnlab.theory`` reads a configuration's constants from it."""
    dims = [d] + [width] * depth + [outputs]
    roles = layer_names(depth + 1)
    slots = [Slot(f"weights.{l}", f"biases.{l}" if bias else None, roles[l][0], l, dims[l]) for l in range(depth + 1)]
    ratio = StackedModel.ratio_of(width, base_width)
    return Scaling(params, ratio, depth + 1, slots, gammas=gammas, gamma_lr=gamma_lr, init=init)


class MLP(StackedModel):
    """E stacked MLPs d -> width (x depth) -> outputs, in an abc-parameterization.

    Layer l computes h_l = m_l * (x_{l-1} W_l) + m_l^bias * b_l with W_l = s_l * D(z_l) and
    b_l = s_l^bias * D(z_l^bias), z ~ N(0, 1) drawn from the member's generator layer by
    layer (weight, then bias), D the init scheme's map (U(-1, 1) for ``torch``), m_l and s_l
    from the parameterization (see :mod:`learnlab.models._scaling`): models in different
    parameterizations or schemes built from equal generators rescale the same z. With ``center`` the
    output is f_theta(x) - f_theta0(x) (Chizat, Oyallon & Bach 2019): a frozen copy of the
    initial parameters is kept as buffers ``init_weights_l`` / ``init_biases_l``.

    Args:
        d: input dimension.
        width: hidden width n.
        depth: number of hidden layers (depth + 1 weight matrices).
        outputs: output dimension.
        activation: one of ``ACTIVATIONS``.
        bias: whether layers have biases (``torch`` init: U(+-1/sqrt(fan_in)); else zero).
        param: a named row (``"sp"``, ``"mup"``, ...), a :class:`Parameterization`, a dict
            of exponents, or one of these per member.
        base_width: n0, the width at which every parameterization is the standard model.
        gamma: richness gamma (output multiplier / gamma), one or one per member.
        gamma_lr: rule for the base lr under gamma (``piecewise``: eta*gamma for gamma >= 1,
            eta*gamma^2 below; ``gamma``, ``gamma2``, ``none``).
        center: output f(x) - f_0(x), zero at initialisation.
        init: ``torch`` (nn.Linear's default), ``lecun`` or ``he`` (see ``INITS``).
        generators: one ``torch.Generator`` per member for its initial draw (CPU; the
            draw is moved to ``device`` so it does not depend on the device).
        dtype, device: of the parameters.

    Shapes:
        forward(x): x (E, batch, d) -> (E, batch, outputs); with E = 1 a 2-d x
        (batch, d) gives (batch, outputs), like an ordinary ``nn.Module``.
    """

    def __init__(
        self,
        d: int,
        width: int,
        depth: int,
        outputs: int = 1,
        *,
        activation: str = "relu",
        bias: bool = True,
        param: str | Parameterization | dict | Sequence[str | Parameterization | dict] = "sp",
        base_width: int = 1,
        gamma: float | Sequence[float] = 1.0,
        gamma_lr: str = "piecewise",
        center: bool = False,
        init: str = "torch",
        generators: Sequence[torch.Generator] | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        super().__init__(activation, generators, param, gamma)
        for key, value in {"d": d, "width": width, "depth": depth, "outputs": outputs}.items():
            check_positive(key, value)
        self.d, self.width, self.depth, self.outputs = d, width, depth, outputs
        self.base_width, self.center = base_width, bool(center)
        scaling = mlp_scaling(
            d,
            width,
            depth,
            outputs,
            bias=bias,
            params=self._params,
            gammas=self._gammas,
            base_width=base_width,
            gamma_lr=gamma_lr,
            init=init,
        )
        self._make_layers([d] + [width] * depth + [outputs], scaling.slots, scaling, bias, dtype, device)

    def _make_layers(self, dims: list[int], slots: list[Slot], scaling: Scaling, bias: bool, dtype, device) -> None:
        """Draw layer l's weight (dims[l] x dims[l + 1]) and bias, in order, with their multipliers."""
        setattr(self, SCALING_ATTR, scaling)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList() if bias else None
        for l, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:])):  # per layer: its weight, then its bias
            slot = slots[l]
            w = self.draw((fan_in, fan_out), scaling.init_std(slot), dtype, device, uniform=scaling.uniform)
            self.weights.append(nn.Parameter(w))
            self.register_buffer(f"mult_{l}", self.member_buffer(scaling.weight_multiplier(slot), 3, dtype, device))
            if self.biases is not None:
                self.register_buffer(
                    f"bias_mult_{l}", self.member_buffer(scaling.bias_multiplier(slot), 3, dtype, device)
                )
                b = self.draw((1, fan_out), scaling.bias_std(slot), dtype, device, uniform=scaling.uniform)
                self.biases.append(nn.Parameter(b))
        self.finish_init()
        self._unit = self._unit_multipliers()

    def _unit_multipliers(self) -> tuple[bool, ...]:
        """Per layer: are the weight (and bias) multipliers exactly 1 for every member?

        Then ``_net`` skips the multiplications: x * 1 == x exactly, so the result is bit for
        bit the same, and a training step saves two full passes over each activation
        (the standard parameterization has every multiplier 1).
        """
        unit = []
        for l in range(len(self.weights)):
            mults = [getattr(self, f"mult_{l}")]
            if self.biases is not None:
                mults.append(getattr(self, f"bias_mult_{l}"))
            unit.append(all(bool((m == 1).all()) for m in mults))
        return tuple(unit)

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._unit = self._unit_multipliers()  # loaded multipliers may differ

    def _net(self, x: torch.Tensor, weights, biases, record: dict | None, start: int = 0) -> torch.Tensor:
        """The stacked forward pass with given weights/biases; records each layer's output.

        With ``start`` = l > 0, ``x`` is layer l - 1's output (before its activation) and
        the pass goes on from there (``learnlab.lr`` evaluates the first layer once for
        many parameter values).
        """
        last = len(weights) - 1
        names = layer_names(last + 1)
        h = x if start == 0 else self._phi(x)  # not in place: x is the caller's
        for l in range(start, last + 1):
            h = self._layer(h, l, weights[l], None if biases is None else biases[l])
            if record is not None:
                record[names[l][1]] = h
            if l < last:
                # nothing else holds h when nothing records it, so ReLU may overwrite it
                h = torch.relu_(h) if record is None and self._phi is torch.relu else self._phi(h)
        return h

    def _layer(self, h: torch.Tensor, l: int, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        """Layer l's output before its activation: (h W) * m + b * m_b (affine in w and b jointly)."""
        unit = getattr(self, "_unit", None) or (False,) * len(self.weights)  # models pickled before it
        if unit[l]:  # every multiplier is 1: hW + b, the same bits as the general form
            out = stacked_matmul(h, w)  # a fresh tensor that backward does not need
            return out if b is None else out.add_(b)
        if b is not None:  # b * m_b + (h W) * m in one pass
            return torch.addcmul(b * getattr(self, f"bias_mult_{l}"), stacked_matmul(h, w), getattr(self, f"mult_{l}"))
        return stacked_matmul(h, w) * getattr(self, f"mult_{l}")

    @torch.no_grad()
    def inference(self, x: torch.Tensor) -> torch.Tensor:
        """The forward pass for evaluation (no autograd): one ``baddbmm`` per layer with the
        multipliers folded into the weights and biases (the bias add inside the GEMM) and the
        activation in place. Equal to ``forward`` up to float rounding (the product is scaled
        before the sum instead of after: ~1e-7 relative in float32); a member's values do not
        depend on the stack's size (a single output column is a row sum, as in ``forward``).
        """
        if self.center:
            return self(x)
        x, squeeze = self._stack_input(x)
        h, last = x, len(self.weights) - 1
        for l in range(last + 1):
            w = self.weights[l]
            if not self._unit[l]:
                w = w * getattr(self, f"mult_{l}")
            b = None
            if self.biases is not None:
                b = self.biases[l] if self._unit[l] else self.biases[l] * getattr(self, f"bias_mult_{l}")
            if w.shape[-1] == 1:  # one column: stacked_matmul's row sum of h * w^T (the same bits for every
                # stack size), the product in place in h, this pass's own (a large temporary is page-faulted)
                h = (h.mul_(w.transpose(1, 2)) if l > 0 else h * w.transpose(1, 2)).sum(-1, keepdim=True)
                h = h if b is None else h.add_(b)
            else:
                h = torch.bmm(h, w) if b is None else torch.baddbmm(b, h, w)
            if l < last:
                h = torch.relu_(h) if self._phi is torch.relu else self._phi(h)
        return h.squeeze(0) if squeeze else h

    def _stack_input(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        if x.dim() == 2:
            if self.members != 1:
                raise ValueError(f"x must be (members={self.members}, batch, d); got {tuple(x.shape)}")
            return x.unsqueeze(0), True
        if x.dim() != 3:
            raise ValueError(f"x must be (members, batch, d) or (batch, d); got {tuple(x.shape)}")
        return x, False

    def extra_repr(self) -> str:
        names = sorted({p.name for p in self.params})
        return (
            f"members={self.members}, d={self.d}, width={self.width}, depth={self.depth}, "
            f"outputs={self.outputs}, activation={self.activation}, param={','.join(names)}, "
            f"base_width={self.base_width}, center={self.center}"
        )
