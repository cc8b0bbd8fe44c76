"""The compiled trie evaluator of many-term Hermite polynomials (``_hermite_trie.c``) against a
slow sum written with numpy's hermite_e, and its promise that a sample's value has the same bits
in any batch, on any number of threads, in any tile width."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import sysconfig
import threading

import numpy as np
import pytest
import torch
from test_tasks_poly_paths import _random_polynomial, _slow

import learnlab.tasks._polynomial as poly
import learnlab.tasks._polynomial_kernel as kernel
from learnlab.tasks import HermitePolynomial, make_task


def test_the_extension_is_built_wherever_a_c_compiler_is():
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}): learnlab installs without its extension")
    assert kernel.available(), "pip install -e . should have built learnlab.tasks._hermite_trie (setup.py)"


@pytest.fixture(autouse=True)
def _needs_the_kernel():
    if not kernel.available():
        pytest.skip("learnlab's C extension was not built (no C compiler at install)")


def _deep_polynomial(rng, outputs: int):
    """Shared prefixes (a trie with nodes that are terms and have children), up to 6 factors of
    degree up to 7, and the constant."""
    monomials = _random_polynomial(rng, d=9, terms=300, max_factors=6, max_degree=7)
    return monomials, rng.standard_normal((len(monomials), outputs))


@pytest.mark.parametrize("outputs", [1, 3])
@pytest.mark.parametrize("node_cost", [0, 10**9], ids=["fewest-leaves", "fewest-inner-nodes"])
def test_the_kernel_equals_the_slow_sum(monkeypatch, outputs, node_cost):
    """Both factor orders of the trie (the cost weights pick one or the other) and 1 or 3 outputs,
    in float64 (rounding of a few hundred O(1) terms: 1e-11 is ~1000x the observed error)."""
    monkeypatch.setattr(kernel, "NODE_COST", node_cost)
    rng = np.random.default_rng(11)
    monomials, coefs = _deep_polynomial(rng, outputs)
    p = HermitePolynomial(monomials, coefs)
    z = torch.from_numpy(rng.standard_normal((301, 9)))
    got = p(z)
    assert p._kernel is not None and p._plan is None  # the kernel did the work; nothing was planned
    np.testing.assert_allclose(got.numpy(), _slow(monomials, coefs, z.numpy()), rtol=1e-11, atol=1e-11)


def test_the_trie_is_laid_out_in_preorder_with_its_childless_children_as_leaves():
    """1 + 2 h1(z0) + 3 h1(z0) h1(z1) + 4 h1(z0) h2(z2) + 5 h1(z1): in index order the root has the
    node h1(z0) (a term with two childless children) and one leaf; in reverse order h1(z1) and h2(z2)
    are nodes with children, each with one leaf h1(z0), and the root's leaf is h1(z0)."""
    rows = {(0, 1): 10, (1, 1): 11, (2, 2): 12}
    factors = [(), ((0, 1),), ((0, 1), (1, 1)), ((0, 1), (2, 2)), ((1, 1),)]
    coefs = np.arange(1.0, 6.0)[:, None]
    ascending = kernel._preorder(factors, coefs, lambda i, k: rows[i, k])
    assert ascending["depth"].tolist() == [0, 1] and ascending["column"].tolist() == [0, 10]
    assert ascending["leaf_end"].tolist() == [1, 3] and ascending["leaf_column"].tolist() == [11, 11, 12]
    assert ascending["node_coef"][:, 0].tolist() == [1, 2] and ascending["leaf_coef"][:, 0].tolist() == [5, 3, 4]
    descending = kernel._preorder([f[::-1] for f in factors], coefs, lambda i, k: rows[i, k])
    assert descending["depth"].tolist() == [0, 1, 1] and descending["column"].tolist() == [0, 11, 12]
    assert descending["leaf_end"].tolist() == [1, 2, 3] and descending["leaf_column"].tolist() == [10, 10, 10]
    assert descending["node_coef"][:, 0].tolist() == [1, 5, 0] and descending["leaf_coef"][:, 0].tolist() == [2, 3, 4]
    # the evaluator keeps the cheaper: 2 nodes and 3 leaves against 3 and 3
    trie = kernel.TrieKernel(factors, coefs, lambda i, k: rows[i, k], [3, 1], np.arange(3))
    assert trie.arrays["depth"].tolist() == [0, 1]


def test_float32_agrees_with_the_float64_slow_sum():
    """Float32 rounding of ~300 O(1) terms and their factors: ~1e-6 of the norm of y."""
    rng = np.random.default_rng(4)
    monomials, coefs = _deep_polynomial(rng, 2)
    z = rng.standard_normal((500, 9))
    got = HermitePolynomial(monomials, coefs)(torch.from_numpy(z).float())
    assert got.dtype == torch.float32
    expected = _slow(monomials, coefs, z)
    assert np.linalg.norm(got.double().numpy() - expected) / np.linalg.norm(expected) < 2e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_sample_has_the_same_bits_in_any_batch_on_any_threads(dtype):
    """Batches of 1 to 1000 rows take tiles of 1 to 8 vectors and 1 to 8 threads; a NaN in one
    row stays in that row."""
    rng = np.random.default_rng(6)
    monomials, coefs = _deep_polynomial(rng, 2)
    trie = HermitePolynomial(monomials, coefs)._trie()
    z = torch.from_numpy(rng.standard_normal((1000, 9))).to(dtype)
    whole = trie(z, threads=1)
    for start, size in [(0, 1), (3, 7), (10, 17), (100, 64), (5, 129), (0, 256), (37, 900)]:
        for threads in (1, 2, 3, 8):
            assert torch.equal(trie(z[start : start + size], threads=threads), whole[start : start + size])
    z[500, 4] = float("nan")
    poisoned = trie(z, threads=2)
    assert poisoned[500].isnan().all()
    assert torch.equal(poisoned[:500], whole[:500]) and torch.equal(poisoned[501:], whole[501:])


def test_strided_and_wider_inputs_read_only_their_columns():
    """Rows some elements apart (a column slice, every other row) need no copy and give the same values;
    columns beyond the polynomial's indices are not read."""
    rng = np.random.default_rng(7)
    monomials, coefs = _deep_polynomial(rng, 1)
    p = HermitePolynomial(monomials, coefs)
    wide = torch.from_numpy(rng.standard_normal((200, 15)))
    expected = p(wide[:, :9].contiguous())
    assert torch.equal(p(wide), expected)
    assert torch.equal(p(wide[:, :9]), expected)
    assert torch.equal(p(wide[::2, :9]), expected[::2])
    assert torch.equal(p(wide.T.contiguous().T[:, :9]), expected)  # columns not contiguous: copied first


def test_too_few_columns_and_empty_batches():
    rng = np.random.default_rng(8)
    monomials, coefs = _deep_polynomial(rng, 2)
    p = HermitePolynomial(monomials, coefs)
    with pytest.raises(ValueError, match=r"z must be \(n, >= 9\), got \(4, 8\)"):
        p(torch.zeros(4, 8, dtype=torch.float64))
    assert p(torch.zeros(0, 9)).shape == (0, 2)
    with pytest.raises(TypeError, match="float32 or float64 CPU tensors, got torch.float16"):
        p._trie()(torch.zeros(4, 9, dtype=torch.float16))
    with pytest.raises(ValueError, match="code must be one of .*got 'neon'"):
        p._trie()(torch.zeros(4, 9), code="neon")


def test_the_kernel_and_the_plan_agree_on_the_power_law_target(monkeypatch):
    """The benchmark's target (d = 200, 40,000 terms, 2,732 nodes with children) in float64."""
    task = make_task(
        {
            "inputs": {"name": "power_law_gaussian", "d": 200, "alpha": 2.0, "offset": 6},
            "target": {"name": "power_law", "cutoff_mode": 40000},
        }
    )
    x = task.inputs.sample(300, torch.Generator().manual_seed(0), dtype=torch.float64)
    fast = task.target(x)
    monkeypatch.setattr(poly, "KERNEL", False)
    torch.testing.assert_close(fast, task.target(x), rtol=1e-11, atol=1e-11)


def test_a_used_polynomial_pickles_and_answers_the_same():
    rng = np.random.default_rng(1)
    monomials, coefs = _deep_polynomial(rng, 1)
    p = HermitePolynomial(monomials, coefs)
    z = torch.from_numpy(rng.standard_normal((64, 9)))
    before = p(z)
    clone = pickle.loads(pickle.dumps(p))
    assert clone._kernel is not None and clone._kernel._structs == {}  # pointers are rebuilt where used
    assert torch.equal(clone(z), before)


def test_concurrent_calls_from_threads_give_the_serial_values():
    """The kernel runs without the GIL: calls from several Python threads overlap."""
    rng = np.random.default_rng(9)
    monomials, coefs = _deep_polynomial(rng, 1)
    p = HermitePolynomial(monomials, coefs)
    batches = [torch.from_numpy(rng.standard_normal((300, 9))).float() for _ in range(8)]
    expected = [p(z) for z in batches]
    fresh = HermitePolynomial(monomials, coefs)  # its C structures are first built under the race
    got: dict[int, torch.Tensor] = {}
    workers = [threading.Thread(target=lambda i=i: got.__setitem__(i, fresh(batches[i]))) for i in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert all(torch.equal(got[i], expected[i]) for i in range(8))


def test_autograd_and_half_precision_take_the_plan():
    rng = np.random.default_rng(10)
    monomials, coefs = _deep_polynomial(rng, 1)
    p = HermitePolynomial(monomials, coefs)
    z = torch.from_numpy(rng.standard_normal((20, 9))).requires_grad_(True)
    y = p(z)
    assert y.requires_grad and p._kernel is None
    y.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    p(z.detach().bfloat16())
    assert p._kernel is None


def test_switched_off_by_the_environment():
    code = "from learnlab.tasks._polynomial_kernel import available; print(available())"
    env = {**os.environ, "LEARNLAB_HERMITE_KERNEL": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("code", kernel.LEVELS)
def test_every_level_of_code_equals_the_slow_sum_with_the_same_bits(code):
    """Each level of code the CPU can run (x86-64: AVX-512, AVX2, the baseline; a level above the
    CPU's is lowered to its best, so on a smaller CPU some cases repeat one): float64 values equal to
    the slow sum, and float32 bits equal across levels, lanes, batches and threads (no contracted
    multiply-adds: a build that contracted some lanes and not others failed this)."""
    rng = np.random.default_rng(12)
    monomials, coefs = _deep_polynomial(rng, 2)
    trie = HermitePolynomial(monomials, coefs)._trie()
    z = rng.standard_normal((300, 9))
    got = trie(torch.from_numpy(z), code=code).numpy()
    np.testing.assert_allclose(got, _slow(monomials, coefs, z), rtol=1e-11, atol=1e-11)
    z32 = torch.from_numpy(z).float()
    alone = torch.cat([trie(z32[i : i + 1], threads=1, code="baseline") for i in range(300)])
    for n, threads in [(300, 1), (300, 2), (64, 1), (37, 1), (128, 1)]:
        assert torch.equal(trie(z32[:n], threads=threads, code=code), alone[:n])
