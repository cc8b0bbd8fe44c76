"""Depth parameterizations as data: exponents of the depth ratio L / L0 for residual networks.

A residual network (``ResMLP``) with L blocks and base depth L0 adds each block's branch to
the residual stream, h <- h + beta * branch(h). Its depth parameterization says how the
branch multiplier, the branch's init and its learning rates and Adam eps move with depth;
with r = L / L0:

    branch multiplier   beta = beta0 * r^(-alpha)          (on the branch's last layer)
    branch init         s <- s * r^(-init)                 (the branch's last layer)
    learning rate       lr <- lr * r^(-lr)  (SGD-like),  lr * r^(-lr_adam)  (Adam-like)
    Adam eps            eps <- eps * r^(-eps)

The lr and eps factors apply to every parameter inside a branch (its gradients all pass
through beta); the read-in and read-out layers are left to the width parameterization.
At L = L0 every row is the plain network, so hyperparameters tuned at the base depth
transfer. Rows:

    none       alpha 0    init 0   lr  0   lr_adam 0     eps 0
    depth_mup  alpha 1/2  init 0   lr  0   lr_adam 1/2   eps 1/2
    completep  alpha 1    init 0   lr -1   lr_adam 0     eps 1

* depth_mup: Depth-muP, Yang, Yu, Zhu & Hayou 2023 ("Tensor Programs VI: Feature learning
  in infinite-depth neural networks"), branches scaled by 1/sqrt(L), SGD learning rate
  constant in depth and Adam's scaled by 1/sqrt(L); the same branch scaling as Bordelon,
  Noci, Li, Hanin & Pehlevan 2023 ("Depthwise hyperparameter transfer in residual networks").
* completep: CompleteP, Dey et al. 2025 ("Don't be lazy: CompleteP enables compute-efficient
  deep transformers"), alpha = 1: branches scaled by 1/L, AdamW learning rate r^(alpha - 1)
  = constant and eps r^(-alpha). That paper states the AdamW rules only; the SGD exponent
  here (lr ~ L) follows from the same requirement (each block's update moves its branch
  output by Theta(1/L)): an SGD update of a branch weight is proportional to its gradient,
  itself ~ r^(-alpha), so lr ~ r^(2 alpha - 1), while Adam's normalised update needs
  lr ~ r^(alpha - 1).

The eps exponent equals the gradient's: a branch weight's gradient carries the factor
r^(-alpha), and eps must shrink with it to stay small beside sqrt(v).

Symmetry (block depth 1, as for the width exponents of Yang & Hu 2021): moving theta from
the init of the branch's last layer into its multiplier, (alpha, init, lr, lr_adam, eps) ->
(alpha + theta, init - theta, lr - 2 theta, lr_adam - theta, eps + theta), trains the same
function (see :meth:`DepthParameterization.shifted`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

__all__ = ["DepthParameterization", "DEPTH_PARAMETERIZATIONS", "get_depth_parameterization", "DEPTH_KEYS"]

DEPTH_KEYS = ("alpha", "init", "lr", "lr_adam", "eps")


@dataclass(frozen=True)
class DepthParameterization:
    """Exponents of the depth ratio r = L / L0 (see the module docstring).

    Attributes:
        name: the row's name (``"custom"`` for exponents from a spec).
        alpha: branch multiplier r^(-alpha).
        init: init factor r^(-init) of each branch's last layer.
        lr, lr_adam: learning-rate factors r^(-lr) for SGD-like and r^(-lr_adam) for Adam-like
            optimizers, on every parameter inside a branch.
        eps: Adam eps factor r^(-eps) on every parameter inside a branch.
    """

    name: str
    alpha: float = 0.0
    init: float = 0.0
    lr: float = 0.0
    lr_adam: float = 0.0
    eps: float = 0.0

    def lr_exponent(self, optimizer: str) -> float:
        """``lr_adam`` for Adam-like optimizer names (adam, adamw), else ``lr``."""
        from learnlab.models._param import ADAM_LIKE

        return self.lr_adam if optimizer in ADAM_LIKE else self.lr

    def shifted(self, theta: float) -> DepthParameterization:
        """The symmetric row (alpha + theta, init - theta, lr - 2 theta, lr_adam - theta, eps + theta)."""
        return replace(
            self,
            name=f"{self.name}~{theta:g}",
            alpha=self.alpha + theta,
            init=self.init - theta,
            lr=self.lr - 2 * theta,
            lr_adam=self.lr_adam - theta,
            eps=self.eps + theta,
        )


DEPTH_PARAMETERIZATIONS: dict[str, DepthParameterization] = {
    "none": DepthParameterization("none"),
    "depth_mup": DepthParameterization("depth_mup", alpha=0.5, lr=0.0, lr_adam=0.5, eps=0.5),
    "completep": DepthParameterization("completep", alpha=1.0, lr=-1.0, lr_adam=0.0, eps=1.0),
}


def get_depth_parameterization(param: str | DepthParameterization | dict) -> DepthParameterization:
    """Look up a named row, pass a :class:`DepthParameterization` through, or build one from a dict
    of exponents (``like`` names a row whose other exponents it overrides; missing ones are 0).

    Raises:
        ValueError: an unknown name (the valid ones are listed) or key.
    """
    if isinstance(param, DepthParameterization):
        return param
    if isinstance(param, str):
        try:
            return DEPTH_PARAMETERIZATIONS[param]
        except KeyError:
            raise ValueError(
                f"unknown depth parameterization {param!r}; valid: {', '.join(DEPTH_PARAMETERIZATIONS)} "
                f"or exponents {{{', '.join(DEPTH_KEYS)}}}"
            ) from None
    given: dict[str, Any] = {k: v for k, v in dict(param).items() if v is not None}
    like = given.pop("like", None)
    unknown = sorted(set(given) - set(DEPTH_KEYS) - {"name"})
    if unknown:
        raise ValueError(f"unknown depth exponent(s) {unknown}; valid: {', '.join(DEPTH_KEYS)}")
    base = get_depth_parameterization(like) if like is not None else DepthParameterization("custom")
    name = given.pop("name", None) or (f"{like}*" if like is not None and given else (like or "custom"))
    return replace(base, name=name, **{k: float(v) for k, v in given.items()})
