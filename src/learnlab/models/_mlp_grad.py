"""A training step's loss and gradients for an ``MLP`` or ``ResMLP`` stack, without autograd.

``mse_grads(model, x, y)`` returns the (E,) batch losses ``mse(model(x), y)`` and sets every
parameter's ``.grad`` to what ``losses.sum().backward()`` would leave after
``zero_grad(set_to_none=True)``: the same values, bit for bit, because each gradient is computed
by the very operations autograd's derivative formulas run (``threshold_backward`` of the ReLU's
result, ``grad.bmm(w.transpose(1, 2))`` and ``h.transpose(1, 2).bmm(grad)``, ``sum_to`` of a
broadcast bias, ``native_layer_norm_backward``, ``1/N`` times ``2 (f - y)`` for the mean
square; ``loss_grads`` takes another loss's closed form of the same kind), on the same
operands; where autograd adds two gradients (the residual stream's skip and branch) the sum
of two floats does not depend on their order. What it saves is autograd's bookkeeping and
allocations: no graph, no saved copies, activation masks applied in place to the fresh products
of the backward pass. The training loop uses it when :func:`supports` says so and takes autograd
otherwise (``tests/test_models_mlp_grad.py`` checks the equality for
every parameterization, activation, output count, bias, centering, layer norm and dtype).
"""

from __future__ import annotations

import math
from typing import cast

import torch

from learnlab.models._mlp import MLP
from learnlab.models._resmlp import ResMLP
from learnlab.models._stack import ACTIVATIONS

__all__ = ["mse_grads", "loss_grads", "supports", "FUSED_ACTIVATIONS"]

_ERF_SCALE = 2.0 / math.sqrt(math.pi)  # autograd's d erf(x)/dx = 2/sqrt(pi) exp(-x^2)
_LAYER_NORM_EPS = 1e-5  # nn.functional.layer_norm's default, which ResMLP uses


# activation backward: (grad of the output, input, output) -> grad of the input; g may be overwritten
def _relu_back(g: torch.Tensor, pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
    return torch.ops.aten.threshold_backward.grad_input(g, post, 0, grad_input=g)  # in place on g


def _tanh_back(g: torch.Tensor, pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
    return torch.ops.aten.tanh_backward(g, post)


def _gelu_back(g: torch.Tensor, pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
    return torch.ops.aten.gelu_backward(g, pre)


def _silu_back(g: torch.Tensor, pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
    return torch.ops.aten.silu_backward(g, pre)


def _erf_back(g: torch.Tensor, pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
    return torch.exp(-(pre.pow(2))).mul_(_ERF_SCALE).mul_(g)


def _linear_back(g: torch.Tensor, pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
    return g


_BACKWARD = {
    "relu": _relu_back,
    "tanh": _tanh_back,
    "gelu": _gelu_back,
    "silu": _silu_back,
    "erf": _erf_back,
    "linear": _linear_back,
}
FUSED_ACTIVATIONS = tuple(_BACKWARD)
assert set(FUSED_ACTIVATIONS) <= set(ACTIVATIONS)


# the forward passes mse_grads mirrors, as defined (a class or a model whose methods were replaced
# since, say by a test's monkeypatch, is left to autograd, which runs the replacement)
_PASSES: dict[type, dict[str, object]] = {
    cls: {name: getattr(cls, name) for name in ("forward", "_outputs", "_net", "_layer", "_stack_input")}
    for cls in (MLP, ResMLP)
}
_RESIDUAL_NORM = ResMLP._norm


def supports(model: torch.nn.Module) -> bool:
    """Whether :func:`mse_grads` computes this model's gradients: a learnlab ``MLP`` or ``ResMLP``
    itself (not a subclass with a forward pass of its own, none of its methods replaced), every
    parameter trained, an activation of ``FUSED_ACTIVATIONS``, and no hooks that autograd would run."""
    methods = _PASSES.get(type(model))
    if methods is None or model.activation not in _BACKWARD:
        return False
    if any(getattr(type(model), name) is not f or name in vars(model) for name, f in methods.items()):
        return False
    if type(model) is ResMLP and (ResMLP._norm is not _RESIDUAL_NORM or "_norm" in vars(model)):
        return False
    if model._backward_hooks or model._forward_hooks or model._forward_pre_hooks:
        return False
    return all(p.requires_grad and not p._backward_hooks for p in model.parameters())


class _Pass:
    """One forward pass of a stack that remembers what its backward pass needs."""

    def __init__(self, model: MLP):
        self.model = model
        self.weights = list(model.weights)
        self.biases = None if model.biases is None else list(model.biases)
        self.backward = _BACKWARD[model.activation]
        self.grads: list[tuple[torch.Tensor, torch.Tensor]] = []  # (parameter, its gradient)

    def affine(self, l: int, h: torch.Tensor) -> torch.Tensor:
        """Layer l before its activation: the model's own ``_layer``, (h W) * m + b * m_b."""
        return self.model._layer(h, l, self.weights[l], None if self.biases is None else self.biases[l])

    def through(self, l: int, g: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Record layer l's gradients from g (grad of its output); the grad of its input h."""
        g_in = self.affine_back(l, g, h, need_input=True)
        assert g_in is not None
        return g_in

    def affine_back(self, l: int, g: torch.Tensor, h: torch.Tensor, need_input: bool) -> torch.Tensor | None:
        """Record layer l's weight and bias gradients from g (grad of its output); the grad of h."""
        m, w = self.model, self.weights[l]
        b = None if self.biases is None else self.biases[l]
        if m._unit[l]:
            g_prod = g
            if b is not None:
                self.grads.append((b, g.sum(1, keepdim=True)))
        else:
            g_prod = g * getattr(m, f"mult_{l}")
            if b is not None:
                self.grads.append((b, g.sum(1, keepdim=True) * getattr(m, f"bias_mult_{l}")))
        if w.shape[-1] == 1:  # stacked_matmul's (h * w^T).sum(-1): sum's and mul's backward
            g_full = g_prod.expand(h.shape)
            self.grads.append((w, (g_full * h).sum(1, keepdim=True).transpose(1, 2).contiguous()))
            return g_full * w.transpose(1, 2) if need_input else None
        self.grads.append((w, h.transpose(1, 2).bmm(g_prod)))  # bmm's backward
        return g_prod.bmm(w.transpose(1, 2)) if need_input else None

    def act(self, pre: torch.Tensor, in_place: bool) -> torch.Tensor:
        phi = self.model._phi
        return torch.relu_(pre) if in_place and phi is torch.relu else phi(pre)


def _mlp_forward(p: _Pass, x: torch.Tensor):
    """MLP._net: h_l = phi(affine_l(h_{l-1})), the ReLU in place; returns the output and a tape."""
    last, h, tape = len(p.weights) - 1, x, []
    for l in range(last + 1):
        pre = p.affine(l, h)
        post = p.act(pre, in_place=True) if l < last else pre
        tape.append((h, pre, post))
        h = post
    return h, tape


def _mlp_backward(p: _Pass, g: torch.Tensor, tape) -> None:
    for l in range(len(tape) - 1, 0, -1):
        h, pre, post = tape[l]
        if l < len(tape) - 1:
            g = p.backward(g, pre, post)
        g = p.through(l, g, h)
    h, pre, post = tape[0]
    p.affine_back(0, g if len(tape) == 1 else p.backward(g, pre, post), h, need_input=False)


def _norm(p: _Pass, h: torch.Tensor):
    """ResMLP._norm and what its backward needs."""
    if not p.model.layer_norm:
        return h, None
    out, mean, rstd = torch.native_layer_norm(h, h.shape[-1:], None, None, _LAYER_NORM_EPS)
    return out, (h, mean, rstd)


def _norm_back(g: torch.Tensor, saved) -> torch.Tensor:
    if saved is None:
        return g
    h, mean, rstd = saved
    grads = torch.ops.aten.native_layer_norm_backward(g, h, h.shape[-1:], mean, rstd, None, None, [True, False, False])
    return grads[0]


def _res_forward(p: _Pass, x: torch.Tensor):
    """ResMLP._net: read-in, residual blocks h + branch(N(h)), read-out of phi(N(h_L))."""
    m, last = cast(ResMLP, p.model), len(p.weights) - 1
    h = p.affine(0, x)
    blocks = []
    for block in range(m.depth):
        u, norm = _norm(p, h)
        layers = []
        for j in range(1, m.block_depth + 1):
            a = p.act(u, in_place=False)
            layers.append((u, a))
            u = p.affine(block * m.block_depth + j, a)
        blocks.append((norm, layers))
        h = u.add_(h)  # h + u, in place on the branch's fresh output (h is on the tape)
    u, norm = _norm(p, h)
    a = p.act(u, in_place=False)
    return p.affine(last, a), (x, blocks, (norm, u, a))


def _res_backward(p: _Pass, g: torch.Tensor, tape) -> None:
    m, last = cast(ResMLP, p.model), len(p.weights) - 1
    x, blocks, (norm, u, a) = tape
    g = _norm_back(p.backward(p.through(last, g, a), u, a), norm)  # grad of h_L
    for block in range(m.depth - 1, -1, -1):
        norm, layers = blocks[block]
        g_u = g  # the sum's backward: the branch and the skip both get g
        for j in range(m.block_depth, 0, -1):
            u, a = layers[j - 1]
            g_u = p.backward(p.through(block * m.block_depth + j, g_u, a), u, a)
        # h feeds the skip and the branch: two gradients summed, in place on the branch's fresh one
        g = _norm_back(g_u, norm).add_(g)
    p.affine_back(0, g, x, need_input=False)


def _mse_output_grad(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(E,) losses mean (out - y)^2 and their sum's gradient with respect to out, as mean's and pow's backward."""
    diff = out - y
    losses = diff.pow(2).mean(dim=(1, 2))
    # d/d out of sum_e mean (out - y)^2: (1/N) * (2 (out - y))
    scale = torch.ones((), dtype=diff.dtype, device=diff.device).div_(diff.shape[1] * diff.shape[2])
    return losses, diff.mul_(2.0).mul_(scale)


def _grads(model: MLP, x: torch.Tensor, y: torch.Tensor, output_grad) -> torch.Tensor:
    p = _Pass(model)
    residual = type(model) is ResMLP
    with torch.no_grad():
        out, tape = (_res_forward if residual else _mlp_forward)(p, x)
        if model.center:
            out = out - model._net(x, *model._initial(), None)
    losses, g = output_grad(out, y)
    with torch.no_grad():
        (_res_backward if residual else _mlp_backward)(p, g, tape)
    for param, grad in p.grads:
        param.grad = grad
    return losses


def mse_grads(model: MLP, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The (E,) losses mean (f(x) - y)^2 and every parameter's ``.grad`` set (see the module docstring).

    Args:
        model: an MLP or ResMLP stack for which :func:`supports` holds.
        x: (E, batch, d) inputs (not requiring grad); y: (E, batch, outputs) targets.
    """
    return _grads(model, x, y, _mse_output_grad)


def loss_grads(model: MLP, x: torch.Tensor, y: torch.Tensor, output_grad) -> torch.Tensor:
    """The (E,) losses of the stack's outputs and every parameter's ``.grad`` set, for a loss of the
    outputs alone whose closed form ``output_grad(out, y) -> (losses, d losses.sum() / d out)``
    runs autograd's own operations in its order (``learnlab.train._losses.OUTPUT_GRADS``: the
    cross-entropy, hinge and logistic losses; :func:`mse_grads` is the mean square's).

    A loss that reads anything but its two arguments (a penalty on the parameters, say) must not
    come here: its other gradients would be lost.
    """
    return _grads(model, x, y, output_grad)
