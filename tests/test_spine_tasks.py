"""Tasks layer (issue 2): inputs, parity and Hermite targets, label noise, batch streams.

Every expected value comes from an independent reference: a slow Python loop,
``numpy.polynomial.hermite_e``, Gauss-Hermite quadrature, or the central limit theorem.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.polynomial import hermite_e

from learnlab.tasks import (
    BatchStream,
    Gaussian,
    Hermite,
    Hypercube,
    Parity,
    Task,
    hermite,
    hermite_monomial,
    make_task,
)

# --------------------------------------------------------------------------- parity


@st.composite
def parity_case(draw):
    """(d, index sets, x in {-1, +1}^d as a list, a bit to flip)."""
    d = draw(st.integers(1, 12))
    subsets = draw(
        st.lists(st.lists(st.integers(0, d - 1), min_size=1, max_size=d, unique=True), min_size=1, max_size=4)
    )
    x = draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=d, max_size=d))
    j = draw(st.integers(0, d - 1))
    return d, subsets, x, j


@settings(max_examples=200, deadline=None)
@given(parity_case())
def test_parity_term_flips_exactly_when_a_relevant_bit_flips(case):
    d, subsets, x, j = case
    for subset in subsets:
        target = Parity(indices=(tuple(subset),))
        xs = torch.tensor([x])
        flipped = xs.clone()
        flipped[0, j] = -flipped[0, j]
        y, y_flipped = target(xs).item(), target(flipped).item()
        assert abs(y) == 1.0
        if j in subset:
            assert y_flipped == -y, f"bit {j} is in {subset}: label must flip"
        else:
            assert y_flipped == y, f"bit {j} is not in {subset}: label must not change"


@settings(max_examples=200, deadline=None)
@given(parity_case())
def test_sum_of_parities_after_a_flip_changes_exactly_the_terms_containing_the_bit(case):
    d, subsets, x, j = case
    target = Parity(indices=tuple(tuple(s) for s in subsets))
    xs = torch.tensor([x], dtype=torch.float64)
    flipped = xs.clone()
    flipped[0, j] = -flipped[0, j]
    terms = [math.prod(x[i] for i in s) for s in subsets]
    expected_change = sum(-2 * t for t, s in zip(terms, subsets) if j in s)
    assert target(flipped).item() - target(xs).item() == expected_change


def test_staircase_sum_of_parities_equals_a_slow_loop(gen):
    staircase = [[0], [0, 1], [0, 1, 2]]
    x = Hypercube(d=7).sample(500, gen(3))
    got = Parity(indices=tuple(tuple(s) for s in staircase))(x)
    got_normalized = Parity(indices=tuple(tuple(s) for s in staircase), normalize=True)(x)
    assert got.shape == (500, 1)
    for n in range(500):
        expected = 0.0
        for subset in staircase:
            term = 1.0
            for i in subset:
                term *= float(x[n, i])
            expected += term
        assert got[n, 0].item() == expected
        assert got_normalized[n, 0].item() == pytest.approx(expected / math.sqrt(3), abs=1e-6)
    # the unnormalised staircase takes exactly the values -3, -1, 1, 3 (seed 000's sum)
    assert set(got.flatten().tolist()) <= {-3.0, -1.0, 1.0, 3.0}


def test_hypercube_and_gaussian_inputs(gen):
    x = Hypercube(d=5).sample(20000, gen(0), dtype=torch.float64)
    assert x.shape == (20000, 5) and x.dtype == torch.float64
    assert set(x.unique().tolist()) == {-1.0, 1.0}
    # mean of 20000 fair +-1 coins: std 1/sqrt(20000) ~ 0.007; 6 sigma
    assert x.mean(0).abs().max().item() < 6 / math.sqrt(20000)
    z = Gaussian(d=3).sample(20000, gen(0), dtype=torch.float64)
    assert z.mean(0).abs().max().item() < 6 / math.sqrt(20000)
    # sample variance of N(0,1): std sqrt(2/n) = 0.01; 6 sigma
    assert (z.var(0) - 1).abs().max().item() < 6 * math.sqrt(2 / 20000)


# --------------------------------------------------------------------------- Hermite


def _ref_h(k: int, x: np.ndarray) -> np.ndarray:
    """h_k = He_k / sqrt(k!) by numpy (Clenshaw on the unnormalised series)."""
    coef = np.zeros(k + 1)
    coef[k] = 1.0
    return hermite_e.hermeval(x, coef) / math.sqrt(math.factorial(k))


def test_hermite_matches_numpy_hermite_e_up_to_degree_30():
    x = np.concatenate([np.linspace(-10, 10, 2001), np.random.default_rng(0).standard_normal(500) * 3])
    refs = [_ref_h(k, x) for k in range(31)]
    for k in range(31):
        got = hermite(k, torch.tensor(x, dtype=torch.float64)).numpy()
        # Both sides run a forward three-term recurrence, which is stable where the
        # polynomials oscillate: its rounding error is O(k * eps) relative to the size of
        # the iterates, not relative to h_k(x) itself (which vanishes at the roots, where a
        # pure relative tolerance is meaningless). We measure the error against the
        # envelope sqrt(sum_{j<=k} h_j(x)^2) >= |h_k(x)|: k * eps ~ 30 * 2.2e-16 ~ 7e-15,
        # observed <= 2e-15; 1e-13 leaves a 15x margin and still catches any wrong
        # coefficient (which would be an O(1) relative error).
        envelope = np.sqrt(np.sum(np.square(refs[: k + 1]), axis=0))
        err = np.abs(got - refs[k]) / envelope
        assert err.max() < 1e-13, f"h_{k}: max scaled error {err.max():.3g}"


def test_hermite_low_degrees_closed_form():
    x = torch.linspace(-3, 3, 61, dtype=torch.float64)
    torch.testing.assert_close(hermite(0, x), torch.ones_like(x), rtol=0, atol=0)
    torch.testing.assert_close(hermite(1, x), x, rtol=0, atol=0)
    torch.testing.assert_close(hermite(2, x), (x**2 - 1) / math.sqrt(2), rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(hermite(3, x), (x**3 - 3 * x) / math.sqrt(6), rtol=1e-14, atol=1e-14)


def test_hermite_is_orthonormal_under_gauss_hermite_quadrature():
    # hermegauss(n) integrates p(x) exp(-x^2/2) exactly for deg p <= 2n - 1; the weights
    # sum to sqrt(2 pi). With n = 40 every product h_m h_n (m, n <= 30, degree <= 60) is exact.
    nodes, weights = hermite_e.hermegauss(40)
    weights = weights / math.sqrt(2 * math.pi)  # E over N(0, 1)
    h = np.stack([hermite(k, torch.tensor(nodes, dtype=torch.float64)).numpy() for k in range(31)])
    gram = (h * weights) @ h.T
    # rounding only (terms are O(1) after the normalisation): observed ~3e-15
    np.testing.assert_allclose(gram, np.eye(31), rtol=0, atol=1e-12)


def test_hermite_rejects_negative_degree():
    with pytest.raises(ValueError, match="degree"):
        hermite(-1, torch.zeros(3))


def test_hermite_monomial_is_the_product_of_one_dimensional_hermites(gen):
    z = Gaussian(d=6).sample(300, gen(1), dtype=torch.float64)
    monomial = {0: 2, 3: 1, 5: 4}
    expected = _ref_h(2, z[:, 0].numpy()) * _ref_h(1, z[:, 3].numpy()) * _ref_h(4, z[:, 5].numpy())
    np.testing.assert_allclose(hermite_monomial(monomial, z).numpy(), expected, rtol=1e-12, atol=1e-12)
    target = Hermite(monomial=tuple(sorted(monomial.items())))
    np.testing.assert_allclose(target(z)[:, 0].numpy(), expected, rtol=1e-12, atol=1e-12)
    task = make_task(
        {"inputs": {"name": "gaussian", "d": 6}, "target": {"name": "hermite", "monomial": {0: 2, 3: 1, 5: 4}}}
    )
    _, y = task.sample(300, gen(1), dtype=torch.float64)
    np.testing.assert_allclose(y[:, 0].numpy(), expected, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- noise, seeds


def test_label_noise_std_matches_the_spec(gen):
    sigma, n = 0.3, 40000
    task = Task(inputs=Gaussian(d=4), target=Hermite(monomial=((1, 2),)), noise=sigma)
    x, y = task.sample(n, gen(5), dtype=torch.float64)
    residual = (y - task.target(x)).flatten()
    # CLT: the sample std of n Gaussians has std ~ sigma / sqrt(2n) (0.0011 here); the
    # mean has std sigma / sqrt(n). 5 sigma each: a failure is not bad luck.
    assert abs(residual.std().item() - sigma) < 5 * sigma / math.sqrt(2 * n)
    assert abs(residual.mean().item()) < 5 * sigma / math.sqrt(n)
    # the test sample is noise-free, the offline training sample is not
    xt, yt = task.test_sample(gen(6), dtype=torch.float64)
    torch.testing.assert_close(yt, task.target(xt), rtol=0, atol=0)
    offline = Task(inputs=Gaussian(d=4), target=Hermite(monomial=((1, 2),)), noise=sigma, n_train=n)
    xs, ys = offline.train_sample(gen(7), dtype=torch.float64)
    assert abs((ys - offline.target(xs)).std().item() - sigma) < 5 * sigma / math.sqrt(2 * n)


def test_same_generator_seed_gives_identical_samples(gen):
    task = make_task(
        {"inputs": {"name": "gaussian", "d": 5}, "target": {"name": "hermite", "monomial": {0: 3}}, "noise": 0.1}
    )
    a, b, c = task.sample(64, gen(11)), task.sample(64, gen(11)), task.sample(64, gen(12))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a[0], c[0])
    cube = make_task({"inputs": {"name": "hypercube", "d": 9}, "target": {"name": "parity", "indices": [[1, 4]]}})
    torch.testing.assert_close(cube.sample(64, gen(2)), cube.sample(64, gen(2)), rtol=0, atol=0)


# --------------------------------------------------------------------------- streams

CUBE = {"inputs": {"name": "hypercube", "d": 10}, "target": {"name": "parity", "indices": [[0, 1]]}}


def test_online_stream_draws_fresh_batches_in_generator_order(gen):
    task = make_task(CUBE)
    stream = BatchStream(task, 32, gen(4))
    reference = gen(4)
    seen = set()
    for _ in range(5):
        x, y = stream.next()
        ex, ey = task.sample(32, reference)  # the same whole-batch draws, one after another
        torch.testing.assert_close(x, ex, rtol=0, atol=0)
        torch.testing.assert_close(y, ey, rtol=0, atol=0)
        seen.add(tuple(x.flatten().tolist()))
    assert len(seen) == 5, "online mode must give a fresh batch every step"


def _row_ids(sample_x: torch.Tensor, x: torch.Tensor) -> list[int]:
    """Index in the fixed sample of every row of x (Gaussian rows are unique a.s.)."""
    lookup = {tuple(r.tolist()): i for i, r in enumerate(sample_x)}
    assert len(lookup) == sample_x.shape[0]
    return [lookup[tuple(r.tolist())] for r in x]


@pytest.mark.parametrize("n_train, batch_size", [(48, 8), (50, 16)])
def test_offline_stream_cycles_through_the_fixed_sample(gen, n_train, batch_size):
    task = make_task(
        {
            "inputs": {"name": "gaussian", "d": 3},
            "target": {"name": "hermite", "monomial": {0: 1}},
            "n_train": n_train,
            "noise": 0.1,
        }
    )
    stream = BatchStream(task, batch_size, gen(9), dtype=torch.float64)
    fixed_x, fixed_y = task.train_sample(gen(9), dtype=torch.float64)  # drawn first from the stream's generator
    torch.testing.assert_close(stream.sample[0], fixed_x, rtol=0, atol=0)
    per_epoch = n_train // batch_size  # an incomplete last batch is dropped
    epochs = []
    for _ in range(4):
        ids = []
        for _ in range(per_epoch):
            x, y = stream.next()
            assert x.shape == (batch_size, 3)
            rows = _row_ids(fixed_x, x)
            torch.testing.assert_close(y, fixed_y[rows], rtol=0, atol=0)  # labels (with noise) stay fixed
            ids += rows
        assert len(set(ids)) == len(ids) == per_epoch * batch_size, "a point repeated within an epoch"
        epochs.append(ids)
    if n_train % batch_size == 0:
        for ids in epochs:
            assert sorted(ids) == list(range(n_train)), "each point exactly once per epoch"
    assert epochs[0] != epochs[1], "each epoch is a fresh permutation"


def test_offline_full_batch_when_batch_size_covers_n_train(gen):
    task = make_task({**CUBE, "n_train": 20})
    for batch_size in (20, 64):
        stream = BatchStream(task, batch_size, gen(1))
        x0, y0 = stream.next()
        assert x0.shape == (20, 10)
        for _ in range(3):
            x, y = stream.next()
            torch.testing.assert_close(x, x0, rtol=0, atol=0)
            torch.testing.assert_close(y, y0, rtol=0, atol=0)


def test_online_task_has_no_fixed_training_sample(gen):
    with pytest.raises(ValueError, match="online"):
        make_task(CUBE).train_sample(gen(0))
