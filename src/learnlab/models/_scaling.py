"""One code path from a parameterization to a model's multipliers, init stds and learning rates.

Every parameterized model (``MLP``, ``CNN``, or a user module after
``apply_parameterization``) carries a :class:`Scaling` as attribute ``learnlab_scaling``:
its members' parameterizations, the width ratio n / n0, richness gamma, and one
:class:`Slot` per weight tensor saying which abc layer it reads. Everything width-
dependent is computed here from the formulas of :mod:`learnlab.models._param`:

    multiplier   m_l = (n / n0)^(-a_l)            (/ gamma for the output layer)
    init std     s_l = sigma_l / sqrt(fan_in_l^0) * (n / n0)^(-b_l),
                 fan_in_l^0 = fan_in_l for the input layer, fan_in_l / (n / n0) otherwise
    lr factor    g(gamma) * (n / n0)^(-c_l)       (times (n / n0)^(-(c^warm_l - c_l)) while warming up)
    eps factor   (n / n0)^(-eps_l)                (Adam's eps; eps_l = c_adam_l - c_l by default)

and, for a residual network with depth ratio r = L / L0 (see :mod:`learnlab.models._depth`),
inside each residual branch: the branch's last layer's multiplier times beta0 * r^(-alpha) and
its init times r^(-init); every branch parameter's lr times r^(-lr) (r^(-lr_adam) for Adam)
and its eps times r^(-eps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch

from learnlab.models._depth import DepthParameterization, get_depth_parameterization
from learnlab.models._param import Parameterization, gamma_lr_factor, lr_key

__all__ = ["Slot", "Scaling", "SCALING_ATTR", "INITS", "scaling_of", "lr_table", "lr_factors", "LrEntry"]

SCALING_ATTR = "learnlab_scaling"
INITS = ("torch", "lecun", "he")  # initialisation schemes (see Scaling.init_std)
ROLES = ("input", "hidden", "output")


@dataclass(frozen=True)
class Slot:
    """One weight tensor of a parameterized model.

    Attributes:
        weight: parameter name in the model (``weights.1``, ``fc1.weight``).
        bias: name of its bias, or None.
        role: ``input``, ``hidden`` or ``output``.
        layer: column of the expanded exponents (0 .. n_layers - 1).
        fan_in: fan-in at this width (in_channels * k * k for a convolution).
        branch: inside a residual branch (its lr and eps follow the depth exponents).
        branch_out: the last layer of a residual branch (its multiplier and init too).
    """

    weight: str
    bias: str | None
    role: str
    layer: int
    fan_in: int
    branch: bool = False
    branch_out: bool = False


@dataclass(frozen=True)
class LrEntry:
    """Learning-rate data of one parameter tensor, each per member (E,), float64.

    ``factor`` multiplies the base lr eta; while the optimizer's step count is below
    ``n_warmup`` the lr is additionally multiplied by ``warmup``; ``eps`` multiplies Adam's eps.
    """

    param: torch.nn.Parameter
    name: str
    factor: torch.Tensor
    warmup: torch.Tensor
    n_warmup: torch.Tensor
    eps: torch.Tensor


@dataclass
class Scaling:
    """What a parameterized model needs to know about its width scaling (picklable, no tensors).

    Attributes:
        params: one :class:`Parameterization` per member of the stack.
        ratio: n / n0.
        n_layers: number of abc layers (depth + 1).
        slots: one per weight tensor.
        gammas: richness gamma per member.
        gamma_lr: rule for the base learning rate (see ``gamma_lr_factor``).
        init: the initialisation scheme (``INITS``), applied with the width exponents b.
        depth_params: one :class:`DepthParameterization` per member (default: none).
        depth_ratio: r = L / L0 (residual networks; 1 otherwise).
        branch_multipliers: beta0 per member, the branch multiplier at the base depth.
    """

    params: list[Parameterization]
    ratio: float
    n_layers: int
    slots: list[Slot]
    gammas: list[float] = field(default_factory=list)
    gamma_lr: str = "piecewise"
    init: str = "torch"
    depth_params: list[DepthParameterization] = field(default_factory=list)
    depth_ratio: float = 1.0
    branch_multipliers: list[float] = field(default_factory=list)

    def __post_init__(self):
        if not self.gammas:
            self.gammas = [1.0] * len(self.params)
        self.depth_params = [get_depth_parameterization(p) for p in self.depth_params] or [
            get_depth_parameterization("none")
        ] * len(self.params)
        self.branch_multipliers = [float(b) for b in self.branch_multipliers] or [1.0] * len(self.params)
        for p in self.params:
            p.check(self.n_layers)
        for g in self.gammas:
            gamma_lr_factor(g, self.gamma_lr)  # validates gamma > 0 and the rule
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; valid: {', '.join(INITS)}")

    @property
    def members(self) -> int:
        return len(self.params)

    def exponent(self, key: str, layer: int) -> torch.Tensor:
        """Exponent ``key`` of ``layer`` per member, (E,) float64 (0 where a warm-up key is absent)."""
        vals = []
        for p in self.params:
            ex = p.exponents(key, self.n_layers)
            vals.append(0.0 if ex is None else ex[layer])
        return torch.tensor(vals, dtype=torch.float64)

    def _pow(self, key: str, layer: int) -> torch.Tensor:
        return torch.full((self.members,), float(self.ratio), dtype=torch.float64) ** (-self.exponent(key, layer))

    def _gamma(self) -> torch.Tensor:
        return torch.tensor(self.gammas, dtype=torch.float64)

    def _depth_pow(self, slot: Slot, exponent) -> torch.Tensor | None:
        """r^(-exponent(row)) per member for a branch slot, None elsewhere or where every factor is 1."""
        if not slot.branch:
            return None
        ex = torch.tensor([float(exponent(p)) for p in self.depth_params], dtype=torch.float64)
        if not bool(ex.any()):
            return None
        return torch.full_like(ex, float(self.depth_ratio)) ** (-ex)

    def _branch(self, slot: Slot, m: torch.Tensor) -> torch.Tensor:
        """``m`` times the branch multiplier beta0 * r^(-alpha) on a branch's last layer."""
        if not slot.branch_out:
            return m
        beta = torch.tensor(self.branch_multipliers, dtype=torch.float64)
        depth = self._depth_pow(slot, lambda p: p.alpha)
        return m * (beta if depth is None else beta * depth)

    def weight_multiplier(self, slot: Slot) -> torch.Tensor:
        """m_l = (n / n0)^(-a_l), divided by gamma for the output layer, times the branch
        multiplier on a branch's last layer; (E,)."""
        m = self._pow("a", slot.layer)
        return m / self._gamma() if slot.role == "output" else self._branch(slot, m)

    def bias_multiplier(self, slot: Slot) -> torch.Tensor:
        """(n / n0)^(-a_0) for non-output biases (times the branch multiplier on a branch's last
        layer), 1 / gamma for the output bias; (E,)."""
        return 1.0 / self._gamma() if slot.role == "output" else self._branch(slot, self._pow("a", 0))

    def init_std(self, slot: Slot) -> torch.Tensor:
        """s_l = sigma_l / sqrt(fan_in_l^0) * (n / n0)^(-b_l); (E,): the weight is s_l times the draw.

        The draw is z ~ N(0, 1) for ``lecun`` (sigma^2 = 1) and ``he`` (sigma^2 = 2 on every
        layer after the first, 1 on the first, which reads the data: He et al. 2015), and
        u = erf(z / sqrt 2) ~ U(-1, 1) for ``torch`` (sigma^2 = 1: U(+-1/sqrt(fan_in)), PyTorch's
        kaiming_uniform_ with a = sqrt 5), so every scheme rescales the same underlying draw.
        """
        sigma2 = 2.0 if self.init == "he" and slot.role != "input" else 1.0
        base_fan_in = slot.fan_in if slot.role == "input" else slot.fan_in / self.ratio
        std = (sigma2 / base_fan_in) ** 0.5 * self._pow("b", slot.layer)
        depth = self._depth_pow(slot, lambda p: p.init) if slot.branch_out else None
        return std if depth is None else std * depth

    def bias_std(self, slot: Slot) -> torch.Tensor:
        """The bias's factor on its draw; (E,). ``lecun`` and ``he``: 0 (zero biases). ``torch``:
        U(+-1/sqrt(fan_in)) like a column of the layer's weight (``init_std``), with the exponents
        the bias moves with: a non-output bias the layer's b (its multiplier is the input layer's
        a, so a_0 + b_l is kept under the abc shift); the output bias, whose multiplier and lr
        are width-independent, b = 1/2 in every row: 1/sqrt(fan_in), nn.Linear's at any width."""
        if self.init != "torch":
            return torch.zeros(self.members, dtype=torch.float64)
        if slot.role == "output":
            return torch.full((self.members,), slot.fan_in**-0.5, dtype=torch.float64)
        return self.init_std(slot)

    @property
    def uniform(self) -> bool:
        """Whether draws are mapped to U(-1, 1) (the ``torch`` scheme)."""
        return self.init == "torch"

    def lr_entries(self, optimizer: str) -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(name, lr factor, warm-up factor, warm-up steps, eps factor) per parameter, each (E,), float64."""
        key = lr_key(optimizer)
        base = torch.tensor([gamma_lr_factor(g, self.gamma_lr) for g in self.gammas], dtype=torch.float64)
        n_warm = torch.tensor(
            [p.n_warmup if getattr(p, "warmup_" + key) is not None else 0 for p in self.params], dtype=torch.float64
        )
        zeros, ones = torch.zeros(self.members, dtype=torch.float64), torch.ones(self.members, dtype=torch.float64)
        out = []
        for slot in self.slots:
            layers: list[tuple[str, int | None]] = [(slot.weight, slot.layer)]
            if slot.bias is not None:
                layers.append((slot.bias, None if slot.role == "output" else 0))
            depth_lr = self._depth_pow(slot, lambda p: p.lr_exponent(optimizer))
            depth_eps = self._depth_pow(slot, lambda p: p.eps)
            for name, layer in layers:
                if layer is None:  # output bias: width-independent
                    out.append((name, base.clone(), ones, zeros, ones))
                    continue
                c = self.exponent(key, layer)
                warm = self._warm_exponent(key, layer, c)
                ratio = torch.full_like(c, float(self.ratio))
                lr, eps = base * ratio ** (-c), self._pow("eps", layer)
                lr = lr if depth_lr is None else lr * depth_lr
                eps = eps if depth_eps is None else eps * depth_eps
                out.append((name, lr, ratio ** (-(warm - c)), n_warm, eps))
        return out

    def _warm_exponent(self, key: str, layer: int, c: torch.Tensor) -> torch.Tensor:
        warm = c.clone()
        for e, p in enumerate(self.params):
            ex = p.exponents("warmup_" + key, self.n_layers)
            if ex is not None:
                warm[e] = ex[layer]
        return warm

    def select(self, keep: Sequence[int]) -> Scaling:
        """The scaling of members ``keep`` only."""
        return replace(
            self,
            params=[self.params[i] for i in keep],
            gammas=[self.gammas[i] for i in keep],
            depth_params=[self.depth_params[i] for i in keep],
            branch_multipliers=[self.branch_multipliers[i] for i in keep],
        )


def scaling_of(model: torch.nn.Module) -> Scaling:
    """The :class:`Scaling` of a parameterized model; a clear error for a plain module."""
    scaling = getattr(model, SCALING_ATTR, None)
    if not isinstance(scaling, Scaling):
        raise TypeError(
            f"{type(model).__name__} is not parameterized: build a learnlab MLP/CNN or call "
            "learnlab.apply_parameterization(model, 'mup', ...) first"
        )
    return scaling


def lr_table(model: torch.nn.Module, optimizer: str) -> list[LrEntry]:
    """Learning-rate data for every trainable parameter of ``model``, in ``model.parameters()`` order.

    Parameters the parameterization does not cover (modules left in PyTorch's
    parameterization by ``apply_parameterization(..., layers={name: "ignore"})``) get
    factor 1 and no warm-up.
    """
    scaling = scaling_of(model)
    by_name = {name: rest for name, *rest in scaling.lr_entries(optimizer)}
    ones = torch.ones(scaling.members, dtype=torch.float64)
    out = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        f, w, n, e = by_name.get(name, (ones, ones, torch.zeros_like(ones), ones))
        out.append(LrEntry(p, name, f, w, n, e))
    return out


def lr_factors(model: torch.nn.Module, optimizer: str, step: int) -> list[torch.Tensor] | None:
    """Per-parameter-group factors (E,) on the built learning rates at step ``step``, or None.

    ``step`` counts updates already applied (0 = the first update). The groups are
    those of ``build_optimizer(model, optimizer, ...)``, in order. None means every
    factor is 1 (no warm-up, or it is over). learnlab's SGD/Adam apply these factors
    themselves; call this only to drive another optimizer through an ipllr warm-up::

        for t in range(steps):
            factors = lr_factors(model, "sgd", t)
            for group, base, f in zip(opt.param_groups, base_lrs, factors or repeat(1.0)):
                group["lr"] = base * float(f)  # E = 1
            ...
    """
    entries = lr_table(model, optimizer)
    if all(bool((e.n_warmup <= step).all()) for e in entries):
        return None
    return [torch.where(step < e.n_warmup, e.warmup, torch.ones_like(e.warmup)) for e in entries]
