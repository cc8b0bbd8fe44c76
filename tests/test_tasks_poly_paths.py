"""The many-term Hermite plan's ways of summing a trie level (one dense matrix product,
staircase blocks of products in either orientation, sparse gathers) and both factor orders,
against a slow sum written with numpy's hermite_e, on random polynomials with shared
prefixes, one or several outputs and deep monomials."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from numpy.polynomial import hermite_e

import learnlab.tasks._polynomial as poly
import learnlab.tasks._polynomial_plan as plan
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


@pytest.fixture(autouse=True)
def _the_plan(monkeypatch):
    """These tests are about the plan: the compiled evaluator (tests/test_tasks_poly_kernel.py) is off."""
    monkeypatch.setattr(poly, "KERNEL", False)


PATHS = {  # (ROW_CELLS, OP_CELLS): what each level is forced to
    "one-block": (math.inf, math.inf),
    "staircase": (math.inf, 0),
    "sparse": (0, 0),
}


@pytest.mark.parametrize("order", ["ascending", "descending"])
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("outputs", [1, 3])
@pytest.mark.parametrize("chunk", [1 << 22, 64], ids=["one-chunk", "many-chunks"])
def test_every_level_evaluation_equals_the_slow_sum(monkeypatch, order, path, outputs, chunk):
    monkeypatch.setattr(plan, "ROW_CELLS", PATHS[path][0])
    monkeypatch.setattr(plan, "OP_CELLS", PATHS[path][1])
    monkeypatch.setattr(plan, "ORDERS", (order,))
    monkeypatch.setattr(poly, "CHUNK_ELEMENTS", chunk)
    rng = np.random.default_rng(5)
    monomials = _random_polynomial(rng, d=12, terms=400)
    coefs = rng.standard_normal((len(monomials), outputs))
    p = HermitePolynomial(monomials, coefs)
    blocks = [len(lv.blocks) for lv in p.levels if lv.blocks is not None]
    if path == "sparse":
        assert not blocks
    else:
        assert len(blocks) == len(p.levels)
        assert (max(blocks) > 1) == (path == "staircase")
    z = torch.from_numpy(rng.standard_normal((257, 12)))
    expected = _slow(monomials, coefs, z.numpy())
    np.testing.assert_allclose(p(z).numpy(), expected, rtol=1e-11, atol=1e-11)
    # a second call reuses the working tensors of the first: same values
    np.testing.assert_allclose(p(z).numpy(), expected, rtol=1e-11, atol=1e-11)


def test_a_staircase_level_is_cut_into_blocks_of_the_columns_its_rows_reach(monkeypatch):
    """Parent j (the monomial {j: 1}) has children {j: 1, c: 1} for the first 40 - 4j columns c >= 10:
    rows of decreasing length, each a prefix of the columns ordered by use."""
    monkeypatch.setattr(plan, "OP_CELLS", 16)  # a block costs little next to a 10 x 40 level
    monomials = [{j: 1} for j in range(10)] + [{j: 1, c: 1} for j in range(10) for c in range(10, 50 - 4 * j)]
    p = HermitePolynomial(monomials, np.ones(len(monomials)))
    level = p.levels[1]
    spans = [c.shape[2] for _, _, c in level.blocks]
    assert len(spans) > 1 and spans == sorted(spans, reverse=True) and spans[0] >= 40
    cells = sum((r1 - r0) * c.shape[2] for r0, r1, c in level.blocks)
    assert len(level.parent) <= cells < 10 * spans[0]  # fewer cells than the one dense product
    z = torch.randn(33, 50, dtype=torch.float64)
    np.testing.assert_allclose(
        p(z).numpy(), _slow(monomials, np.ones((len(monomials), 1)), z.numpy()), rtol=1e-11, atol=1e-11
    )


def test_the_choice_is_per_level():
    """Many terms on few parents go dense; terms that each hang off a parent of their own stay sparse."""
    first = [{j: k} for j in range(30) for k in (1, 2, 3)]  # level 1: 90 terms on the root
    scattered = [{i: 1, i + 1: 1, i + 2: 1} for i in range(0, 300)]  # level 3: 300 parents, one child each
    p = HermitePolynomial(first + scattered, np.ones(len(first) + len(scattered)))
    kinds = [lv.blocks is not None for lv in p.levels]
    assert kinds[0] is True and kinds[2] is False  # level 1: all terms on the root
    z = torch.randn(50, 302, dtype=torch.float64)
    np.testing.assert_allclose(
        p(z).numpy(),
        _slow(first + scattered, np.ones((len(first) + len(scattered), 1)), z.numpy()),
        rtol=1e-11,
        atol=1e-11,
    )


def test_a_used_polynomial_pickles_without_its_tensors():
    rng = np.random.default_rng(1)
    monomials = _random_polynomial(rng)
    p = HermitePolynomial(monomials, rng.standard_normal(len(monomials)))
    z = torch.randn(64, 7, dtype=torch.float64)
    before = p(z)
    clone = pickle.loads(pickle.dumps(p))
    assert clone._cache == {} and clone._spare == {}
    torch.testing.assert_close(clone(z), before, rtol=0, atol=0)


@pytest.mark.parametrize("path", PATHS)
def test_gradients_with_respect_to_z_equal_the_derivative_of_the_slow_sum(monkeypatch, path):
    """Under autograd the same plan runs out of place; dh_k/dz = sqrt(k) h_{k-1} in the reference."""
    monkeypatch.setattr(plan, "ROW_CELLS", PATHS[path][0])
    monkeypatch.setattr(plan, "OP_CELLS", PATHS[path][1])
    rng = np.random.default_rng(3)
    monomials = _random_polynomial(rng, d=6, terms=80)
    coefs = rng.standard_normal((len(monomials), 2))
    z = torch.from_numpy(rng.standard_normal((31, 6))).requires_grad_(True)
    y = HermitePolynomial(monomials, coefs)(z)
    np.testing.assert_allclose(y.detach().numpy(), _slow(monomials, coefs, z.detach().numpy()), rtol=1e-11, atol=1e-11)
    y[:, 1].sum().backward()
    zn = z.detach().numpy()
    expected = np.zeros_like(zn)
    for m, c in zip(monomials, coefs[:, 1]):
        for i in m:  # d/dz_i of prod_j h_{k_j}(z_j): h_{k_i} -> sqrt(k_i) h_{k_i - 1}
            lowered = {**m, i: m[i] - 1}
            expected[:, i] += c * math.sqrt(m[i]) * _slow([lowered], np.ones((1, 1)), zn)[:, 0]
    np.testing.assert_allclose(z.grad.numpy(), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_few_terms_give_every_sample_the_same_bits_in_any_batch(dtype):
    """Up to SMALL_TERMS terms the sum is elementwise (``rowwise``): a sample's value does not depend
    on what else is in the batch; equal to the slow sum; more terms take the matrix-product plan."""
    rng = np.random.default_rng(8)
    monomials = _random_polynomial(rng, d=6, terms=poly.SMALL_TERMS)  # with the constant
    coefs = rng.standard_normal((len(monomials), 2))
    p = HermitePolynomial(monomials, coefs)
    assert p.rowwise and not p.levels
    z = torch.from_numpy(rng.standard_normal((1000, 6))).to(dtype)
    whole = p(z)
    for start, size in [(0, 1), (3, 37), (100, 256), (999, 1), (500, 500)]:
        assert torch.equal(p(z[start : start + size]), whole[start : start + size])
    tol = 1e-11 if dtype == torch.float64 else 1e-4
    np.testing.assert_allclose(whole.double().numpy(), _slow(monomials, coefs, z.double().numpy()), rtol=tol, atol=tol)
    more = _random_polynomial(rng, d=6, terms=poly.SMALL_TERMS + 2)
    assert not HermitePolynomial(more, np.ones(len(more))).rowwise
