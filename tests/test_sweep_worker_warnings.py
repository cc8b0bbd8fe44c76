"""A warning raised in a process-pool worker is raised again in the driver, with its category
(what the CLI prints as a ``warning: ...`` line), as the serial executor raises it."""

from __future__ import annotations

import textwrap
import warnings

import pytest

from learnlab._worker import Warned
from learnlab.experiments import sweep

WARNING_PROBE = textwrap.dedent('''
    import warnings

    class ProbeWarning(UserWarning):
        pass

    class Warns:
        """Warns once per run, at step 5 (each run's message its own: a new instance per run)."""

        def __init__(self, every=1):
            self.every = every

        def __call__(self, model, ctx):
            if ctx.step == 5:
                warnings.warn(f"probe {id(self)} saw step 5", ProbeWarning)
            return {}
''')


@pytest.fixture
def warning_probe(tmp_path, monkeypatch):
    (tmp_path / "warning_probe.py").write_text(WARNING_PROBE)
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers get the driver's sys.path
    import warning_probe

    return warning_probe


@pytest.mark.parametrize("executor", ["serial", "processes"])
def test_a_workers_warning_reaches_the_driver_with_its_category(executor, tiny_spec, warning_probe, tmp_path):
    tiny_spec["train"]["probes"] = [{"name": "warning_probe:Warns", "every": 1}]
    tiny_spec["sweep"] = {"grid": {"train.lr": [0.05, 0.1]}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sweep(tiny_spec, out=tmp_path / "out", executor=executor, workers=2).close()
    said = {str(w.message) for w in caught if issubclass(w.category, warning_probe.ProbeWarning)}
    assert len(said) == 2 and all(text.endswith("saw step 5") for text in said)  # one per run


def test_a_category_the_driver_cannot_import_arrives_as_a_user_warning():
    class Local(Warning):  # a local class: pickled by reference, it cannot be found again
        pass

    assert Warned.of("odd", Local) == Warned(UserWarning, "Local: odd")
    assert Warned.of("plain", RuntimeWarning) == Warned(RuntimeWarning, "plain")
