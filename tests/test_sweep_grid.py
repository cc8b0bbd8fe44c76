"""``store.grid``: a metric over the sweep axes with NaN for missing runs; ``learnlab export``."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from learnlab.cli import app
from learnlab.experiments import open_store, sweep

pytest.importorskip("xarray")  # store.grid needs the optional extra learnlab[analysis]
pytest.importorskip("pyarrow")  # so does --format parquet

LRS, WIDTHS, SEEDS = [0.1, 0.05], [16, 8], [0, 1]  # given unsorted: the grid must sort them
SPEC = {
    "name": "grid",
    "seed": 0,
    "task": {"inputs": {"name": "hypercube", "d": 6}, "target": {"name": "parity", "indices": [[0, 1]]}, "n_test": 128},
    "model": {"width": 16, "depth": 1},
    "train": {"lr": 0.05, "batch_size": 16, "steps": 30, "eval_every": 10, "thresholds": [0.9]},
    "sweep": {"grid": {"train.lr": LRS, "model.width": WIDTHS}, "seeds": len(SEEDS)},
}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A 2 x 2 x 2-seed sweep; then one run marked failed and one deleted from the store.

    Returns (out folder, failed run's (lr, width, seed), absent run's (lr, width, seed)).
    """
    out = tmp_path_factory.mktemp("grid")
    sweep(SPEC, out=out, executor="serial").close()
    with open_store(out) as store:
        runs = store.runs()
    assert len(runs) == 8 and set(runs["status"]) == {"finished"}

    def key(row):
        return row["train.lr"], row["model.width"], row["seed"]

    failed = runs[(runs["train.lr"] == 0.1) & (runs["model.width"] == 8) & (runs["seed"] == 1)].iloc[0]
    absent = runs[(runs["train.lr"] == 0.05) & (runs["model.width"] == 16) & (runs["seed"] == 0)].iloc[0]
    conn = sqlite3.connect(out / "results.db")
    with conn:
        conn.execute("UPDATE runs SET status = 'failed', error = 'boom' WHERE run_id = ?", (failed["run_id"],))
        conn.execute("DELETE FROM metrics WHERE run_id = ?", (absent["run_id"],))
        conn.execute("DELETE FROM runs WHERE run_id = ?", (absent["run_id"],))
    conn.close()
    return out, key(failed), key(absent)


def test_grid_holds_each_finished_runs_value_and_nan_for_missing_cells(swept):
    out, failed, absent = swept
    store = open_store(out)
    array = store.grid("test/mse", ["train.lr", "model.width", "seed"])
    assert array.dims == ("train.lr", "model.width", "seed")
    assert list(array["train.lr"].values) == sorted(LRS)
    assert list(array["model.width"].values) == sorted(WIDTHS)
    assert list(array["seed"].values) == SEEDS
    runs = store.runs().set_index(["train.lr", "model.width", "seed"])
    for lr in LRS:
        for width in WIDTHS:
            for seed in SEEDS:
                cell = float(array.sel({"train.lr": lr, "model.width": width, "seed": seed}))
                if (lr, width, seed) in (failed, absent):
                    assert math.isnan(cell)
                else:
                    assert cell == runs.loc[(lr, width, seed), "test/mse"]  # exactly the store's value
    assert int(np.isnan(array.values).sum()) == 2
    store.close()


def test_grid_reduces_over_seeds_skipping_missing_runs(swept):
    out, failed, absent = swept
    store = open_store(out)
    runs = store.runs()
    finished = runs[runs["status"] == "finished"]
    expected = finished.groupby(["train.lr", "model.width"])["test/mse"].mean()
    mean = store.grid("test/mse", ["train.lr", "model.width"], reduce="mean")
    assert mean.dims == ("train.lr", "model.width")
    for (lr, width), value in expected.items():
        assert float(mean.sel({"train.lr": lr, "model.width": width})) == pytest.approx(value, rel=1e-12)
    counts = store.grid("test/mse", ["train.lr", "model.width"], reduce="count")
    assert int(counts.sel({"train.lr": failed[0], "model.width": failed[1]})) == 1
    assert int(counts.sel({"train.lr": absent[0], "model.width": absent[1]})) == 1
    assert int(counts.sum()) == 6
    store.close()


def test_grid_of_threshold_steps_matches_the_runs_table(swept):
    out, *_ = swept
    store = open_store(out)
    array = store.grid("steps_to/0.9", ["model.width", "train.lr", "seed"])
    assert array.dims == ("model.width", "train.lr", "seed")
    runs = store.runs()
    for _, row in runs[runs["status"] == "finished"].iterrows():
        cell = float(array.sel({"model.width": row["model.width"], "train.lr": row["train.lr"], "seed": row["seed"]}))
        assert (math.isnan(cell) and math.isnan(row["steps_to/0.9"])) or cell == row["steps_to/0.9"]
    store.close()


def test_grid_errors_name_the_problem(swept):
    out, *_ = swept
    store = open_store(out)
    with pytest.raises(ValueError, match=r"runs differ in \['seed'\]"):
        store.grid("test/mse", ["train.lr", "model.width"])
    with pytest.raises(ValueError, match="unknown axes \\['model.widht'\\]"):
        store.grid("test/mse", ["model.widht"], reduce="mean")
    with pytest.raises(ValueError, match="unknown metric 'test/mae'.*test/mse"):
        store.grid("test/mae", ["train.lr"], reduce="mean")
    with pytest.raises(ValueError, match="unknown reduction 'average'"):
        store.grid("test/mse", ["train.lr"], reduce="average")
    store.close()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_writes_the_runs_and_metrics_tables(swept, tmp_path, fmt):
    out, *_ = swept
    result = CliRunner().invoke(app, ["export", str(out), "--to", str(tmp_path), "--format", fmt])
    assert result.exit_code == 0, result.output
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    runs, metrics = read(tmp_path / f"runs.{fmt}"), read(tmp_path / f"metrics.{fmt}")
    store = open_store(out)
    expected = store.runs().sort_values("run_id").reset_index(drop=True)
    got = runs.sort_values("run_id").reset_index(drop=True)
    assert list(got["run_id"]) == list(expected["run_id"]) and list(got["status"]) == list(expected["status"])
    np.testing.assert_array_equal(got["test/mse"].to_numpy(float), expected["test/mse"].to_numpy(float))
    assert list(got["train.lr"]) == list(expected["train.lr"])
    pd.testing.assert_frame_equal(
        metrics.reset_index(drop=True), store.metrics().reset_index(drop=True), check_dtype=False
    )
    store.close()
