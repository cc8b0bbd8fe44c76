"""Transfer analysis on synthetic stores with a known optimum and a known drift.

Losses are written straight into a store (no training): log loss = (log lr - log lr*)² plus
noise, with lr* = c * width^b. With antithetic noise (seed 2k+1 gets minus seed 2k's noise at
every lr) the seed-mean is an exact parabola in log lr, so the best lr and the slope are known
exactly; independent noise checks the bootstrap's coverage.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import learnlab
from learnlab.analysis import Transfer, plot_transfer, report, transfer
from learnlab.cli import app
from learnlab.experiments import RunResult, Store

WIDTHS = [64, 128, 256, 512, 1024]
LRS = [10 ** (-4 + k / 3) for k in range(13)]  # 1e-4 .. 1, three per decade
PNG = b"\x89PNG\r\n\x1a\n"


def best_lr(width, b: float, c: float = 0.13 * 64) -> float:
    """The true optimum lr* = c * (width / 1)^b; with b = -1 it is 0.13 at width 64 (off the grid)."""
    return c * width**b if b else 0.013


def log_losses(truth: float, seeds: int, rng, noise: float = 0.05, antithetic: bool = True, lrs=LRS):
    """(len(lrs), seeds) log losses: (log lr - log truth)² + 0.05 z_seed + noise ε_(lr, seed)."""
    x = np.log(lrs)
    shift = 0.05 * rng.standard_normal(seeds)  # a seed's own level, the same at every lr (paired runs)
    eps = rng.standard_normal((len(lrs), seeds))
    if antithetic:  # seed 2k+1 = -seed 2k: the seed-mean of eps is exactly 0
        eps[:, 1::2] = -eps[:, 0::2][:, : eps[:, 1::2].shape[1]]
    return (x[:, None] - math.log(truth)) ** 2 + shift + noise * eps


class FrameStore:
    """Just enough of a Store for transfer(): a fixed runs() table."""

    def __init__(self, frame):
        self.frame = frame

    def runs(self):
        return self.frame.copy()


def frame(rows: list[dict], metric: str = "test/mse") -> pd.DataFrame:
    """runs() rows from {"width", "lr", "seed", "loss", optional "status", "param"}."""
    out = []
    for k, r in enumerate(rows):
        status = r.get("status", "finished")
        row = {
            "run_id": f"r{k}",
            "status": status,
            "name": "synthetic",
            "model.width": r["width"],
            "model.depth": 2,
            "train.lr": r["lr"],
            "seed": r["seed"],
            "train.metrics": json.dumps([metric.split("/")[1]]),
            metric: r["loss"] if status == "finished" else math.nan,
        }
        if "param" in r:
            row["model.param"] = r["param"]
        out.append(row)
    return pd.DataFrame(out)


def grid_rows(b: float, seeds: int = 4, rng_seed: int = 0, param: str | None = None, **noise) -> list[dict]:
    rng = np.random.default_rng(rng_seed)
    rows = []
    for width in WIDTHS:
        logs = log_losses(best_lr(width, b), seeds, rng, **noise)
        for i, lr in enumerate(LRS):
            for s in range(seeds):
                rows.append({"width": width, "lr": lr, "seed": s, "loss": math.exp(logs[i, s])})
                if param:
                    rows[-1]["param"] = param
    return rows


def write_store(path, rows: list[dict]) -> None:
    """A real results store with these runs (configs, final metrics, a short history each)."""
    store = Store(path, create=True)
    configs = []
    for k, r in enumerate(rows):
        model = {"name": "mlp", "width": r["width"], "depth": 2, "param": r.get("param", "sp")}
        config = {"name": "synthetic", "seed": r["seed"], "model": model, "train": {"lr": r["lr"], "metrics": ["mse"]}}
        configs.append((f"run{k:04d}", "synthetic", config))
    store.add_runs(configs)
    for (rid, _, _), r in zip(configs, rows):
        if r.get("status", "finished") == "diverged":
            store.record(
                RunResult(
                    rid, "diverged", error="train loss > diverge_factor", step=3, metrics=[(0, "train/loss", 9.0)]
                )
            )
        else:
            history = [
                (0, "test/mse", 9.0),
                (0, "train/loss", 9.0),
                (100, "test/mse", r["loss"]),
                (100, "train/loss", r["loss"]),
            ]
            store.record(RunResult(rid, "finished", step=100, final={"test/mse": r["loss"]}, metrics=history))
    store.close()


# ---- recovery of a known optimum and drift --------------------------------------------------------


@pytest.mark.parametrize("b, verdict", [(-1.0, "drifts"), (0.0, "transfers")])
def test_known_optimum_and_drift_are_recovered(b, verdict):
    result = transfer(FrameStore(frame(grid_rows(b))), bootstrap=400, seed=1)
    assert isinstance(result, Transfer) and list(result.groups) == ["all runs"]
    assert [o["axis"] for o in result.optima] == WIDTHS
    for o in result.optima:
        truth = best_lr(o["axis"], b)
        # the seed-mean is an exact parabola in log lr: its vertex is the truth (off the grid by >= 0.26 in log)
        assert math.log(o["hp"]) == pytest.approx(math.log(truth), abs=1e-9)
        assert o["lo"] <= truth <= o["hi"] and 0 < math.log(o["hi"] / o["lo"]) < 0.1
        assert o["seeds"] == 4 and not o["at_edge"] and o["convex"]
    assert result.slope == pytest.approx(b, abs=1e-9)
    lo, hi = result.slope_ci
    assert lo < b < hi and hi - lo < 0.05
    assert result.verdict == verdict
    assert ("inside ±0.2" if verdict == "transfers" else "entirely below -0.2") in result.reason
    assert result.scale == "log" and result.metric == "test/mse"


@pytest.mark.slow
def test_bootstrap_intervals_cover_the_truth_about_as_often_as_they_claim():
    """Independent noise, 8 seeds, one width: the 95% interval covers lr* in most of 150 datasets
    (the percentile bootstrap over few seeds undercovers a little; none or all would be a bug)."""
    rng = np.random.default_rng(7)
    covered, widths = 0, []
    for rep in range(150):
        logs = log_losses(0.013, 8, rng, antithetic=False)
        rows = [
            {"width": w, "lr": lr, "seed": s, "loss": math.exp(logs[i, s])}
            for w in (64, 128)  # the same curves at a second width: transfer() needs an axis; read the first
            for i, lr in enumerate(LRS)
            for s in range(8)
        ]
        (o, _) = transfer(FrameStore(frame(rows)), bootstrap=300, seed=rep).optima
        covered += o["lo"] <= 0.013 <= o["hi"]
        widths.append(math.log(o["hi"] / o["lo"]))
    assert 0.8 <= covered / 150 <= 0.99
    assert 0.005 < float(np.median(widths)) < 0.05  # ~ 2 x 1.96 x (sd of the vertex, ~0.004)


def test_seeds_are_resampled_paired_across_learning_rates():
    """Noise that only shifts a seed's whole curve moves no optimum: a paired bootstrap gives a
    zero-width interval (resampling each lr's seeds apart would not)."""
    rows = grid_rows(0.0, noise=0.0)
    for r in rows:
        r["loss"] *= math.exp(0.5 * (r["seed"] - 1.5))  # a large level per seed
    for o in transfer(FrameStore(frame(rows)), bootstrap=200).optima:
        assert o["lo"] == pytest.approx(0.013, rel=1e-9) and o["hi"] == pytest.approx(0.013, rel=1e-9)


def test_accuracy_is_maximised_on_its_own_scale():
    """accuracy = 0.9 - 0.02 x (the log losses above): its maximum is at the same lr*."""
    rng = np.random.default_rng(3)
    rows, peaks = [], {}
    x = np.log(LRS)
    for w in WIDTHS:
        logs = log_losses(0.013, 4, rng)
        peaks[w] = 0.9 - 0.02 * float((logs[0] - (x[0] - math.log(0.013)) ** 2).mean())  # the seed-mean's top
        rows += [
            {"width": w, "lr": lr, "seed": s, "loss": 0.9 - 0.02 * logs[i, s]}
            for i, lr in enumerate(LRS)
            for s in range(4)
        ]
    result = transfer(FrameStore(frame(rows, "test/accuracy")), bootstrap=200)
    assert result.metric == "test/accuracy" and result.scale == "linear" and result.maximise
    for o in result.optima:
        assert o["hp"] == pytest.approx(0.013, rel=1e-9)
        assert o["value"] == pytest.approx(peaks[o["axis"]], abs=1e-12)
    assert result.verdict == "transfers"


# ---- inconclusive ----------------------------------------------------------------------------------


def test_an_optimum_at_the_grid_edge_is_inconclusive():
    rows = grid_rows(-1.0)
    rows = [r for r in rows if not (r["width"] == 64 and r["lr"] < 0.2)]  # width 64 keeps lrs 0.215 .. 1 only
    for r in rows:
        if r["width"] == 64:
            r["loss"] = math.exp(math.log(r["lr"] / 3.0) ** 2)  # lr* = 3 > 1, the largest tried
    result = transfer(FrameStore(frame(rows)), bootstrap=100)
    assert result.verdict == "inconclusive"
    assert "the best train.lr at model.width=64 is the largest tried (1)" in result.reason
    assert "model.width=128" not in result.reason
    first = result.optima[0]
    assert first["at_edge"] and first["hp"] == pytest.approx(1.0)
    assert not any(o["at_edge"] for o in result.optima[1:])


def test_a_non_convex_optimum_is_inconclusive():
    rows = grid_rows(0.0)
    dips = {
        0.01: 0.4,
        10 ** (-2 - 1 / 3): 1.0,
        10 ** (-2 + 1 / 3): 1.0,
        10 ** (-3 + 1 / 3): 0.5,
        10 ** (-1 - 1 / 3): 0.5,
    }
    for r in rows:
        if r["width"] == 256:
            near = [v for lr, v in dips.items() if math.isclose(lr, r["lr"], rel_tol=1e-9)]
            r["loss"] = math.exp(near[0] if near else 3.0 + math.log(r["lr"] / 0.01) ** 2)
    result = transfer(FrameStore(frame(rows)), bootstrap=100)
    (o,) = [o for o in result.optima if o["axis"] == 256]
    assert not o["convex"] and o["hp"] == pytest.approx(0.01, rel=1e-9)  # the grid argmin, not a vertex
    assert result.verdict == "inconclusive"
    assert "the curve at model.width=256 is not convex around its best train.lr (0.01)" in result.reason


def test_one_seed_is_inconclusive():
    rows = [r for r in grid_rows(0.0) if r["seed"] == 0]
    result = transfer(FrameStore(frame(rows)), bootstrap=100)
    assert result.verdict == "inconclusive" and "only 1 seed at model.width=64" in result.reason
    assert all(o["seeds"] == 1 and math.isnan(o["lo"]) and math.isnan(o["hi"]) for o in result.optima)
    assert math.isfinite(result.slope) and all(math.isnan(v) for v in result.slope_ci)


def test_two_widths_still_give_a_slope_and_say_so():
    rows = [r for r in grid_rows(0.0) if r["width"] in (64, 1024)]
    result = transfer(FrameStore(frame(rows)), bootstrap=200)
    assert result.slope == pytest.approx(0.0, abs=1e-9) and result.verdict == "transfers"
    assert "only 2 values of model.width" in result.reason
    one = transfer(
        FrameStore(
            frame(
                [r for r in rows if r["width"] == 64]
                + [{"width": 1024, "lr": 0.01, "seed": 0, "loss": 1.0, "status": "failed"}]
            )
        ),
        bootstrap=50,
    )
    assert one.verdict == "inconclusive" and math.isnan(one.slope)
    assert "no run finished at model.width=1024" in one.reason
    assert "a slope needs an optimum at 2 or more values of model.width; got 1" in one.reason


# ---- diverged and failed runs ---------------------------------------------------------------------


def test_diverged_runs_count_as_worse_and_failed_runs_are_ignored():
    rows = grid_rows(0.0)
    big = [lr for lr in LRS if lr > 0.2]
    for r in rows:
        if r["lr"] in big and r["seed"] == 0:  # seed 0 diverged there ...
            r.update(status="diverged", loss=math.nan)
        elif r["lr"] in big:  # ... and the others reached the lowest loss of all
            r.update(loss=1e-3)
    rows.append({"width": 256, "lr": 0.001, "seed": 0, "loss": 1e-9, "status": "failed"})  # a value it must not use
    result = transfer(FrameStore(frame(rows)), bootstrap=100)
    for o in result.optima:
        assert o["hp"] == pytest.approx(0.013, rel=1e-6) and not o["at_edge"]
        # the replicates that leave seed 0 out (about (3/4)^4 of them) see no divergence there
        assert o["lo"] < 0.013 and o["hi"] > 0.2
    table = result.fit.table
    at = table[(table["axis"] == 64) & (table["hp"] == big[0])].iloc[0]
    assert math.isnan(at["value"]) and at["diverged"] == 1 and at["seeds"] == 3
    # ignoring the diverged runs instead would put every optimum at the largest lrs
    ignored = transfer(FrameStore(frame([r for r in rows if r.get("status") != "diverged"])), bootstrap=20)
    assert all(o["hp"] > 0.1 for o in ignored.optima)


# ---- groups --------------------------------------------------------------------------------------


def test_each_group_gets_its_own_fit_and_verdict():
    rows = grid_rows(-1.0, param="sp") + grid_rows(0.0, rng_seed=1, param="mup")
    result = transfer(FrameStore(frame(rows)), bootstrap=200)
    assert list(result.groups) == ["model.param=mup", "model.param=sp"]
    mup, sp = result.groups["model.param=mup"], result.groups["model.param=sp"]
    assert (
        mup.group == {"model.param": "mup"} and mup.verdict == "transfers" and mup.slope == pytest.approx(0, abs=1e-9)
    )
    assert sp.group == {"model.param": "sp"} and sp.verdict == "drifts" and sp.slope == pytest.approx(-1, abs=1e-9)
    for name in ("slope", "slope_ci", "verdict", "reason", "optima"):
        with pytest.raises(ValueError, match=r"2 groups \(model.param=mup; model.param=sp\)"):
            getattr(result, name)
    out = result.to_dict()
    assert set(out) == {"axis", "hp", "metric", "tolerance", "groups"}
    assert [g["group"] for g in out["groups"]] == [{"model.param": "mup"}, {"model.param": "sp"}]
    assert [g["verdict"] for g in out["groups"]] == ["transfers", "drifts"]


def test_a_key_zipped_with_the_axis_follows_it_rather_than_splitting_the_runs():
    f = frame(grid_rows(0.0))
    f["train.batch_size"] = f["model.width"] // 2  # zip: one batch size per width
    result = transfer(FrameStore(f), bootstrap=50)
    assert list(result.groups) == ["all runs"] and result.verdict == "transfers"


# ---- the parabola against numpy -------------------------------------------------------------------


def test_the_vertex_is_numpys_least_squares_parabola_on_the_same_points():
    rng = np.random.default_rng(5)
    x = np.log(LRS)
    rows = []
    logs = {}
    for width, centre in ((64, math.log(2e-4)), (128, math.log(0.03))):
        y = np.abs(x - centre)[:, None] ** 1.5 + 0.1 * rng.standard_normal((len(LRS), 3))  # not a parabola
        if width == 128:
            y[LRS.index(next(lr for lr in LRS if lr > 0.05)) :, 1] = np.inf  # seed 1 diverged at lr > 0.05
        logs[width] = y
        for i, lr in enumerate(LRS):
            for s in range(3):
                finite = np.isfinite(y[i, s])
                rows.append(
                    {
                        "width": width,
                        "lr": lr,
                        "seed": s,
                        "loss": math.exp(y[i, s]) if finite else math.nan,
                        "status": "finished" if finite else "diverged",
                    }
                )
    result = transfer(FrameStore(frame(rows)), bootstrap=20)
    checked = []
    for o in result.optima:
        mean = logs[o["axis"]].mean(1)  # +inf where a seed diverged
        i = int(np.argmin(mean))
        assert 0 < i < len(LRS) - 1
        window = [j for j in range(i - 2, i + 3) if 0 <= j < len(LRS) and np.isfinite(mean[j])]
        c2, c1, c0 = np.polyfit(x[window], mean[window], 2)
        assert c2 > 0
        vertex = min(max(-c1 / (2 * c2), x[window].min()), x[window].max())
        assert math.log(o["hp"]) == pytest.approx(vertex, abs=1e-9)
        assert o["value"] == pytest.approx(math.exp(np.polyval([c2, c1, c0], vertex)), rel=1e-9)
        checked.append(len(window))
    assert checked == [4, 4]  # width 64: the window cut by the grid's start; 128: by a diverged lr


# ---- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"axis": "model.widht"},
            r"axis='model.widht' is not a config key that varies.*varying keys: model.width, train.lr",
        ),
        ({"axis": "model.depth"}, r"axis='model.depth' is not a config key that varies"),
        ({"hp": "model.param"}, r"hp='model.param' must be numeric .*its values: mup, sp"),
        ({"axis": "train.lr"}, r"axis and hp are both 'train.lr'"),
        ({"metric": "test/accuracy"}, r"metric 'test/accuracy' is not in this store; final metrics present: test/mse"),
        ({"tolerance": 0.0}, r"tolerance must be a finite number > 0"),
        ({"bootstrap": 0}, r"bootstrap must be >= 1"),
    ],
)
def test_bad_keys_are_value_errors_that_list_the_choices(kwargs, match):
    f = frame(grid_rows(0.0, param="sp") + grid_rows(0.0, param="mup"))
    with pytest.raises(ValueError, match=match):
        transfer(FrameStore(f), **kwargs)


def test_a_non_positive_axis_is_refused():
    f = frame(grid_rows(0.0))
    f["model.width"] = f["model.width"] - 64
    with pytest.raises(ValueError, match=r"axis='model.width' must be > 0 .*got 0"):
        transfer(FrameStore(f))


# ---- figure, CLI, report ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sp_mup(tmp_path_factory):
    """A real store: sp (drifts, b = -1) and mup (transfers) over 5 widths x 13 lrs x 4 seeds."""
    out = tmp_path_factory.mktemp("transfer")
    rows = grid_rows(-1.0, param="sp") + grid_rows(0.0, rng_seed=1, param="mup")
    rows[0].update(status="diverged")  # one diverged run, recorded as such
    write_store(out, rows)
    return out


@pytest.fixture(scope="module")
def one_group(tmp_path_factory):
    out = tmp_path_factory.mktemp("transfer_one")
    write_store(out, grid_rows(-1.0))
    return out


def test_the_figure_draws_each_groups_curves_and_optima(sp_mup, tmp_path):
    fig, result = plot_transfer(sp_mup, tmp_path / "t.png", bootstrap=100)
    assert (tmp_path / "t.png").read_bytes()[:8] == PNG
    assert list(result.groups) == ["model.param=mup", "model.param=sp"]
    top, bottom = fig.axes[0], fig.axes[2]  # row-major: (curves mup, curves sp, optima mup, optima sp)
    assert top.get_title() == "model.param=mup" and top.get_xscale() == "log" and top.get_yscale() == "log"
    labels = [line.get_label() for line in top.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["64", "128", "256", "512", "1024"]
    assert re.match(r"slope = -?0\.00 \[-?\d\.\d\d, \d\.\d\d\] → transfers$", bottom.get_title())
    assert fig.axes[3].get_title().startswith("slope = -1.00 [") and "drifts" in fig.axes[3].get_title()
    assert fig.legends[0].get_title().get_text() == "model.width"


def test_cli_json_last_line(one_group):
    result = CliRunner().invoke(
        app, ["transfer", str(one_group), "--axis", "model.width", "--hp", "train.lr", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"axis", "hp", "metric", "slope", "slope_ci", "verdict", "reason", "optima", "tolerance"} <= set(out)
    assert out["axis"] == "model.width" and out["hp"] == "train.lr" and out["metric"] == "test/mse"
    assert out["verdict"] == "drifts" and out["slope"] == pytest.approx(-1.0, abs=1e-9) and out["tolerance"] == 0.2
    assert out["slope_ci"][0] < -1.0 < out["slope_ci"][1]
    assert [o["axis"] for o in out["optima"]] == WIDTHS
    assert out["optima"][0]["hp"] == pytest.approx(0.13, rel=1e-9) and out["optima"][0]["at_edge"] is False
    figure = one_group / "transfer_width_lr.png"
    assert out["figure"] == str(figure) and figure.read_bytes()[:8] == PNG


def test_cli_tables_several_groups_and_tolerance(sp_mup, tmp_path):
    result = CliRunner().invoke(app, ["transfer", str(sp_mup), "--to", str(tmp_path / "f.png"), "--bootstrap", "100"])
    assert result.exit_code == 0, result.output
    assert "model.param=mup: best train.lr per model.width" in result.output
    assert "transfers:" in result.output and "drifts:" in result.output and (tmp_path / "f.png").exists()
    wide = CliRunner().invoke(app, ["transfer", str(sp_mup), "--tolerance", "2", "--no-figure", "--json"])
    out = json.loads(wide.stdout.strip().splitlines()[-1])
    assert [g["verdict"] for g in out["groups"]] == ["transfers", "transfers"] and out["figure"] is None


@pytest.mark.parametrize(
    "args, match",
    [
        (["--axis", "model.widht"], "axis='model.widht' is not a config key that varies in this store; varying keys:"),
        (["--hp", "model.param"], "hp='model.param' must be numeric"),
        (["--metric", "test/nope"], "metric 'test/nope' is not in this store"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(sp_mup, args, match):
    result = CliRunner().invoke(app, ["transfer", str(sp_mup), *args, "--no-figure"])
    assert result.exit_code == 2 and match in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_transfer_reads_a_folder_and_the_report_has_its_section(one_group, tmp_path):
    result = transfer(one_group, bootstrap=100)
    assert result.verdict == "drifts" and result.name == "synthetic"
    with learnlab.open_store(one_group) as store:
        html = report(store, tmp_path / "r.html").read_text()
    assert "<h2>Transfer</h2>" in html
    section = html.split("<h2>Transfer</h2>", 1)[1]
    assert 'alt="best train.lr per model.width (test/mse; tolerance ±0.2)"' in section
    assert "<b>drifts</b>" in section and "entirely below -0.2" in section
    assert "<td>-1.000</td>" in section


def test_the_report_has_no_transfer_section_without_an_axis(tmp_path):
    write_store(tmp_path, [r for r in grid_rows(0.0) if r["width"] == 64])
    with learnlab.open_store(tmp_path) as store:
        html = report(store, tmp_path / "r.html").read_text()
    assert "Transfer" not in html
