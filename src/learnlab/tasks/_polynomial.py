"""Fast evaluation of a Hermite polynomial with many terms, y(z) = sum_j c_j h_{alpha_j}(z).

A monomial alpha = {i: k_i} is a product of factors h_{k_i}(z_i). Sorting each
monomial's factors by index and inserting every prefix into a trie, a monomial's value
is its parent prefix's value times one factor. Level L of the trie holds the monomials
with L factors; its terms add up to

    sum_j c_j P[parent_j] F[feat_j] = sum_p P[p] * (C_L F)[p],

with F the factor values h_k(z_i) (one row per needed (k, i)), P the prefix values of
level L - 1 and C_L the (parents x factors) matrix of coefficients. Each level is
evaluated one of two ways, whichever costs less for its shape:

* dense: one matrix product C_L @ F (F restricted to the factors the level uses), then a
  weighted sum of parent rows; used when the level's terms hang off few parents (C_L is
  small and well filled), as in the power-law target, whose 40,000 terms have about 200 parents per level;
* sparse: gather each term's parent row and factor row, multiply, and one matrix-vector
  product with the coefficients: O(terms x samples) work for any shape.

Only the prefixes that are parents of the next level are kept. Rows are laid out
(node, sample) so every gather copies contiguous rows. No per-sample Python.

Factors h_k(z_i) are computed once per batch by the three-term recurrence, only up to
the largest degree each index needs (indices sorted by that degree, so each recurrence
step works on a prefix of the rows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["HermitePolynomial"]

CHUNK_ELEMENTS = 1 << 22  # rows x samples per working tensor (16 MiB in float32)
DENSE_FILL = 1 / 16  # a level is evaluated densely if its terms fill at least this much of C_L


@dataclass
class _Level:
    """One trie level: its terms, how to evaluate them, and the prefixes the next level needs."""

    parent: np.ndarray  # (terms,) row of each term's parent among the previous level's kept prefixes
    feat: np.ndarray  # (terms,) row of each term's factor in F
    coefs: np.ndarray  # (terms, outputs)
    keep: np.ndarray  # terms whose prefix value the next level needs (sorted)
    dense: np.ndarray | None = None  # (outputs, kept prefixes before, cols) C_L, when evaluated densely
    cols: np.ndarray | None = None  # (cols,) the rows of F this level's terms use


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
        self.n_features = sum(self.rows_per_degree)
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
                        parents.append([])
                        feats.append([])
                        level_coefs.append([])
                    node_of[prefix] = (L, len(parents[L - 1]))
                    parents[L - 1].append(node_of[f[: L - 1]][1])
                    i, k = prefix[-1]
                    feats[L - 1].append(int(offsets[k - 1] + position[i]))
                    level_coefs[L - 1].append(np.zeros(self.outputs))
            L, pos = node_of[f]
            level_coefs[L - 1][pos] = level_coefs[L - 1][pos] + c
        # 3) per level: the prefixes the next level needs, parents renumbered among the kept
        # prefixes of the level before, and the dense form where it is cheaper
        self.levels: list[_Level] = []
        kept_before = np.zeros(1, dtype=np.int64)  # the root
        for L, (p_list, g_list, c_list) in enumerate(zip(parents, feats, level_coefs)):
            p, g, c = np.asarray(p_list, dtype=np.int64), np.asarray(g_list, dtype=np.int64), np.stack(c_list)
            keep = np.unique(parents[L + 1]) if L + 1 < len(parents) else np.zeros(0, dtype=np.int64)
            local = np.searchsorted(kept_before, p)  # every parent is kept by construction
            level = _Level(local, g, c, keep)
            # the kept prefixes before are exactly this level's parents, so C_L's rows are them
            cols, columns = np.unique(g, return_inverse=True)
            if len(p) >= DENSE_FILL * len(kept_before) * len(cols):
                dense = np.zeros((self.outputs, len(kept_before), len(cols)))
                # numpy's stubs type ``indices`` as integer array-likes only; a tuple with slices is valid
                np.add.at(dense, (slice(None), local, columns), c.T)  # type: ignore[arg-type]
                level.dense, level.cols = dense, cols
            self.levels.append(level)
            kept_before = keep
        self.nodes = sum(len(level.parent) for level in self.levels)

    def _tensors(self, dtype, device):
        key = (str(device), dtype)
        if key not in self._cache:
            as_long = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
            as_float = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=dtype)  # noqa: E731
            levels = []
            for lv in self.levels:
                levels.append(
                    {
                        "parent": as_long(lv.parent),
                        "feat": as_long(lv.feat),
                        "coefs": as_float(lv.coefs.T),
                        "keep_parent": as_long(lv.parent[lv.keep]),
                        "keep_feat": as_long(lv.feat[lv.keep]),
                        "dense": None if lv.dense is None else as_float(lv.dense.reshape(-1, len(lv.cols))),
                        "cols": None if lv.cols is None else as_long(lv.cols),
                    }
                )
            self._cache[key] = (
                as_long(self.order),
                levels,
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

    def _widest(self) -> int:
        """The most rows of any working tensor, for the chunk size."""
        widest = self.n_features
        for lv in self.levels:
            rows = len(lv.parent) if lv.dense is None else lv.dense.shape[0] * lv.dense.shape[1]
            widest = max(widest, rows, len(lv.keep))
        return widest

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        order, levels, constant = self._tensors(z.dtype, z.device)
        n = z.shape[0]
        out = constant.unsqueeze(1).expand(self.outputs, n).clone()  # (outputs, n)
        if not levels:
            return out.T
        chunk = max(1, CHUNK_ELEMENTS // self._widest())
        zt_all = z.index_select(1, order).T.contiguous()  # (rows, n)
        for start in range(0, n, chunk):
            feats = self._features(zt_all[:, start : start + chunk])
            acc = out[:, start : start + chunk]
            prefix = torch.ones(1, feats.shape[1], dtype=z.dtype, device=z.device)  # kept prefixes
            for lv in levels:
                if lv["dense"] is not None:  # sum_p P[p] * (C_L F)[p]
                    proj = (lv["dense"] @ feats.index_select(0, lv["cols"])).view(self.outputs, -1, feats.shape[1])
                    acc.add_((proj * prefix).sum(1))
                else:
                    terms = prefix.index_select(0, lv["parent"]).mul_(feats.index_select(0, lv["feat"]))
                    acc.addmm_(lv["coefs"], terms)
                if lv["keep_parent"].numel():
                    prefix = prefix.index_select(0, lv["keep_parent"]).mul_(feats.index_select(0, lv["keep_feat"]))
        return out.T
