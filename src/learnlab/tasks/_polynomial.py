"""Fast evaluation of a Hermite polynomial with many terms, y(z) = sum_j c_j h_{alpha_j}(z).

The plan (``_polynomial_plan``) sums the terms along a prefix trie of the monomials as
y = sum_j F[j] G[j]: F the factor values h_k(z_i) (one row per needed (k, i), columns =
samples), G = sum_L C_L^T P_L accumulated level by level from the prefix values P_L by a few
block matrix products, and P_{L+1} = P_L[parents] * F[factors] by two row gathers and a
product. No per-sample Python.

A call runs a fixed list of PyTorch ops on working tensors that are kept between calls of the
same batch size (every view and argument bound once): between training steps the caches are
cold and each op costs ~10 us of dispatch, so the count of ops, not their arithmetic, decides
the time of a few-hundred-sample batch.

Factors h_k(z_i) are computed by the three-term recurrence, only up to the largest degree
each index needs (indices sorted by that degree, so each recurrence step works on a prefix of
the rows).

That plan runs on GPUs, under autograd and wherever learnlab was installed without its C
extension. On the CPU, float32 and float64 batches go to the compiled trie evaluator
(``_polynomial_kernel``): the same trie walked per tile of samples with every intermediate
in registers, 2-6x faster than the plan and the same bits for a sample in any batch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch

from learnlab._devices import to_device
from learnlab.tasks._polynomial_kernel import TrieKernel, available
from learnlab.tasks._polynomial_plan import Level, Plan
from learnlab.tasks._polynomial_plan import plan as plan_polynomial

__all__ = ["HermitePolynomial"]

# Rows x samples per working tensor. On the CPU 2 MiB in float32, so a chunk's tensors stay in the
# core's caches: 10^6 samples of the power-law target (d = 200, 40,000 terms, one thread) took 5.1 s
# in chunks of 16 MiB and 3.8 s in chunks of 2 MiB on power-law inputs, 2.3 s and 1.5 s on Gaussian
# ones. A GPU wants wide kernels: 16 MiB there.
CHUNK_ELEMENTS = 1 << 19
DEVICE_CHUNK_ELEMENTS = 1 << 22
SPARE_BYTES = 32 << 20  # working tensors kept between calls up to this size
SMALL_TERMS = 8  # up to this many terms, each term is a product of factor rows (elementwise only)
# Float32 and float64 batches on the CPU, outside autograd, go to the compiled trie evaluator
# (``_polynomial_kernel``) where it was built; tests and benchmarks switch it off to run the plan.
KERNEL = True
KERNEL_DTYPES = (torch.float32, torch.float64)


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
        factors = [tuple(sorted((int(i), int(k)) for i, k in m.items() if k > 0)) for m in monomials]
        constant = np.array([not f for f in factors], dtype=bool)
        self.constant = coefs[constant].sum(0)
        self.max_index = max((f[-1][0] for f in factors if f), default=-1)
        self._features_for(factors)
        kept = [f for f in factors if f]
        # few terms: y = sum_t c_t prod F[rows_t] by elementwise products alone, so a sample's value
        # has the same bits whatever else is in the batch (``rowwise``); else the matrix-product plan
        self.rowwise = len(kept) <= SMALL_TERMS
        self._small = [([self._row(i, k) for i, k in f], c) for f, c in zip(kept, coefs[~constant])]
        self._terms = (factors, coefs, constant)  # the plan and the compiled trie: built on first use
        self._plan: Plan | None = None
        self._kernel: TrieKernel | None = None
        self._cache: dict = {}
        self._spare: dict = {}

    @property
    def levels(self) -> list[Level]:
        """The plan's trie levels (``_polynomial_plan``), planned on first use."""
        return self._planned().levels

    @property
    def columns(self) -> np.ndarray:
        """The factor rows in the plan's column order."""
        return self._planned().columns

    def rowwise_on(self, z: torch.Tensor) -> bool:
        """Whether a batch like ``z`` gets each sample's value with the same bits in any batch: always
        for a few terms (``rowwise``), and wherever the compiled evaluator takes the batch."""
        return self.rowwise or self._compiled_takes(z)

    def _compiled_takes(self, z: torch.Tensor) -> bool:
        grad = z.requires_grad and torch.is_grad_enabled()
        cpu = z.device.type == "cpu" and z.dtype in KERNEL_DTYPES
        return KERNEL and cpu and not grad and not self.rowwise and available()

    def _planned(self) -> Plan:
        if self._plan is None:
            factors, coefs, constant = self._terms
            kept = [f for f in factors if f]
            empty = Plan(np.zeros(0, dtype=np.int64), [], 0.0)
            self._plan = plan_polynomial(kept, coefs[~constant], self._row) if kept and not self.rowwise else empty
        return self._plan

    def _trie(self) -> TrieKernel:
        if self._kernel is None:
            factors, coefs, _ = self._terms
            self._kernel = TrieKernel(factors, coefs, self._row, self.rows_per_degree, self.order)
        return self._kernel

    def _features_for(self, factors) -> None:
        """Which degrees each index needs; indices ordered by that degree (descending)."""
        need: dict[int, int] = {}
        for f in factors:
            for i, k in f:
                need[i] = max(need.get(i, 0), k)
        order = sorted(need, key=lambda i: (-need[i], i))
        self.order = np.asarray(order, dtype=np.int64)  # row p of the features is index order[p]
        self._position = {i: p for p, i in enumerate(order)}
        kmax = max(need.values(), default=0)
        # rows needing degree >= k form the prefix [0, m_k) of ``order``
        self.rows_per_degree = [sum(1 for i in order if need[i] >= k) for k in range(1, kmax + 1)]
        self.n_features = sum(self.rows_per_degree)
        self._offsets = np.concatenate([[0], np.cumsum(self.rows_per_degree)]).astype(np.int64)

    def _row(self, i: int, k: int) -> int:
        """The row of F holding h_k(z_i)."""
        return int(self._offsets[k - 1] + self._position[i])

    def __getstate__(self) -> dict:  # tensors are rebuilt where the polynomial is used
        return {**self.__dict__, "_cache": {}, "_spare": {}}

    def _widest(self) -> int:
        """The most rows of any working tensor, for the chunk size."""
        widest = max(self.n_features, self.outputs * len(self.columns))
        for lv in self.levels:
            widest = max(widest, len(lv.keep), len(lv.parent) if lv.blocks is None else 0)
        return widest

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        n = z.shape[0]
        if self._compiled_takes(z):
            return self._trie()(z)
        out = self._tensors(z.dtype, z.device)["constant"].unsqueeze(1).expand(self.outputs, n).clone()  # (outputs, n)
        if self.rowwise:
            return self._products(z, out).T
        if z.requires_grad and torch.is_grad_enabled():
            return (out + self._differentiable(z)).T
        elements = CHUNK_ELEMENTS if z.device.type == "cpu" else DEVICE_CHUNK_ELEMENTS
        chunk = max(1, elements // self._widest())
        chunk = -(-n // -(-n // chunk))  # equal chunks: 256 rows in two of 128, not 222 + 34
        for start in range(0, n, chunk):
            zc = z[start : start + chunk]
            key = (str(zc.device), zc.dtype, zc.shape[0])
            work = self._spare.pop(key, None) or self._workspace(zc)  # never shared by concurrent calls
            torch.index_select(zc.T, 0, work["order"], out=work["h1"])  # h_1 = z, rows in feature order
            for op in work["ops"]:
                op()
            acc = out[:, start : start + chunk]
            acc.add_(work["g"].mul_(work["columns"]).sum(1))
            if work["sparse"] is not None:
                acc.add_(work["sparse"])
            if work["bytes"] <= SPARE_BYTES:
                if len(self._spare) >= 2:  # a full chunk and the last one
                    self._spare.pop(next(iter(self._spare)))
                self._spare[key] = work
        return out.T

    def _factors(self, z: torch.Tensor) -> torch.Tensor:
        """F (out of place, differentiable): h_k(z_i) for every needed (k, i), rows [h_1; h_2; ...]."""
        zt = z.index_select(1, self._tensors(z.dtype, z.device)["order"]).T  # (rows, n)
        blocks, prev, cur = [zt], torch.ones_like(zt), zt
        for k in range(1, len(self.rows_per_degree)):
            m = self.rows_per_degree[k]
            nxt = (zt[:m] * cur[:m] - math.sqrt(k) * prev[:m]) / math.sqrt(k + 1)
            blocks.append(nxt)
            prev, cur = cur[:m], nxt
        return torch.cat(blocks)

    def _products(self, z: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """out + sum_t c_t prod F[rows_t], elementwise (no reduction across samples): (outputs, n)."""
        if not self._small:
            return out
        key = ("small", str(z.device), z.dtype)
        if key not in self._cache:
            as_float = lambda c: to_device(torch.from_numpy(c), z.device, z.dtype).unsqueeze(1)  # noqa: E731
            self._cache[key] = [(rows, as_float(c)) for rows, c in self._small]
        feats = self._factors(z)
        for rows, c in self._cache[key]:
            term = feats[rows[0]]
            for r in rows[1:]:
                term = term * feats[r]
            out = out + c * term
        return out

    def _differentiable(self, z: torch.Tensor) -> torch.Tensor:
        """The same sum with out-of-place ops, for autograd (gradients with respect to z): (outputs, n)."""
        t = self._tensors(z.dtype, z.device)
        columns = self._factors(z).index_select(0, t["columns"])
        acc = torch.zeros(self.outputs, z.shape[0], dtype=z.dtype, device=z.device)
        prefix = torch.ones(1, z.shape[0], dtype=z.dtype, device=z.device)
        for lv in t["levels"]:
            if "blocks" in lv:
                for r0, r1, ct in lv["blocks"]:
                    acc = acc + (torch.matmul(ct, prefix[r0:r1]) * columns[: ct.shape[1]]).sum(1)
            else:
                terms = prefix.index_select(0, lv["parent"]) * columns.index_select(0, lv["feat"])
                acc = acc + lv["coefs"] @ terms
            prefix = prefix.index_select(0, lv["keep_parent"]) * columns.index_select(0, lv["keep_feat"])
        return acc

    def _tensors(self, dtype, device) -> dict:
        """The plan's index and coefficient tensors on ``device`` in ``dtype`` (built once)."""
        key = (str(device), dtype)
        if key not in self._cache:
            as_long = lambda a: to_device(torch.from_numpy(np.ascontiguousarray(a)), device)  # noqa: E731
            as_float = lambda a: to_device(torch.from_numpy(np.ascontiguousarray(a)), device, dtype)  # noqa: E731
            levels = []
            for lv in self.levels:
                level: dict = {"keep_parent": as_long(lv.parent[lv.keep]), "keep_feat": as_long(lv.feat[lv.keep])}
                if lv.blocks is None:
                    level.update(parent=as_long(lv.parent), feat=as_long(lv.feat), coefs=as_float(lv.coefs.T))
                else:  # C_b^T per output: (outputs, span, rows)
                    level["blocks"] = [(r0, r1, as_float(c.transpose(0, 2, 1))) for r0, r1, c in lv.blocks]
                levels.append(level)
            self._cache[key] = {
                "order": as_long(self.order),
                "columns": as_long(self.columns),
                "constant": as_float(self.constant),
                "levels": levels,
            }
        return self._cache[key]

    def _workspace(self, zc: torch.Tensor) -> dict:
        """Working tensors for a chunk of ``zc.shape[0]`` samples, and the ops that fill them."""
        t = self._tensors(zc.dtype, zc.device)
        m, cols = zc.shape[0], len(self.columns)
        empty = functools.partial(torch.empty, dtype=zc.dtype, device=zc.device)
        kept = max([len(lv.keep) for lv in self.levels] + [1])
        sparse_rows = max([len(lv.parent) for lv in self.levels if lv.blocks is None] + [0])
        feats = empty(self.n_features, m)
        columns = empty(cols, m)
        g = empty(self.outputs, cols, m)
        prefixes = (empty(kept, m), empty(kept, m))
        gathered = empty(max(kept, sparse_rows), m)
        terms = empty(sparse_rows, m) if sparse_rows else None
        sparse = empty(self.outputs, m) if sparse_rows else None
        ops = self._feature_ops(feats) + [
            functools.partial(torch.index_select, feats, 0, t["columns"], out=columns),
            g.zero_,
        ]
        if sparse is not None:
            ops.append(sparse.zero_)
        prefix = torch.ones(1, m, dtype=zc.dtype, device=zc.device)  # the root
        for i, (lv, level) in enumerate(zip(t["levels"], self.levels)):
            if "blocks" in lv:  # G[:span] += C_b^T P[r0:r1], per output
                for r0, r1, ct in lv["blocks"]:
                    for o in range(self.outputs):
                        ops.append(functools.partial(g[o, : ct.shape[1]].addmm_, ct[o], prefix[r0:r1]))
            else:  # sparse: sum_t c_t P[parent_t] F[feat_t]
                assert terms is not None and sparse is not None  # allocated when any level is sparse
                rows = len(level.parent)
                ops += [
                    functools.partial(torch.index_select, prefix, 0, lv["parent"], out=terms[:rows]),
                    functools.partial(torch.index_select, columns, 0, lv["feat"], out=gathered[:rows]),
                    functools.partial(terms[:rows].mul_, gathered[:rows]),
                    functools.partial(sparse.addmm_, lv["coefs"], terms[:rows]),
                ]
            if len(level.keep):  # the next level's parents: P[parent] * F[factor]
                rows, nxt = len(level.keep), prefixes[i % 2][: len(level.keep)]
                ops += [
                    functools.partial(torch.index_select, prefix, 0, lv["keep_parent"], out=nxt),
                    functools.partial(torch.index_select, columns, 0, lv["keep_feat"], out=gathered[:rows]),
                    functools.partial(nxt.mul_, gathered[:rows]),
                ]
                prefix = nxt
        buffers = [feats, columns, g, *prefixes, gathered] + [b for b in (terms, sparse) if b is not None]
        return {
            "order": t["order"],
            "h1": feats[: self.rows_per_degree[0]],
            "ops": ops,
            "columns": columns,
            "g": g,
            "sparse": sparse,
            "bytes": sum(b.numel() * b.element_size() for b in buffers),
        }

    def _feature_ops(self, feats: torch.Tensor) -> list:
        """Ops filling rows [h_2 block; h_3 block; ...] of ``feats`` from its h_1 block (z), two per degree:
        h_{k+1} = z h_k / sqrt(k + 1) - sqrt(k / (k + 1)) h_{k-1}."""
        ops: list = []
        z = feats[: self.rows_per_degree[0]]
        prev, cur, offset = None, z, self.rows_per_degree[0]
        for k in range(1, len(self.rows_per_degree)):
            m = self.rows_per_degree[k]
            nxt = feats[offset : offset + m]
            if prev is None:  # h_0 = 1
                ops.append(functools.partial(torch.full, (m, z.shape[1]), -math.sqrt(k / (k + 1)), out=nxt))
            else:
                ops.append(functools.partial(torch.mul, prev[:m], -math.sqrt(k / (k + 1)), out=nxt))
            ops.append(functools.partial(nxt.addcmul_, z[:m], cur[:m], value=1 / math.sqrt(k + 1)))
            prev, cur, offset = cur[:m], nxt, offset + m
        return ops
