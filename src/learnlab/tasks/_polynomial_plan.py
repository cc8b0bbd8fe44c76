"""How a many-term Hermite polynomial is evaluated: the prefix trie of its monomials, and per
trie level whether its terms are summed by blocks of matrix products or by sparse gathers.

Each monomial's factors (i, k) are put in one fixed order (by index, ascending or descending:
both are planned and the cheaper plan is kept) and every prefix goes into a trie. Level L
holds the monomials with L factors; a term's value is its parent prefix's times one factor
F[j] = h_k(z_i). Level L's terms sum to

    sum_p P[p] sum_j C_L[p, j] F[j] = sum_j F[j] (C_L^T P)[j],

with P the values of its parents and C_L the (parents x columns) coefficient matrix, so the
whole polynomial is y = sum_j F[j] G[j] with G = sum_L C_L^T P_L. The columns (factors) are
ordered by how many terms use them, most used first, and each level's parents by the last
column they reach: each parent's terms then lie within a prefix of the columns (a staircase;
in the power-law target a parent's children are the factors whose eigenvalue clears a
threshold set by the parent's). The parents are cut into a few blocks, by dynamic programming
over cells + a fixed cost per block, and a block is one product C_b^T P_b added into the
first ``span`` rows of G. A level whose terms each hang off parents of their own is cheaper
summed sparsely: gather each term's parent and factor rows, multiply, and one matrix product
with the coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Level", "Plan", "plan"]

# The planner's costs, in matrix cells (one multiply-add per sample): one PyTorch op's fixed
# cost (dispatch, cold caches between training steps) is about OP_CELLS cells at the few hundred
# samples of a training batch; a row gathered and multiplied (memory bound) about ROW_CELLS.
# A block is one op; a sparse level four ops and a row per term; the next level's prefixes
# three ops and a row each. Measured on CPU, float32, batch 256, generation between steps.
ROW_CELLS = 16
OP_CELLS = 4096
ORDERS = ("ascending", "descending")  # the factor orders planned


@dataclass
class Level:
    """One trie level: its terms, how to sum them, and the prefixes the next level needs."""

    parent: np.ndarray  # (terms,) row of each term's parent among the previous level's kept prefixes
    feat: np.ndarray  # (terms,) column of each term's factor
    coefs: np.ndarray  # (terms, outputs)
    keep: np.ndarray  # terms whose values the next level needs (as its parents), in its row order
    blocks: list[tuple[int, int, np.ndarray]] | None  # (first row, end row, (outputs, rows, span) C); None: sparse

    @property
    def rows(self) -> int:
        """How many parents (prefix rows) the level reads."""
        return int(self.parent.max()) + 1


@dataclass
class Plan:
    columns: np.ndarray  # the factor rows of F in column order (most used first)
    levels: list[Level]
    cost: float  # modelled, in cells


def plan(factors: list[tuple[tuple[int, int], ...]], coefs: np.ndarray, feature_row) -> Plan:
    """The cheapest plan over the factor orders in ``ORDERS``.

    Args:
        factors: per monomial its (index, degree) factors sorted by index, none empty.
        coefs: (monomials, outputs).
        feature_row: (index, degree) -> the row of F holding h_degree(z_index).
    """
    orders = {"ascending": factors, "descending": [f[::-1] for f in factors]}
    return min((_plan(_trie(orders[name], coefs, feature_row)) for name in ORDERS), key=lambda p: p.cost)


def _trie(factors, coefs: np.ndarray, feature_row):
    """Levels of the prefix trie: per level, (parent node at the level before, factor row, coefs)."""
    outputs = coefs.shape[1]
    node_of: dict[tuple, int] = {(): 0}  # prefix -> its position in its level
    parents: list[list[int]] = []
    feats: list[list[int]] = []
    level_coefs: list[list[np.ndarray]] = []
    for f, c in zip(factors, coefs):
        for L in range(1, len(f) + 1):
            prefix = f[:L]
            if prefix not in node_of:
                if len(parents) < L:
                    parents.append([])
                    feats.append([])
                    level_coefs.append([])
                node_of[prefix] = len(parents[L - 1])
                parents[L - 1].append(node_of[f[: L - 1]])
                feats[L - 1].append(feature_row(*prefix[-1]))
                level_coefs[L - 1].append(np.zeros(outputs))
        level_coefs[len(f) - 1][node_of[f]] = level_coefs[len(f) - 1][node_of[f]] + c
    return [
        (np.asarray(p, dtype=np.int64), np.asarray(g, dtype=np.int64), np.stack(c))
        for p, g, c in zip(parents, feats, level_coefs)
    ]


def _plan(trie) -> Plan:
    rows, uses = np.unique(np.concatenate([feat for _, feat, _ in trie]), return_counts=True)
    columns = rows[np.lexsort((rows, -uses))]  # most used first
    column_of = np.zeros(int(rows.max()) + 1, dtype=np.int64)
    column_of[columns] = np.arange(len(columns))
    levels: list[Level] = []
    cost = 0.0
    for parent, feat, coefs in trie:
        used, compact = np.unique(parent, return_inverse=True)  # every kept prefix before is a parent here
        order, blocks, level_cost = _plan_level(compact, column_of[feat], coefs, len(used))
        if levels:  # the level before keeps exactly these prefixes, in this order
            levels[-1].keep = used[order]
            cost += 3 * OP_CELLS + ROW_CELLS * len(order)
        row = np.empty(len(used), dtype=np.int64)
        row[order] = np.arange(len(used))
        levels.append(Level(row[compact], column_of[feat], coefs, np.zeros(0, dtype=np.int64), blocks))
        cost += level_cost
    return Plan(columns, levels, cost)


def _plan_level(parent: np.ndarray, column: np.ndarray, coefs: np.ndarray, n_parents: int):
    """(row order of the parents, blocks or None for sparse, cost in cells) of one level.

    ``parent`` numbers the parents 0..n_parents-1 in any order; the row order lists them as
    the level wants its prefix rows: by decreasing span (last column reached + 1).
    """
    span = np.zeros(n_parents, dtype=np.int64)
    np.maximum.at(span, parent, column + 1)
    order = np.lexsort((np.arange(n_parents), -span))
    spans, counts = np.unique(-span[order], return_counts=True)
    spans = -spans  # decreasing, one entry per group of rows of equal span
    cuts = _cut(counts, spans, OP_CELLS)
    first_row = np.concatenate([[0], np.cumsum(counts)])
    blocked_cost = sum((first_row[b] - first_row[a]) * spans[a] + OP_CELLS for a, b in zip(cuts[:-1], cuts[1:]))
    sparse_cost = 4 * OP_CELLS + ROW_CELLS * len(parent)
    if sparse_cost < blocked_cost:
        return order, None, sparse_cost
    row = np.empty(n_parents, dtype=np.int64)
    row[order] = np.arange(n_parents)
    blocks = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        r0, r1 = int(first_row[a]), int(first_row[b])
        inside = (row[parent] >= r0) & (row[parent] < r1)
        dense = np.zeros((coefs.shape[1], r1 - r0, int(spans[a])))
        # numpy's stubs type ``indices`` as integer array-likes only; a tuple with slices is valid
        np.add.at(dense, (slice(None), row[parent[inside]] - r0, column[inside]), coefs[inside].T)  # type: ignore[arg-type]
        blocks.append((r0, r1, dense))
    return order, blocks, blocked_cost


def _cut(counts: np.ndarray, spans: np.ndarray, block_cells: float) -> list[int]:
    """Group boundaries of the cheapest cut of rows into blocks.

    ``counts[g]`` rows of span ``spans[g]`` (spans decreasing): a block of groups a..b-1 costs
    (rows in it) * spans[a] + block_cells. Returns the first group of each block, then len(groups).
    O(groups^2), and there are at most as many groups as columns.
    """
    G = len(spans)
    rows = np.concatenate([[0], np.cumsum(counts)])
    best, start = np.zeros(G + 1), np.zeros(G + 1, dtype=np.int64)
    for b in range(1, G + 1):
        a = np.arange(b)
        cost = best[a] + (rows[b] - rows[a]) * spans[a] + block_cells
        start[b] = a[np.argmin(cost)]
        best[b] = cost[start[b]]
    cuts = [G]
    while cuts[-1] > 0:
        cuts.append(int(start[cuts[-1]]))
    return cuts[::-1]
