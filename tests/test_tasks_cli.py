"""``learnlab tasks`` is generated from the spec models; the import-path resolver."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from learnlab._imports import ImportRefError, is_ref, resolve
from learnlab.cli import app
from learnlab.tasks import DATASETS, catalogue
from learnlab.tasks._spec_inputs import INPUT_SPECS
from learnlab.tasks._spec_targets import TARGET_SPECS


def test_tasks_json_lists_every_tagged_spec_and_every_field():
    result = CliRunner().invoke(app, ["tasks", "--json"])
    assert result.exit_code == 0, result.output
    cat = json.loads(result.output)
    listed = {e["name"]: {p["key"] for p in e["params"]} for e in cat["inputs"] + cat["targets"]}
    for model in [*INPUT_SPECS, *TARGET_SPECS]:
        tag = model.model_fields["name"].annotation.__args__[0]
        assert listed[tag] == set(model.model_fields) - {"name"}, tag
    assert [d["name"] for d in cat["datasets"]] == list(DATASETS)
    power = next(e for e in cat["targets"] if e["name"] == "power_law")
    defaults = {p["key"]: p["default"] for p in power["params"]}
    assert defaults["cutoff_mode"] == "40000" and defaults["beta"] == "1.2" and defaults["yoffset"] == "1.2"
    assert catalogue() == cat


def test_tasks_table_mentions_names_defaults_and_meanings():
    result = CliRunner().invoke(app, ["tasks"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for needle in (
        "power_law_gaussian",
        "staircase",
        "single_index",
        "cutoff_mode",
        "40000",
        "[-1/2, 1/2]",
        "train-images-idx3-ubyte",
        "LEARNLAB_DATA",
        "(required)",
    ):
        assert needle in result.output, needle


def test_resolve_imports_objects_and_explains_failures():
    import math

    assert resolve("math:sqrt") is math.sqrt
    assert resolve("collections:OrderedDict.fromkeys") is not None
    assert is_ref("a.b:c") and not is_ref("a.b") and not is_ref(3)
    with pytest.raises(ImportRefError, match="form 'package.module:attr'"):
        resolve("math.sqrt")
    with pytest.raises(ImportRefError, match="cannot import module 'nope_nope'"):
        resolve("nope_nope:f")
    with pytest.raises(ImportRefError, match="did you mean floor"):
        resolve("math:flor")
