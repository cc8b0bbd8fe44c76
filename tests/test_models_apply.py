"""apply_parameterization on user modules, the native CNN, and multipliers as module state."""

from __future__ import annotations

import copy
import io
import pickle
import shutil

import pytest
import torch
from torch import nn

from learnlab import apply_parameterization
from learnlab.models import CNN, MLP, build_optimizer

D, WIDTH = 6, 32


pytestmark = pytest.mark.usefixtures("one_thread")


def _mlp_seq(width=WIDTH, outputs=1):
    return nn.Sequential(
        nn.Linear(D, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, outputs)
    ).double()


def _cnn_seq(channels, width, outputs):
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, outputs),
    ).double()


def _train(model, opt, batches):
    for x, y in batches:
        loss = (model(x) - y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def _batches(shape, outputs=1, steps=4):
    g = torch.Generator().manual_seed(8)
    return [
        (
            torch.randn(*shape, generator=g, dtype=torch.float64),
            torch.randn(shape[0], outputs, generator=g, dtype=torch.float64),
        )
        for _ in range(steps)
    ]


@pytest.mark.parametrize("param", ["mup", "ntk", "mf"])
def test_applied_sequential_equals_the_native_mlp(param):
    """Same weights -> same function; same optimizer rules -> same trajectory (Adam and SGD)."""
    native = MLP(D, WIDTH, 2, param=param, generators=[torch.Generator().manual_seed(2)], dtype=torch.float64)
    seq = apply_parameterization(_mlp_seq(), param, generator=torch.Generator().manual_seed(2))
    roles = [s.role for s in seq.learnlab_scaling.slots]
    assert roles == ["input", "hidden", "output"]
    with torch.no_grad():  # the draws agree already (same generator, same order): W^T of each other
        for l, i in enumerate((0, 2, 4)):
            torch.testing.assert_close(seq[i].weight.T, native.weights[l][0], rtol=1e-6, atol=1e-7)
            seq[i].weight.copy_(native.weights[l][0].T)
            native.biases[l].fill_(0.1 * (l + 1))
            seq[i].bias.fill_(0.1 * (l + 1))
    x = torch.randn(11, D, dtype=torch.float64)
    torch.testing.assert_close(seq(x), native(x), rtol=1e-12, atol=1e-13)
    for optimizer, lr in (("adam", 0.01), ("sgd", 0.05)):
        _train(native, build_optimizer(native, optimizer, lr=lr), _batches((16, D)))
        _train(seq, build_optimizer(seq, optimizer, lr=lr), _batches((16, D)))
        torch.testing.assert_close(seq(x), native(x), rtol=1e-9, atol=1e-11)


def test_native_cnn_members_equal_applied_conv_sequentials():
    """The stacked grouped-conv CNN against nn.Conv2d models (conv fan_in = in_channels * k * k)."""
    shape, width, outputs, rows = (2, 5, 5), 12, 3, ["mup", "sp"]
    native = CNN(
        shape,
        width,
        2,
        outputs,
        param=rows,
        init="he",
        generators=[torch.Generator().manual_seed(s) for s in (1, 2)],
        dtype=torch.float64,
    )
    # closed-form he init std of the hidden conv (W / z): sqrt(2 / (width * 9)) in both rows (b = 1/2)
    g = torch.Generator().manual_seed(1)
    torch.randn(width, 2, 3, 3, generator=g)
    torch.randn(width, 1, 1, generator=g)  # the first conv's bias draw comes next (zero biases under he)
    z = torch.randn(width, width, 3, 3, generator=g).double()
    assert (native.weights[1][0] / z).mean().item() == pytest.approx((2 / (width * 9)) ** 0.5, rel=1e-6)
    x = torch.randn(2, 7, *shape, dtype=torch.float64)
    with torch.no_grad():
        for b in native.biases:
            b.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(3))
    seqs = []
    for e, row in enumerate(rows):
        seq = apply_parameterization(_cnn_seq(2, width, outputs), row)
        with torch.no_grad():
            for l, i in enumerate((0, 2)):
                seq[i].weight.copy_(native.weights[l][e])
                seq[i].bias.copy_(native.biases[l][e].flatten())
            seq[6].weight.copy_(native.weights[2][e].T)
            seq[6].bias.copy_(native.biases[2][e].flatten())
        seqs.append(seq)
        torch.testing.assert_close(seq(x[e]), native(x)[e], rtol=1e-12, atol=1e-13)
    opt = build_optimizer(native, "adam", lr=0.01)
    stacked_batches = [(torch.stack([xb, xb]), torch.stack([yb, yb])) for xb, yb in _batches((8, *shape), outputs)]
    for xb, yb in stacked_batches:
        loss = (native(xb) - yb).pow(2).mean(dim=(1, 2)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for e, seq in enumerate(seqs):
        _train(seq, build_optimizer(seq, "adam", lr=0.01), _batches((8, *shape), outputs))
        torch.testing.assert_close(seq(x[e]), native(x)[e], rtol=1e-9, atol=1e-11)


def test_multipliers_are_state_dict_pickle_and_deepcopy_state():
    model = apply_parameterization(_mlp_seq(), "mup", base_width=4, generator=torch.Generator().manual_seed(0))
    ratio = WIDTH / 4
    state = model.state_dict()
    assert state["0.abc_weight_mult"].item() == pytest.approx(ratio**0.5)
    assert state["4.abc_weight_mult"].item() == pytest.approx(ratio**-0.5)
    assert state["2.abc_bias_mult"].item() == pytest.approx(ratio**0.5)
    _train(model, build_optimizer(model, "sgd", lr=0.1), _batches((8, D)))
    x = torch.randn(5, D, dtype=torch.float64)
    fresh = apply_parameterization(_mlp_seq(), "mup", base_width=4, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(fresh(x), model(x))
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="abc_weight_mult"):
        _mlp_seq().load_state_dict(model.state_dict())  # a plain module has no multipliers
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model), _torch_roundtrip(model)):
        torch.testing.assert_close(clone(x), model(x), rtol=0, atol=0)
        assert clone.learnlab_scaling.ratio == ratio
        assert {g["name"] for g in build_optimizer(clone, "adam").param_groups} == set(dict(model.named_parameters()))
    for native in (MLP(D, WIDTH, 2, param="mup", center=True), CNN((1, 3, 3), 4, 1, param="mup")):
        clone = pickle.loads(pickle.dumps(native))
        xin = torch.randn(3, native.d)
        torch.testing.assert_close(clone(xin), native(xin), rtol=0, atol=0)


def _torch_roundtrip(model):
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def _compile_models():
    seq = apply_parameterization(_mlp_seq(), "mup", generator=torch.Generator().manual_seed(0))
    convs = apply_parameterization(_cnn_seq(1, 4, 2), "mup")
    mlp = MLP(D, WIDTH, 2, param="mup", center=True, dtype=torch.float64)
    cnn = CNN((1, 4, 4), 4, 2, 2, param="ntk", dtype=torch.float64)
    return [
        (seq, torch.randn(5, D, dtype=torch.float64)),
        (convs, torch.randn(5, 1, 4, 4, dtype=torch.float64)),
        (mlp, torch.randn(5, D, dtype=torch.float64)),
        (cnn, torch.randn(5, 16, dtype=torch.float64)),
    ]


def test_torch_compile_traces_the_multipliers_in_one_graph():
    """Dynamo captures forward hooks and multiplier buffers without graph breaks (fullgraph).

    The ``eager`` backend runs the captured graph as is: this checks the capture, which is
    what hooks, buffers and attributes could break; code generation is tested (slow) below.
    """
    torch._dynamo.reset()
    for model, x in _compile_models():
        compiled = torch.compile(model, backend="eager", fullgraph=True)
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-12, atol=1e-13)
        with torch.no_grad():  # a changed multiplier buffer is seen by the compiled module
            name = next(n for n, _ in model.named_buffers() if "mult" in n)
            model.get_buffer(name).mul_(2.0)
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-12, atol=1e-13)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # torch's own
def test_torch_compile_inductor_forward_and_backward_equality():
    if not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        pytest.skip(
            "torch.compile's default (inductor) backend needs a C++ compiler (g++, c++ or clang++) "
            "on PATH to build CPU kernels; none was found"
        )
    torch._dynamo.reset()
    for model, x in _compile_models()[:1]:  # an applied module: hooks, buffers (the native models: above)
        compiled = torch.compile(model)
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-10, atol=1e-12)
        grads = torch.autograd.grad(compiled(x).sum(), list(model.parameters()))
        ref = torch.autograd.grad(model(x).sum(), list(model.parameters()))
        for g, r in zip(grads, ref):
            torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def test_applying_twice_is_a_no_op_or_an_error_never_a_reinit():
    model = apply_parameterization(_mlp_seq(), "mup", generator=torch.Generator().manual_seed(0))
    before = copy.deepcopy(model.state_dict())
    again = apply_parameterization(model, "mup", generator=torch.Generator().manual_seed(5))
    assert again is model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert len(model[0]._forward_hooks) == 1  # no second multiplier hook
    with pytest.raises(ValueError, match="already parameterized with other settings"):
        apply_parameterization(model, "ntk")
    with pytest.raises(ValueError, match="already parameterized natively"):
        apply_parameterization(MLP(D, 8, 1), "mup")


class _Shuffled(nn.Module):
    """Registration order (head, mid, inp) differs from forward order (inp, mid, head)."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(WIDTH, 1)
        self.mid = nn.Linear(WIDTH, WIDTH)
        self.inp = nn.Linear(D, WIDTH)
        self.norm = nn.LayerNorm(WIDTH)

    def forward(self, x):
        return self.head(torch.relu(self.norm(self.mid(torch.relu(self.inp(x))))))


def test_layer_roles_from_forward_order_or_overrides_and_clear_errors():
    with pytest.raises(ValueError, match=r"cannot classify module 'norm' \(LayerNorm\).*layers=\{'norm': 'ignore'\}"):
        apply_parameterization(_Shuffled(), "mup")
    by_forward = apply_parameterization(_Shuffled(), "mup", layers={"norm": "ignore"}, example_input=torch.randn(2, D))
    roles = {s.weight: s.role for s in by_forward.learnlab_scaling.slots}
    assert roles == {"inp.weight": "input", "mid.weight": "hidden", "head.weight": "output"}
    by_hand = apply_parameterization(_Shuffled(), "mup", layers={"norm": "ignore", "inp": "input", "head": "output"})
    assert {s.weight: s.role for s in by_hand.learnlab_scaling.slots} == roles
    assert by_hand.inp.abc_weight_mult.item() == pytest.approx(WIDTH**0.5)
    groups = {g["name"]: g["lr"].item() for g in build_optimizer(by_hand, "adam", lr=0.1).param_groups}
    assert groups["norm.weight"] == pytest.approx(0.1) and groups["mid.weight"] == pytest.approx(0.1 / WIDTH)
    with pytest.raises(ValueError, match="needs an input and an output layer"):
        apply_parameterization(nn.Sequential(nn.Linear(3, 4)), "mup")
    with pytest.raises(ValueError, match=r"layers names \['nope'\] are not modules holding parameters"):
        apply_parameterization(_mlp_seq(), "mup", layers={"nope": "input"})
    with pytest.raises(ValueError, match="valid roles: input, hidden, output, ignore"):
        apply_parameterization(_mlp_seq(), "mup", layers={"0": "middle"})
    with pytest.raises(ValueError, match="base_width must be an integer >= 1"):
        apply_parameterization(_mlp_seq(), "mup", base_width=0)
    with pytest.raises(TypeError, match="is not parameterized: .*apply_parameterization"):
        build_optimizer(_mlp_seq(), "sgd")


def test_apply_scales_a_given_torch_optimizer_in_place():
    seq = _mlp_seq()
    opt = torch.optim.SGD(seq.parameters(), lr=0.1, momentum=0.9)
    apply_parameterization(seq, "mf", optimizer=opt)
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs["2.weight"] == pytest.approx(0.1 * WIDTH) and all(g["momentum"] == 0.9 for g in opt.param_groups)
