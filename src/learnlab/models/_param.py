"""Parameterizations as data: per-layer width exponents (Yang & Hu 2021, "abc").

For a network of width n and base width n0 with L hidden layers, i.e. L + 1 weight
tensors l = 0 (input), 1..L-1 (hidden), L (output), learnlab's layers compute

    h_l  = m_l * (x_{l-1} W_l) + m_l^bias * b_l,     m_l  = (n / n0)^(-a_l)
    W_l = s_l * D,                                  s_l  = sigma_l / sqrt(fan_in_l^0) * (n / n0)^(-b_l)
    lr_l = eta * (n / n0)^(-c_l)                    (c for SGD-like, c_adam for Adam-like optimizers)

where ``fan_in_l^0`` is the layer's fan-in at the base width (the input layer's fan-in
d, or in_channels * k * k for a convolution, does not scale with n). So at n = n0 every
parameterization is the same standard fan-in model with one learning rate, and
hyperparameters tuned at the base width transfer ("muTransfer", Yang et al. 2022).
With the default n0 = 1 the exponents are exactly Yang & Hu's. The draw D and sigma_l
come from the init scheme (``model.init``): ``torch`` (the default) D ~ U(-1, 1) and
sigma^2 = 1, so at n = n0 (and in SP at any width) weights and biases are those of
``nn.Linear``/``nn.Conv2d``; ``lecun`` D ~ N(0, 1), sigma^2 = 1; ``he`` D ~ N(0, 1),
sigma^2 = 2 on layers reading phi(h) and 1 on the input layer (He et al. 2015). Every
scheme maps one N(0, 1) draw per entry (U = erf(z / sqrt 2)), so parameterizations and
schemes built from one generator rescale the same draw.

Biases are vector-like: a non-output bias takes the input
layer's a, c exponents (it is a weight from the constant input 1); the output bias
takes 0 (its "fan-out" is the number of outputs, not n).

Rows (input, hidden, output); each is expanded to any depth (or given per layer):

    sp     a = (0, 0, 0)       b = (0, 1/2, 1/2)   c = (0, 0, 0)      c_adam = (0, 0, 0)
    ntk    a = (0, 1/2, 1/2)   b = (0, 0, 0)       c = (0, 0, 0)      c_adam = (1/2, 1, 1/2)
    mup    a = (-1/2, 0, 1/2)  b = (1/2, 1/2, 1/2) c = (0, 0, 0)      c_adam = (1/2, 1, 1/2)
    mf     a = (0, 1/2, 1)     b = (0, 0, 0)       c = (-1, -1, -1)   c_adam = (0, 1/2, 0)
    ip     a = (0, 1, 1)       b = (0, 0, 0)       c = (-1, -2, -1)   c_adam = (0, 0, 0)
    ipllr  ip, but for the first ``n_warmup`` SGD steps c = -(L+1)/2, -(L+2)/2, ..., -(L+1)/2

Adam's eps is scaled per layer by (n / n0)^(-eps_l), eps_l = c_adam_l - c_l by default (the
layer's gradient scale; see ``Parameterization.exponents``).

* sp: PyTorch's default (fan-in init, one learning rate); unstable or lazy as n grows.
* ntk: Jacot et al. 2018; the kernel (lazy) limit. Its Adam rule gives each entry the
  update size SGD would give it, so Adam-NTK stays in the kernel regime.
* mup: maximal update parameterization, Yang & Hu 2021 (Tensor Programs IV), in their
  gauge a = (-1/2, 0, 1/2). For Adam (Tensor Programs V, Table 3; the ``mup`` package's
  MuAdam) hidden learning rates scale like 1/fan_in.
* mf: muP moved along the abc symmetry by theta = 1/2 into the b = 0 gauge. Yang & Hu's
  symmetry (a, b, c) -> (a + theta, b - theta, c - 2 theta) (c_adam - theta for Adam, whose
  update ignores the gradient's scale, and eps + theta, which follows it) leaves the trained
  function unchanged, so mf trains exactly like mup. With one hidden layer it is the mean-field
  parameterization (Mei et al. 2018; Chizat & Bach 2018; Rotskoff & Vanden-Eijnden 2018).
* ip: the integrable parameterization (Yang & Hu 2021; Hajjar, Chizat & Oyallon 2021) with
  its standard learning rates. Its hidden layers are mf's moved by theta = 1/2 in a and
  c only (a: 1/2 -> 1, c: -1 -> -2, b stays 0): SGD updates are mf's, but the hidden
  weights start n^(-1/2) smaller, so for depth >= 2 the hidden features vanish at
  initialisation and SGD with these rates stays stuck near it (the "trivial" limit).
  With depth 1 ip == mf.
* ipllr: Hajjar, Chizat & Oyallon 2021 ("Training integrable parameterizations of deep
  neural networks in the infinite-width limit"): large initial learning rates
  ``warmup_c + warmup_c_depth * L`` for the first ``n_warmup`` steps escape the trivial
  start, then ip. Adam normalises each update, so it has no warm-up for Adam-like
  optimizers (``warmup_c_adam`` None): its updates are already muP-sized.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, cast

__all__ = [
    "BaseWidthWarning",
    "base_width_note",
    "Parameterization",
    "PARAMETERIZATIONS",
    "ADAM_LIKE",
    "GAMMA_LR_RULES",
    "get_parameterization",
    "gamma_lr_factor",
    "lr_key",
]

ADAM_LIKE = frozenset({"adam", "adamw"})
GAMMA_LR_RULES = ("piecewise", "gamma", "gamma2", "none")
_KEYS = ("a", "b", "c", "c_adam", "warmup_c", "warmup_c_adam", "eps")


@dataclass(frozen=True)
class Parameterization:
    """Width exponents per layer: multiplier ``a``, init ``b``, learning rate ``c``/``c_adam``.

    Each exponent tuple is either a pattern ``(input, hidden, output)`` (expanded to any
    depth) or one entry per weight matrix (``depth + 1`` of them).

    Attributes:
        name: the row's name (``"custom"`` for exponents from a spec).
        a, b, c: multiplier, init and SGD learning-rate exponents.
        c_adam: learning-rate exponents for Adam-like optimizers (None: same as ``c``).
        warmup_c, warmup_c_adam: learning-rate exponents of the first ``n_warmup`` steps,
            plus ``warmup_c_depth * L`` (L = number of hidden layers); None: no warm-up.
        warmup_c_depth: slope of the warm-up exponents in the depth L (ipllr: -1/2).
        n_warmup: number of warm-up steps.
        eps: exponents of Adam's eps, eps_l = eps * (n / n0)^(-eps_l) (None: c_adam - c, the
            exponent of the layer's gradient; see ``exponents``).
    """

    name: str
    a: tuple[float, ...]
    b: tuple[float, ...]
    c: tuple[float, ...]
    c_adam: tuple[float, ...] | None = None
    warmup_c: tuple[float, ...] | None = None
    warmup_c_adam: tuple[float, ...] | None = None
    warmup_c_depth: float = 0.0
    n_warmup: int = 0
    eps: tuple[float, ...] | None = None

    def exponents(self, key: str, n_layers: int) -> list[float] | None:
        """Exponents ``key`` (``a``, ``b``, ``c``, ``c_adam``, ``warmup_c``...) for ``n_layers`` layers.

        Returns None for a warm-up key the row does not have. ``eps`` defaults to c_adam - c:
        Adam's update n^(-c_adam) sign(g) and SGD's n^(-c) g have one size, so a layer's gradient
        scales like n^(-(c_adam - c)), and eps, which is added to |g|'s running size, must
        scale with it (Tensor Programs V; Dey et al. 2025, Table 1) to stay as small beside it
        at every width. Raises ValueError if a tuple has neither 3 nor ``n_layers`` entries.
        """
        if key == "eps" and self.eps is None:
            c_adam, c = self.exponents("c_adam", n_layers), self.exponents("c", n_layers)
            return [ca - cs for ca, cs in zip(c_adam or [], c or [])]
        values = getattr(self, key)
        if key == "c_adam" and values is None:
            values = self.c
        if values is None:
            return None
        out = _expand(values, n_layers, key, self.name)
        if key.startswith("warmup"):
            out = [v + self.warmup_c_depth * (n_layers - 1) for v in out]
        return out

    def per_layer(self, n_layers: int) -> list[dict[str, float]]:
        """Expand to ``n_layers`` weight matrices: a list of {a, b, c, c_adam}."""
        # never None: a, b and c are required and c_adam falls back to c
        cols = {key: cast("list[float]", self.exponents(key, n_layers)) for key in ("a", "b", "c", "c_adam")}
        return [{key: cols[key][i] for key in cols} for i in range(n_layers)]

    def check(self, n_layers: int) -> None:
        """Raise ValueError if an exponent tuple does not fit ``n_layers`` layers."""
        for key in _KEYS:
            self.exponents(key, n_layers)

    def shifted(self, theta: float) -> Parameterization:
        """The abc-symmetric row (a + theta, b - theta, c - 2 theta, c_adam - theta, eps + theta) (Yang & Hu 2021).

        For SGD (with or without momentum, no weight decay) and for Adam (its eps moves with
        the gradient) it trains the same function as ``self``.
        """

        def move(values, by):
            return None if values is None else tuple(v + by for v in values)

        return replace(
            self,
            name=f"{self.name}~{theta:g}",
            a=move(self.a, theta),
            b=move(self.b, -theta),
            c=move(self.c, -2 * theta),
            c_adam=move(self.c_adam or self.c, -theta),
            warmup_c=move(self.warmup_c, -2 * theta),
            warmup_c_adam=move(self.warmup_c_adam, -theta),
            eps=move(self.eps, theta),
        )


def _expand(values: tuple[float, ...], n_layers: int, key: str, name: str) -> list[float]:
    if len(values) == n_layers:
        return [float(v) for v in values]
    if len(values) == 3:  # (input, hidden, output) pattern
        if n_layers == 1:
            raise ValueError(
                f"parameterization {name!r}: a model with a single layer is both input and output "
                f"layer; give one exponent per layer ({key}: [x])"
            )
        return [float(values[0])] + [float(values[1])] * (n_layers - 2) + [float(values[2])]
    raise ValueError(
        f"parameterization {name!r}: {key} has {len(values)} entries; expected 3 "
        f"(input, hidden, output) or {n_layers} (one per layer, depth + 1); fix the list's length"
    )


def lr_key(optimizer: str) -> str:
    """``c_adam`` for Adam-like optimizer names (adam, adamw), else ``c``."""
    return "c_adam" if optimizer in ADAM_LIKE else "c"


def gamma_lr_factor(gamma: float, rule: str = "piecewise") -> float:
    """Factor on the base learning rate for richness gamma (seed 002's rule).

    ``piecewise``: eta * gamma for gamma >= 1 and eta * gamma^2 for gamma < 1 (Atanasov
    et al. 2024, "The optimization landscape of SGD across the feature learning
    strength"); ``gamma``: eta * gamma; ``gamma2``: eta * gamma^2 (keeps the lazy,
    gamma -> 0 function-space dynamics fixed); ``none``: eta.
    """
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0 (the output multiplier is divided by gamma); got {gamma}")
    if rule == "piecewise":
        return gamma if gamma >= 1 else gamma**2
    if rule == "gamma":
        return gamma
    if rule == "gamma2":
        return gamma**2
    if rule == "none":
        return 1.0
    raise ValueError(f"unknown gamma_lr rule {rule!r}; valid: {', '.join(GAMMA_LR_RULES)}")


_IP: dict[str, Any] = dict(a=(0, 1, 1), b=(0, 0, 0), c=(-1, -2, -1), c_adam=(0, 0, 0))
PARAMETERIZATIONS: dict[str, Parameterization] = {
    "sp": Parameterization("sp", a=(0, 0, 0), b=(0, 0.5, 0.5), c=(0, 0, 0), c_adam=(0, 0, 0)),
    "ntk": Parameterization("ntk", a=(0, 0.5, 0.5), b=(0, 0, 0), c=(0, 0, 0), c_adam=(0.5, 1, 0.5)),
    "mup": Parameterization("mup", a=(-0.5, 0, 0.5), b=(0.5, 0.5, 0.5), c=(0, 0, 0), c_adam=(0.5, 1, 0.5)),
    "mf": Parameterization("mf", a=(0, 0.5, 1), b=(0, 0, 0), c=(-1, -1, -1), c_adam=(0, 0.5, 0)),
    "ip": Parameterization("ip", **_IP),
    "ipllr": Parameterization("ipllr", **_IP, warmup_c=(-0.5, -1, -0.5), warmup_c_depth=-0.5, n_warmup=1),
}


def get_parameterization(param: str | Parameterization | dict) -> Parameterization:
    """Look up a named row, pass a :class:`Parameterization` through, or build one from a dict.

    A dict has the keys of :class:`Parameterization` (``a``, ``b``, ``c`` required unless
    ``like`` names a row whose other keys it overrides); None values mean "not given".

    Raises:
        ValueError: unknown name (the valid ones are listed) or missing exponents.
    """
    if isinstance(param, Parameterization):
        return param
    if isinstance(param, str):
        try:
            return PARAMETERIZATIONS[param]
        except KeyError:
            raise ValueError(
                f"unknown parameterization {param!r}; valid: {', '.join(sorted(PARAMETERIZATIONS))} "
                "or custom exponents {a: [...], b: [...], c: [...]}"
            ) from None
    given = {k: v for k, v in dict(param).items() if v is not None}
    like = given.pop("like", None)
    if like is not None:
        base = get_parameterization(like)
        given.setdefault("name", f"{like}*" if set(given) - {"name"} else like)
    else:
        missing = [k for k in ("a", "b", "c") if k not in given]
        if missing:
            raise ValueError(f"custom parameterization needs {', '.join(missing)} (or like: <row name>)")
        base = Parameterization("custom", a=(), b=(), c=())
    fields: dict[str, Any] = {k: tuple(float(x) for x in v) if k in _KEYS else v for k, v in given.items()}
    return replace(base, **fields)


class BaseWidthWarning(UserWarning):
    """A width-dependent parameterization used with the default ``base_width`` of 1."""


def base_width_note(param: str | Parameterization | dict, width: int, depth: int, optimizer: str) -> str | None:
    """What a width-dependent row implies at ``width`` with base width 1, or None for a row that
    does not depend on the width (SP: a = c = 0): the read-in and read-out multipliers and the
    per-layer factors on the base learning rate, (n / 1)^(-a_l) and (n / 1)^(-c_l)."""
    row = get_parameterization(param)
    n_layers = depth + 1
    a = row.exponents("a", n_layers) or []
    c = row.exponents(lr_key(optimizer), n_layers) or []
    if not any(a) and not any(c):
        return None

    def factor(exponent: float) -> str:
        return f"{float(width) ** -exponent:.3g}"

    hidden = f", hidden {factor(c[1])}" if n_layers > 2 else ""
    return (
        f"model.param={row.name} at width {width} with base_width 1 (the default): read-in multiplier "
        f"{factor(a[0])}, read-out multiplier {factor(a[-1])}; {optimizer} learning rates x input {factor(c[0])}"
        f"{hidden}, output {factor(c[-1])}. A learning rate tuned in SP means something else here: set "
        "model.base_width to the width your base hyperparameters were tuned at (docs/parameterizations.md)"
    )
