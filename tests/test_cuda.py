"""On a GPU (issue 18, item 4): the fast paths agree with the CPU and with themselves on CUDA.

Marked ``cuda``: skipped with a reason where ``torch.cuda.is_available()`` is false (the CI
machine), run wherever a GPU is. Tolerances are those of float32 on different hardware (TF32
off: matmuls in full float32).
"""

from __future__ import annotations

import math

import pytest
import torch

import learnlab
from learnlab.experiments import plan, run_group
from learnlab.models import MLP
from learnlab.train._evaluation import evaluate, fixed_source, streamed_source

pytestmark = pytest.mark.cuda


@pytest.fixture(autouse=True)
def _full_float32():
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = before


SPEC = {
    "name": "cuda",
    "seed": 3,
    "task": {"inputs": {"name": "gaussian", "d": 8}, "target": {"name": "hermite", "monomial": {0: 1, 1: 1}}},
    "model": {"width": 64, "depth": 2},
    "train": {"optimizer": "adam", "batch_size": 32, "steps": 200, "eval_every": 50, "lr": 1e-3},
    "sweep": {"grid": {"train.lr": [1e-3, 3e-3, 1e-2]}, "seeds": 2},
}


def _metrics(result):
    return {(step, name): value for step, name, value in result.metrics}


def test_a_stack_on_the_gpu_equals_its_runs_alone_on_the_gpu():
    configs = [r.config for r in plan(SPEC).runs]
    stacked = run_group(configs, device="cuda")
    for config, member in zip(configs, stacked):
        (solo,) = run_group([config], device="cuda")
        assert member.status == solo.status == "finished"
        a, b = _metrics(solo), _metrics(member)
        assert a.keys() == b.keys()
        for key, value in a.items():
            assert b[key] == pytest.approx(value, rel=1e-4, abs=1e-7), key


def test_the_gpu_trains_what_the_cpu_trains():
    config = plan(SPEC).runs[0].config
    (cpu,) = run_group([config])
    (gpu,) = run_group([config], device="cuda")
    final = {k: v for k, v in cpu.final.items() if k.startswith("test/")}
    for key, value in final.items():  # 200 Adam steps in float32 on two devices
        assert gpu.final[key] == pytest.approx(value, rel=2e-2), key


@pytest.mark.parametrize(
    "inputs, target",
    [
        ({"name": "gaussian", "d": 20}, {"name": "hermite", "monomial": {0: 2, 3: 1}}),
        ({"name": "hypercube", "d": 20}, {"name": "parity", "indices": [[0, 1, 2]]}),
        ({"name": "sphere", "d": 20}, {"name": "single_index", "link": "relu"}),
        ({"name": "gaussian", "d": 20}, {"name": "teacher", "widths": [16, 16], "seed": 1}),
    ],
)
def test_generation_on_the_gpu_stays_there_and_computes_the_target(inputs, target):
    task = learnlab.make_task({"inputs": inputs, "target": target})
    x, y = task.sample(4096, torch.Generator(device="cuda").manual_seed(0), noise=False, device="cuda")
    assert x.device.type == "cuda" and y.device.type == "cuda"
    expected = task.target(x.cpu().double())
    torch.testing.assert_close(y.cpu().double(), expected, rtol=1e-4, atol=1e-4)


def test_evaluation_on_the_gpu_equals_the_cpu():
    task = learnlab.make_task(
        {"inputs": {"name": "gaussian", "d": 30}, "target": {"name": "hermite", "monomial": {0: 2}}}
    )
    gens = [torch.Generator().manual_seed(s) for s in range(4)]
    cpu_model = MLP(30, 256, 2, 1, generators=gens)
    gpu_model = MLP(30, 256, 2, 1, generators=[torch.Generator().manual_seed(s) for s in range(4)], device="cuda")
    x, y = task.sample(200_000, torch.Generator().manual_seed(1), noise=False)
    on_cpu = evaluate(cpu_model, [fixed_source(x, y)] * 4, ["mse", "linf"])
    on_gpu = evaluate(gpu_model, [fixed_source(x.cuda(), y.cuda())] * 4, ["mse", "linf"])
    for name in on_cpu:
        for a, b in zip(on_cpu[name], on_gpu[name]):
            assert b == pytest.approx(a, rel=1e-4), name
    streamed = [streamed_source(task, 100_000, 5, dtype=torch.float32, device="cuda") for _ in range(4)]
    first = evaluate(gpu_model, streamed, ["mse"])
    assert evaluate(gpu_model, streamed, ["mse"]) == first  # drawn once, the same every time
    assert streamed[0].data[0].device.type == "cuda"


def test_the_lr_probe_on_the_gpu_matches_stepping_by_hand():
    from learnlab.lr import loss_per_learning_rate

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1)).cuda()
    x, y = torch.randn(128, 20, device="cuda"), torch.randn(128, 1, device="cuda")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    lrs = [1e-3, 1e-2, 1e-1]
    losses = loss_per_learning_rate(model, x, y, torch.nn.functional.mse_loss, optimizer, lrs)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for lr, got in zip(lrs, losses.tolist()):
        model.load_state_dict(state)
        model.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
            expected = float(torch.nn.functional.mse_loss(model(x), y))
        assert got == pytest.approx(expected, rel=1e-4), lr
    assert math.isfinite(losses[0])


@pytest.mark.parametrize("loss", ["mse", "hinge", "cross_entropy"])
def test_fused_gradients_on_the_gpu_equal_autograd_on_the_gpu(loss):
    from learnlab.models._mlp_grad import loss_grads, mse_grads, supports
    from learnlab.train._losses import LOSSES, OUTPUT_GRADS

    outputs = 3 if loss == "cross_entropy" else 1
    gens = [torch.Generator().manual_seed(s) for s in range(4)]
    model = MLP(10, 128, 2, outputs, param="mup", base_width=32, generators=gens, device="cuda")
    assert supports(model)
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(4, 64, 10, generator=g, device="cuda")
    y = torch.randn(4, 64, outputs, generator=g, device="cuda")
    y = y.sign() if loss == "hinge" else y.softmax(-1) if loss == "cross_entropy" else y
    ref = LOSSES[loss](model(x), y)
    ref.sum().backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    losses = mse_grads(model, x, y) if loss == "mse" else loss_grads(model, x, y, OUTPUT_GRADS[LOSSES[loss]])
    torch.testing.assert_close(losses, ref.detach(), rtol=0, atol=0)
    for (name, p), e in zip(model.named_parameters(), expected):
        assert p.grad.device.type == "cuda"
        torch.testing.assert_close(p.grad, e, rtol=1e-6, atol=1e-7, msg=name)  # cuBLAS may pick other kernels


QUIET_SPECS = {  # each reaches a per-step host-to-device copy that once made the host wait
    "parity, shared streams": {  # a stack's shared-stream index, the parity's index sets
        "task": {"inputs": {"name": "hypercube", "d": 20}, "target": {"name": "parity", "indices": [[0, 1, 2]]}},
        "train": {"loss": "hinge", "optimizer": "sgd", "lr": 0.05},
        "sweep": {"grid": {"train.lr": [0.02, 0.05, 0.1]}, "seeds": 2},
    },
    "power law, adam, schedules, clipping": {  # the polynomial's constant, per-member betas and lrs, clip limits
        "task": {"inputs": {"name": "gaussian", "d": 10}, "target": {"name": "power_law", "cutoff_mode": 200}},
        "train": {"optimizer": "adam", "lr": 1e-3, "schedule": {"name": "cosine", "warmup": 5}},
        "sweep": {
            "grid": {"train.betas": [[0.9, 0.999], [0.8, 0.99]], "train.clip_grad_norm": [None, 1.0]},
            "seeds": 1,
        },
    },
    "hermite, momentum, per-member schedules": {  # the small polynomial's factor rows
        "task": {"inputs": {"name": "gaussian", "d": 8}, "target": {"name": "hermite", "monomial": {0: 2, 3: 1}}},
        "train": {"optimizer": "momentum", "lr": 0.01, "schedule": {"name": "cosine"}},
        "sweep": {"grid": {"train.schedule.final_factor": [0.0, 0.5]}, "seeds": 2},
    },
}


@pytest.mark.parametrize("name", QUIET_SPECS)
def test_a_training_step_does_not_make_the_host_wait_for_the_gpu(name, monkeypatch):
    """Issue 18, item 4: between evaluations and logging, a step queues its work and goes on."""
    from learnlab.train import _loop

    original, checked = _loop._Loop.iteration, []

    def iteration(self, t):
        s = self.s
        if t == 0 or t >= s.steps or t % s.eval_every == 0 or t % s.log_every == 0:
            return original(self, t)  # evaluation and logging read values back: allowed
        torch.cuda.set_sync_debug_mode("error")  # any host synchronisation raises
        try:
            going_on = original(self, t)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        checked.append(t)
        return going_on

    monkeypatch.setattr(_loop._Loop, "iteration", iteration)
    spec = QUIET_SPECS[name]
    spec = {
        "name": "quiet",
        "seed": 0,
        "model": {"width": 64, "depth": 2},
        **spec,
        "train": {**spec["train"], "batch_size": 32, "steps": 40, "eval_every": 20, "log_every": 20},
    }
    results = run_group([r.config for r in plan(spec).runs], device="cuda")
    assert all(r.status == "finished" for r in results)
    assert len(checked) == 38  # steps 1..39 but 20 (0 and 20 evaluate; iteration 40 only evaluates)
