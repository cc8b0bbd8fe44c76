"""Teacher, sine, single/multi-index, user-callable targets, classification labels and inputs."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from learnlab.tasks import Box, make_task, random_directions

BOX3 = {"name": "box", "d": 3}


def test_teacher_is_deterministic_per_seed_and_differs_across_seeds(gen):
    spec = {"inputs": BOX3, "target": {"name": "teacher", "widths": [32, 32, 32, 32, 32], "seed": 4}}
    x = Box(d=3).sample(256, gen(0), dtype=torch.float64)
    a, b = make_task(spec).target(x), make_task(spec).target(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    other = make_task({**spec, "target": {**spec["target"], "seed": 5}}).target(x)
    assert (a - other).abs().max().item() > 1e-3


def test_teacher_weights_are_uniform_and_forward_matches_numpy(gen):
    task = make_task({"inputs": BOX3, "target": {"name": "teacher", "widths": [64, 16], "seed": 1}})
    layers = task.target.layers(torch.zeros(1, dtype=torch.float64))
    flat = torch.cat([t.flatten() for w, b in layers for t in (w, b)])
    assert flat.min().item() >= -0.5 and flat.max().item() < 0.5
    # 64*3 + 64 + 16*64 + 16 + 16 + 1 = 1313 U(-1/2, 1/2) draws: variance 1/12 +- ~0.003
    assert abs(flat.var().item() - 1 / 12) < 0.01
    x = Box(d=3).sample(50, gen(1), dtype=torch.float64)
    h = x.numpy()
    for w, b in layers[:-1]:
        h = np.maximum(h @ w.numpy().T + b.numpy(), 0)
    expected = h @ layers[-1][0].numpy().T + layers[-1][1].numpy()
    np.testing.assert_allclose(task.target(x).numpy(), expected, rtol=1e-12, atol=1e-12)
    # float32 teacher = float64 teacher rounded (weights cast lazily, cached per dtype)
    torch.testing.assert_close(task.target(x.float()).double(), task.target(x), rtol=1e-5, atol=1e-6)


def test_sine_formula_on_a_grid():
    task = make_task({"inputs": {"name": "box", "d": 1}, "target": {"name": "sine", "f": 5}})
    x = task.inputs.grid(1001, dtype=torch.float64)
    assert x.shape == (1001, 1) and x[0, 0] == -0.5 and x[-1, 0] == 0.5
    t = x[:, 0].numpy()
    np.testing.assert_allclose(task.target(x)[:, 0].numpy(), np.log(np.sin(50 * t) + 2) + np.sin(5 * t), rtol=1e-14)


def test_box_samples_and_two_dimensional_grid(gen):
    box = Box(d=2, low=-1.0, high=3.0)
    x = box.sample(20_000, gen(2), dtype=torch.float64)
    assert x.min().item() >= -1 and x.max().item() < 3
    # uniform mean 1, std 4/sqrt(12): mean estimate std ~ 0.008; 6 sigma
    assert (x.mean(0) - 1).abs().max().item() < 6 * 4 / math.sqrt(12 * 20_000)
    g = box.grid(3)
    assert g.tolist() == [[-1, -1], [-1, 1], [-1, 3], [1, -1], [1, 1], [1, 3], [3, -1], [3, 1], [3, 3]]
    with pytest.raises(ValueError, match="d <= 2"):
        Box(d=3).grid(5)


def test_sphere_has_radius_sqrt_d_and_is_isotropic(gen):
    task = make_task({"inputs": {"name": "sphere", "d": 7}, "target": {"name": "single_index", "link": "identity"}})
    x, _ = task.sample(50_000, gen(3), dtype=torch.float64)
    torch.testing.assert_close(x.norm(dim=1), torch.full((50_000,), math.sqrt(7), dtype=torch.float64))
    # E[x x^T] = I on the sphere of radius sqrt(d); entries' std ~ 1/sqrt(n) ... ~ 0.006; 8 sigma
    assert (x.T @ x / 50_000 - torch.eye(7, dtype=torch.float64)).abs().max().item() < 0.05


def test_single_index_named_and_hermite_links(gen):
    d = 6
    w = [1.0, 2.0, 0.0, 0.0, 0.0, 2.0]  # normalised to w / 3
    relu = make_task(
        {"inputs": {"name": "gaussian", "d": d}, "target": {"name": "single_index", "direction": w, "link": "relu"}}
    )
    x, y = relu.sample(300, gen(4), dtype=torch.float64)
    t = x.numpy() @ (np.array(w) / 3)
    np.testing.assert_allclose(y[:, 0].numpy(), np.maximum(t, 0), rtol=1e-12, atol=1e-12)
    coefs = [0.0, 0.5, 0.0, 0.7]
    herm = make_task(
        {
            "inputs": {"name": "gaussian", "d": d},
            "target": {"name": "single_index", "direction": w, "coefficients": coefs},
        }
    )
    expected = 0.5 * t + 0.7 * (t**3 - 3 * t) / math.sqrt(6)
    np.testing.assert_allclose(herm.target(x)[:, 0].numpy(), expected, rtol=1e-12, atol=1e-12)
    he3 = make_task(
        {"inputs": {"name": "gaussian", "d": d}, "target": {"name": "single_index", "direction": w, "link": "he3"}}
    )
    np.testing.assert_allclose(he3.target(x)[:, 0].numpy(), (t**3 - 3 * t) / math.sqrt(6), rtol=1e-12, atol=1e-12)
    for spelling in ("He_3", "he_3", "He3"):  # the issue writes the link He_k; every spelling is h_k
        same = make_task(
            {
                "inputs": {"name": "gaussian", "d": d},
                "target": {"name": "single_index", "direction": w, "link": spelling},
            }
        )
        torch.testing.assert_close(same.target(x), he3.target(x), rtol=0, atol=0)


def test_random_directions_are_orthonormal_and_depend_only_on_the_seed():
    w = random_directions(50, 4, seed=3)
    torch.testing.assert_close(w @ w.T, torch.eye(4, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(random_directions(50, 4, seed=3), w, rtol=0, atol=0)
    assert (random_directions(50, 4, seed=4) - w).abs().max() > 0.1
    a = make_task({"inputs": {"name": "gaussian", "d": 50}, "target": {"name": "single_index", "seed": 9}})
    b = make_task({"inputs": {"name": "gaussian", "d": 50}, "target": {"name": "single_index", "seed": 9}})
    assert a.target.direction == b.target.direction
    assert abs(np.linalg.norm(a.target.direction) - 1) < 1e-12


def test_multi_index_links_and_terms(gen):
    d = 8
    base = {"inputs": {"name": "gaussian", "d": d}}
    prod = make_task({**base, "target": {"name": "multi_index", "r": 3, "seed": 1, "link": "product"}})
    x, y = prod.sample(200, gen(5), dtype=torch.float64)
    w = np.array(prod.target.directions)
    p = x.numpy() @ w.T
    np.testing.assert_allclose(y[:, 0].numpy(), p.prod(axis=1), rtol=1e-12, atol=1e-12)
    norm = make_task({**base, "target": {"name": "multi_index", "r": 3, "seed": 1, "link": "norm"}})
    np.testing.assert_allclose(norm.target(x)[:, 0].numpy(), ((p**2).sum(1) - 3) / math.sqrt(6), rtol=1e-12)
    terms = make_task(
        {
            **base,
            "target": {"name": "multi_index", "r": 3, "seed": 1, "terms": [{"monomial": {0: 1, 2: 1}, "coef": 2.0}]},
        }
    )
    np.testing.assert_allclose(terms.target(x)[:, 0].numpy(), 2 * p[:, 0] * p[:, 2], rtol=1e-12)


def _write_module(tmp_path, monkeypatch, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)


def test_user_callable_target_and_multiclass_labels(gen, tmp_path, monkeypatch):
    _write_module(
        tmp_path,
        monkeypatch,
        "user_targets_a",
        "import torch\n"
        "def first_two(x):\n    return x[:, :2] * torch.tensor([1.0, -1.0], dtype=x.dtype)\n"
        "def scaled(factor):\n    return lambda x: factor * x[:, 0]\n",
    )
    base = {"inputs": {"name": "gaussian", "d": 4}}
    task = make_task({**base, "target": {"name": "callable", "function": "user_targets_a:first_two", "outputs": 2}})
    x, y = task.sample(100, gen(6), dtype=torch.float64)
    torch.testing.assert_close(y, torch.stack([x[:, 0], -x[:, 1]], 1), rtol=0, atol=0)
    factory = make_task(
        {**base, "target": {"name": "callable", "function": "user_targets_a:scaled", "kwargs": {"factor": 3.0}}}
    )
    torch.testing.assert_close(factory.target(x)[:, 0], 3 * x[:, 0], rtol=0, atol=0)
    onehot = make_task(
        {
            **base,
            "target": {"name": "callable", "function": "user_targets_a:first_two", "outputs": 2, "labels": "onehot"},
        }
    )
    labels = onehot.target(x)
    expected = (x[:, 0] < -x[:, 1]).long()  # argmax of (x0, -x1)
    torch.testing.assert_close(labels.argmax(1), expected, rtol=0, atol=0)
    assert labels.sum(1).eq(1).all() and onehot.outputs == 2


def test_sign_labels_and_class_swap_noise(gen):
    n, p = 50_000, 0.3
    task = make_task(
        {
            "inputs": {"name": "gaussian", "d": 5},
            "target": {"name": "teacher", "widths": [8], "seed": 0, "outputs": 3, "labels": "onehot"},
            "noise": p,
        }
    )
    x, y = task.sample(n, gen(7), dtype=torch.float64)
    clean = task.target(x)
    changed = (y.argmax(1) != clean.argmax(1)).double().mean().item()
    assert abs(changed - p) < 6 * math.sqrt(p * (1 - p) / n)  # swaps always change the class
    assert y.sum(1).eq(1).all()
    sign = make_task(
        {"inputs": {"name": "gaussian", "d": 5}, "target": {"name": "hermite", "monomial": {0: 1}, "labels": "sign"}}
    )
    xs, ys = sign.sample(100, gen(8), dtype=torch.float64)
    torch.testing.assert_close(ys[:, 0], torch.where(xs[:, 0] >= 0, 1.0, -1.0).double(), rtol=0, atol=0)


def test_gaussian_spectrum_scales_coordinates(gen):
    task = make_task(
        {
            "inputs": {"name": "gaussian", "d": 3, "spectrum": [4.0, 1.0, 0.25]},
            "target": {"name": "hermite", "monomial": {0: 1}},
        }
    )
    x, _ = task.sample(100_000, gen(9), dtype=torch.float64)
    # sample variance of N(0, l): std l sqrt(2/n); 6 sigma
    for var, want in zip(x.var(0).tolist(), [4.0, 1.0, 0.25]):
        assert abs(var - want) < 6 * want * math.sqrt(2 / 100_000)
