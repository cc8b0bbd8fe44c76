"""Evaluation metrics, computed per member and streamed over chunks.

For errors e = f(x) - y on an evaluation set of N points (k outputs):

    mse = mean e^2,  l1 = mean |e|,  l2 = sqrt(mean e^2),  linf = max |e|  (uniform error)
    rel_* = the same on |e| / (|y| + eps)   (seed 001's relative errors, eps = 1e-8)
    accuracy = mean [sign f = sign y] (one output) or [argmax f = argmax y] (several)
    cross_entropy = mean -sum_c y_c log softmax(f)_c   (y one-hot, several outputs)
    coef/<label> = mean f(x) chi(x): the learned function's coefficient on a basis
                   function chi of the target (a parity chi_S or a Hermite monomial h_alpha)

Every metric is a sum or a max over points, so a set of 10^7 points can be streamed. Sums are
taken in float64 over fixed blocks of ``BLOCK`` consecutive points (whatever the chunks) and the
block sums added at the end, so a metric does not depend on how many points each forward pass took (a stack and
its members alone evaluate in passes of different sizes and agree bit for bit).
"""

from __future__ import annotations

import torch

from learnlab.train._names import METRICS, default_metrics

__all__ = ["BLOCK", "METRICS", "MetricAccumulator", "REL_EPS", "default_metrics"]

REL_EPS = 1e-8
BLOCK = 256  # points per partial sum (a power of two)


def _block_sums(blocks: torch.Tensor) -> torch.Tensor:
    """(..., BLOCK) -> (...): each block summed by halving (BLOCK a power of two), elementwise
    adds in a fixed order, so a block's sum has the same bits whatever the tensor's shape
    (``torch.sum`` may reduce in another order for another number of blocks)."""
    while blocks.shape[-1] > 1:
        half = blocks.shape[-1] // 2
        blocks = blocks[..., :half] + blocks[..., half:]
    return blocks[..., 0]


class MetricAccumulator:
    """Accumulate the requested metrics over chunks of an evaluation set, per member.

    Args:
        metrics: names from ``METRICS`` and/or ``coef``.
        components: (label, fn) pairs, fn(x: (n, d)) -> (n,), for ``coef`` (per member list).
    """

    def __init__(self, metrics: list[str], members: int, components=None, total: int | None = None):
        self.metrics, self.members = list(metrics), members
        # with the set's size known, each key's block sums go into one tensor allocated up front:
        # a growing list of small tensors kept between the large transient activations of each
        # forward pass fragments the heap (measured: RSS grew by GBs per 10^6-point evaluation)
        self.total = total
        self.filled: dict[str, int] = {}
        self.components = components  # list (per member) of [(label, fn)] or None
        self.blocks: dict[str, list[torch.Tensor]] = {}  # key -> (E, blocks) float64 partial sums
        self.pending: dict[str, torch.Tensor] = {}  # key -> (E, < BLOCK) values of an unfinished block
        self.maxima: dict[str, torch.Tensor] = {}
        self.n = 0

    def _sum(self, key: str, per_point: torch.Tensor) -> None:
        """Add (E, n) per-point values as float64 sums over consecutive blocks of BLOCK points
        (a block split between chunks waits in ``pending`` for the rest of its points)."""
        values = per_point.to(torch.float64)
        if key in self.pending:
            values = torch.cat([self.pending.pop(key), values], dim=1)
        full = values.shape[1] - values.shape[1] % BLOCK
        if full:
            sums = _block_sums(values[:, :full].reshape(values.shape[0], -1, BLOCK))
            if self.total is None:
                self.blocks.setdefault(key, []).append(sums)
            else:
                if key not in self.blocks:
                    blocks = -(-self.total // BLOCK)
                    self.blocks[key] = [torch.zeros(values.shape[0], blocks, dtype=torch.float64, device=values.device)]
                    self.filled[key] = 0
                start = self.filled[key]
                self.blocks[key][0][:, start : start + sums.shape[1]] = sums
                self.filled[key] = start + sums.shape[1]
        if full < values.shape[1]:
            self.pending[key] = values[:, full:]

    def _max(self, key: str, per_point: torch.Tensor) -> None:
        value = per_point.amax(dim=1).to(torch.float64)
        self.maxima[key] = value if key not in self.maxima else torch.maximum(self.maxima[key], value)

    @torch.no_grad()
    def update(self, out: torch.Tensor, y: torch.Tensor, x: torch.Tensor | None = None) -> None:
        """Add a chunk: out, y (E, n, k); x (E, n, d) for coef."""
        err = out - y
        names = set(self.metrics)
        if names & {"mse", "l2"}:
            self._sum("sq", err.pow(2).sum(dim=2))
        if "l1" in names:
            self._sum("abs", err.abs().sum(dim=2))
        if "linf" in names:
            self._max("max", err.abs().amax(dim=2))
        if any(m.startswith("rel_") for m in names):
            rel = err.abs() / (y.abs() + REL_EPS)
            self._sum("rel_sq", rel.pow(2).sum(dim=2))
            self._sum("rel_abs", rel.sum(dim=2))
            self._max("rel_max", rel.amax(dim=2))
        if "cross_entropy" in names:
            logp = torch.log_softmax(out.to(torch.float64), dim=-1)
            self._sum("ce", -(y.to(torch.float64) * logp).sum(dim=-1))
        if "accuracy" in names:
            if out.shape[-1] == 1:
                correct = (torch.sign(out) == torch.sign(y)).squeeze(-1)
            else:
                correct = out.argmax(dim=-1) == y.argmax(dim=-1)
            self._sum("correct", correct)
        if "coef" in names and self.components is not None and x is not None:
            labels = sorted({label for comps in self.components for label, _ in comps})
            for label in labels:
                per_point = torch.zeros(out.shape[0], out.shape[1], dtype=torch.float64, device=out.device)
                for e, comps in enumerate(self.components):
                    for name, fn in comps:
                        if name == label:
                            per_point[e] = out[e, :, 0].to(torch.float64) * fn(x[e]).to(torch.float64)
                self._sum(f"coef/{label}", per_point)
        self.n_outputs = y.shape[-1]
        self.n += out.shape[1]

    def result(self) -> dict[str, list[float]]:
        """metric name -> one value per member."""
        n, nk = self.n, self.n * self.n_outputs
        blocks = {key: list(parts) for key, parts in self.blocks.items()}
        for key, filled in self.filled.items():  # preallocated: only the blocks written
            blocks[key] = [blocks[key][0][:, :filled]]
        for key, rest in self.pending.items():  # the set's last, partial block
            blocks.setdefault(key, []).append(rest.sum(-1, keepdim=True))
        s = {key: torch.cat(parts, dim=1).sum(dim=1) for key, parts in blocks.items()} | self.maxima
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
