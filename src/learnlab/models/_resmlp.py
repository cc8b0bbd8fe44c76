"""A stack of E residual MLPs: read-in, L pre-activation residual blocks, read-out.

Per member, with phi the activation and N an optional LayerNorm (no affine parameters)::

    h_0     = read-in(x)                                   (the input layer)
    h_b     = h_{b-1} + branch_b(h_{b-1}),  b = 1 .. L      (the residual stream)
    branch  = W_k phi(... W_2 phi(W_1 phi(N(h))))           (block_depth linear layers)
    f(x)    = read-out(phi(N(h_L)))                         (the output layer)

Every linear layer is an abc layer of :mod:`learnlab.models._scaling` (read-in: input,
branch layers: hidden, read-out: output), so width parameterizations apply as in the MLP.
The branch multiplier beta0 * (L / L0)^(-alpha) of the depth parameterization
(:mod:`learnlab.models._depth`) sits in the multiplier of each branch's last layer, so at
``depth = base_depth`` (and ``branch_multiplier`` 1) every depth row is the plain network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from learnlab.models._depth import DepthParameterization
from learnlab.models._mlp import MLP
from learnlab.models._param import Parameterization
from learnlab.models._scaling import SCALING_ATTR, Scaling, Slot
from learnlab.models._stack import StackedModel, check_positive, layer_names

__all__ = ["ResMLP"]


class ResMLP(MLP):
    """E stacked residual MLPs d -> width -> ``depth`` blocks of ``block_depth`` layers -> outputs.

    Args:
        d: input dimension.
        width: width n of the read-in, the residual stream and every branch layer.
        depth: number of residual blocks L.
        outputs: output dimension.
        block_depth: linear layers per residual branch (k).
        layer_norm: normalise the stream (LayerNorm, no affine parameters) at each branch's
            entry and before the read-out.
        depth_param: a named depth row (``none``, ``depth_mup``, ``completep``), a
            :class:`~learnlab.models.DepthParameterization`, a dict of exponents, or one per member.
        base_depth: L0, the depth at which every depth row is the plain network.
        branch_multiplier: beta0, the branch multiplier at the base depth (one or one per member).
        activation, bias, param, base_width, gamma, gamma_lr, center, init, generators, dtype,
            device: as for :class:`~learnlab.models.MLP`.

    Layers are numbered as an MLP's: ``weights.0`` the read-in, ``weights.1`` ..
    ``weights.{L k}`` the branch layers block by block, ``weights.{L k + 1}`` the read-out.
    ``activations`` records each layer's output (``hidden.l`` for branch layers) and the
    stream after each block (``block.b``).

    Shapes:
        forward(x): x (E, batch, d) -> (E, batch, outputs); with E = 1 also (batch, d) -> (batch, outputs).
    """

    def __init__(
        self,
        d: int,
        width: int,
        depth: int,
        outputs: int = 1,
        *,
        block_depth: int = 1,
        layer_norm: bool = False,
        depth_param: str | DepthParameterization | dict | Sequence[str | DepthParameterization | dict] = "none",
        base_depth: int = 1,
        branch_multiplier: float | Sequence[float] = 1.0,
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
        StackedModel.__init__(self, activation, generators, param, gamma)
        sizes = {"d": d, "width": width, "depth": depth, "outputs": outputs, "block_depth": block_depth}
        for key, value in {**sizes, "base_depth": base_depth}.items():
            check_positive(key, value)
        self.d, self.width, self.depth, self.outputs = d, width, depth, outputs
        self.block_depth, self.base_depth, self.layer_norm = block_depth, base_depth, bool(layer_norm)
        self.base_width, self.center = base_width, bool(center)
        n_layers = depth * block_depth + 2
        dims = [d] + [width] * (n_layers - 1) + [outputs]
        roles = layer_names(n_layers)
        slots = [
            Slot(
                f"weights.{l}",
                f"biases.{l}" if bias else None,
                roles[l][0],
                l,
                dims[l],
                branch=0 < l < n_layers - 1,
                branch_out=0 < l < n_layers - 1 and l % block_depth == 0,
            )
            for l in range(n_layers)
        ]
        depth_params = self._per_member(depth_param, "depth_param")
        multipliers = self._per_member(branch_multiplier, "branch_multiplier")
        scaling = Scaling(
            self._params,
            self.ratio_of(width, base_width),
            n_layers,
            slots,
            gammas=self._gammas,
            gamma_lr=gamma_lr,
            init=init,
            depth_params=depth_params,
            depth_ratio=depth / base_depth,
            branch_multipliers=multipliers,
        )
        self._make_layers(dims, slots, scaling, bias, dtype, device)

    def _norm(self, h: torch.Tensor) -> torch.Tensor:
        return nn.functional.layer_norm(h, h.shape[-1:]) if self.layer_norm else h

    def _net(self, x: torch.Tensor, weights, biases, record: dict | None, start: int = 0) -> torch.Tensor:
        """The stacked forward pass with given weights/biases; records each layer's output and
        the stream after each block. With ``start`` = 1, ``x`` is the read-in's output."""
        if start not in (0, 1):
            raise ValueError(f"a residual MLP starts from its input or its read-in's output; got start={start}")
        last = len(weights) - 1
        names = layer_names(last + 1)

        def bias(l: int):
            return None if biases is None else biases[l]

        h = self._layer(x, 0, weights[0], bias(0)) if start == 0 else x
        if record is not None:
            record["input"] = h
        k = self.block_depth
        for block in range(self.depth):
            u = self._norm(h)
            for j in range(1, k + 1):
                l = block * k + j
                u = self._layer(self._phi(u), l, weights[l], bias(l))  # pre-activation
                if record is not None:
                    record[names[l][1]] = u
            h = h + u
            if record is not None:
                record[f"block.{block + 1}"] = h
        out = self._layer(self._phi(self._norm(h)), last, weights[last], bias(last))
        if record is not None:
            record["output"] = out
        return out

    @torch.no_grad()
    def inference(self, x: torch.Tensor) -> torch.Tensor:
        """The forward pass without autograd, for evaluation (the residual pass itself: the MLP's
        fused evaluation pass knows only a chain of layers)."""
        return self(x)

    def extra_repr(self) -> str:
        rows = sorted({p.name for p in self.params})
        depth_rows = sorted({p.name for p in self.depth_params})
        return (
            f"members={self.members}, d={self.d}, width={self.width}, depth={self.depth}, "
            f"block_depth={self.block_depth}, outputs={self.outputs}, activation={self.activation}, "
            f"param={','.join(rows)}, base_width={self.base_width}, depth_param={','.join(depth_rows)}, "
            f"base_depth={self.base_depth}, layer_norm={self.layer_norm}, center={self.center}"
        )

    @property
    def depth_params(self) -> list[DepthParameterization]:
        """The members' depth parameterizations."""
        return getattr(self, SCALING_ATTR).depth_params
