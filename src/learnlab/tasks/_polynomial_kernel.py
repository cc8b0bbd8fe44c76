"""The compiled evaluator of a many-term Hermite polynomial on the CPU (``_hermite_trie.c``).

It walks the prefix trie of the monomials a tile of samples at a time, each node's value kept
in registers and its childless children summed Horner-style, so nothing between the factors
and y goes to memory (the matrix-product plan, ``_polynomial_plan``, writes and reads back
gathered rows and prefix rows at every level): 256 samples of the power-law target (40,000
terms) take ~0.33 ms on one core and ~0.23 ms on two, against ~1 ms for the plan between
training steps (AVX-512). Float32 and float64 inputs; every sample gets the same bits whatever the rest
of its batch (each lane of a tile runs the same operations).

The extension is built with the package (``setup.py``; optional: without a C compiler learnlab
installs without it and ``available()`` is false, the plan then doing all the work).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os

import numpy as np
import torch

__all__ = ["available", "level", "TrieKernel"]

# Relative cost of a node with children (its value, its partial sums, their fold) and of a
# childless one (one product added per vector), for choosing the factor order of the trie.
NODE_COST = 4


class _Trie(ctypes.Structure):  # the C ``Trie``, field for field
    _fields_ = [
        ("d", ctypes.c_int64),
        ("outputs", ctypes.c_int64),
        ("degrees", ctypes.c_int64),
        ("rows_per_degree", ctypes.c_void_p),
        ("order", ctypes.c_void_p),
        ("nodes", ctypes.c_int64),
        ("max_depth", ctypes.c_int64),
        ("depth", ctypes.c_void_p),
        ("column", ctypes.c_void_p),
        ("leaf_end", ctypes.c_void_p),
        ("node_coef", ctypes.c_void_p),
        ("leaf_column", ctypes.c_void_p),
        ("leaf_coef", ctypes.c_void_p),
    ]


_library: list[ctypes.CDLL | None] = []  # [the library, or None where not built or switched off], once looked for


def _load() -> ctypes.CDLL | None:
    if not _library:
        spec = importlib.util.find_spec("learnlab.tasks._hermite_trie")
        built = spec.origin if spec is not None else None  # the compiled file, where setup.py built it
        off = os.environ.get("LEARNLAB_HERMITE_KERNEL") == "0"
        _library.append(bind(built) if built and not off else None)
    return _library[0]


def bind(path: str) -> ctypes.CDLL:
    """The evaluator's shared library at ``path``, its entry point typed (a CDLL call releases the GIL)."""
    library = ctypes.CDLL(path)
    library.learnlab_hermite_trie.restype = ctypes.c_int
    library.learnlab_hermite_trie.argtypes = [
        ctypes.POINTER(_Trie),
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_int,
    ]
    library.learnlab_hermite_level.restype = ctypes.c_int
    return library


def available() -> bool:
    """Whether the compiled evaluator was built and is not switched off (``LEARNLAB_HERMITE_KERNEL=0``)."""
    return _load() is not None


LEVELS = ("baseline", "avx2", "avx512")  # the levels of code of the x86-64 build, by number


def level() -> str:
    """The level of code this CPU runs: on x86-64 ``avx512``, ``avx2`` or ``baseline`` (SSE2);
    elsewhere ``baseline`` (one build for the compiler's target)."""
    library = _load()
    if library is None:
        raise RuntimeError("learnlab's compiled Hermite evaluator is not available (see available())")
    return LEVELS[library.learnlab_hermite_level()]


class TrieKernel:
    """The polynomial's trie laid out for the C evaluator.

    Args:
        factors: per monomial its (index, degree) factors sorted by index (empty: the constant).
        coefs: (monomials, outputs) float64.
        feature_row: (index, degree) -> the factor row holding h_degree(z_index).
        rows_per_degree, order: the factor rows (``HermitePolynomial._features_for``).
    """

    def __init__(self, factors, coefs: np.ndarray, feature_row, rows_per_degree, order: np.ndarray):
        outputs = coefs.shape[1]
        tries = [_preorder(factors, coefs, feature_row), _preorder([f[::-1] for f in factors], coefs, feature_row)]
        nodes = min(tries, key=lambda t: NODE_COST * len(t["depth"]) + len(t["leaf_column"]))
        self.arrays: dict[str, np.ndarray] = {
            "rows_per_degree": np.asarray(rows_per_degree, dtype=np.int64),
            "order": np.ascontiguousarray(order, dtype=np.int64),
            **{k: np.ascontiguousarray(v, dtype=np.int32) for k, v in nodes.items() if "coef" not in k},
        }
        self.coefs: dict[str, np.ndarray] = {k: nodes[k] for k in ("node_coef", "leaf_coef")}  # float64, cast per dtype
        self.d = int(self.arrays["order"].max()) + 1 if len(self.arrays["order"]) else 0
        self.outputs = outputs
        self._structs: dict = {}

    def __getstate__(self) -> dict:  # ctypes structures hold pointers: rebuilt where used
        return {**self.__dict__, "_structs": {}}

    def _struct(self, dtype: torch.dtype) -> tuple[_Trie, dict]:
        """The C structure for ``dtype`` and the arrays it points into (hold both while it is used)."""
        if dtype not in self._structs:
            np_dtype = np.float64 if dtype == torch.float64 else np.float32
            coefs = {k: np.ascontiguousarray(v, dtype=np_dtype) for k, v in self.coefs.items()}
            a: dict[str, np.ndarray] = {**self.arrays, **coefs}  # kept alive with the structure that points into them
            ptr = lambda name: a[name].ctypes.data  # noqa: E731
            struct = _Trie(
                d=self.d,
                outputs=self.outputs,
                degrees=len(a["rows_per_degree"]),
                rows_per_degree=ptr("rows_per_degree"),
                order=ptr("order"),
                nodes=len(a["depth"]),
                max_depth=int(a["depth"].max()),
                depth=ptr("depth"),
                column=ptr("column"),
                leaf_end=ptr("leaf_end"),
                node_coef=ptr("node_coef"),
                leaf_column=ptr("leaf_column"),
                leaf_coef=ptr("leaf_coef"),
            )
            self._structs.setdefault(dtype, (struct, a))
        return self._structs[dtype]

    def __call__(self, z: torch.Tensor, threads: int | None = None, code: str | None = None) -> torch.Tensor:
        """y (n, outputs) at z (n, >= d) float32 or float64 on the CPU, on ``threads`` (default torch's),
        with the level of ``code`` (default this CPU's best; one the CPU cannot run is lowered to it)."""
        library = _load()
        if library is None:
            raise RuntimeError("learnlab's compiled Hermite evaluator is not available (see available())")
        if z.device.type != "cpu" or z.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"the compiled evaluator takes float32 or float64 CPU tensors, got {z.dtype} on {z.device}")
        if code is not None and code not in LEVELS:
            raise ValueError(f"code must be one of {LEVELS} (or None: this CPU's best), got {code!r}")
        if z.dim() != 2 or z.shape[1] < self.d:
            raise ValueError(f"z must be (n, >= {self.d}), got {tuple(z.shape)}")
        if z.stride(1) != 1:  # rows may lie any distance apart (a column slice needs no copy)
            z = z.contiguous()
        y = torch.empty(z.shape[0], self.outputs, dtype=z.dtype)
        struct, arrays = self._struct(z.dtype)  # noqa: F841 -- ``arrays`` kept alive through the call
        status = library.learnlab_hermite_trie(
            ctypes.byref(struct),
            int(z.dtype == torch.float64),
            z.data_ptr(),
            z.shape[0],
            z.stride(0),
            y.data_ptr(),
            torch.get_num_threads() if threads is None else threads,
            -1 if code is None else LEVELS.index(code),
        )
        if status:
            raise MemoryError("learnlab's Hermite evaluator could not allocate its working memory")
        return y


def _preorder(factors, coefs: np.ndarray, feature_row) -> dict[str, np.ndarray]:
    """The trie of ``factors`` as arrays: nodes with children in preorder (the root first) with
    their depth, factor row, coefficients and the end of their run of childless children."""
    outputs = coefs.shape[1]
    children: list[dict] = [{}]  # node -> {factor: child node}
    node_coef = [np.zeros(outputs)]
    factor_of = [(0, 0)]
    for f, c in zip(factors, coefs):
        node = 0
        for factor in f:
            child = children[node].get(factor)
            if child is None:
                child = children[node][factor] = len(children)
                children.append({})
                node_coef.append(np.zeros(outputs))
                factor_of.append(factor)
            node = child
        node_coef[node] = node_coef[node] + c
    depth, column, leaf_end, inner_coef, leaf_column, leaf_coef = [], [], [], [], [], []
    stack = [(0, 0)]
    while stack:
        node, level = stack.pop()
        depth.append(level)
        column.append(feature_row(*factor_of[node]) if node else 0)
        inner_coef.append(node_coef[node])
        inner = []
        for child in children[node].values():
            if children[child]:
                inner.append((child, level + 1))
            else:
                leaf_column.append(feature_row(*factor_of[child]))
                leaf_coef.append(node_coef[child])
        leaf_end.append(len(leaf_column))
        stack.extend(reversed(inner))
    return {
        "depth": np.asarray(depth),
        "column": np.asarray(column),
        "leaf_end": np.asarray(leaf_end),
        "leaf_column": np.asarray(leaf_column, dtype=np.int64),
        "node_coef": np.stack(inner_coef),
        "leaf_coef": np.stack(leaf_coef) if leaf_coef else np.zeros((0, outputs)),
    }
