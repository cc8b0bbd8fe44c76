"""Built-in probes against independent references: numpy norms and SVD, a per-sample-gradient
loop for the NTK, the MLP's layers written out by hand, forward hooks written in the test.

Each probe is checked on a stacked learnlab MLP (E members: member e must equal a computation
on member e alone) and on a plain user module seen as the loop sees it (``as_stack``: a stack
of one holding the module itself). Everything is float64, so references agree to ~1e-12.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from learnlab.models import MLP, Stack, as_stack
from learnlab.tasks import make_task
from learnlab.train import PROBES, ProbeContext

E, D, WIDTH, K = 3, 5, 12, 2
TOL = dict(rtol=1e-10, atol=1e-12)  # float64; only summation order differs from the references


class RawStack(nn.Module):
    """The least a probe may rely on: a module whose parameter ``w`` already has the member axis."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w)
        self.members = w.shape[0]

    def member_parameters(self):
        return list(self.named_parameters())

    def per_member(self, tensor):
        return tensor


def _ctx(model, x, y, init, *, tasks=()):
    return ProbeContext(
        step=0,
        batch=(x, y),
        init_params=init,
        optimizer=None,
        tasks=list(tasks),
        loss_fn=None,
        members=x.shape[0],
    )


@pytest.fixture
def stacked(gen):
    """A 3-member float64 MLP moved away from its init, and a context with a batch per member."""
    model = MLP(D, WIDTH, 2, K, generators=[gen(i) for i in range(E)], dtype=torch.float64)
    init = {n: p.detach().clone() for n, p in model.named_parameters()}
    g = gen(99)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    x = torch.randn(E, 10, D, generator=gen(7), dtype=torch.float64)
    y = torch.randn(E, 10, K, generator=gen(8), dtype=torch.float64)
    return model, _ctx(model, x, y, init)


@pytest.fixture
def user(gen):
    """A user nn.Sequential (float64) wrapped as a stack of one, and its context."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(D, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    model = as_stack(net)
    assert isinstance(model, Stack) and model.module is net  # held, not copied
    init = {n: model.per_member(p).detach().clone() for n, p in model.member_parameters()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1)
    x = torch.randn(1, 9, D, generator=gen(3), dtype=torch.float64)
    y = torch.randn(1, 9, 1, generator=gen(4), dtype=torch.float64)
    return net, model, _ctx(model, x, y, init)


def _np(t):
    return t.detach().numpy()


# ------------------------------------------------------------------- norms and distances


def test_param_norm_and_distance_from_init_per_member(stacked):
    model, ctx = stacked
    norms = PROBES["param_norm"]()(model, ctx)
    dist = PROBES["dist_init"]()(model, ctx)
    rel = PROBES["dist_init"](relative=True)(model, ctx)
    for name, p in model.named_parameters():
        for e in range(E):
            w, w0 = _np(p[e]), _np(ctx.init_params[name][e])
            assert norms[f"param_norm/{name}"][e].item() == pytest.approx(np.linalg.norm(w), rel=1e-12)
            assert dist[f"dist_init/fro/{name}"][e].item() == pytest.approx(np.linalg.norm(w - w0), rel=1e-12)
            assert dist[f"dist_init/inf/{name}"][e].item() == np.abs(w - w0).max()
            if name.startswith("weights"):  # biases start at 0: relative distance undefined
                assert rel[f"dist_init/fro/{name}"][e].item() == pytest.approx(
                    np.linalg.norm(w - w0) / np.linalg.norm(w0), rel=1e-12
                )


def test_grad_norm_is_the_norm_of_each_members_whole_gradient(stacked):
    model, ctx = stacked
    loss = (model(ctx.batch[0]) - ctx.batch[1]).pow(2).mean(dim=(1, 2))
    loss.sum().backward(retain_graph=True)
    got = PROBES["grad_norm"]()(model, ctx)["grad_norm"]
    for e in range(E):
        grads = torch.autograd.grad(loss[e], list(model.parameters()), retain_graph=True, allow_unused=True)
        expected = math.sqrt(sum(float(g[e].pow(2).sum()) for g in grads if g is not None))
        assert got[e].item() == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------------------- ranks


def _numpy_ranks(w: np.ndarray) -> tuple[float, float]:
    s = np.linalg.svd(w, compute_uv=False)
    p = s / s.sum()
    p = p[p > 0]
    return float((s**2).sum() / s[0] ** 2), float(np.exp(-(p * np.log(p)).sum()))


def test_stable_and_effective_rank_match_numpy_svd(stacked):
    model, ctx = stacked
    stable = PROBES["stable_rank"]()(model, ctx)
    eff = PROBES["effective_rank"]()(model, ctx)
    assert sorted(stable) == [f"stable_rank/weights.{l}" for l in range(3)]  # biases (1, n) are skipped
    for l, w in enumerate(model.weights):
        for e in range(E):
            s_ref, e_ref = _numpy_ranks(_np(w[e]))
            assert stable[f"stable_rank/weights.{l}"][e].item() == pytest.approx(s_ref, rel=1e-10)
            assert eff[f"effective_rank/weights.{l}"][e].item() == pytest.approx(e_ref, rel=1e-10)


def test_ranks_of_matrices_with_known_spectra():
    # r equal singular values: stable rank = effective rank = r. diag(3, 1): stable 10/9,
    # effective exp(-(3/4 log 3/4 + 1/4 log 1/4)). A zero singular value adds nothing (0 log 0 = 0).
    w = torch.zeros(2, 6, 4, dtype=torch.float64)
    w[0, :3, :3] = 2 * torch.eye(3)
    w[1, 0, 0], w[1, 1, 1] = 3.0, 1.0
    model = RawStack(w)
    ctx = _ctx(model, torch.zeros(2, 1, 1), torch.zeros(2, 1, 1), {})
    stable = PROBES["stable_rank"]()(model, ctx)["stable_rank/w"]
    eff = PROBES["effective_rank"]()(model, ctx)["effective_rank/w"]
    torch.testing.assert_close(stable, torch.tensor([3.0, 10 / 9], dtype=torch.float64))
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    torch.testing.assert_close(eff, torch.tensor([3.0, math.exp(h)], dtype=torch.float64))


def test_ranks_of_a_user_module(user):
    net, model, ctx = user
    got = PROBES["effective_rank"]()(model, ctx)
    assert sorted(got) == ["effective_rank/0.weight"]  # the (1, 8) read-out is a vector: skipped
    assert got["effective_rank/0.weight"].item() == pytest.approx(_numpy_ranks(_np(net[0].weight))[1], rel=1e-10)


# ---------------------------------------------------------------------------- read-in Gram


def test_gram_diagonal_on_the_target_indices_and_trace(stacked):
    model, ctx = stacked
    task = make_task({"inputs": {"name": "gaussian", "d": D}, "target": {"name": "hermite", "monomial": {1: 1, 3: 2}}})
    ctx.tasks = [task] * E
    out = PROBES["gram"](full=True)(model, ctx)
    assert {k for k in out if k.startswith("gram/diag/")} == {"gram/diag/1", "gram/diag/3"}
    for e in range(E):
        w = _np(model.weights[0][e])  # (d, width): row i = weights leaving input i
        g = w @ w.T
        np.testing.assert_allclose(_np(out["gram"][e]), g, **TOL)
        assert out["gram/diag/1"][e].item() == pytest.approx(g[1, 1], rel=1e-12)
        assert out["gram/diag/3"][e].item() == pytest.approx(g[3, 3], rel=1e-12)
        assert out["gram/diag_rest"][e].item() == pytest.approx(np.mean([g[i, i] for i in (0, 2, 4)]), rel=1e-12)
        assert out["gram/trace"][e].item() == pytest.approx(np.trace(g), rel=1e-12)


def test_gram_of_a_torch_linear_is_w_transpose_w(user):
    net, model, ctx = user
    out = PROBES["gram"](indices=[0, 4], full=True)(model, ctx)
    w = _np(net[0].weight)  # torch layout (out, in)
    g = w.T @ w
    np.testing.assert_allclose(_np(out["gram"][0]), g, **TOL)
    assert out["gram/diag/4"].item() == pytest.approx(g[4, 4], rel=1e-12)
    assert out["gram/trace"].item() == pytest.approx(np.trace(g), rel=1e-12)


# ---------------------------------------------------------------------------- NTK


def _ntk_by_loop(f, params, x: torch.Tensor) -> torch.Tensor:
    """K_ij = sum_c <grad f_c(x_i), grad f_c(x_j)>, one backward pass per (point, output)."""
    rows = []
    for i in range(x.shape[0]):
        out = f(x[i : i + 1]).reshape(-1)
        grads = [torch.autograd.grad(out[c], params, retain_graph=True) for c in range(out.numel())]
        rows.append(torch.stack([torch.cat([g.reshape(-1) for g in per_output]) for per_output in grads]))
    jac = torch.stack(rows)  # (n, k, P)
    return torch.einsum("ikp,jkp->ij", jac, jac)


def _member(model: MLP, e: int, **kwargs) -> MLP:
    """Member e of a stack as a standalone MLP (its parameters and buffers copied)."""
    single = MLP(D, WIDTH, 2, K, generators=[torch.Generator()], dtype=torch.float64, **kwargs)
    single.load_state_dict({k: v[e : e + 1].clone() for k, v in model.state_dict().items()})
    return single


def test_ntk_of_each_stacked_member_equals_its_own_per_sample_gradient_loop(stacked):
    model, ctx = stacked
    n = 6
    out = PROBES["ntk"](n=n)(model, ctx)
    assert out["ntk"].shape == (E, n, n)
    for e in range(E):
        single = _member(model, e)
        ref = _ntk_by_loop(single, list(single.parameters()), ctx.batch[0][e, :n])
        torch.testing.assert_close(out["ntk"][e], ref, **TOL)
        assert out["ntk/trace"][e].item() == pytest.approx(ref.trace().item(), rel=1e-12)


def test_ntk_of_a_centered_mup_stack_with_gamma(gen):
    # multipliers, centering buffers (f - f_0) and gamma all enter the function the NTK is of
    kwargs = dict(param="mup", center=True, gamma=2.0)
    model = MLP(D, WIDTH, 2, K, generators=[gen(i) for i in range(2)], dtype=torch.float64, **kwargs)
    with torch.no_grad():
        model.weights[1].mul_(1.1)  # away from init, so the centered output is not 0
    x = torch.randn(2, 5, D, generator=gen(5), dtype=torch.float64)
    out = PROBES["ntk"](n=5)(model, _ctx(model, x, torch.zeros(2, 5, K, dtype=torch.float64), {}))
    for e in range(2):
        single = _member(model, e, **kwargs)
        ref = _ntk_by_loop(single, list(single.parameters()), x[e])
        torch.testing.assert_close(out["ntk"][e], ref, **TOL)


def test_ntk_of_a_user_module(user):
    net, model, ctx = user
    out = PROBES["ntk"](n=5)(model, ctx)
    ref = _ntk_by_loop(net, list(net.parameters()), ctx.batch[0][0, :5])
    torch.testing.assert_close(out["ntk"][0], ref, **TOL)


def test_ntk_does_not_touch_gradients(user):
    net, model, ctx = user
    net(ctx.batch[0][0]).sum().backward()
    before = [p.grad.clone() for p in net.parameters()]
    PROBES["ntk"](n=4)(model, ctx)
    assert all(torch.equal(p.grad, g) for p, g in zip(net.parameters(), before))


def test_kernel_alignment_matches_its_formula(user):
    net, model, ctx = user
    n = 7
    kernel = _np(_ntk_by_loop(net, list(net.parameters()), ctx.batch[0][0, :n]))
    y = _np(ctx.batch[1][0, :n, 0])
    plain = PROBES["kernel_alignment"](n=n)(model, ctx)["kernel_alignment"].item()
    assert plain == pytest.approx(y @ kernel @ y / (np.linalg.norm(kernel) * (y @ y)), rel=1e-10)
    h = np.eye(n) - 1.0 / n
    kc, yc = h @ kernel @ h, h @ np.outer(y, y) @ h
    centered = PROBES["kernel_alignment"](n=n, centered=True)(model, ctx)["kernel_alignment"].item()
    assert centered == pytest.approx((kc * yc).sum() / (np.linalg.norm(kc) * np.linalg.norm(yc)), rel=1e-10)
    both = PROBES["ntk"](n=n, alignment=True)(model, ctx)
    assert both["kernel_alignment"].item() == pytest.approx(plain, rel=1e-12)


def test_kernel_alignment_of_several_outputs_per_member(stacked):
    model, ctx = stacked
    got = PROBES["kernel_alignment"](n=5)(model, ctx)["kernel_alignment"]
    for e in range(E):
        single = _member(model, e)
        kernel = _np(_ntk_by_loop(single, list(single.parameters()), ctx.batch[0][e, :5]))
        yy = _np(ctx.batch[1][e, :5]) @ _np(ctx.batch[1][e, :5]).T
        expected = (kernel * yy).sum() / (np.linalg.norm(kernel) * np.linalg.norm(yy))
        assert got[e].item() == pytest.approx(expected, rel=1e-10)


# ---------------------------------------------------------------------- activation sizes


def test_activation_sizes_of_the_stacked_mlp_equal_its_layers_written_out(stacked):
    model, ctx = stacked
    x = ctx.batch[0]
    got = PROBES["activation_size"]()(model, ctx)
    # the MLP's documented layers: h_l = m_l (x_{l-1} W_l) + m_l^b b_l, x_l = relu(h_l)
    h, expected = x, {}
    names = ["input", "hidden.1", "output"]
    for l, w in enumerate(model.weights):
        pre = torch.bmm(h, w) * getattr(model, f"mult_{l}") + model.biases[l] * getattr(model, f"bias_mult_{l}")
        expected[f"act/{names[l]}"] = pre.abs().mean(dim=(1, 2))
        h = torch.relu(pre)
    expected["act/out"] = model(x).abs().mean(dim=(1, 2))
    assert set(got) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, **TOL)


def test_activation_sizes_of_a_user_module_via_forward_hooks(user):
    net, model, ctx = user
    x = ctx.batch[0][0]
    got = PROBES["activation_size"](n=4)(model, ctx)
    x = x[:4]
    h0 = x @ net[0].weight.T + net[0].bias
    h1 = torch.tanh(h0)
    h2 = h1 @ net[2].weight.T + net[2].bias
    expected = {"act/0": h0, "act/1": h1, "act/2": h2, "act/out": h2}
    assert set(got) == set(expected)
    for key, h in expected.items():
        assert got[key].item() == pytest.approx(h.abs().mean().item(), rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(m=st.integers(2, 9), n=st.integers(2, 9), seed=st.integers(0, 2**31 - 1), scale=st.floats(1e-3, 1e3))
def test_ranks_are_scale_and_rotation_invariant_and_bounded(m, n, seed, scale):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(1, m, n, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(m, m, generator=g, dtype=torch.float64))
    model = RawStack(torch.cat([w, scale * w, q @ w]))  # three members
    ctx = _ctx(model, torch.zeros(3, 1, 1), torch.zeros(3, 1, 1), {})
    for key in ("stable_rank", "effective_rank"):
        r = PROBES[key]()(model, ctx)[f"{key}/w"]
        torch.testing.assert_close(r[1:], r[:1].expand(2), rtol=1e-9, atol=0)
        assert 1 - 1e-12 <= r[0].item() <= min(m, n) + 1e-9
