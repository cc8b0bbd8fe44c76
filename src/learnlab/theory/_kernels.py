r"""Infinite-width kernels (NNGP, NTK) of a learnlab MLP, with this network's constants.

Which limit. learnlab's layer l (l = 0 the read-in, L = depth the read-out) computes

    h_l = m_l (x_{l-1} W_l) + m^b_l b_l,   W_l = s_l D,  b_l = s^b_l D,   x_l = phi(h_l),  x_{-1} = x,

with multipliers m, init stds s from the model's :class:`~learnlab.models.Scaling` at its actual
width n (n / n0, gamma, the init scheme: everything the parameterization decides) and i.i.d. draws
D of variance v_D (1/3 for ``torch``'s U(-1, 1), 1 for N(0, 1)). The kernels below are those of
this network with every hidden width sent to infinity while each layer keeps these constants
through its *effective* variances (fan_in_l = d for l = 0, n otherwise):

    sigma_l^2   = fan_in_l (m_l s_l)^2 v_D,   sigma_{b,l}^2 = (m^b_l s^b_l)^2 v_D   (forward variances)
    g_l^2       = fan_in_l m_l^2,             g_{b,l}^2     = (m^b_l)^2           (gradient scales)

For the ntk row these do not depend on n, and this is the row's own limit. For other rows (sp,
mup, ...) they do, and this is the kernel whose per-layer statistics at init are this network's at
its width (SP's NTK grows like n, muP's NNGP falls like n0 / n: the rows have no common limit).

NNGP (Neal 1996; Lee et al. 2018). h_0 is a sum of d independent terms:
Cov[h_0(x), h_0(x')] = m_0^2 s_0^2 v_D <x, x'> + (m^b_0 s^b_0)^2 v_D, i.e.

    K_0(x, x') = sigma_0^2 <x, x'> / d + sigma_{b,0}^2.

h_0 is Gaussian for Gaussian draws (``lecun``, ``he``); with ``torch``'s uniform draws only as the
number of inputs d grows (its excess kurtosis is -1.2 sum_i x_i^4 / |x|^4), so there the read-in is
the Gaussian approximation (for erf, 2-5% off at d = 8, 0.6% at d = 64; relu's variances are exact).

Given layer l - 1, h_l's n inputs phi(h_{l-1,k}) are i.i.d. Gaussian processes (as n -> inf), so
by the central limit theorem h_l is one with

    K_l(x, x') = sigma_l^2 E[phi(u) phi(v)] + sigma_{b,l}^2,  (u, v) ~ N(0, [[K(x,x), K(x,x')], [K(x,x'), K(x',x')]])

(K = K_{l-1}); the NNGP is the read-out's K_L, the same for every output.

NTK (Jacot et al. 2018; Arora et al. 2019), for gradients with respect to the *stored* tensors
W_l, b_l (what learnlab's optimizers update). Theta_l(x, x') = sum over parameters p of layers
<= l of dh_l/dp(x) dh_l/dp(x'). For l = 0, dh_0/dW_{ij} = m_0 x_i and dh_0/db = m^b_0:

    Theta_0 = g_0^2 <x, x'> / d + g_{b,0}^2.

For l >= 1, layer l's own parameters give m_l^2 sum_k phi(h_k) phi(h'_k) + (m^b_l)^2 ->
g_l^2 E[phi(u) phi(v)] + g_{b,l}^2, and earlier ones reach h_l through
m_l sum_k W_kj phi'(h_k) dh_k/dp, whose cross terms over k != k' vanish in the limit, leaving
m_l^2 sum_k W_kj^2 phi'(h_k) phi'(h'_k) Theta_{l-1} -> sigma_l^2 E[phi'(u) phi'(v)] Theta_{l-1}:

    Theta_l = g_l^2 E[phi(u) phi(v)] + g_{b,l}^2 + sigma_l^2 E[phi'(u) phi'(v)] Theta_{l-1}.

The NTK is Theta_L. With ``lr_weighted="sgd"`` every parameter's term is multiplied by its SGD
learning-rate factor lambda_p (``Scaling.lr_entries``: the row's (n / n0)^(-c_l) and gamma's rule
on the base lr), i.e. g_l^2 -> lambda_l g_l^2, g_{b,l}^2 -> lambda^b_l g_{b,l}^2 above: a step of
learnlab's SGD with base lr eta moves the linearised network by -eta sum_p lambda_p J_p J_p^T grad,
so this is the kernel of its gradient descent (ipllr's warm-up factors are not included).

The dual activations E[phi phi], E[phi' phi'] are in :mod:`learnlab.theory._dual`. Gram matrices
are computed in float64, a block of rows at a time (``chunk`` entries), on the model's device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from learnlab.models import MLP, ModelSpec, ResMLP, get_parameterization
from learnlab.models._mlp import mlp_scaling
from learnlab.models._scaling import Scaling, scaling_of
from learnlab.theory._dual import QUADRATURE_ORDER, Dual, QuadratureDual, dual_of

__all__ = ["nngp", "ntk", "CHUNK"]

CHUNK = 2**22  # Gram entries computed at once (float64: 32 MiB per intermediate)
_SUPPORTED = (
    "learnlab.theory kernels support MLPs: a model config with name 'mlp' (dict or ModelSpec) or a learnlab.models.MLP"
)


@dataclass(frozen=True)
class _Layer:
    """One layer's constants: sigma^2, sigma_b^2 (forward), g^2, g_b^2 (gradient, lr-weighted)."""

    sigma2: float
    sigma2_b: float
    g2: float
    g2_b: float


@dataclass(frozen=True)
class _Network:
    layers: list[_Layer]
    dual: Dual
    center: bool
    device: torch.device
    d: int


def _config_scaling(model: ModelSpec | dict, d: int) -> tuple[Scaling, str, bool]:
    name = model.get("name", "mlp") if isinstance(model, dict) else model.name
    if name != "mlp":
        raise ValueError(f"{_SUPPORTED}; got model name {name!r}")
    spec = model if isinstance(model, ModelSpec) else ModelSpec.model_validate(model)
    scaling = mlp_scaling(
        d,
        spec.width,
        spec.depth,
        1,  # outputs: the kernel is per output, the same for each
        bias=spec.bias,
        params=[get_parameterization(spec.parameterization_arg())],
        gammas=[spec.gamma],
        base_width=spec.base_width,
        gamma_lr=spec.gamma_lr,
        init=spec.init,
    )
    return scaling, spec.activation, spec.center


def _model_scaling(model: MLP, d: int) -> tuple[Scaling, str, bool]:
    if model.d != d:
        raise ValueError(f"x has d = {d} features but the model reads d = {model.d}; give x of shape (n, {model.d})")
    return scaling_of(model), model.activation, model.center


def _member_value(values: torch.Tensor, what: str) -> float:
    """The one value of an (E,) tensor; a clear error where the members differ."""
    if not bool((values == values[0]).all()):
        raise ValueError(
            f"the model's {values.numel()} members differ in {what} ({values.tolist()}); the kernel is one "
            "network's: pass one member's config (dict) or a model of one member"
        )
    return float(values[0])


def _layers(scaling: Scaling, lr_weighted: str | None) -> list[_Layer]:
    """Each layer's sigma^2, sigma_b^2, g^2 and g_b^2 (times its lr factors with ``lr_weighted``)."""
    v_draw = 1 / 3 if scaling.uniform else 1.0  # Var(D): U(-1, 1) or N(0, 1)
    lrs: dict[str, float] = {}
    if lr_weighted is not None:
        lrs = {name: _member_value(lr, "learning-rate factors") for name, lr, *_ in scaling.lr_entries(lr_weighted)}
    out = []
    for slot in scaling.slots:
        m = _member_value(scaling.weight_multiplier(slot), "weight multipliers")
        s = _member_value(scaling.init_std(slot), "init stds")
        m_b = s_b = 0.0
        if slot.bias is not None:
            m_b = _member_value(scaling.bias_multiplier(slot), "bias multipliers")
            s_b = _member_value(scaling.bias_std(slot), "bias stds")
        lr, lr_b = lrs.get(slot.weight, 1.0), lrs.get(slot.bias or "", 1.0)
        sigma2, sigma2_b = slot.fan_in * (m * s) ** 2 * v_draw, (m_b * s_b) ** 2 * v_draw
        out.append(_Layer(sigma2, sigma2_b, g2=lr * slot.fan_in * m**2, g2_b=lr_b * m_b**2))
    return out


def _network(model, d: int, activation, lr_weighted: str | None, order: int, device) -> _Network:
    if lr_weighted not in (None, "sgd"):
        raise ValueError(
            f"lr_weighted must be None or 'sgd'; got {lr_weighted!r}. Only SGD's update is linear in the "
            "gradient, so only it has a kernel (Adam's normalised update has none)"
        )
    if isinstance(model, ResMLP) or (isinstance(model, torch.nn.Module) and not isinstance(model, MLP)):
        raise ValueError(f"{_SUPPORTED}; got a {type(model).__name__}")
    if isinstance(model, MLP):
        scaling, name, center = _model_scaling(model, d)
        param = next(model.parameters(), None)
        device = param.device if param is not None else device
    elif isinstance(model, (dict, ModelSpec)):
        scaling, name, center = _config_scaling(model, d)
    else:
        raise ValueError(f"{_SUPPORTED}; got {type(model).__name__}")
    dual = dual_of(name if activation is None else activation, order)
    return _Network(_layers(scaling, lr_weighted), dual, center, torch.device(device), d)


def _input(key: str, x) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.dim() != 2 or not x.is_floating_point():
        raise ValueError(f"{key} must be a float tensor of shape (n, d); got {x.dtype} of shape {tuple(x.shape)}")
    return x


def _inputs(x1, x2) -> tuple[torch.Tensor, torch.Tensor | None]:
    first = _input("x1", x1)
    second = None if x2 is None else _input("x2", x2)
    if second is not None and second.shape[1] != first.shape[1]:
        raise ValueError(f"x1 and x2 must have the same d; got {tuple(first.shape)} and {tuple(second.shape)}")
    return first, second


def _diagonals(net: _Network, x: torch.Tensor) -> list[torch.Tensor]:
    """K_l(x, x) for l = 0 .. L - 1 (the variances the next layer's dual needs), each (n,)."""
    first = net.layers[0]
    k = first.sigma2 * (x * x).sum(1) / net.d + first.sigma2_b
    out = [k]
    for layer in net.layers[1:-1]:
        k = layer.sigma2 * net.dual.k(k, k, k) + layer.sigma2_b
        out.append(k)
    return out


def _block(net: _Network, x1, x2, diag1, diag2, with_ntk: bool) -> torch.Tensor:
    """The NNGP (or NTK) of rows x1 (r, d) against x2 (c, d), given both sides' diagonals."""
    first = net.layers[0]
    dot = x1 @ x2.T / net.d
    k = first.sigma2 * dot + first.sigma2_b
    theta = first.g2 * dot + first.g2_b if with_ntk else None
    for layer, a, b in zip(net.layers[1:], diag1, diag2):
        a, b = a.unsqueeze(1), b.unsqueeze(0)
        if theta is None:
            expect = net.dual.k(a, b, k)
        else:
            expect, expect_dot = net.dual.both(a, b, k)
            theta = layer.g2 * expect + layer.g2_b + layer.sigma2 * expect_dot * theta
        k = layer.sigma2 * expect + layer.sigma2_b
    return k if theta is None else theta


def _gram(net: _Network, x1, x2, with_ntk: bool, chunk: int) -> torch.Tensor:
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer (Gram entries computed at once); got {chunk!r}")
    symmetric = x2 is None
    x1 = x1.to(device=net.device, dtype=torch.float64)
    x2 = x1 if x2 is None else x2.to(device=net.device, dtype=torch.float64)
    diag1 = _diagonals(net, x1)
    diag2 = diag1 if symmetric else _diagonals(net, x2)
    n1, n2 = x1.shape[0], x2.shape[0]
    out = torch.empty(n1, n2, dtype=torch.float64, device=net.device)
    rows = max(1, chunk // max(n2, 1))
    if symmetric and isinstance(net.dual, QuadratureDual):  # costly entries: >= 8 blocks, so the
        rows = min(rows, -(-n1 // 8))  # lower triangle that is skipped is most of the half
    for r0 in range(0, n1, rows):
        r1 = min(n1, r0 + rows)
        c0 = r0 if symmetric else 0  # a symmetric Gram: the upper triangle's blocks, mirrored
        block = _block(net, x1[r0:r1], x2[c0:], [d[r0:r1] for d in diag1], [d[c0:] for d in diag2], with_ntk)
        if symmetric:  # exactly symmetric: the block's square part from its upper triangle too
            square = block[:, : r1 - r0]
            square.copy_(torch.triu(square) + torch.triu(square, 1).T)
            out[r1:, r0:r1] = block[:, r1 - r0 :].T
        out[r0:r1, c0:] = block
    return out


def nngp(
    model: MLP | ModelSpec | dict,
    x1: torch.Tensor,
    x2: torch.Tensor | None = None,
    *,
    activation: str | Callable[[torch.Tensor], torch.Tensor] | None = None,
    order: int = QUADRATURE_ORDER,
    chunk: int = CHUNK,
) -> torch.Tensor:
    """The NNGP kernel K(x1, x2) of an MLP's output at infinite width, with this network's constants.

    Args:
        model: a learnlab ``MLP`` (its members must share one parameterization and gamma) or a
            model config (dict or ``ModelSpec``) with name ``mlp``; d is x1's last dimension.
        x1: (n1, d) inputs.
        x2: (n2, d) inputs; None: x1 (the symmetric Gram matrix, computed half).
        activation: replace the model's activation: a name (``relu``, ``erf``, ``linear``,
            ``tanh``, ``gelu``, ``silu``) or an elementwise callable phi(tensor) -> tensor.
        order: quadrature order for activations without a closed form (``learnlab.theory._dual``).
        chunk: Gram entries computed at once (memory, not result).

    Returns:
        (n1, n2) float64 on the model's device (a config's: x1's): the covariance of f(x1), f(x2)
        over the initial draw in the limit of the module docstring (Neal 1996; Lee et al. 2018).

    Raises:
        ValueError: a model other than an MLP, a centered model (f - f_0 is zero at
            initialisation: its NNGP is 0; use ``ntk``, which centering leaves unchanged, or the
            config with ``center: false`` for the prior of f_0), or inputs of the wrong shape.
    """
    x1, x2 = _inputs(x1, x2)
    net = _network(model, x1.shape[1], activation, None, order, x1.device)
    if net.center:
        raise ValueError(
            "the model is centered (f(x) = f_theta(x) - f_theta0(x)), which is 0 at initialisation, so its "
            "NNGP is 0. Use ntk() (centering leaves the NTK unchanged) or the config with center: false "
            "for the NNGP of the uncentered network f_theta0"
        )
    return _gram(net, x1, x2, False, chunk)


def ntk(
    model: MLP | ModelSpec | dict,
    x1: torch.Tensor,
    x2: torch.Tensor | None = None,
    *,
    lr_weighted: str | None = None,
    activation: str | Callable[[torch.Tensor], torch.Tensor] | None = None,
    order: int = QUADRATURE_ORDER,
    chunk: int = CHUNK,
) -> torch.Tensor:
    """The NTK Theta(x1, x2) of an MLP's output at infinite width, with this network's constants.

    Gradients are taken with respect to the stored weights and biases (Jacot et al. 2018; Arora
    et al. 2019); centering (f - f_0) leaves them unchanged.

    Args:
        model, x1, x2, activation, order, chunk: as for :func:`nngp`.
        lr_weighted: None: sum_p J_p J_p^T over all parameters; ``"sgd"``: each parameter's term
            times its SGD learning-rate factor (``lr_table(model, "sgd")``), the kernel of
            gradient descent with learnlab's per-layer learning rates (base lr eta: the
            linearised network moves by -eta Theta grad). Adam has no kernel.

    Returns:
        (n1, n2) float64 on the model's device (a config's: x1's).

    Raises:
        ValueError: a model other than an MLP, ``lr_weighted`` other than None or ``"sgd"``,
            or inputs of the wrong shape.
    """
    x1, x2 = _inputs(x1, x2)
    net = _network(model, x1.shape[1], activation, lr_weighted, order, x1.device)
    return _gram(net, x1, x2, True, chunk)
