"""Fast evaluation of a Hermite polynomial with many terms, y(z) = sum_j c_j h_{alpha_j}(z).

A monomial alpha = {i: k_i} is a product of factors h_{k_i}(z_i). Sorting each
monomial's factors by index and inserting every prefix into a trie, a monomial's value
is its parent prefix's value times one factor. So all M terms cost one gather and one
multiply of an (n,) row each, level by level (level L = monomials with L factors),
plus one matrix-vector product per level: O(n * number of trie nodes), no per-sample
Python. Rows are laid out (node, sample) so every gather copies contiguous rows.

Factors h_k(z_i) are computed once per batch by the three-term recurrence, only up to
the largest degree each index needs (indices sorted by that degree, so each recurrence
step works on a prefix of the rows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["HermitePolynomial"]

CHUNK_ELEMENTS = 1 << 22  # nodes x samples per working tensor (16 MiB in float32)


class HermitePolynomial:
    """y(z) = sum_j coefs[j] * prod_i h_{k_i}(z_i), monomials alpha_j = {i: k_i}.

    Args:
        monomials: M monomials, each a mapping {index: degree} (degree-0 entries ignored;
            the empty monomial is the constant 1).
        coefs: (M,) or (M, outputs) coefficients.

    Shapes:
        __call__(z): z (n, d) -> (n, outputs).
    """

    def __init__(self, monomials: Sequence[dict[int, int]], coefs):
        coefs = np.asarray(coefs, dtype=np.float64)
        coefs = coefs.reshape(len(monomials), -1)
        self.outputs = coefs.shape[1]
        self.constant = np.zeros(self.outputs)
        factors = [tuple(sorted((int(i), int(k)) for i, k in m.items() if k > 0)) for m in monomials]
        self.max_index = max((f[-1][0] for f in factors if f), default=-1)
        self._build(factors, coefs)
        self._cache: dict = {}

    def _build(self, factors, coefs) -> None:
        # 1) which degrees each index needs; order indices by that degree (descending)
        need: dict[int, int] = {}
        for f in factors:
            for i, k in f:
                need[i] = max(need.get(i, 0), k)
        order = sorted(need, key=lambda i: (-need[i], i))
        self.order = np.asarray(order, dtype=np.int64)  # row p of the features is index order[p]
        position = {i: p for p, i in enumerate(order)}
        kmax = max(need.values(), default=0)
        # rows needing degree >= k form the prefix [0, m_k) of ``order``
        self.rows_per_degree = [sum(1 for i in order if need[i] >= k) for k in range(1, kmax + 1)]
        offsets = np.concatenate([[0], np.cumsum(self.rows_per_degree)]).astype(np.int64)
        # 2) the prefix trie, level by level
        node_of: dict[tuple, tuple[int, int]] = {(): (0, 0)}  # prefix -> (level, position)
        parents: list[list[int]] = []
        feats: list[list[int]] = []
        level_coefs: list[list[np.ndarray]] = []
        for f, c in zip(factors, coefs):
            if not f:
                self.constant = self.constant + c
                continue
            for L in range(1, len(f) + 1):
                prefix = f[:L]
                if prefix not in node_of:
                    if len(parents) < L:
                        parents.append([]), feats.append([]), level_coefs.append([])
                    node_of[prefix] = (L, len(parents[L - 1]))
                    parents[L - 1].append(node_of[f[:L - 1]][1])
                    i, k = prefix[-1]
                    feats[L - 1].append(int(offsets[k - 1] + position[i]))
                    level_coefs[L - 1].append(np.zeros(self.outputs))
            L, pos = node_of[f]
            level_coefs[L - 1][pos] = level_coefs[L - 1][pos] + c
        self.levels = [(np.asarray(p, dtype=np.int64), np.asarray(g, dtype=np.int64), np.stack(c))
                       for p, g, c in zip(parents, feats, level_coefs)]
        self.nodes = sum(len(p) for p, _, _ in self.levels)

    def _tensors(self, dtype, device):
        key = (str(device), dtype)
        if key not in self._cache:
            as_long = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
            self._cache[key] = (
                as_long(self.order),
                [(as_long(p), as_long(g), torch.from_numpy(c.T.copy()).to(device=device, dtype=dtype))
                 for p, g, c in self.levels],
                torch.from_numpy(self.constant).to(device=device, dtype=dtype),
            )
        return self._cache[key]

    def _features(self, zt: torch.Tensor) -> torch.Tensor:
        """h_k(z_i) for every needed (k, i): rows [h_1 block; h_2 block; ...], columns = samples."""
        blocks = [zt]  # h_1 = z
        prev, cur = torch.ones_like(zt), zt
        for k in range(1, len(self.rows_per_degree)):
            m = self.rows_per_degree[k]
            nxt = (zt[:m] * cur[:m] - math.sqrt(k) * prev[:m]) / math.sqrt(k + 1)
            blocks.append(nxt)
            prev, cur = cur[:m], nxt
        return torch.cat(blocks, dim=0)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        order, levels, constant = self._tensors(z.dtype, z.device)
        n = z.shape[0]
        out = constant.unsqueeze(1).expand(self.outputs, n).clone()  # (outputs, n)
        if not levels:
            return out.T
        widest = max(p.numel() for p, _, _ in levels)
        chunk = max(1, CHUNK_ELEMENTS // widest)
        zt_all = z.index_select(1, order).T.contiguous()  # (rows, n)
        for start in range(0, n, chunk):
            zt = zt_all[:, start:start + chunk]
            feats = self._features(zt)
            prefix = None
            acc = out[:, start:start + chunk]
            for parent, feat, coef in levels:
                factor = feats.index_select(0, feat)
                prefix = factor if prefix is None else prefix.index_select(0, parent).mul_(factor)
                acc.addmm_(coef, prefix)
        return out.T
