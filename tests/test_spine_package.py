"""Top level (issue 2): ``import learnlab`` is cheap and its public names resolve lazily."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_learnlab_does_not_import_torch_or_other_heavy_modules():
    out = _python(
        "import json, sys\n"
        "import learnlab\n"
        "heavy = ['torch', 'numpy', 'pandas', 'scipy', 'matplotlib', 'ray', 'wandb', 'tensorboard']\n"
        "print(json.dumps({'version': learnlab.__version__,"
        " 'loaded': [m for m in heavy if m in sys.modules]}))\n"
    )
    info = json.loads(out)
    assert info["loaded"] == [], f"import learnlab pulled in {info['loaded']}"
    assert info["version"]


def test_public_names_resolve_lazily():
    out = _python(
        "import json, sys\n"
        "import learnlab\n"
        "before = 'torch' in sys.modules\n"
        "store = learnlab.open_store\n"
        "after = 'torch' in sys.modules\n"
        "from learnlab.experiments import open_store\n"
        "print(json.dumps({'before': before, 'after': after, 'same': store is open_store,"
        " 'all': sorted(learnlab.__all__)}))\n"
    )
    info = json.loads(out)
    assert info["before"] is False and info["same"] is True
    for name in (
        "open_store",
        "sweep",
        "plan",
        "load_spec",
        "SpecError",
        "make_task",
        "MLP",
        "Parameterization",
        "build_optimizer",
        "fit",
        "plot_learning_curves",
        "__version__",
    ):
        assert name in info["all"]


def test_every_exported_name_resolves():
    import learnlab

    for name in learnlab.__all__:
        assert getattr(learnlab, name) is not None, name
    from learnlab.experiments import SpecError, open_store, sweep
    from learnlab.models import MLP

    assert learnlab.open_store is open_store and learnlab.sweep is sweep
    assert learnlab.SpecError is SpecError and learnlab.MLP is MLP
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        learnlab.nope  # noqa: B018


@pytest.mark.parametrize(
    "module",
    [
        "learnlab.tasks",
        "learnlab.models",
        "learnlab.train",
        "learnlab.experiments",
        "learnlab.analysis",
        "learnlab.cli",
    ],
)
def test_subpackages_declare_their_public_names(module):
    import importlib

    mod = importlib.import_module(module)
    assert mod.__all__ and all(isinstance(n, str) for n in mod.__all__)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.__all__ names {name!r} but it is missing"


OPENMP_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def test_importing_learnlab_changes_nothing_in_the_process():
    """No environment variable and no allocator setting at import: tuning happens where work starts."""
    code = (
        "import os, learnlab, learnlab.experiments, learnlab.train, learnlab.cli; "
        f"set_ = [n for n in {OPENMP_VARIABLES!r} if n in os.environ]; assert not set_, set_"
    )
    env = {k: v for k, v in os.environ.items() if k not in (*OPENMP_VARIABLES, "LEARNLAB_TUNE_CPU")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_cpu_tuning_happens_where_work_starts_and_can_be_turned_off(monkeypatch):
    from learnlab._cpu import tune_cpu

    def openmp():
        return {n: os.environ[n] for n in OPENMP_VARIABLES if n in os.environ}

    for name in OPENMP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LEARNLAB_TUNE_CPU", "0")
    tune_cpu()
    assert openmp() == {}
    monkeypatch.delenv("LEARNLAB_TUNE_CPU")
    tune_cpu()
    if sys.platform.startswith("linux"):  # GNU OpenMP spins 1,000 times, Intel/LLVM OpenMP sleeps at once
        assert openmp() == {"GOMP_SPINCOUNT": "1000", "KMP_BLOCKTIME": "0"}
    else:
        assert openmp() == {"OMP_WAIT_POLICY": "PASSIVE"}
    for name, value in (("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "5"), ("KMP_BLOCKTIME", "7")):
        for other in OPENMP_VARIABLES:
            monkeypatch.delenv(other, raising=False)
        monkeypatch.setenv(name, value)  # any value of the user's: learnlab sets none
        tune_cpu()
        assert openmp() == {name: value}


def test_allocator_tuning_is_opt_out_and_respects_glibc_variables(monkeypatch):
    from learnlab._cpu import tune_allocator

    monkeypatch.setenv("LEARNLAB_TUNE_MALLOC", "0")
    assert tune_allocator() is False
    monkeypatch.delenv("LEARNLAB_TUNE_MALLOC")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert tune_allocator() is False
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    glibc = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    assert tune_allocator() is glibc
