"""Parity and staircase targets: Fourier coefficients by sampling match the definition."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnlab.tasks import make_task


def _chi(x: torch.Tensor, subset) -> torch.Tensor:
    """Walsh character chi_S(x) = prod_{i in S} x_i (written here, independently of the target)."""
    out = torch.ones(x.shape[0], dtype=x.dtype)
    for i in subset:
        out = out * x[:, i]
    return out


def _fourier_estimates(task, subsets, n, gen):
    x, y = task.sample(n, gen, dtype=torch.float64)
    return {tuple(s): (y[:, 0] * _chi(x, s)).mean().item() for s in subsets}


@pytest.mark.parametrize("normalize", [False, True])
def test_staircase_fourier_coefficients_by_sampling(gen, normalize):
    d, n = 6, 100_000
    task = make_task(
        {"inputs": {"name": "hypercube", "d": d}, "target": {"name": "staircase", "degree": 3, "normalize": normalize}}
    )
    expected_sets = {(0,), (0, 1), (0, 1, 2)}
    scale = 1 / math.sqrt(3) if normalize else 1.0
    all_sets = [s for k in range(d + 1) for s in itertools.combinations(range(d), k)]
    got = _fourier_estimates(task, all_sets, n, gen(0))
    # yhat(S) = E[y chi_S] is (scale or 0) by the definition; the estimate's std is
    # sqrt(Var(y chi_S) / n) <= sqrt(E[y^2] / n) = sqrt(3 scale^2 / n) ~ 0.004; 6 sigma
    tol = 6 * math.sqrt(3 * scale**2 / n)
    for s, value in got.items():
        want = scale if s in expected_sets else 0.0
        assert abs(value - want) < tol, f"coefficient of {s}: {value} vs {want}"


def test_merged_staircase_from_index_sets_and_parity_sum(gen):
    d, n = 7, 100_000
    sets = [[2], [2, 5], [1, 5], [0, 1, 5]]
    task = make_task({"inputs": {"name": "hypercube", "d": d}, "target": {"name": "staircase", "indices": sets}})
    probe = [tuple(s) for s in sets] + [(0,), (1,), (5,), (1, 2), (0, 1, 2, 5)]
    got = _fourier_estimates(task, probe, n, gen(1))
    tol = 6 * math.sqrt(len(sets) / n)  # as above: E[y^2] = number of sets
    for s, value in got.items():
        assert abs(value - (1.0 if list(s) in sets else 0.0)) < tol


def test_parity_labels_are_exact_products_and_flip_noise_has_the_given_rate(gen):
    n, p = 100_000, 0.2
    task = make_task(
        {"inputs": {"name": "hypercube", "d": 10}, "target": {"name": "parity", "indices": [[1, 4, 7]]}, "noise": p}
    )
    x, y = task.sample(n, gen(2), dtype=torch.float64)
    clean = _chi(x, [1, 4, 7])
    assert set(y.flatten().tolist()) == {-1.0, 1.0}, "+-1 labels stay +-1 under flip noise"
    flipped = (y[:, 0] != clean).double().mean().item()
    assert abs(flipped - p) < 6 * math.sqrt(p * (1 - p) / n)  # binomial std, 6 sigma
    xt, yt = task.test_sample(gen(3), dtype=torch.float64)
    torch.testing.assert_close(yt[:, 0], _chi(xt, [1, 4, 7]), rtol=0, atol=0)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 8), st.integers(0, 2**16))
def test_staircase_degree_k_equals_the_sum_of_prefix_parities(k, seed):
    task = make_task({"inputs": {"name": "hypercube", "d": 8}, "target": {"name": "staircase", "degree": k}})
    x, y = task.sample(16, torch.Generator().manual_seed(seed), dtype=torch.float64)
    expected = sum(_chi(x, range(j + 1)) for j in range(k))
    torch.testing.assert_close(y[:, 0], expected, rtol=0, atol=0)


def test_hypercube_coordinates_are_fair_independent_coins(gen):
    n = 100_000
    x = make_task({"inputs": {"name": "hypercube", "d": 3}, "target": {"name": "parity", "indices": [[0]]}}).sample(
        n, gen(4), dtype=torch.float64
    )[0]
    assert set(x.unique().tolist()) == {-1.0, 1.0}
    # means and pairwise correlations of fair independent coins: 0 +- 1/sqrt(n); 6 sigma
    assert x.mean(0).abs().max().item() < 6 / math.sqrt(n)
    corr = (x.T @ x / n - torch.eye(3, dtype=torch.float64)).abs().max().item()
    assert corr < 6 / math.sqrt(n)
