"""Evaluation metrics, computed per member and streamed over chunks.

For errors e = f(x) - y on an evaluation set of N points (k outputs):

    mse = mean e^2,  l1 = mean |e|,  l2 = sqrt(mean e^2),  linf = max |e|  (uniform error)
    rel_* = the same on |e| / (|y| + eps)   (seed 001's relative errors, eps = 1e-8)
    accuracy = mean [sign f = sign y] (one output) or [argmax f = argmax y] (several)
    cross_entropy = mean -sum_c y_c log softmax(f)_c   (y one-hot, several outputs)
    coef/<label> = mean f(x) chi(x): the learned function's coefficient on a basis
                   function chi of the target (a parity chi_S or a Hermite monomial h_alpha)

Every metric is a sum or a max over points, so a set of 10^7 points can be streamed.
"""

from __future__ import annotations

import torch

from learnlab.train._names import METRICS, default_metrics

__all__ = ["METRICS", "MetricAccumulator", "REL_EPS", "default_metrics"]

REL_EPS = 1e-8


class MetricAccumulator:
    """Accumulate the requested metrics over chunks of an evaluation set, per member.

    Args:
        metrics: names from ``METRICS`` and/or ``coef``.
        components: (label, fn) pairs, fn(x: (n, d)) -> (n,), for ``coef`` (per member list).
    """

    def __init__(self, metrics: list[str], members: int, components=None):
        self.metrics, self.members = list(metrics), members
        self.components = components  # list (per member) of [(label, fn)] or None
        self.sums: dict[str, torch.Tensor] = {}
        self.n = 0

    def _add(self, key: str, value: torch.Tensor, reduce: str = "sum") -> None:
        value = value.to(torch.float64)
        if key not in self.sums:
            self.sums[key] = value
        elif reduce == "max":
            self.sums[key] = torch.maximum(self.sums[key], value)
        else:
            self.sums[key] = self.sums[key] + value

    @torch.no_grad()
    def update(self, out: torch.Tensor, y: torch.Tensor, x: torch.Tensor | None = None) -> None:
        """Add a chunk: out, y (E, n, k); x (E, n, d) for coef."""
        err = out - y
        names = set(self.metrics)
        if names & {"mse", "l2"}:
            self._add("sq", err.pow(2).sum(dim=(1, 2)))
        if "l1" in names:
            self._add("abs", err.abs().sum(dim=(1, 2)))
        if "linf" in names:
            self._add("max", err.abs().amax(dim=(1, 2)), "max")
        if any(m.startswith("rel_") for m in names):
            rel = err.abs() / (y.abs() + REL_EPS)
            self._add("rel_sq", rel.pow(2).sum(dim=(1, 2)))
            self._add("rel_abs", rel.sum(dim=(1, 2)))
            self._add("rel_max", rel.amax(dim=(1, 2)), "max")
        if "cross_entropy" in names:
            logp = torch.log_softmax(out.to(torch.float64), dim=-1)
            self._add("ce", -(y.to(torch.float64) * logp).sum(dim=-1).sum(dim=1))
        if "accuracy" in names:
            if out.shape[-1] == 1:
                correct = (torch.sign(out) == torch.sign(y)).squeeze(-1)
            else:
                correct = out.argmax(dim=-1) == y.argmax(dim=-1)
            self._add("correct", correct.sum(dim=1))
        if "coef" in names and self.components is not None and x is not None:
            for e, comps in enumerate(self.components):
                for label, fn in comps:
                    key = f"coef/{label}"
                    if key not in self.sums:
                        self.sums[key] = torch.zeros(self.members, dtype=torch.float64, device=out.device)
                    self.sums[key][e] += (out[e, :, 0].to(torch.float64) * fn(x[e]).to(torch.float64)).sum()
        self.n_outputs = y.shape[-1]
        self.n += out.shape[1]

    def result(self) -> dict[str, list[float]]:
        """metric name -> one value per member."""
        n, nk = self.n, self.n * self.n_outputs
        s = self.sums
        table = {
            "mse": lambda: s["sq"] / nk,
            "l2": lambda: (s["sq"] / nk).sqrt(),
            "l1": lambda: s["abs"] / nk,
            "linf": lambda: s["max"],
            "rel_mse": lambda: s["rel_sq"] / nk,
            "rel_l2": lambda: (s["rel_sq"] / nk).sqrt(),
            "rel_l1": lambda: s["rel_abs"] / nk,
            "rel_linf": lambda: s["rel_max"],
            "accuracy": lambda: s["correct"] / n,
            "cross_entropy": lambda: s["ce"] / n,
        }
        out = {name: table[name]().tolist() for name in self.metrics if name in table}
        for key, value in s.items():
            if key.startswith("coef/"):
                out[key] = (value / n).tolist()
        return out
