"""Targets: deterministic functions y = f(x) of a batch, y: (n, outputs).

Every target has ``outputs`` and ``labels``: ``"value"`` (regression; label noise is
Gaussian with std ``noise``), ``"sign"`` (values in {-1, +1}; noise is a label-flip
probability) or ``"onehot"`` (one-hot classes; noise is the probability that a label
is replaced by a uniformly drawn other class). Any parameters a target holds are built
on CPU in float64 and moved to the batch's device and dtype on first use (cached).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch

from learnlab._devices import to_device
from learnlab.tasks._hermite import hermite_monomial
from learnlab.tasks._polynomial import HermitePolynomial

__all__ = [
    "Target",
    "Parity",
    "Hermite",
    "Sine",
    "FunctionTarget",
    "Labelled",
    "TARGETS",
    "monomial_component",
    "is_rowwise",
    "on_device",
    "add_label_noise",
]


class Target(Protocol):
    """A function of the inputs.

    A target may declare ``rowwise = True``: each row of y is computed from its row of x by
    elementwise operations alone, so evaluating many streams' batches at once gives every row
    the bits it gets in its own batch. Stacks evaluate such a target once on all their
    streams' batches, and any other target on each stream's batch (matrix products may round
    a row differently in a larger product). A target whose answer depends on the batch's device
    or dtype has ``rowwise_on(x) -> bool`` instead (a many-term Hermite sum is rowwise where the
    compiled evaluator takes the batch: float32 and float64 on the CPU); ``is_rowwise`` asks.
    Rowwise targets are also evaluated on all the threads there are, others on one (``one_thread``).
    """

    @property
    def outputs(self) -> int: ...

    @property
    def labels(self) -> str: ...

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Map x: (n, d) to y: (n, outputs)."""
        ...


def is_rowwise(target, x: torch.Tensor) -> bool:
    """Whether ``target`` gives every row of batches like ``x`` the bits it gets in any batch (see
    ``Target``): its ``rowwise_on(x)`` where it has one, else its ``rowwise`` (default False)."""
    rowwise_on = getattr(target, "rowwise_on", None)
    return bool(rowwise_on(x)) if rowwise_on is not None else bool(getattr(target, "rowwise", False))


def on_device(cache: dict, name: str, make: Callable[[], torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """``make()`` (a CPU float64 tensor) cast to ``like``'s device and dtype, cached per (device, dtype)."""
    key = (name, str(like.device), like.dtype)
    if key not in cache:
        cache[key] = to_device(make(), like.device, like.dtype)
    return cache[key]


def _standardize(x, scale, cache):
    if scale is None:
        return x
    return x / on_device(cache, "scale", lambda: torch.tensor(scale, dtype=torch.float64), x)


def _monomial_label(m: dict[int, int]) -> str:
    return "h" + "_".join(f"{i}^{k}" for i, k in sorted(m.items())) if m else "1"


def monomial_component(m: dict[int, int], scale: tuple[float, ...] | None = None):
    """(label, x -> h_alpha(z)) for the ``coef`` metric; z = x / scale when inputs are anisotropic."""
    cache: dict = {}
    return (_monomial_label(m), lambda x: hermite_monomial(m, _standardize(x, scale, cache)))


@dataclass(frozen=True)
class Parity:
    """Sum of sparse parities y = sum_S prod_{i in S} x_i (seed 000), for x in {-1, +1}^d.

    ``indices=[[0], [0, 1], [0, 1, 2]]`` is the degree-3 staircase (Abbe et al., 2022).
    The sum is unnormalised by default (variance = number of index sets, as in seed 000);
    ``normalize=True`` divides by sqrt(number of sets) for unit variance. A single
    parity takes values in {-1, +1}, so its label noise is a flip probability.
    """

    indices: tuple[tuple[int, ...], ...]
    normalize: bool = False
    outputs: int = 1
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def labels(self) -> str:
        return "sign" if len(self.indices) == 1 else "value"

    def __call__(self, x):
        key = ("subsets", str(x.device))
        if key not in self._cache:  # index tensors on the device once (a list index is copied every call)
            self._cache[key] = [to_device(torch.tensor(s, dtype=torch.long), x.device) for s in self.indices]
        y = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for subset in self._cache[key]:
            y = y + x.index_select(1, subset).prod(dim=1)
        if self.normalize:
            y = y / len(self.indices) ** 0.5
        return y.unsqueeze(1)

    def components(self):
        return [("x" + "x".join(map(str, s)), lambda x, s=list(s): x[:, s].prod(dim=1)) for s in self.indices]


@dataclass(frozen=True)
class Hermite:
    """y = sum_j c_j h_{alpha_j}(z): one Hermite monomial or a weighted sum, orthonormal under N(0, I_d).

    h_alpha(z) = prod_i h_{k_i}(z_i) with h_k = He_k / sqrt(k!), so E[h_alpha h_beta] = delta
    and E[y^2] = sum_j c_j^2 for distinct monomials. z = x / scale (the standardised
    Gaussian coordinates; scale = sqrt(lambda), None for isotropic inputs).

    Args:
        monomial: ((index, degree), ...) for a single monomial with coefficient 1, or
        terms: (((index, degree), ...), coef) pairs.
    """

    monomial: tuple[tuple[int, int], ...] | None = None
    terms: tuple[tuple[tuple[tuple[int, int], ...], float], ...] | None = None
    scale: tuple[float, ...] | None = None
    outputs: int = 1
    labels: str = "value"
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def term_list(self) -> list[tuple[dict[int, int], float]]:
        if self.terms is not None:
            return [(dict(m), float(c)) for m, c in self.terms]
        return [(dict(self.monomial or ()), 1.0)]

    def polynomial(self) -> HermitePolynomial:
        if "poly" not in self._cache:
            terms = self.term_list()
            self._cache["poly"] = HermitePolynomial([m for m, _ in terms], [c for _, c in terms])
        return self._cache["poly"]

    @property
    def rowwise(self) -> bool:  # see Target
        return self.polynomial().rowwise

    def rowwise_on(self, x: torch.Tensor) -> bool:  # see Target
        return self.polynomial().rowwise_on(x)

    def __call__(self, x):
        return self.polynomial()(_standardize(x, self.scale, self._cache))

    def components(self):
        return [monomial_component(m, self.scale) for m, _ in self.term_list()]


@dataclass(frozen=True)
class Sine:
    """Seed 001's 1-d target y = log(sin(10 f x) + 2) + sin(f x), on x in [-1/2, 1/2].

    From "Training ReLU networks to high uniform accuracy is intractable" (Berner,
    Grohs & Voigtlaender, 2023); f is the frequency.
    """

    f: float = 1.0
    outputs: int = 1
    labels: str = "value"
    rowwise = True  # see Target

    def __call__(self, x):
        t = x[:, :1]
        return torch.log(torch.sin(10 * self.f * t) + 2) + torch.sin(self.f * t)


@dataclass(frozen=True)
class FunctionTarget:
    """A user callable f(x: (n, d)) -> (n,) or (n, outputs), named ``"package.module:attr"``.

    ``kwargs`` non-empty: ``attr(**kwargs)`` builds the function once (a factory).
    """

    ref: str
    outputs: int = 1
    kwargs: tuple[tuple[str, object], ...] = ()
    labels: str = "value"
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def function(self):
        if "f" not in self._cache:
            from learnlab._imports import resolve

            obj = resolve(self.ref)
            self._cache["f"] = obj(**dict(self.kwargs)) if self.kwargs else obj
        return self._cache["f"]

    def __call__(self, x):
        y = self.function()(x)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"target {self.ref!r} must return a torch.Tensor, got {type(y).__name__}")
        y = y.reshape(x.shape[0], -1) if y.dim() != 2 else y
        if y.shape != (x.shape[0], self.outputs):
            raise ValueError(
                f"target {self.ref!r} returned shape {tuple(y.shape)} for {x.shape[0]} inputs; "
                f"expected ({x.shape[0]}, {self.outputs}) (set target.outputs)"
            )
        return y.to(x.dtype)


@dataclass(frozen=True)
class Labelled:
    """Classification from a real-valued target: ``sign`` -> sign(f(x)) in {-1, +1} (0 -> +1);
    ``onehot`` -> one-hot of argmax_j f_j(x) over ``base.outputs`` classes."""

    base: Target
    labels: str = "sign"

    @property
    def outputs(self) -> int:
        return 1 if self.labels == "sign" else self.base.outputs

    def __call__(self, x):
        f = self.base(x)
        if self.labels == "sign":
            return torch.where(f >= 0, 1.0, -1.0).to(f.dtype)
        return torch.nn.functional.one_hot(f.argmax(dim=1), f.shape[1]).to(f.dtype)


def add_label_noise(y: torch.Tensor, labels: str, noise: float, generator) -> torch.Tensor:
    """Training labels: Gaussian noise (std ``noise``), sign flips or class swaps (probability ``noise``).

    Draws come from ``generator`` right after x, so a stream is reproducible from its seed.
    """
    if noise <= 0:
        return y
    if labels == "value":
        return y + noise * torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
    u = torch.rand(y.shape[0], 1, generator=generator, dtype=torch.float64, device=y.device)
    flip = u < noise
    if labels == "sign":
        return torch.where(flip, -y, y)
    k = y.shape[1]  # one-hot: replace the class c by (c + s) mod k, s uniform in 1..k-1
    shift = torch.randint(1, k, (y.shape[0],), generator=generator, device=y.device)
    new = torch.nn.functional.one_hot((y.argmax(dim=1) + shift) % k, k).to(y.dtype)
    return torch.where(flip, new, y)


# name -> factory for the targets built directly from their parameters
TARGETS = {"parity": Parity, "hermite": Hermite, "sine": Sine, "callable": FunctionTarget}
