"""Parameterizations as data: per-layer width exponents (Yang & Hu 2021, "abc").

For a network of width n with base width n0 and layer l of fan-in ``fan_in_l`` at
base width, learnlab's layers compute

    h_l = m_l * (x_{l-1} @ W_l) + m_l^bias * b_l,       m_l   = (n / n0)^(-a_l)
    W_l ~ N(0, s_l^2),                                   s_l   = sigma_l / sqrt(fan_in_l) * (n / n0)^(-b_l)
    lr_l = lr * (n / n0)^(-c_l)                          (c for SGD-like, c_adam for Adam-like)

so at n = n0 every parameterization is the same standard fan-in model with one
learning rate, and hyperparameters tuned at the base width transfer. With the
default n0 = 1 the exponents are exactly Yang & Hu's (the input fan-in d is an O(1)
constant). ``sigma_l^2`` is 1 for the input layer and the activation's gain for
layers that read phi(h) (2 for relu, 1 otherwise).

Biases (initialised to zero) are vector-like: hidden biases take the input layer's
exponents (a bias is a weight from a constant input 1); the output bias takes 0s.

Rows (input, hidden, output):

    sp   a = (0, 0, 0)      b = (0, 1/2, 1/2)    c = (0, 0, 0)       c_adam = (0, 0, 0)
    ntk  a = (0, 1/2, 1/2)  b = (0, 0, 0)        c = (0, 0, 0)       c_adam = (1/2, 1, 1/2)
    mup  a = (-1/2, 0, 1/2) b = (1/2, 1/2, 1/2)  c = (0, 0, 0)       c_adam = (1/2, 1, 1/2)
    mf   a = (0, 1/2, 1)    b = (0, 0, 0)        c = (-1, -1, -1)    c_adam = (0, 1/2, 0)

``mf`` is muP shifted by theta = 1/2 along the abc symmetry
(a, b, c) -> (a + theta, b - theta, c - 2 theta) for SGD and (..., c - theta) for
Adam, which leaves training dynamics unchanged; for one hidden layer it is the
mean-field / integrable parameterization. muP for Adam scales hidden learning rates
like 1/fan_in (Yang et al. 2022, Tensor Programs V; the ``mup`` package's MuAdam).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Parameterization", "PARAMETERIZATIONS", "ADAM_LIKE", "get_parameterization"]

ADAM_LIKE = frozenset({"adam", "adamw"})
_GAIN = {"relu": 2.0}  # sigma^2 for layers reading phi(h); 1 otherwise


@dataclass(frozen=True)
class Parameterization:
    """Width exponents per layer: multiplier ``a``, init ``b``, learning rate ``c``/``c_adam``.

    Each exponent tuple is either a pattern ``(input, hidden, output)`` (expanded
    to any depth) or one entry per weight matrix (``depth + 1`` of them).
    """

    name: str
    a: tuple[float, ...]
    b: tuple[float, ...]
    c: tuple[float, ...]
    c_adam: tuple[float, ...]

    def per_layer(self, n_layers: int) -> list[dict[str, float]]:
        """Expand to ``n_layers`` weight matrices: a list of {a, b, c, c_adam}."""
        cols = {key: _expand(getattr(self, key), n_layers, key, self.name)
                for key in ("a", "b", "c", "c_adam")}
        return [{key: cols[key][i] for key in cols} for i in range(n_layers)]


def _expand(values: tuple[float, ...], n_layers: int, key: str, name: str) -> list[float]:
    if len(values) == n_layers:
        return [float(v) for v in values]
    if len(values) == 3:  # (input, hidden, output) pattern
        if n_layers == 1:
            raise ValueError(f"parameterization {name!r}: a model with one layer needs explicit exponents")
        return [float(values[0])] + [float(values[1])] * (n_layers - 2) + [float(values[2])]
    raise ValueError(
        f"parameterization {name!r}: {key} has {len(values)} entries; expected 3 "
        f"(input, hidden, output) or {n_layers} (one per layer, depth + 1)"
    )


def gain(activation: str) -> float:
    """sigma^2 of layers that read phi(h) (He et al. 2015 for relu)."""
    return _GAIN.get(activation, 1.0)


PARAMETERIZATIONS: dict[str, Parameterization] = {
    "sp": Parameterization("sp", a=(0, 0, 0), b=(0, 0.5, 0.5), c=(0, 0, 0), c_adam=(0, 0, 0)),
    "ntk": Parameterization("ntk", a=(0, 0.5, 0.5), b=(0, 0, 0), c=(0, 0, 0), c_adam=(0.5, 1, 0.5)),
    "mup": Parameterization("mup", a=(-0.5, 0, 0.5), b=(0.5, 0.5, 0.5), c=(0, 0, 0), c_adam=(0.5, 1, 0.5)),
    "mf": Parameterization("mf", a=(0, 0.5, 1), b=(0, 0, 0), c=(-1, -1, -1), c_adam=(0, 0.5, 0)),
}


def get_parameterization(param: str | Parameterization | dict) -> Parameterization:
    """Look up a named row, pass a :class:`Parameterization` through, or build one from a dict."""
    if isinstance(param, Parameterization):
        return param
    if isinstance(param, str):
        try:
            return PARAMETERIZATIONS[param]
        except KeyError:
            raise ValueError(
                f"unknown parameterization {param!r}; valid: {', '.join(sorted(PARAMETERIZATIONS))}"
            ) from None
    a, b, c = tuple(param["a"]), tuple(param["b"]), tuple(param["c"])
    c_adam = tuple(param.get("c_adam") or c)
    return Parameterization(param.get("name", "custom"), a=a, b=b, c=c, c_adam=c_adam)
