"""Shared fixtures: seeded generators, small specs, a temporary output folder."""

from __future__ import annotations

import copy
import textwrap

import pytest
import torch


def slurm_problem() -> str | None:
    """Why the tests marked ``slurm`` cannot run here (None: a SLURM controller answers)."""
    from learnlab.experiments._slurm import SlurmError, check_reachable

    try:
        check_reachable()
    except SlurmError as exc:
        return f"needs a SLURM controller ({exc}); .ci/slurm/start installs and starts a single-node one"
    return None


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped, with the reason, where no GPU is; ``slurm`` where no SLURM is."""
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU; torch.cuda.is_available() is false on this machine")
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(skip)
    if any("slurm" in item.keywords for item in items):
        problem = slurm_problem()
        if problem is not None:
            for item in items:
                if "slurm" in item.keywords:
                    item.add_marker(pytest.mark.skip(reason=problem))


@pytest.fixture
def gen():
    """A factory of seeded CPU generators: gen(seed) -> torch.Generator."""

    def make(seed: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    return make


@pytest.fixture(params=["kernel", "plan"])
def hermite_evaluator(request, monkeypatch):
    """Each way a many-term Hermite polynomial is evaluated on the CPU: the compiled trie evaluator
    and the matrix-product plan (the kernel switched off). The kernel is built by the package's
    install wherever a C compiler is (tests/test_tasks_poly_kernel.py checks that it was)."""
    import learnlab.tasks._polynomial as poly
    from learnlab.tasks._polynomial_kernel import available

    if request.param == "kernel" and not available():
        pytest.skip("learnlab's C extension was not built (no C compiler at install)")
    monkeypatch.setattr(poly, "KERNEL", request.param == "kernel")
    return request.param


TINY_SPEC = {
    "name": "tiny",
    "seed": 0,
    "task": {
        "inputs": {"name": "hypercube", "d": 6},
        "target": {"name": "parity", "indices": [[0, 1]]},
        "n_test": 256,
    },
    "model": {"name": "mlp", "width": 16, "depth": 1, "param": "sp"},
    "train": {
        "optimizer": "sgd",
        "lr": 0.05,
        "batch_size": 16,
        "steps": 30,
        "eval_every": 10,
        "thresholds": [0.9],
        "ema": 0.9,
    },
    "sweep": {"grid": {"train.lr": [0.05, 0.1]}, "seeds": 2},
}


@pytest.fixture
def tiny_spec():
    """A spec dict that trains 4 tiny runs in well under a second each."""
    return copy.deepcopy(TINY_SPEC)


@pytest.fixture
def resolve():
    """resolve(spec dict, *overrides) -> the sweep's resolved run configs (validated, JSON-able)."""
    from learnlab.experiments import plan

    def make(spec: dict, *overrides: str) -> list[dict]:
        return [r.config for r in plan(copy.deepcopy(spec), list(overrides)).runs]

    return make


@pytest.fixture
def write_spec(tmp_path):
    """write_spec(spec dict or YAML text, name="spec.yaml") -> path of the written file."""
    import yaml

    def make(spec, name: str = "spec.yaml"):
        path = tmp_path / name
        path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False))
        return path

    return make


@pytest.fixture
def one_thread():
    """One intra-op thread for tests of tiny models: OpenMP's thread wake-ups cost more than
    the work (10-100x) when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


INTERRUPT_PROBE = textwrap.dedent('''
    ARMED = {"step": None}

    class Interrupt:
        """Raises once, at step ARMED["step"]."""

        def __init__(self, every=1):
            self.every = every

        def __call__(self, model, ctx):
            if ARMED["step"] is not None and ctx.step == ARMED["step"]:
                ARMED["step"] = None
                raise RuntimeError("simulated interruption")
            return {}
''')


@pytest.fixture
def interrupt(tmp_path, monkeypatch):
    """A probe ``interrupt_probe:Interrupt`` (importable by its spec name) that raises once,
    simulating a crash; set ``interrupt["step"] = k`` to arm it for step k."""
    (tmp_path / "interrupt_probe.py").write_text(INTERRUPT_PROBE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import interrupt_probe

    yield interrupt_probe.ARMED
    interrupt_probe.ARMED["step"] = None
