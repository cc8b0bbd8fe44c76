"""Hermite stacks and many-term Hermite polynomials against numpy.polynomial.hermite_e."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from numpy.polynomial import hermite_e

from learnlab.tasks import HermitePolynomial, hermite_stack, make_task


def _ref_h(k: int, x: np.ndarray) -> np.ndarray:
    """h_k = He_k / sqrt(k!) by numpy's Clenshaw evaluation of the He series."""
    coef = np.zeros(k + 1)
    coef[k] = 1.0
    return hermite_e.hermeval(x, coef) / math.sqrt(math.factorial(k))


def test_hermite_stack_matches_hermite_e_up_to_degree_30():
    x = np.linspace(-8, 8, 801)
    got = hermite_stack(30, torch.tensor(x, dtype=torch.float64)).numpy()
    assert got.shape == (801, 31)
    refs = np.stack([_ref_h(k, x) for k in range(31)], axis=1)
    # forward recurrences on both sides: rounding is O(k eps) relative to the envelope
    # sqrt(sum_j h_j^2) (h_k itself vanishes at its roots); 1e-13 is a 15x margin.
    envelope = np.sqrt(np.cumsum(refs**2, axis=1))
    assert (np.abs(got - refs) / envelope).max() < 1e-13


def test_two_dimensional_monomials_are_orthonormal_by_tensor_quadrature():
    # hermegauss(20) integrates degree <= 39 exactly per axis; monomials here have degree <= 6 per axis
    nodes, weights = hermite_e.hermegauss(20)
    weights = weights / math.sqrt(2 * math.pi)
    z = torch.tensor(list(itertools.product(nodes, nodes)), dtype=torch.float64)  # (400, 2)
    w = np.outer(weights, weights).ravel()
    monomials = [{}, {0: 1}, {1: 1}, {0: 2}, {0: 1, 1: 1}, {1: 3}, {0: 6, 1: 2}]
    values = np.stack([HermitePolynomial([m], [1.0])(z)[:, 0].numpy() for m in monomials])
    gram = (values * w) @ values.T
    np.testing.assert_allclose(gram, np.eye(len(monomials)), atol=1e-11)


def test_polynomial_with_shared_prefixes_equals_a_slow_sum(gen):
    rng = np.random.default_rng(0)
    monomials = [{}, {0: 1}, {0: 1, 3: 2}, {0: 1, 3: 2, 5: 1}, {3: 2}, {2: 4, 5: 3}, {0: 2}, {5: 1}]
    coefs = rng.standard_normal((len(monomials), 2))  # two outputs
    z = torch.randn(300, 6, generator=gen(0), dtype=torch.float64)
    got = HermitePolynomial(monomials, coefs)(z).numpy()
    zn = z.numpy()
    expected = np.zeros((300, 2))
    for m, c in zip(monomials, coefs):
        term = np.ones(300)
        for i, k in m.items():
            term = term * _ref_h(k, zn[:, i])
        expected += term[:, None] * c
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_polynomial_in_float32_and_chunks_agree_with_float64(gen, monkeypatch):
    import learnlab.tasks._polynomial as poly

    monkeypatch.setattr(poly, "CHUNK_ELEMENTS", 16)  # force many column chunks
    monomials = [{0: 1}, {0: 1, 1: 1}, {1: 3}, {0: 2, 2: 1}]
    p = HermitePolynomial(monomials, [0.5, -1.0, 0.25, 2.0])
    z = torch.randn(97, 3, generator=gen(1), dtype=torch.float64)
    full = p(z)
    # float32 rounding of O(1) products of a few factors: ~1e-6 relative
    torch.testing.assert_close(p(z.float()).double(), full, rtol=1e-5, atol=1e-5)


def test_hermite_target_terms_form_matches_issue_example(gen):
    task = make_task(
        {
            "inputs": {"name": "gaussian", "d": 4},
            "target": {
                "name": "hermite",
                "terms": [{"monomial": {0: 1}, "coef": 0.6}, {"monomial": {1: 3}, "coef": 0.8}],
            },
        }
    )
    x, y = task.sample(500, gen(2), dtype=torch.float64)
    xn = x.numpy()
    expected = 0.6 * xn[:, 0] + 0.8 * (xn[:, 1] ** 3 - 3 * xn[:, 1]) / math.sqrt(6)
    np.testing.assert_allclose(y[:, 0].numpy(), expected, rtol=1e-12, atol=1e-12)
    assert [label for label, _ in task.target.components()] == ["h0^1", "h1^3"]


def test_hermite_target_on_anisotropic_inputs_uses_standardized_coordinates(gen):
    spectrum = [4.0, 0.25, 1.0]
    task = make_task(
        {
            "inputs": {"name": "gaussian", "d": 3, "spectrum": spectrum},
            "target": {"name": "hermite", "monomial": {0: 2, 1: 1}},
        }
    )
    x, y = task.sample(400, gen(3), dtype=torch.float64)
    z = x.numpy() / np.sqrt(spectrum)
    np.testing.assert_allclose(y[:, 0].numpy(), _ref_h(2, z[:, 0]) * z[:, 1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [0, 1, 7, 30])
def test_high_degree_monomial_target_stays_finite_in_float32(gen, k):
    task = make_task({"inputs": {"name": "gaussian", "d": 2}, "target": {"name": "hermite", "monomial": {1: k}}})
    x, y = task.sample(1000, gen(k))
    assert torch.isfinite(y).all()
    np.testing.assert_allclose(y[:, 0].double().numpy(), _ref_h(k, x[:, 1].double().numpy()), rtol=2e-4, atol=2e-4)
