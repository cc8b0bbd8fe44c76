"""The many-term Hermite evaluator's two ways of summing a trie level (dense matrix product,
sparse gather) against a slow sum written with numpy's hermite_e, on random polynomials
with shared prefixes, several outputs and deep monomials."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.polynomial import hermite_e

import learnlab.tasks._polynomial as poly
from learnlab.tasks import HermitePolynomial


def _slow(monomials, coefs, z: np.ndarray) -> np.ndarray:
    out = np.zeros((z.shape[0], coefs.shape[1]))
    for m, c in zip(monomials, coefs):
        term = np.ones(z.shape[0])
        for i, k in m.items():
            basis = np.zeros(k + 1)
            basis[k] = 1.0
            term = term * hermite_e.hermeval(z[:, i], basis) / math.sqrt(math.factorial(k))
        out += term[:, None] * c
    return out


def _random_polynomial(rng, d=7, terms=120, max_factors=4, max_degree=5):
    monomials = {()}
    while len(monomials) < terms:
        idx = rng.choice(d, size=rng.integers(1, max_factors + 1), replace=False)
        monomials.add(tuple(sorted((int(i), int(rng.integers(1, max_degree + 1))) for i in idx)))
    return [dict(m) for m in sorted(monomials)]


@pytest.mark.parametrize("fill", [0.0, math.inf], ids=["all-dense", "all-sparse"])
@pytest.mark.parametrize("chunk", [1 << 22, 64], ids=["one-chunk", "many-chunks"])
def test_both_level_evaluations_equal_the_slow_sum(monkeypatch, fill, chunk):
    monkeypatch.setattr(poly, "DENSE_FILL", fill)
    monkeypatch.setattr(poly, "CHUNK_ELEMENTS", chunk)
    rng = np.random.default_rng(5)
    monomials = _random_polynomial(rng)
    coefs = rng.standard_normal((len(monomials), 3))
    p = HermitePolynomial(monomials, coefs)
    assert all((lv.dense is not None) == (fill == 0.0) for lv in p.levels)
    z = torch.from_numpy(rng.standard_normal((257, 7)))
    np.testing.assert_allclose(p(z).numpy(), _slow(monomials, coefs, z.numpy()), rtol=1e-11, atol=1e-11)


def test_the_choice_is_per_level():
    """Many terms on few parents go dense; terms that each hang off a parent of their own stay sparse."""
    first = [{0: 1, j: k} for j in range(1, 30) for k in (1, 2)]
    scattered = [{i: 1, i + 1: 1, i + 2: 1} for i in range(0, 27)]  # level 3: 27 parents, one child each
    p = HermitePolynomial(first + scattered, np.ones(len(first) + len(scattered)))
    kinds = [lv.dense is not None for lv in p.levels]
    assert kinds[0] is True and kinds[2] is False  # level 1: all terms on the root
    z = torch.randn(50, 30, dtype=torch.float64)
    np.testing.assert_allclose(
        p(z).numpy(),
        _slow(first + scattered, np.ones((len(first) + len(scattered), 1)), z.numpy()),
        rtol=1e-11,
        atol=1e-11,
    )
