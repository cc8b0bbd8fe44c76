"""A stack of E small CNNs trained as one module, reading the parameterization table natively.

Architecture (per member): ``depth`` convolutions k x k, stride 1, "same" padding, each
with ``width`` channels and the activation, then a global average pool and a linear
readout. The E members run as one grouped convolution (groups = E), so a stack costs
one conv call per layer. Layer roles: the first convolution is the input layer
(fan_in = in_channels * k * k, independent of the width), the others hidden
(fan_in = width * k * k), the readout is the output layer (fan_in = width).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from learnlab.models._param import Parameterization
from learnlab.models._scaling import SCALING_ATTR, Scaling, Slot
from learnlab.models._stack import StackedModel, check_positive, layer_names, stacked_matmul

__all__ = ["CNN"]


class CNN(StackedModel):
    """E stacked CNNs: image (C, H, W) -> ``depth`` convs of ``width`` channels -> pool -> outputs.

    Args:
        image_shape: (channels, height, width) of one input image; inputs may also come
            flattened, d = C * H * W (as the tasks produce them).
        width: channels of every convolution, n.
        depth: number of convolutions (depth + 1 weight tensors with the readout).
        outputs: output dimension.
        kernel_size: k (odd, for "same" padding).
        activation, bias, param, base_width, gamma, gamma_lr, center, init, generators,
            dtype, device: as for :class:`~learnlab.models.MLP`.

    Shapes:
        forward(x): x (E, batch, d) or (E, batch, C, H, W) -> (E, batch, outputs); with E = 1
        also (batch, d) or (batch, C, H, W) -> (batch, outputs).
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        width: int,
        depth: int,
        outputs: int = 1,
        *,
        kernel_size: int = 3,
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
        for key, value in {"width": width, "depth": depth, "outputs": outputs}.items():
            check_positive(key, value)
        self.image_shape = tuple(int(s) for s in image_shape)
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise ValueError(f"image_shape must be (channels, height, width) of positive ints; got {image_shape!r}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (for 'same' padding); got {kernel_size}")
        self.d = self.image_shape[0] * self.image_shape[1] * self.image_shape[2]
        self.width, self.depth, self.outputs, self.kernel_size = width, depth, outputs, kernel_size
        self.base_width, self.center = base_width, bool(center)
        channels = [self.image_shape[0]] + [width] * depth
        k2 = kernel_size * kernel_size
        roles = layer_names(depth + 1)
        fan_ins = [c * k2 for c in channels[:depth]] + [width]
        slots = [
            Slot(f"weights.{l}", f"biases.{l}" if bias else None, roles[l][0], l, fan_ins[l]) for l in range(depth + 1)
        ]
        scaling = Scaling(
            self._params,
            self.ratio_of(width, base_width),
            depth + 1,
            slots,
            gammas=self._gammas,
            gamma_lr=gamma_lr,
            init=init,
        )
        setattr(self, SCALING_ATTR, scaling)
        shapes = [(width, channels[l], kernel_size, kernel_size) for l in range(depth)] + [(width, outputs)]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList() if bias else None
        for l, shape in enumerate(shapes):  # per layer: its weight, then its bias
            ndim = 4 if l < depth else 3  # buffers broadcast over (B, E, C, H, W) or (E, B, out)
            w = self.draw(shape, scaling.init_std(slots[l]), dtype, device, uniform=scaling.uniform)
            self.weights.append(nn.Parameter(w))
            mult = scaling.weight_multiplier(slots[l])
            self.register_buffer(f"mult_{l}", self.member_buffer(mult, ndim, dtype, device))
            if self.biases is not None:
                fan_out = shape[0] if l < depth else outputs
                self.register_buffer(
                    f"bias_mult_{l}", self.member_buffer(scaling.bias_multiplier(slots[l]), ndim, dtype, device)
                )
                bshape = (fan_out, 1, 1) if l < depth else (1, fan_out)
                b = self.draw(bshape, scaling.bias_std(slots[l]), dtype, device, uniform=scaling.uniform)
                self.biases.append(nn.Parameter(b))
        self.finish_init()

    def _net(self, x: torch.Tensor, weights, biases, record: dict | None) -> torch.Tensor:
        """x: (E, B, C, H, W) -> (E, B, outputs); grouped convolutions over the E members."""
        members, batch = x.shape[0], x.shape[1]
        h = x.transpose(0, 1)  # (B, E, C, H, W)
        names = layer_names(self.depth + 1)
        for l in range(self.depth):
            w = weights[l]  # (E, C_out, C_in, k, k)
            flat = h.reshape(batch, -1, *h.shape[-2:])  # (B, E * C_in, H, W)
            out = nn.functional.conv2d(flat, w.reshape(-1, *w.shape[2:]), padding=self.kernel_size // 2, groups=members)
            h = out.view(batch, members, w.shape[1], *out.shape[-2:]) * getattr(self, f"mult_{l}")
            if biases is not None:
                h = h + biases[l] * getattr(self, f"bias_mult_{l}")
            if record is not None:
                record[names[l][1]] = h
            h = self._phi(h)
        pooled = h.mean(dim=(-2, -1)).transpose(0, 1)  # (E, B, width)
        out = stacked_matmul(pooled, weights[-1]) * getattr(self, f"mult_{self.depth}")
        if biases is not None:
            out = out + biases[-1] * getattr(self, f"bias_mult_{self.depth}")
        if record is not None:
            record["output"] = out
        return out

    def _stack_input(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        squeeze = x.dim() in (2, 4)
        if squeeze:
            if self.members != 1:
                raise ValueError(f"x must have a leading members={self.members} axis; got {tuple(x.shape)}")
            x = x.unsqueeze(0)
        if x.dim() == 3 and x.shape[-1] == self.d:
            x = x.reshape(*x.shape[:2], *self.image_shape)
        if x.dim() != 5 or tuple(x.shape[2:]) != self.image_shape:
            raise ValueError(
                f"x must be (E, batch, {self.d}) or (E, batch, {', '.join(map(str, self.image_shape))}) "
                f"(E = 1 may be dropped); got {tuple(x.shape)}"
            )
        return x, squeeze

    def extra_repr(self) -> str:
        names = sorted({p.name for p in self.params})
        return (
            f"members={self.members}, image_shape={self.image_shape}, width={self.width}, "
            f"depth={self.depth}, kernel_size={self.kernel_size}, outputs={self.outputs}, "
            f"activation={self.activation}, param={','.join(names)}, base_width={self.base_width}, "
            f"center={self.center}"
        )
