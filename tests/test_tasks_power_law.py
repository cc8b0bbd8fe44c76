"""Seed 002's power-law data and target against formulas, brute force and slow evaluation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from numpy.polynomial import hermite_e

from learnlab.tasks import (
    make_task,
    power_law_coefficients,
    power_law_spectrum,
    relu_level_coefficients,
    top_monomials,
)


def test_power_law_spectrum_matches_the_formula():
    d, alpha, offset = 200, 2.0, 6
    lam = power_law_spectrum(d, alpha, offset)
    raw = np.array([(i + offset) ** -alpha for i in range(d)])
    np.testing.assert_allclose(lam, raw / raw.sum(), rtol=1e-14)
    assert lam.sum() == np.float64(1.0) or abs(lam.sum() - 1) < 1e-14
    task = make_task(
        {
            "inputs": {"name": "power_law_gaussian", "d": d, "alpha": alpha, "offset": offset},
            "target": {"name": "hermite", "monomial": {0: 1}},
        }
    )
    np.testing.assert_allclose(task.inputs.eigenvalues(), lam, rtol=1e-14)


def test_power_law_inputs_have_the_covariance_by_sampling(gen):
    n = 200_000
    task = make_task(
        {
            "inputs": {"name": "power_law_gaussian", "d": 5, "alpha": 1.0, "offset": 1},
            "target": {"name": "hermite", "monomial": {0: 1}},
        }
    )
    x, _ = task.sample(n, gen(0), dtype=torch.float64)
    lam = power_law_spectrum(5, 1.0, 1)
    cov = (x.T @ x / n).numpy()
    # sample variance of N(0, l): std l sqrt(2 / n); covariances: std sqrt(l_i l_j / n); 6 sigma
    sd = np.sqrt(np.outer(lam, lam) / n) * np.where(np.eye(5, dtype=bool), math.sqrt(2), 1)
    assert (np.abs(cov - np.diag(lam)) < 6 * sd).all()


def _taylor_derivatives(f, radius: float, kmax: int, points: int = 256) -> np.ndarray:
    """f^(l)(0) = l! / (2 pi i) \\oint f(t) t^-(l+1) dt by the trapezoid rule on |t| = radius
    (exponentially accurate for f analytic on a larger disk): an independent reference."""
    t = radius * np.exp(2j * np.pi * np.arange(points) / points)
    coeffs = np.fft.fft(f(t)).real / points / radius ** np.arange(points)
    return np.array([coeffs[l] * math.factorial(l) for l in range(kmax + 1)])


def test_relu_level_coefficients_are_derivatives_of_the_relu_ntk():
    lam = power_law_spectrum(20, 2.0, 6)
    for wv, bv in [(1.0, 1.0), (2.0, 0.5)]:
        q = bv + wv * lam.sum()

        def kernel(t, wv=wv, bv=bv, q=q):  # NTK of a 1-hidden-layer ReLU net at x . x' = t (complex t for the contour)
            c = (bv + wv * t) / q
            return wv * q / (2 * np.pi) * (np.sqrt(1 - c**2) + 2 * c * (np.pi - np.arccos(c)))

        # singularities where c = +-1: t = (q - bv)/wv = sum(lam) and t = -(q + bv)/wv; contour at half the distance
        radius = 0.5 * min(lam.sum(), (q + bv) / wv)
        ref = _taylor_derivatives(kernel, radius, 8)
        got = relu_level_coefficients(lam, wv, bv, kmax=8)
        np.testing.assert_allclose(got, ref, rtol=1e-8)
        assert (got > 0).all()


def test_monomial_order_matches_a_brute_force_sort():
    d, kmax, count = 5, 4, 60
    lam = power_law_spectrum(d, 1.5, 2)
    c = relu_level_coefficients(lam, 1.0, 1.0, kmax)
    got, values = top_monomials(lam, count, c)
    everything = []
    for degree in range(kmax + 1):
        for combo in itertools.combinations_with_replacement(range(d), degree):
            m = {}
            for i in combo:
                m[i] = m.get(i, 0) + 1
            everything.append((c[degree] * np.prod([lam[i] ** k for i, k in m.items()]), m))
    everything.sort(key=lambda e: -e[0])
    expected_values = np.array([v for v, _ in everything[:count]])
    np.testing.assert_allclose(values, expected_values, rtol=1e-12)
    value_of = {tuple(sorted(m.items())): v for v, m in everything}
    for m, v in zip(got, values):  # each returned monomial carries its own eigenvalue (ties may swap)
        assert math.isclose(value_of[tuple(sorted(m.items()))], v, rel_tol=1e-12)
    assert len({tuple(sorted(m.items())) for m in got}) == count


def test_monomial_order_with_an_unsorted_spectrum_maps_back_to_data_indices():
    lam = np.array([0.1, 0.5, 0.3])
    got, values = top_monomials(lam, 4, np.ones(3))
    assert got[:4] == [{}, {1: 1}, {2: 1}, {1: 2}]  # 1 > 0.5 > 0.3 > 0.25
    np.testing.assert_allclose(values, [1, 0.5, 0.3, 0.25])


def test_coefficients_follow_the_power_law():
    v = power_law_coefficients(1000, beta=1.2, yoffset=1.2, normalized=False)
    np.testing.assert_allclose(v, (np.arange(1000) + 1.2) ** -0.6, rtol=1e-14)
    w = power_law_coefficients(1000, beta=1.2, yoffset=1.2, normalized=True)
    np.testing.assert_allclose(w, v / np.linalg.norm(v), rtol=1e-14)
    assert abs((w**2).sum() - 1) < 1e-12


def _h(k, x):
    coef = np.zeros(k + 1)
    coef[k] = 1
    return hermite_e.hermeval(x, coef) / math.sqrt(math.factorial(k))


def test_power_law_target_equals_a_slow_evaluation(gen, hermite_evaluator):
    spec = {
        "inputs": {"name": "power_law_gaussian", "d": 12, "alpha": 2.0, "offset": 6},
        "target": {"name": "power_law", "cutoff_mode": 300, "kmax": 5, "beta": 1.2, "yoffset": 1.2},
    }
    task = make_task(spec)
    x, y = task.sample(200, gen(1), dtype=torch.float64)
    lam = power_law_spectrum(12, 2.0, 6)
    z = x.numpy() / np.sqrt(lam)
    monomials, _ = top_monomials(lam, 300, relu_level_coefficients(lam, 1.0, 1.0, 5))
    v = (np.arange(300) + 1.2) ** -0.6
    v /= np.linalg.norm(v)
    expected = np.zeros(200)
    for m, c in zip(monomials, v):
        term = np.ones(200)
        for i, k in m.items():
            term = term * _h(k, z[:, i])
        expected += c * term
    np.testing.assert_allclose(y[:, 0].numpy(), expected, rtol=1e-10, atol=1e-10)
    assert task.target.components()[0][0] == "h0^1"


def test_normalized_power_law_target_has_unit_second_moment(gen):
    n = 200_000
    task = make_task(
        {
            "inputs": {"name": "power_law_gaussian", "d": 30},
            "target": {"name": "power_law", "cutoff_mode": 200, "kmax": 2},
        }
    )
    _, y = task.sample(n, gen(2), dtype=torch.float64)
    second = (y**2).mean().item()
    # E[y^2] = sum v_k^2 = 1 by orthonormality; with degree <= 2 the 4th moment is a few units,
    # so the estimate's std is < sqrt(20 / n) ~ 0.01; 6 sigma
    assert abs(second - 1) < 6 * math.sqrt(20 / n)


def test_explicit_target_monomials(gen):
    task = make_task(
        {
            "inputs": {"name": "power_law_gaussian", "d": 8},
            "target": {"name": "power_law", "target_monomials": [{0: 2}, {3: 1, 5: 1}]},
        }
    )
    x, y = task.sample(100, gen(3), dtype=torch.float64)
    z = x.numpy() / np.sqrt(power_law_spectrum(8, 2.0, 6))
    expected = (_h(2, z[:, 0]) + z[:, 3] * z[:, 5]) / math.sqrt(2)
    np.testing.assert_allclose(y[:, 0].numpy(), expected, rtol=1e-12, atol=1e-12)
