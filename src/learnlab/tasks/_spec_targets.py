"""Spec models of ``task.target`` (one per target, tagged by ``name``).

Checks that need only the target are here; checks against the inputs (index < d,
which inputs a target needs) live on ``TaskSpec``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union, get_args

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    field_validator,
    model_validator,
)

from learnlab._spec_base import Samples, Section, Small, Width, per_member

__all__ = ["TargetSpec", "TARGET_SPECS", "HermiteTermSpec", "target_indices", "LabelsKind"]

LabelsKind = Literal["value", "sign", "onehot"]
_LABELS: LabelsKind = Field("value", description="value = regression; sign = sign(f) in {-1,+1}; onehot = argmax class")
Monomial = dict[NonNegativeInt, NonNegativeInt]
IndexSets = list[Annotated[list[NonNegativeInt], Field(min_length=1)]]


def _distinct_indices(sets):
    """On the hypercube x_i^2 = 1, so a repeated index silently changes the parity: reject it."""
    for s in sets or []:
        if len(set(s)) != len(s):
            repeated = sorted({i for i in s if s.count(i) > 1})
            raise ValueError(
                f"index set {s} repeats index {repeated}; each index may appear once per set "
                "(x_i^2 = 1 on the hypercube, so a repeated index cancels)"
            )
    return sets


class ParityTargetSpec(Section):
    """Sum of parities prod_{i in S} x_i over index sets S (seed 000); needs hypercube inputs."""

    name: Literal["parity"]
    indices: IndexSets = Field(min_length=1, description="index sets S, e.g. [[0, 1, 2]]")
    normalize: bool = Field(False, description="divide by sqrt(number of sets) for unit variance")

    _distinct = field_validator("indices")(classmethod(lambda cls, v: _distinct_indices(v)))


class StaircaseTargetSpec(Section):
    """Staircase x0 + x0x1 + ... (degree k) or a merged staircase given as index sets; needs hypercube inputs."""

    name: Literal["staircase"]
    degree: Small | None = Field(None, description="k: the sets [[0], [0,1], ..., [0..k-1]] (seed 000)")
    indices: IndexSets | None = Field(None, description="merged staircase: each set adds at most one new index")
    normalize: bool = Field(False, description="divide by sqrt(number of sets) for unit variance")

    _distinct = field_validator("indices")(classmethod(lambda cls, v: _distinct_indices(v)))

    @model_validator(mode="after")
    def _one_form(self):
        if (self.degree is None) == (self.indices is None):
            raise ValueError("give exactly one of degree (e.g. 3) or indices (e.g. [[0], [0, 1], [1, 2]])")
        if self.indices is not None:
            seen: set[int] = set()
            for s in self.indices:
                new = set(s) - seen
                if len(new) > 1:
                    raise ValueError(
                        f"indices {self.indices} are not a merged staircase: set {s} adds "
                        f"{sorted(new)}, more than one new index; use name: parity for any sum of parities"
                    )
                seen |= set(s)
        return self


class HermiteTermSpec(Section):
    """One term coef * h_alpha of a Hermite polynomial."""

    monomial: Monomial = Field(description="alpha = {index: degree}")
    coef: float = Field(1.0, description="coefficient")


class HermiteTargetSpec(Section):
    """Orthonormal Hermite monomial prod_i h_{k_i}(z_i) or a weighted sum of them."""

    name: Literal["hermite"]
    monomial: Monomial | None = Field(None, description="{index: degree}, e.g. {0: 2, 3: 1}")
    terms: list[HermiteTermSpec] | None = Field(None, min_length=1, description="[{monomial, coef}, ...]")
    labels: LabelsKind = _LABELS

    @model_validator(mode="after")
    def _one_form(self):
        if (self.monomial is None) == (self.terms is None):
            raise ValueError("give exactly one of monomial ({index: degree}) or terms ([{monomial, coef}, ...])")
        if self.monomial is not None and not self.monomial:
            raise ValueError("monomial is empty; give at least one {index: degree}")
        return self


class SingleIndexTargetSpec(Section):
    """y = g(w . x), |w| = 1; g named (relu, tanh, identity, abs, sign, he<k>) or Hermite coefficients."""

    name: Literal["single_index"]
    direction: list[float] | None = Field(None, description="w (normalised to unit length); random from seed if null")
    seed: int | None = per_member(
        None, examples=(None, 1), description="seed of the random direction; null: from the run's seed"
    )
    link: str | None = Field(
        None, description="relu, tanh, identity, abs, sign or he<k> (= He_k); relu if no coefficients"
    )
    coefficients: list[float] | None = Field(None, min_length=1, description="g = sum_k c_k h_k (Hermite coefficients)")
    labels: LabelsKind = _LABELS

    @model_validator(mode="after")
    def _link(self):
        problems = []
        if self.link is not None and self.coefficients is not None:
            problems.append("give link or coefficients, not both")
        if self.link is None and self.coefficients is None:
            self.link = "relu"
        if self.link is not None:
            from learnlab.tasks._index_models import parse_link

            try:
                parse_link(self.link)
            except ValueError as exc:
                problems.append(str(exc))
        if self.direction is not None and not any(self.direction):
            problems.append("direction is the zero vector; give a non-zero direction")
        if problems:  # every problem of the section at once
            raise ValueError("; ".join(problems))
        return self


class MultiIndexTargetSpec(Section):
    """y = g(W x), W: r orthonormal directions; g = product, norm, max, Hermite terms or 'module:attr'."""

    name: Literal["multi_index"]
    r: Small | None = Field(None, description="number of directions (default: rows of directions, else 2)")
    directions: list[list[float]] | None = Field(None, description="r rows of d numbers; random orthonormal if null")
    seed: int | None = per_member(
        None, examples=(None, 1), description="seed of the random directions; null: from the run's seed"
    )
    link: str | None = Field(None, description="product, norm, max or 'package.module:attr' on p (n, r)")
    terms: list[HermiteTermSpec] | None = Field(
        None, min_length=1, description="g = sum coef h_alpha(p), alpha over j < r"
    )
    outputs: Width = Field(1, description="outputs of a user link")
    labels: LabelsKind = _LABELS

    @model_validator(mode="after")
    def _shape_and_link(self):
        problems = []
        rows = len(self.directions) if self.directions is not None else None
        if self.r is None:
            self.r = rows or 2
        if rows is not None and rows != self.r:
            problems.append(f"r = {self.r} but directions has {rows} rows")
        if self.link is not None and self.terms is not None:
            problems.append("give link or terms, not both")
        if self.link is None and self.terms is None:
            self.link = "product"
        if self.terms is not None:
            bad = sorted({j for t in self.terms for j in t.monomial if j >= self.r})
            if bad:
                problems.append(
                    f"terms use projection indices {bad}, but there are r = {self.r} (valid: 0..{self.r - 1})"
                )
        if self.link is not None:
            from learnlab._imports import is_ref, resolve
            from learnlab.tasks._index_models import MULTI_LINKS

            if is_ref(self.link):
                try:
                    resolve(self.link)
                except ValueError as exc:
                    problems.append(str(exc))
            elif self.link not in MULTI_LINKS:
                problems.append(f"unknown link {self.link!r}; valid: {', '.join(MULTI_LINKS)} or 'package.module:attr'")
        if problems:  # every problem of the section at once
            raise ValueError("; ".join(problems))
        return self


class TeacherTargetSpec(Section):
    """A frozen random ReLU MLP (seed 001): weights and biases U(-1/2, 1/2), or Gaussian."""

    name: Literal["teacher"]
    widths: list[Width] = Field(description="hidden widths, e.g. [32, 32, 32, 32, 32]")
    seed: int | None = per_member(
        None, examples=(None, 1), description="teacher seed (same seed, same teacher); null: from the run's seed"
    )
    init: Literal["uniform", "gaussian"] = Field("uniform", description="uniform = U(-1/2, 1/2); gaussian = He")
    outputs: Width = Field(1, description="output units")
    labels: LabelsKind = _LABELS


class SineTargetSpec(Section):
    """Seed 001's y = log(sin(10 f x) + 2) + sin(f x); needs d = 1."""

    name: Literal["sine"]
    f: PositiveFloat = Field(1.0, description="frequency f")
    labels: LabelsKind = _LABELS


class PowerLawTargetSpec(Section):
    """Seed 002: the first cutoff_mode Hermite monomials by kernel eigenvalue, v_k ~ (k + yoffset)^(-beta/2)."""

    name: Literal["power_law"]
    cutoff_mode: Samples = Field(40000, description="number of monomials summed")
    beta: NonNegativeFloat = Field(1.2, description="v_k^2 decays like k^-beta")
    yoffset: PositiveFloat = Field(1.2, description="v_k = (k + yoffset)^(-beta/2)")
    normalized: bool = Field(True, description="rescale v so that E[y^2] = 1")
    weight_variance: PositiveFloat = Field(1.0, description="sigma_w^2 of the ReLU kernel ordering the modes")
    bias_variance: NonNegativeFloat = Field(1.0, description="sigma_b^2 of the ReLU kernel ordering the modes")
    kmax: Small = Field(10, description="largest total degree searched")
    target_monomials: list[Monomial] | None = Field(
        None, min_length=1, description="learn these monomials instead (equal weights)"
    )
    labels: LabelsKind = _LABELS


class CallableTargetSpec(Section):
    """A user function f(x: (n, d)) -> (n, outputs), named 'package.module:attr'."""

    name: Literal["callable"]
    function: str = Field(description="'package.module:attr'")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="if given, attr(**kwargs) builds the function")
    outputs: Width = Field(1, description="columns the function returns")
    labels: LabelsKind = _LABELS

    @field_validator("function")
    @classmethod
    def _importable(cls, ref: str):
        from learnlab._imports import resolve

        obj = resolve(ref)
        if not callable(obj):
            raise ValueError(f"{ref!r} is a {type(obj).__name__}, not a callable")
        return ref


# spelled out (a static type checker cannot evaluate ``Union[tuple(...)]``); TARGET_SPECS is read off it
_AnyTargetSpec = Union[  # noqa: UP007
    ParityTargetSpec,
    StaircaseTargetSpec,
    HermiteTargetSpec,
    SingleIndexTargetSpec,
    MultiIndexTargetSpec,
    TeacherTargetSpec,
    SineTargetSpec,
    PowerLawTargetSpec,
    CallableTargetSpec,
]
TARGET_SPECS = list(get_args(_AnyTargetSpec))
TargetSpec = Annotated[_AnyTargetSpec, Field(discriminator="name")]


def target_indices(target) -> list[int]:
    """Every input index a target spec names (to check against d)."""
    if target.name in ("parity", "staircase"):
        sets = target.indices or [list(range(target.degree))]
        return sorted({i for s in sets for i in s})
    if target.name == "hermite":
        monomials = [target.monomial] if target.monomial is not None else [t.monomial for t in target.terms]
        return sorted({i for m in monomials for i in m})
    if target.name == "power_law" and target.target_monomials:
        return sorted({i for m in target.target_monomials for i in m})
    return []
