"""The sphere's exact eigenlearning path: a single-direction target's power per Gegenbauer degree
(learnlab.theory.sphere_target_power) against scipy's adaptive quadrature of the Funk-Hecke
integral written out here, Parseval for polynomial links, eigenlearning on the sphere against
kernel ridge regression averaged over draws, and the sweep's stored prediction against the same
functions called by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special

from learnlab.experiments import build_run, plan, run_group
from learnlab.tasks._index_models import SingleIndex
from learnlab.theory import eigenlearning, kernel_regression, ntk, sphere_spectrum, sphere_target_power


def unit(d: int, seed: int) -> tuple[float, ...]:
    w = torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return tuple((w / w.norm()).tolist())


def funk_hecke_power(g, d: int, k: int) -> float:
    """N(d, k) (E[g(sqrt(d) t) P_k(t)])^2 with t of density ~ (1 - t^2)^((d - 3) / 2) on [-1, 1],
    P_k = C_k^((d - 2) / 2) / C_k^((d - 2) / 2)(1): scipy's Gegenbauer and adaptive quadrature."""
    alpha = (d - 2) / 2
    density = lambda t: (1 - t * t) ** ((d - 3) / 2)  # noqa: E731
    norm = integrate.quad(density, -1, 1, limit=200)[0]
    p_k = lambda t: special.eval_gegenbauer(k, alpha, t) / special.eval_gegenbauer(k, alpha, 1.0)  # noqa: E731
    a = integrate.quad(lambda t: g(math.sqrt(d) * t) * p_k(t) * density(t), -1, 1, limit=200, points=[0.0])[0] / norm
    multiplicity = math.comb(k + d - 1, d - 1) - (math.comb(k + d - 3, d - 1) if k >= 2 else 0)
    return multiplicity * a * a


def sphere_prediction(kernel, target, d: int, n, ridge: float, kmax: int):
    """Eigenlearning from the sphere's degrees 0..kmax: the target's power above kmax on the last
    degree, the kernel's trace above kmax (K(x, x) - listed trace) added to the ridge."""
    spectrum = sphere_spectrum(kernel, d, kmax)
    power = sphere_target_power(target, d, kmax)
    total_power = power.power.copy()
    total_power[-1] += power.rest
    point = torch.zeros(1, d, dtype=torch.float64)
    point[0, 0] = math.sqrt(d)
    tail = float(kernel(point, point)) - spectrum.trace
    assert tail > 0
    return eigenlearning(
        spectrum.eigenvalues.clip(min=0), n=n, ridge=ridge + tail, multiplicity=spectrum.multiplicities,
        power=total_power,
    )  # fmt: skip


@pytest.mark.parametrize("d", [5, 12])
@pytest.mark.parametrize("link, g", [("relu", lambda s: max(s, 0.0)), ("tanh", math.tanh)])
def test_single_index_power_matches_the_funk_hecke_integral(d, link, g):
    target = SingleIndex(unit(d, d), link=link)
    result = sphere_target_power(target, d, 8)
    expected = np.array([funk_hecke_power(g, d, k) for k in range(9)])
    np.testing.assert_allclose(result.power, expected, rtol=1e-6, atol=1e-10)
    total = integrate.quad(lambda t: g(math.sqrt(d) * t) ** 2 * (1 - t * t) ** ((d - 3) / 2), -1, 1)[0]
    total /= integrate.quad(lambda t: (1 - t * t) ** ((d - 3) / 2), -1, 1)[0]
    assert result.total == pytest.approx(total, rel=1e-8)
    assert 0 < result.rest < 0.02 * total  # relu and tanh: a little power above degree 8


def test_a_polynomial_link_has_power_only_up_to_its_degree_and_all_of_it():
    """he3(<w, x>) = ((w.x)^3 - 3 w.x) / sqrt(6): odd, degree 3, so only degrees 1 and 3 (Parseval)."""
    d = 7
    result = sphere_target_power(SingleIndex(unit(d, 1), link="he3"), d, 6)
    assert result.power[[0, 2, 4, 5, 6]] == pytest.approx(0, abs=1e-13)
    assert result.power[[1, 3]].min() > 0.05
    assert result.power.sum() == pytest.approx(result.total, rel=1e-12)
    assert result.rest == pytest.approx(0, abs=1e-12)


def test_any_callable_with_a_direction_and_the_refusals():
    d = 6
    w = torch.tensor(unit(d, 2), dtype=torch.float64)

    class Cubic:
        direction = tuple((3 * w).tolist())  # normalised by sphere_target_power

        def __call__(self, x):
            return (x @ w) ** 3

    by_hand = sphere_target_power(Cubic(), d, 4)
    assert by_hand.power[1] + by_hand.power[3] == pytest.approx(by_hand.total, rel=1e-12)
    with pytest.raises(ValueError, match="one direction"):
        sphere_target_power(lambda x: x[:, 0] * x[:, 1], d, 4)
    with pytest.raises(ValueError, match="has 6 entries; the sphere has d = 5"):
        sphere_target_power(Cubic(), 5, 4)
    with pytest.raises(ValueError, match="kmax must be an integer >= 0"):
        sphere_target_power(Cubic(), d, -1)


def test_eigenlearning_on_the_sphere_predicts_kernel_ridge_regression():
    """NTK of a depth-1 relu network, relu single-index target on the sphere in R^8: eigenlearning's
    test MSE from the exact spectrum and target power against kernel ridge regression on fresh
    samples, averaged over 40 draws (1,000 test points each; measured 1.5%, 4.8%, 0.3% at n = 20, 100,
    400, the spread of the mean at n = 20 ~ 5%): within 10%."""
    d, ridge = 8, 1e-3
    model = {"width": 1024, "depth": 1, "param": "ntk", "bias": False}
    target = SingleIndex(unit(d, 3), link="relu")

    def kernel(a, b):
        return ntk(model, a, b)

    ns = [20, 100, 400]
    predicted = sphere_prediction(kernel, target, d, np.array(ns), ridge, kmax=40).test_mse
    assert np.asarray(predicted) == pytest.approx(
        np.asarray(sphere_prediction(kernel, target, d, np.array(ns), ridge, kmax=120).test_mse), rel=1e-6
    )  # the tail as a ridge: kmax does not matter
    g = torch.Generator().manual_seed(0)

    def sphere(n):
        z = torch.randn(n, d, generator=g, dtype=torch.float64)
        return math.sqrt(d) * z / z.norm(dim=1, keepdim=True)

    for n, prediction in zip(ns, np.asarray(predicted)):
        errors = []
        for _ in range(40):
            x, xt = sphere(n), sphere(1000)
            fit = kernel_regression(kernel, x, target(x), xt, ridge=ridge)
            errors.append(float((fit - target(xt)).pow(2).mean()))
        assert float(np.mean(errors)) == pytest.approx(float(prediction), rel=0.10), n
    assert predicted[0] > 3 * predicted[-1]  # a learning curve, not a constant


def test_the_sweep_stores_the_exact_sphere_prediction():
    spec = {
        "name": "sphere-theory",
        "seed": 1,
        "task": {
            "inputs": {"name": "sphere", "d": 6},
            "target": {"name": "single_index", "link": "relu"},
            "n_train": 50,
            "n_test": 64,
        },
        "model": {"name": "mlp", "width": 64, "depth": 1, "param": "ntk", "base_width": 1},
        "train": {"optimizer": "sgd", "lr": 0.3, "batch_size": 50, "steps": 5, "eval_every": 5},
        "theory": {"kernel": "ntk", "predict": ["eigenlearning"], "ridge": 1e-4},
    }
    p = plan(spec)
    (result,) = run_group(p.runs)
    assert result.status == "finished", result.error
    config = p.runs[0].config
    target = build_run(config).members[0].task.target
    assert isinstance(target, SingleIndex)

    def kernel(a, b):
        return ntk(config["model"], a, b)

    expected = sphere_prediction(kernel, target, 6, 50, 1e-4, kmax=40)
    assert result.final["theory/eigenlearning/test/mse"] == pytest.approx(float(expected.test_mse), rel=1e-9)
    assert result.final["theory/eigenlearning/train/mse"] == pytest.approx(float(expected.train_mse), rel=1e-9)
