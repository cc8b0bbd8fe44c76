"""Mutated specs always get a clean error from ``learnlab run``: exit 2, the key path named, no traceback."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from learnlab.cli import app
from learnlab.experiments._spec import set_dotted
from learnlab.models._mlp import ACTIVATIONS
from learnlab.models._param import PARAMETERIZATIONS

# ---- values that no lax (pydantic) conversion can turn into the expected type -------------------
WORDS = st.from_regex(r"[a-z]{6,10}", fullmatch=True).filter(lambda w: w not in ("infinity",))
CONTAINERS = st.one_of(
    st.lists(st.integers(), min_size=1, max_size=3), st.dictionaries(WORDS, st.integers(), min_size=1, max_size=2)
)
NOT_INT = st.one_of(WORDS, CONTAINERS, st.floats(0.1, 0.9).map(lambda f: 3 + f))
NOT_FLOAT = st.one_of(WORDS, CONTAINERS)
NOT_STR = st.one_of(st.integers(), st.floats(allow_nan=False), CONTAINERS)
NOT_BOOL = st.one_of(WORDS, CONTAINERS, st.integers(2, 100))
NOT_LIST = st.one_of(WORDS, st.integers(), st.dictionaries(WORDS, st.integers(), min_size=1, max_size=2))

WRONG_TYPES = {
    "seed": NOT_INT,
    "name": CONTAINERS,
    "model.width": NOT_INT,
    "model.depth": NOT_INT,
    "model.activation": NOT_STR,
    "model.bias": NOT_BOOL,
    "train.lr": NOT_FLOAT,
    "train.steps": NOT_INT,
    "train.batch_size": NOT_INT,
    "train.eval_every": NOT_INT,
    "train.momentum": NOT_FLOAT,
    "train.thresholds": NOT_LIST,
    "train.optimizer": NOT_STR,
    "task.inputs.d": NOT_INT,
    "task.n_test": NOT_INT,
    "task.noise": NOT_FLOAT,
    "task.target.indices": NOT_LIST,
    "sweep.grid": st.one_of(WORDS, st.integers(), st.lists(st.integers(), min_size=1)),
    "model": st.one_of(WORDS, st.integers()),
    "train": st.one_of(WORDS, st.integers()),
    "task": st.one_of(WORDS, st.integers()),
    "sweep": st.one_of(WORDS, st.integers()),
}
BAD_VALUES = {
    "model.width": st.integers(-1000, 0),
    "model.depth": st.integers(-10, 0),
    "model.activation": WORDS.filter(lambda w: w not in ACTIVATIONS),
    "model.param": WORDS.filter(lambda w: w not in PARAMETERIZATIONS),
    "train.lr": st.floats(-10, 0),
    "train.steps": st.integers(-1000, 0),
    "train.batch_size": st.integers(-100, 0),
    "train.momentum": st.one_of(st.floats(1, 10), st.floats(-10, -0.01)),
    "train.ema": st.floats(1, 10),
    "train.optimizer": WORDS.filter(lambda w: w not in ("momentum", "nesterov")),
    "train.device": WORDS.filter(lambda w: not w.startswith(("cuda", "mps"))),
    "train.thresholds": st.lists(st.floats(-10, 0), min_size=1, max_size=3),
    "task.inputs.d": st.integers(-100, 0),
    "task.n_test": st.integers(-100, 0),
    "task.noise": st.floats(-10, -0.01),
    "sweep.seeds": st.integers(-100, 0),
}
SECTIONS = ["", "model", "train", "task", "task.inputs", "task.target", "sweep"]
UNKNOWN_KEYS = st.from_regex(r"zz_[a-z_]{1,8}", fullmatch=True)


@st.composite
def broken_specs(draw, spec: dict):
    """(spec dict or YAML text, key path the error must name or None for YAML, CLI overrides)."""
    kind = draw(st.sampled_from(["unknown_key", "wrong_type", "bad_value", "bad_axis", "override", "yaml"]))
    spec = copy.deepcopy(spec)
    if kind == "unknown_key":
        section, key = draw(st.sampled_from(SECTIONS)), draw(UNKNOWN_KEYS)
        path = f"{section}.{key}" if section else key
        set_dotted(spec, path, draw(st.integers()))
        return spec, path, []
    if kind == "wrong_type":
        path = draw(st.sampled_from(sorted(WRONG_TYPES)))
        set_dotted(spec, path, draw(WRONG_TYPES[path]))
        return spec, path, []
    if kind == "bad_value":
        path = draw(st.sampled_from(sorted(BAD_VALUES)))
        set_dotted(spec, path, draw(BAD_VALUES[path]))
        return spec, path, []
    if kind == "bad_axis":  # a sweep axis naming an unknown key, or with a bad value
        if draw(st.booleans()):
            path = f"model.{draw(UNKNOWN_KEYS)}"
            spec["sweep"]["grid"][path] = [1, 2]
        else:
            path = "train.lr"
            spec["sweep"]["grid"][path] = [0.1, draw(NOT_FLOAT)]
        return spec, path, []
    if kind == "override":
        path = draw(st.sampled_from(["model.width", "train.steps", "task.inputs.d"]))
        return spec, path, [f"{path}={draw(WORDS)}"]
    text = yaml.safe_dump(spec, sort_keys=False).splitlines()
    line = draw(st.integers(0, len(text)))
    # each of these breaks YAML wherever it is inserted (checked for every line of the base spec)
    breaker = draw(st.sampled_from(["model: {width: 16", "\tlr: 0.1", "key: 'unclosed", ": :", "a: b: c"]))
    return "\n".join(text[:line] + [breaker] + text[line:]) + "\n", None, []


@pytest.mark.slow
@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_specs_always_get_a_clean_error(data, tiny_spec):
    spec, path, overrides = data.draw(broken_specs(tiny_spec))
    with tempfile.TemporaryDirectory() as tmp:
        spec_file = Path(tmp) / "spec.yaml"
        spec_file.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False))
        out = Path(tmp) / "out"
        result = CliRunner().invoke(app, ["run", str(spec_file), *overrides, "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert isinstance(result.exception, SystemExit)
        assert "Traceback" not in result.output
        if path is None:
            assert "malformed YAML" in result.output and str(spec_file) in result.output
            assert "line" in result.output  # where in the file
        else:
            assert f"{path}:" in result.output or f"{path}." in result.output, (path, result.output)
        assert not out.exists()  # nothing written


def test_the_unmutated_spec_is_valid(tiny_spec, tmp_path):
    """The fuzz test's base: its errors come from the mutations, not from the spec itself."""
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(tiny_spec))
    result = CliRunner().invoke(app, ["run", str(spec_file), "--out", str(tmp_path / "out"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "4 runs" in result.output
    assert not (tmp_path / "out").exists()


def test_a_huge_integer_inside_a_sweep_axis_names_the_axis(tiny_spec, tmp_path):
    """Found by the fuzz test above: the error names the axis (train.lr), not only sweep.grid."""
    tiny_spec["sweep"]["grid"]["train.lr"] = [0.1, [2**63]]
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(tiny_spec, sort_keys=False))
    result = CliRunner().invoke(app, ["run", str(spec_file), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "sweep.grid: train.lr: an integer of 19 digits" in result.output, result.output
