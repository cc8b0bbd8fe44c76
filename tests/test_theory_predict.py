"""Kernel predictions and spectra against independent references: numpy eigendecompositions of
Gram matrices over the whole hypercube, closed-form Walsh / Gegenbauer expansions worked out by
hand, scipy quadrature, explicit gradient descent on a finite feature map, direct solves, and
kernel ridge regression averaged over draws. The kernels are written here (no learnlab kernels)."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from learnlab.tasks._targets import Parity
from learnlab.theory import (
    eigenlearning,
    gd_dynamics,
    hypercube_spectrum,
    hypercube_target_power,
    kernel_regression,
    nystrom_spectrum,
    sphere_spectrum,
)

F64 = torch.float64


# --- kernels written out here: functions of t = <x, x'> / d ---------------------------------------------


def poly3(a, b):
    """(1 + t)^3."""
    return (1 + a @ b.T / a.shape[1]) ** 3


def exp_kernel(a, b):
    """exp(2 t)."""
    return torch.exp(2 * a @ b.T / a.shape[1])


def arccos1(a, b):
    """Arc-cosine kernel of order 1 (Cho & Saul 2009; the relu NNGP): |x||x'| (sin th + (pi - th) cos th) / (pi d)."""
    na, nb = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)
    t = (a @ b.T / (na * nb.T)).clamp(-1, 1)
    return na * nb.T * (torch.sqrt(1 - t * t) + (math.pi - torch.arccos(t)) * t) / (math.pi * a.shape[1])


def cube(d: int) -> torch.Tensor:
    """All 2^d points of {-1, +1}^d: row b has x_i = -1 where bit i of b is set."""
    index = torch.arange(1 << d).unsqueeze(1)
    return (1 - 2 * ((index >> torch.arange(d)) & 1)).to(F64)


def sphere_points(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return g * math.sqrt(d) / g.norm(dim=1, keepdim=True)


# --- hypercube ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", [poly3, exp_kernel, arccos1])
def test_hypercube_eigenvalues_match_the_gram_matrix_over_the_whole_cube(kernel):
    d = 10
    x = cube(d)
    gram = kernel(x, x).numpy() / 2**d  # the integral operator of the uniform measure, exactly
    spectrum = hypercube_spectrum(kernel, d)
    expected = np.sort(np.linalg.eigvalsh(gram))
    ours = np.sort(np.repeat(spectrum.eigenvalues, [math.comb(d, k) for k in range(d + 1)]))
    scale = expected.max()
    assert np.abs(ours - expected).max() < 1e-8 * scale  # measured ~1e-15 x scale
    # and each Walsh function of degree k is an eigenvector with eigenvalue lambda_k
    rng = np.random.default_rng(0)
    for k in range(d + 1):
        subset = rng.choice(d, size=k, replace=False)
        chi = x[:, subset].prod(dim=1).numpy()
        np.testing.assert_allclose(gram @ chi, spectrum.eigenvalues[k] * chi, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(spectrum.multiplicities, [math.comb(d, k) for k in range(d + 1)])
    assert spectrum.trace == pytest.approx(float(kernel(x[:1], x[:1])), rel=1e-12)


def test_hypercube_eigenvalues_at_d60_match_the_hand_expansion():
    """(1 + t)^3 with t = <x, x'>/d on {-1, 1}^d, x_i^2 = 1: t^2 has d diagonal terms (degree 0) and
    2 per pair (degree 2); t^3 has 3d - 2 terms per index (3 (d - 1) with one repeated pair, 1 all
    equal: degree 1) and 6 per triple (degree 3). So lambda_0 = 1 + 3/d, lambda_1 = 3/d + (3d - 2)/d^3,
    lambda_2 = 6/d^2, lambda_3 = 6/d^3 and 0 above."""
    d = 60
    spectrum = hypercube_spectrum(poly3, d)
    expected = np.zeros(d + 1)
    expected[:4] = [1 + 3 / d, 3 / d + (3 * d - 2) / d**3, 6 / d**2, 6 / d**3]
    err = np.abs(spectrum.eigenvalues - expected)
    assert (err[:4] < 1e-14 * expected[:4]).all()
    assert (err <= spectrum.error).all()  # within the stated round-off bound at every degree
    assert (spectrum.error * spectrum.multiplicities).sum() < 1e-5  # summed over all 2^60 modes


def test_hypercube_spectrum_rejects_a_kernel_that_is_not_invariant():
    weights = torch.linspace(0.5, 2.0, 8, dtype=F64)
    with pytest.raises(ValueError, match="not invariant"):
        hypercube_spectrum(lambda a, b: torch.exp((a * weights) @ b.T / 8), 8)


# --- Walsh power of targets ----------------------------------------------------------------------------


def _direct_power(values: np.ndarray, d: int) -> np.ndarray:
    """c_S = 2^-d sum_x f(x) chi_S(x) by the full Walsh matrix (O(4^d)), then sum_{|S|=k} c_S^2."""
    x = cube(d).numpy()
    subsets = [np.flatnonzero((s >> np.arange(d)) & 1) for s in range(1 << d)]
    walsh = np.stack([x[:, s].prod(axis=1) for s in subsets], axis=1)  # (points, subsets)
    c = walsh.T @ values / 2**d
    degree = np.array([len(s) for s in subsets])
    return np.array([(c[degree == k] ** 2).sum(axis=0) for k in range(d + 1)])


def test_walsh_power_of_parities_and_of_a_random_function():
    d = 8
    staircase = Parity(indices=((0,), (0, 1), (0, 1, 2), (3, 4, 5, 6)), normalize=True)
    fast = hypercube_target_power(staircase, d)  # from the index sets
    through_points = hypercube_target_power(lambda x: staircase(x), d)  # all 2^d points + FWHT
    expected = np.zeros(d + 1)
    expected[[1, 2, 3, 4]] = 0.25
    np.testing.assert_allclose(fast, expected, atol=1e-15)
    np.testing.assert_allclose(through_points, expected, atol=1e-14)
    # repeated index sets add up; repeated indices cancel (x_i^2 = 1)
    np.testing.assert_allclose(hypercube_target_power(Parity(indices=((2, 5), (5, 2), (1, 1, 4))), d)[[1, 2]], [1, 4])

    table = torch.randn(1 << d, 2, generator=torch.Generator().manual_seed(0), dtype=F64)

    def random_function(x):  # look the point up by its bits
        index = ((1 - x) / 2).long() @ (1 << torch.arange(d))
        return table[index]

    power = hypercube_target_power(random_function, d)
    np.testing.assert_allclose(power, _direct_power(table.numpy(), d), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(power.sum(axis=0), (table**2).mean(dim=0).numpy(), rtol=1e-12)  # Parseval
    with pytest.raises(ValueError, match="2\\^d points"):
        hypercube_target_power(random_function, 30)


# --- sphere ---------------------------------------------------------------------------------------------


def _multiplicity(d: int, k: int) -> int:
    return 1 if k == 0 else (2 * k + d - 2) * math.comb(k + d - 3, k - 1) // k


@pytest.mark.parametrize("d", [2, 3, 5, 20, 200])
def test_sphere_eigenvalues_of_polynomial_kernels_match_the_gegenbauer_expansion(d):
    """With P_1 = t, P_2 = (d t^2 - 1)/(d - 1), P_3 = ((d + 2) t^3 - 3t)/(d - 1) (P_k(1) = 1):
    t^2 = (1 + (d - 1) P_2)/d and t^3 = (3 P_1 + (d - 1) P_3)/(d + 2), and kappa = sum_k N(d, k) lambda_k P_k.
    For (1 + t)^3: lambda_0 = 1 + 3/d, lambda_1 = (3 + 3/(d + 2))/d, lambda_2 = 6/(d (d + 2)),
    lambda_3 = 6/(d (d + 2)(d + 4)); for t^2: lambda_0 = 1/d, lambda_2 = 2/(d (d + 2))."""
    spectrum = sphere_spectrum(poly3, d, 6)
    expected = [1 + 3 / d, (3 + 3 / (d + 2)) / d, 6 / (d * (d + 2)), 6 / (d * (d + 2) * (d + 4)), 0, 0, 0]
    np.testing.assert_allclose(spectrum.eigenvalues, expected, rtol=1e-12, atol=1e-14)  # kappa(1) = 8
    squared = sphere_spectrum(lambda a, b: (a @ b.T / d) ** 2, d, 3)
    np.testing.assert_allclose(squared.eigenvalues, [1 / d, 0, 2 / (d * (d + 2)), 0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(spectrum.multiplicities, [_multiplicity(d, k) for k in range(7)])


@pytest.mark.parametrize("d", [3, 5])
def test_sphere_eigenvalues_of_the_arccos_kernel_match_scipy_quadrature(d):
    """The Funk-Hecke integral by scipy's adaptive quadrature, with the Gegenbauer polynomial from scipy."""
    integrate = pytest.importorskip("scipy.integrate")
    special = pytest.importorskip("scipy.special")

    def kappa(t):
        return (math.sqrt(1 - t * t) + (math.pi - math.acos(t)) * t) / math.pi

    norm = math.gamma(d / 2) / (math.sqrt(math.pi) * math.gamma((d - 1) / 2))  # |S^{d-2}| / |S^{d-1}|
    alpha = (d - 2) / 2
    spectrum = sphere_spectrum(arccos1, d, 8)
    for k in range(9):
        c1 = special.eval_gegenbauer(k, alpha, 1.0)

        def integrand(t, k=k, c1=c1):
            return kappa(t) * special.eval_gegenbauer(k, alpha, t) / c1 * (1 - t * t) ** ((d - 3) / 2)

        value = norm * integrate.quad(integrand, -1, 1, epsabs=1e-14, epsrel=1e-12, limit=200)[0]
        assert spectrum.eigenvalues[k] == pytest.approx(value, abs=1e-11)
    if d == 3:  # the known closed forms for the relu arc-cosine kernel on S^2; odd degrees >= 3 vanish
        np.testing.assert_allclose(spectrum.eigenvalues[:5], [3 / 8, 1 / 6, 3 / 128, 0, 1 / 1536], atol=1e-12)


def test_sphere_eigenvalues_agree_with_a_nystrom_estimate():
    d, n = 3, 600  # measured within 1% over seeds
    exact = sphere_spectrum(arccos1, d, 2)
    nystrom = nystrom_spectrum(arccos1, sphere_points(n, d, seed=0), top=9)
    start = 0
    for k in range(3):  # the mean over each degree's N(d, k) empirical eigenvalues (its trace is self-averaging)
        m = _multiplicity(d, k)
        assert nystrom.eigenvalues[start : start + m].mean() == pytest.approx(exact.eigenvalues[k], rel=0.03)
        start += m


def test_sphere_quadrature_nodes_match_scipy_roots_jacobi():
    special = pytest.importorskip("scipy.special")
    from learnlab.theory._spectra import gauss_gegenbauer

    for d in (2, 3, 7, 50):
        t, w = gauss_gegenbauer(d, 40)
        t_ref, w_ref = special.roots_jacobi(40, (d - 3) / 2, (d - 3) / 2)
        np.testing.assert_allclose(t, t_ref, atol=1e-13)
        np.testing.assert_allclose(w, w_ref / w_ref.sum(), rtol=1e-9, atol=1e-16)


# --- Nystrom ---------------------------------------------------------------------------------------------


def test_nystrom_on_the_whole_cube_is_exact_and_its_coefficients_reconstruct_the_target():
    d = 7
    x = cube(d)
    nystrom = nystrom_spectrum(exp_kernel, x)
    exact = hypercube_spectrum(exp_kernel, d)
    np.testing.assert_allclose(
        nystrom.eigenvalues, np.sort(np.repeat(exact.eigenvalues, exact.multiplicities.astype(int)))[::-1], atol=1e-14
    )
    phi = nystrom.eigenfunctions
    assert phi is not None
    np.testing.assert_allclose((phi.T @ phi / len(x)).numpy(), np.eye(len(x)), atol=1e-12)
    y = x[:, 0] * x[:, 3] + 0.5 * x[:, 1]
    v = nystrom.coefficients(y)
    np.testing.assert_allclose((phi @ torch.from_numpy(v)).numpy(), y.numpy(), atol=1e-12)
    assert (v**2).sum() == pytest.approx(1.25, rel=1e-12)  # Parseval in L2 of the sample


# --- kernel regression and gradient descent -------------------------------------------------------------


def random_features(d: int, p: int, seed: int):
    """phi(x) = sqrt(2/p) cos(x W + b): a finite feature map, and its kernel K = phi phi^T."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, p, generator=g, dtype=F64) / math.sqrt(d)
    b = 2 * math.pi * torch.rand(p, generator=g, dtype=F64)

    def phi(x):
        return math.sqrt(2 / p) * torch.cos(x @ w + b)

    return phi, lambda a, b_: phi(a) @ phi(b_).T


def explicit_gd(phi, x, y, x_test, y_test, lr, steps):
    """Full-batch GD on w (p, k) from 0 with learnlab's MSE, mean over samples and outputs, step by step."""
    f_train, f_test = phi(x), phi(x_test)
    w = torch.zeros(f_train.shape[1], y.shape[1], dtype=F64)
    train, test = [], []
    for step in range(steps + 1):
        residual = f_train @ w - y
        train.append(residual.square().mean().item())
        test.append((f_test @ w - y_test).square().mean().item())
        if step < steps:
            w = w - lr * 2 * f_train.T @ residual / residual.numel()  # grad of mean (phi w - y)^2
    return np.array(train), np.array(test), f_test @ w


@pytest.mark.parametrize(("p", "outputs", "fraction"), [(300, 1, 0.5), (300, 2, 0.95), (12, 1, 0.7), (12, 3, 1.9)])
def test_gd_dynamics_matches_explicit_gradient_descent_on_the_feature_model(p, outputs, fraction):
    """p = 300 > n: full-rank K; p = 12 < n: K has n - p zero modes (the lambda -> 0 limit).
    fraction of the largest stable lr; 1.9 makes the top mode oscillate (eta lambda > 1)."""
    d, n, m, steps = 5, 40, 25, 150
    phi, kernel = random_features(d, p, seed=p + outputs)
    g = torch.Generator().manual_seed(1)
    x, x_test = torch.randn(n, d, generator=g, dtype=F64), torch.randn(m, d, generator=g, dtype=F64)
    y, y_test = torch.randn(n, outputs, generator=g, dtype=F64), torch.randn(m, outputs, generator=g, dtype=F64)
    probe = gd_dynamics(kernel, x, y, x_test, lr=1.0, steps=0)
    lr = fraction * probe.max_stable_lr / 2
    ours = gd_dynamics(kernel, x, y, x_test, lr=lr, steps=steps, y_test=y_test)
    train, test, final = explicit_gd(phi, x, y, x_test, y_test, lr, steps)
    assert ours.test_mse is not None
    np.testing.assert_array_equal(ours.steps.numpy(), np.arange(steps + 1))
    np.testing.assert_allclose(ours.train_mse.numpy(), train, rtol=0, atol=1e-10 * train[0])
    np.testing.assert_allclose(ours.test_mse.numpy(), test, rtol=0, atol=1e-10 * test[0])
    np.testing.assert_allclose(ours.predictions.numpy(), final.numpy(), atol=1e-10)
    sparse = gd_dynamics(kernel, x, y, x_test, lr=lr, steps=steps, y_test=y_test, every=40)
    np.testing.assert_array_equal(sparse.steps.numpy(), [0, 40, 80, 120, 150])
    np.testing.assert_allclose(sparse.train_mse.numpy(), train[[0, 40, 80, 120, 150]], rtol=1e-12)


def test_gd_dynamics_gives_the_same_curves_when_it_takes_the_steps_in_chunks(monkeypatch):
    import learnlab.theory._predict as predict

    _, kernel = random_features(4, 30, seed=3)
    g = torch.Generator().manual_seed(2)
    x, x_test = torch.randn(20, 4, generator=g, dtype=F64), torch.randn(7, 4, generator=g, dtype=F64)
    y, y_test = torch.randn(20, 2, generator=g, dtype=F64), torch.randn(7, 2, generator=g, dtype=F64)
    whole = gd_dynamics(kernel, x, y, x_test, lr=0.5, steps=99, y_test=y_test)
    monkeypatch.setattr(predict, "_CHUNK", 50)  # 2 steps per chunk
    chunked = gd_dynamics(kernel, x, y, x_test, lr=0.5, steps=99, y_test=y_test)
    assert whole.test_mse is not None and chunked.test_mse is not None
    torch.testing.assert_close(chunked.train_mse, whole.train_mse, rtol=1e-14, atol=0)
    torch.testing.assert_close(chunked.test_mse, whole.test_mse, rtol=1e-14, atol=0)
    torch.testing.assert_close(chunked.predictions, whole.predictions, rtol=1e-14, atol=0)


def test_gd_dynamics_diverges_above_the_stable_learning_rate():
    phi, kernel = random_features(3, 50, seed=0)
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    y = x[:, :1]
    lr = gd_dynamics(kernel, x, y, x, lr=1.0, steps=0).max_stable_lr
    assert gd_dynamics(kernel, x, y, x, lr=0.99 * lr, steps=2000).train_mse[-1] < 1e-3
    assert gd_dynamics(kernel, x, y, x, lr=1.01 * lr, steps=2000).train_mse[-1] > 1e3


def test_kernel_regression_matches_a_direct_solve_and_is_the_limit_of_gd():
    g = torch.Generator().manual_seed(0)
    x, x_test = sphere_points(60, 4, seed=1), sphere_points(30, 4, seed=2)
    y = torch.randn(60, 2, generator=g, dtype=F64)
    k, k_test = exp_kernel(x, x).numpy(), exp_kernel(x_test, x).numpy()
    for ridge in (0.0, 0.3):
        direct = k_test @ np.linalg.solve(k + ridge * np.eye(60), y.numpy())
        ours = kernel_regression(exp_kernel, x, y, x_test, ridge=ridge)
        np.testing.assert_allclose(ours.numpy(), direct, rtol=1e-9, atol=1e-9)
    one_output = kernel_regression(exp_kernel, x, y[:, 0], x_test)
    assert one_output.shape == (30, 1)
    # gradient descent run for ever (any step count costs the same) reaches the interpolant
    lr = 0.9 * gd_dynamics(exp_kernel, x, y, x_test, lr=1.0, steps=0).max_stable_lr
    limit = gd_dynamics(exp_kernel, x, y, x_test, lr=lr, steps=10**15, every=10**14)
    np.testing.assert_allclose(
        limit.predictions.numpy(), kernel_regression(exp_kernel, x, y, x_test).numpy(), atol=1e-8
    )
    assert limit.train_mse[-1] < 1e-20


def test_kernel_regression_explains_a_singular_gram_matrix():
    x = sphere_points(10, 3, seed=0)
    x = torch.cat([x, x[:3]])  # duplicated points
    y = torch.arange(13, dtype=F64)
    with pytest.raises(ValueError, match="ridge > 0"):
        kernel_regression(exp_kernel, x, y, x)
    assert torch.isfinite(kernel_regression(exp_kernel, x, y, x, ridge=1e-6)).all()
    with pytest.raises(ValueError, match="shape"):
        kernel_regression(exp_kernel, x, y[:5], x)


# --- eigenlearning -----------------------------------------------------------------------------------------


def test_eigenlearning_solves_its_equation_vectorised_over_n():
    lam = 1.0 / np.arange(1, 2001) ** 1.5
    v = 1.0 / np.arange(1, 2001) ** 0.8
    ns = np.array([1, 3.5, 10, 100, 1000, 1999])
    for ridge in (0.0, 1e-3, 1.0):
        curve = eigenlearning(lam, v, ns, ridge=ridge, noise=0.1)
        for i, n in enumerate(ns):
            kappa = curve.kappa[i]
            assert (lam / (lam + kappa)).sum() + ridge / kappa == pytest.approx(n, rel=1e-12)
            single = eigenlearning(lam, v, float(n), ridge=ridge, noise=0.1)
            assert single.test_mse == pytest.approx(curve.test_mse[i], rel=1e-12)
            learn = lam / (lam + kappa)
            e0 = n / (n - (learn**2).sum())
            assert curve.e0[i] == pytest.approx(e0, rel=1e-9)
            assert curve.test_mse[i] == pytest.approx(e0 * (((1 - learn) * v) ** 2).sum() + e0 * 0.01, rel=1e-9)
            assert curve.train_mse[i] == pytest.approx((ridge / (n * kappa)) ** 2 * curve.test_mse[i], rel=1e-9)


def test_eigenlearning_multiplicities_equal_the_expanded_list_of_modes():
    lam, mult = np.array([1.0, 0.1, 0.01, 0.0]), np.array([1, 5, 20, 30])
    power = np.array([0.3, 0.5, 0.2, 0.1])
    grouped = eigenlearning(lam, None, np.arange(1, 40), ridge=1e-2, multiplicity=mult, power=power)
    each = np.repeat(np.sqrt(power / mult), mult)
    expanded = eigenlearning(np.repeat(lam, mult), each, np.arange(1, 40), ridge=1e-2)
    np.testing.assert_allclose(grouped.test_mse, expanded.test_mse, rtol=1e-12)
    np.testing.assert_allclose(grouped.kappa, expanded.kappa, rtol=1e-12)


def test_eigenlearning_ridgeless_beyond_the_number_of_modes_is_the_ridge_to_zero_limit():
    """26 modes with lambda > 0: for n >= 26 and ridge 0 the equation has no root; the returned
    values are the ridge -> 0+ limit (least squares on 26 features)."""
    lam, mult = np.array([1.0, 0.1, 0.01, 0.0]), np.array([1, 5, 20, 30])
    power = np.array([0.3, 0.5, 0.2, 0.1])
    ns = np.array([26, 30, 60])
    limit = eigenlearning(lam, None, ns, multiplicity=mult, power=power, noise=0.5)
    near = eigenlearning(lam, None, ns, ridge=1e-10, multiplicity=mult, power=power, noise=0.5)
    np.testing.assert_array_equal(limit.kappa, 0)
    assert limit.e0[0] == np.inf and limit.test_mse[0] == np.inf and limit.train_mse[0] == 0
    np.testing.assert_allclose(limit.e0[1:], ns[1:] / (ns[1:] - 26))
    np.testing.assert_allclose(limit.test_mse[1:], near.test_mse[1:], rtol=1e-6)
    np.testing.assert_allclose(limit.train_mse[1:], near.train_mse[1:], rtol=1e-6)
    below = eigenlearning(lam, None, 25.999999, multiplicity=mult, power=power)
    assert below.kappa > 0 and np.isfinite(below.test_mse)


def test_eigenlearning_rejects_bad_input():
    with pytest.raises(ValueError, match="eigenvalues must be >= 0"):
        eigenlearning([1.0, -0.5], [1.0, 1.0], 10)
    with pytest.raises(ValueError, match="exactly one"):
        eigenlearning([1.0, 0.5], [1.0, 1.0], 10, power=[1.0, 1.0])
    with pytest.raises(ValueError, match="shape"):
        eigenlearning([1.0, 0.5], [1.0, 1.0, 2.0], 10)
    with pytest.raises(ValueError, match="n must be > 0"):
        eigenlearning([1.0, 0.5], [1.0, 1.0], [10, 0])


@pytest.mark.slow
def test_eigenlearning_predicts_kernel_ridge_regression_on_the_hypercube():
    """KRR of exp(2t) on {-1, 1}^12 (4,096 points) with ridge 1e-3, a random target with power
    0.6^k (normalised) per degree, test MSE over the whole cube, averaged over draws. The n
    training points are drawn without replacement: the theory is for a continuous distribution,
    where no point repeats; drawn with replacement, n = 1,000 of 4,096 points would hold ~113
    repeats, and the measured MSE sits ~8% above the prediction there. Measured: within 3%."""
    d, ridge = 12, 1e-3
    x = cube(d)
    size = 1 << d
    g = torch.Generator().manual_seed(0)
    degree = (torch.arange(size).unsqueeze(1) >> torch.arange(d) & 1).sum(dim=1)
    per_degree = 0.6 ** torch.arange(d + 1, dtype=F64)
    per_degree /= per_degree.sum()
    counts = torch.tensor([math.comb(d, k) for k in range(d + 1)], dtype=F64)
    coef = torch.randn(size, generator=g, dtype=F64) * (per_degree / counts)[degree].sqrt()  # c_S by subset S
    # chi_S(x_b) = (-1)^popcount(S & b): the Sylvester-Hadamard matrix, a Kronecker power of [[1, 1], [1, -1]]
    walsh = torch.from_numpy(functools.reduce(np.kron, [np.array([[1.0, 1.0], [1.0, -1.0]])] * d))
    f = walsh @ coef
    spectrum = hypercube_spectrum(exp_kernel, d)
    power = np.array([float((coef[degree == k] ** 2).sum()) for k in range(d + 1)])
    ns = [10, 30, 100, 300, 1000]
    theory = eigenlearning(
        spectrum.eigenvalues, None, np.array(ns), ridge=ridge, multiplicity=spectrum.multiplicities, power=power
    )
    k_all = exp_kernel(x, x)
    for n, predicted, predicted_train in zip(ns, theory.test_mse, theory.train_mse):
        draws = {10: 200, 30: 80, 100: 30, 300: 12, 1000: 8}[n]
        test, train = [], []
        for _ in range(0, draws, max(1, 1000 // n)):  # batches of draws
            index = torch.stack([torch.randperm(size, generator=g)[:n] for _ in range(max(1, 1000 // n))])
            k_train = k_all[index.unsqueeze(2), index.unsqueeze(1)]  # (batch, n, n)
            chol = torch.linalg.cholesky(k_train + ridge * torch.eye(n, dtype=F64))
            alpha = torch.cholesky_solve(f[index].unsqueeze(2), chol)  # (batch, n, 1)
            prediction = torch.einsum("bnp,bn->bp", k_all[index], alpha[..., 0])  # K(x_all, X) alpha
            test.append((prediction - f).square().mean(dim=1))
            train.append(((k_train @ alpha).squeeze(2) - f[index]).square().mean(dim=1))
        measured, measured_train = float(torch.cat(test).mean()), float(torch.cat(train).mean())
        assert measured == pytest.approx(predicted, rel=0.10), (n, measured, predicted)
        assert measured_train == pytest.approx(predicted_train, rel=0.25), (n, measured_train, predicted_train)
