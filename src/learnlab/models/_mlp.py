"""A stack of E MLPs trained as one module (a single model is a stack of one).

Every member has its own weights, multipliers and initial draw; the forward pass is
one batched matmul per layer, x: (E, batch, d) -> (E, batch, outputs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from learnlab.models._param import Parameterization, gain, get_parameterization

__all__ = ["MLP", "ACTIVATIONS"]

ACTIVATIONS = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "gelu": nn.functional.gelu,
    "silu": nn.functional.silu,
    "linear": lambda h: h,
}


class MLP(nn.Module):
    """E stacked MLPs d -> width (x depth) -> outputs, in an abc-parameterization.

    Args:
        d: input dimension.
        width: hidden width n.
        depth: number of hidden layers (depth + 1 weight matrices).
        outputs: output dimension.
        activation: one of ``ACTIVATIONS``.
        bias: whether layers have biases (initialised to zero).
        param: a named row (``"sp"``, ``"mup"``, ...), a :class:`Parameterization`,
            or one per member.
        base_width: n0, the width at which every parameterization is the standard model.
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
        param: str | Parameterization | Sequence[str | Parameterization] = "sp",
        base_width: int = 1,
        generators: Sequence[torch.Generator] | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
        generators = list(generators) if generators is not None else [torch.Generator().manual_seed(0)]
        members = len(generators)
        params = [param] * members if isinstance(param, (str, Parameterization)) else list(param)
        if len(params) != members:
            raise ValueError(f"got {len(params)} parameterizations for {members} members")
        self.params = [get_parameterization(p) for p in params]
        self.d, self.width, self.depth, self.outputs = d, width, depth, outputs
        self.activation, self.base_width, self.members = activation, base_width, members
        self._phi = ACTIVATIONS[activation]

        dims = [d] + [width] * depth + [outputs]
        ratio = width / base_width  # n / n0
        rows = [p.per_layer(depth + 1) for p in self.params]  # rows[e][l] = {a, b, c, c_adam}
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList() if bias else None
        for l, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:])):
            base_fan_in = fan_in if l == 0 else base_width  # fan-in at base width
            sigma2 = 1.0 if l == 0 else gain(activation)
            std = torch.tensor([sigma2**0.5 / base_fan_in**0.5 * ratio ** (-r[l]["b"]) for r in rows])
            draws = torch.stack([torch.randn(fan_in, fan_out, generator=g) for g in generators])
            w = (draws.to(torch.float64) * std.view(-1, 1, 1).to(torch.float64)).to(dtype)
            self.weights.append(nn.Parameter(w.to(device)))
            mult = torch.tensor([ratio ** (-r[l]["a"]) for r in rows], dtype=dtype)
            self.register_buffer(f"mult_{l}", mult.view(-1, 1, 1).to(device))
            if bias:
                bias_row = 0 if l < depth else None  # hidden biases: input exponents; output: 0
                bmult = torch.tensor(
                    [ratio ** (-r[bias_row]["a"]) if bias_row is not None else 1.0 for r in rows],
                    dtype=dtype,
                )
                self.register_buffer(f"bias_mult_{l}", bmult.view(-1, 1, 1).to(device))
                self.biases.append(nn.Parameter(torch.zeros(members, 1, fan_out, dtype=dtype, device=device)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeeze = x.dim() == 2
        if squeeze:
            if self.members != 1:
                raise ValueError(f"x must be (members={self.members}, batch, d); got {tuple(x.shape)}")
            x = x.unsqueeze(0)
        h = x
        last = len(self.weights) - 1
        for l, w in enumerate(self.weights):
            h = torch.bmm(h, w) * getattr(self, f"mult_{l}")
            if self.biases is not None:
                h = h + self.biases[l] * getattr(self, f"bias_mult_{l}")
            if l < last:
                h = self._phi(h)
        return h.squeeze(0) if squeeze else h

    def lr_exponents(self, optimizer: str) -> list[tuple[nn.Parameter, str, torch.Tensor]]:
        """(parameter, name, c per member) for every parameter, for the optimizer builder."""
        key = "c_adam" if optimizer in ("adam", "adamw") else "c"
        depth = self.depth
        rows = [p.per_layer(depth + 1) for p in self.params]
        out = []
        for l, w in enumerate(self.weights):
            out.append((w, f"weights.{l}", torch.tensor([r[l][key] for r in rows], dtype=torch.float64)))
            if self.biases is not None:
                c = [r[0][key] if l < depth else 0.0 for r in rows]
                out.append((self.biases[l], f"biases.{l}", torch.tensor(c, dtype=torch.float64)))
        return out

    def extra_repr(self) -> str:
        names = sorted({p.name for p in self.params})
        return (f"members={self.members}, d={self.d}, width={self.width}, depth={self.depth}, "
                f"outputs={self.outputs}, activation={self.activation}, param={','.join(names)}, "
                f"base_width={self.base_width}")
