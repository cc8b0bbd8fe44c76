"""Scaling figures and the HTML report: power-law fits against scipy, figures against the store's own numbers."""

from __future__ import annotations

import base64
import copy
import math
import re
from html import escape
from html.parser import HTMLParser

import numpy as np
import pytest
from typer.testing import CliRunner

import learnlab
from learnlab.analysis import (
    fit_power_law,
    plot_l2_vs_linf,
    plot_loss_vs_lr,
    plot_sharpness,
    plot_time_to_threshold,
    report,
    summary_table,
)
from learnlab.cli import app

PNG = b"\x89PNG\r\n\x1a\n"

SPEC = {
    "name": "figures",
    "seed": 0,
    "task": {"inputs": {"name": "hypercube", "d": 8}, "target": {"name": "parity", "indices": [[0, 1]]}, "n_test": 256},
    "model": {"name": "mlp", "width": 16, "depth": 1, "param": "sp"},
    "train": {
        "optimizer": "sgd",
        "lr": 0.1,
        "batch_size": 32,
        "steps": 300,
        "eval_every": 50,
        "metrics": ["mse", "linf"],
        "thresholds": [0.5, 0.3],
        "ema": 0.9,
        "probes": [{"name": "sharpness", "every": 100}],
    },
    "sweep": {"grid": {"model.width": [16, 32, 64], "train.lr": [0.05, 0.1]}, "seeds": 2},
}


@pytest.fixture(scope="module")
def sweep_out(tmp_path_factory):
    """12 tiny runs (3 widths x 2 learning rates x 2 seeds) trained as stacked models: ~5 s on 2 cores."""
    out = tmp_path_factory.mktemp("figures")
    learnlab.sweep(copy.deepcopy(SPEC), out=out, executor="ensemble").close()
    return out


@pytest.fixture(scope="module")
def single_out(tmp_path_factory):
    """One config, 2 seeds, lr far past 2/sharpness (both runs diverge), no linf, no probe."""
    spec = copy.deepcopy(SPEC)
    spec["name"] = "single"
    spec["train"].update(lr=30.0, steps=100, metrics=["mse"], probes=[])
    spec["sweep"] = {"seeds": 2}
    out = tmp_path_factory.mktemp("single")
    learnlab.sweep(spec, out=out, executor="ensemble").close()
    return out


@pytest.fixture
def store(sweep_out):
    with learnlab.open_store(sweep_out) as s:
        yield s


def is_png(path) -> bool:
    return path.read_bytes()[:8] == PNG


# ---- fit_power_law --------------------------------------------------------------------------


def test_fit_power_law_is_exact_on_a_power_law():
    x = np.geomspace(1.0, 1e3, 7)
    fit = fit_power_law(x, 3.0 * x**-1.5)
    assert fit["exponent"] == pytest.approx(-1.5, rel=1e-12)
    assert fit["prefactor"] == pytest.approx(3.0, rel=1e-12)
    assert fit["exponent_stderr"] == pytest.approx(0.0, abs=1e-12)
    assert fit["r2"] == pytest.approx(1.0, rel=1e-12)
    assert fit["n"] == 7
    # pairs that are not finite and positive are dropped, not fitted
    padded = fit_power_law(np.r_[x, 0.0, 2.0, -1.0, np.inf], np.r_[3.0 * x**-1.5, 1.0, np.nan, 1.0, 1.0])
    assert padded["n"] == 7 and padded["exponent"] == pytest.approx(-1.5, rel=1e-12)


def test_fit_power_law_matches_scipy_linregress():
    from scipy.stats import linregress

    rng = np.random.default_rng(0)
    x = np.geomspace(8, 2048, 20)
    y = 40.0 * x**0.7 * np.exp(rng.normal(0.0, 0.3, x.size))
    fit = fit_power_law(x, y)
    ref = linregress(np.log(x), np.log(y))
    assert fit["exponent"] == pytest.approx(ref.slope, rel=1e-10)
    assert math.log(fit["prefactor"]) == pytest.approx(ref.intercept, rel=1e-10)
    assert fit["exponent_stderr"] == pytest.approx(ref.stderr, rel=1e-10)
    assert fit["r2"] == pytest.approx(ref.rvalue**2, rel=1e-10)
    assert fit["n"] == 20 and 0.0 < fit["r2"] < 1.0


@pytest.mark.parametrize(
    "x, y, match",
    [
        ([1.0], [2.0], "at least 2 pairs.*got 1 of 1"),
        ([1.0, 2.0, 3.0], [0.0, -1.0, np.nan], "at least 2 pairs.*got 0 of 3"),
        ([4.0, 4.0, 4.0], [1.0, 2.0, 3.0], "2 distinct x values"),
    ],
)
def test_fit_power_law_needs_two_usable_points(x, y, match):
    with pytest.raises(ValueError, match=match):
        fit_power_law(x, y)


# ---- figures --------------------------------------------------------------------------------


def steps_points(runs, col):
    """(series label, x, steps) of every run that reached the threshold, grouped by train.lr."""
    for lr, group in runs.groupby("train.lr"):
        reached = group[group[col].notna()]
        yield f"train.lr={lr}", reached["model.width"].to_numpy(float), reached[col].to_numpy(float)


def test_time_to_threshold_fits_the_runs_steps(store, tmp_path):
    from scipy.stats import linregress

    path = tmp_path / "t.png"
    fig, fits = plot_time_to_threshold(store, path, threshold=0.5)
    assert is_png(path)
    runs = store.runs()
    expected = list(steps_points(runs, "steps_to/0.5"))
    assert sorted(fits) == sorted(label for label, _, _ in expected) == ["train.lr=0.05", "train.lr=0.1"]
    for label, x, steps in expected:
        assert len(x) == 6  # every run reached 0.5
        assert fits[label] == pytest.approx(fit_power_law(x, steps), rel=1e-12)
        ref = linregress(np.log(x), np.log(steps))
        assert fits[label]["exponent"] == pytest.approx(ref.slope, rel=1e-9)
        assert fits[label]["n"] == 6
    # one marker line per series at the mean steps per width, and the fit's exponent in the legend
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    for label, x, steps in expected:
        line = next(ln for ln in fig.axes[0].get_lines() if ln.get_label() == label)
        means = [steps[x == w].mean() for w in (16, 32, 64)]
        np.testing.assert_allclose(line.get_ydata(), means, rtol=1e-12)
        assert f"exponent {fits[label]['exponent']:.2f}" in " ".join(legend)
    assert fig.axes[0].get_xscale() == fig.axes[0].get_yscale() == "log"


def test_time_to_threshold_defaults_to_the_smallest_threshold(store, tmp_path):
    _, default = plot_time_to_threshold(store, tmp_path / "a.png")
    _, smallest = plot_time_to_threshold(store, tmp_path / "b.png", threshold=0.3)
    _, largest = plot_time_to_threshold(store, tmp_path / "c.png", threshold=0.5)
    assert default == smallest and default != largest


def test_time_to_threshold_along_another_axis_has_one_series_per_width(store, tmp_path):
    _, fits = plot_time_to_threshold(store, tmp_path / "lr.png", x="train.lr", threshold=0.3, fit=True)
    assert sorted(fits) == ["model.width=16", "model.width=32", "model.width=64"]
    runs = store.runs()
    for width, group in runs.groupby("model.width"):
        ref = fit_power_law(group["train.lr"], group["steps_to/0.3"])
        assert fits[f"model.width={width}"] == pytest.approx(ref, rel=1e-12)
    _, none = plot_time_to_threshold(store, tmp_path / "nofit.png", fit=False)
    assert none == {}


class FrameStore:
    """Just enough of a Store for plot_time_to_threshold: a fixed runs() table."""

    def __init__(self, frame):
        self.frame = frame

    def runs(self):
        return self.frame.copy()


def test_time_to_threshold_skips_runs_that_never_reached_it(tmp_path):
    import pandas as pd

    widths = [8, 16, 32, 64, 8, 16]
    steps = [5.0 * w**0.5 for w in widths[:4]] + [math.nan, 7.0]
    runs = pd.DataFrame(
        {
            "run_id": [f"r{i}" for i in range(6)],
            "status": "finished",
            "model.width": widths,
            "model.depth": [2, 2, 2, 2, 3, 3],
            "seed": 0,
            "steps_to/0.1": steps,
            "steps_to/0.01": math.nan,
        }
    )
    fig, fits = plot_time_to_threshold(FrameStore(runs), tmp_path / "t.png", threshold=0.1)
    # depth 3: one run reached 0.1 (one width), so no fit; depth 2 is an exact power law
    assert list(fits) == ["model.depth=2"]
    assert fits["model.depth=2"]["exponent"] == pytest.approx(0.5, rel=1e-12)
    assert fits["model.depth=2"]["prefactor"] == pytest.approx(5.0, rel=1e-12)
    marker = next(ln for ln in fig.axes[0].get_lines() if ln.get_label() == "model.depth=3")
    assert list(marker.get_xdata()) == [16] and list(marker.get_ydata()) == [7.0]
    _, nothing = plot_time_to_threshold(FrameStore(runs), tmp_path / "none.png")  # smallest: 0.01, never reached
    assert nothing == {} and is_png(tmp_path / "none.png")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"x": "model.param"}, r"x='model.param'.*valid choices: model.width, train.lr"),
        ({"x": "seed"}, r"valid choices: model.width, train.lr"),
        ({"threshold": 0.2}, r"threshold 0.2 is not in this store; thresholds present: 0.3, 0.5"),
    ],
)
def test_time_to_threshold_bad_input(store, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_time_to_threshold(store, tmp_path / "x.png", **kwargs)
    assert not (tmp_path / "x.png").exists()


def test_loss_vs_lr_marks_each_widths_best_rate(store, tmp_path):
    """The best rate per width is the argmin of the seed mean of the final loss, computed here."""
    runs = store.runs()
    fig, best = plot_loss_vs_lr(store, tmp_path / "lr.png")
    assert is_png(tmp_path / "lr.png")
    expected = {}
    for width, group in runs.groupby("model.width"):
        means = group.groupby("train.lr")["test/mse"].mean()
        expected[f"model.width={width}"] = float(means.idxmin())
    assert best == expected
    curves = [line for line in fig.axes[0].get_lines() if line.get_label().startswith("model.width=")]
    assert [line.get_label() for line in curves] == ["model.width=16", "model.width=32", "model.width=64"]
    for line in curves:  # each curve is the seed mean at every rate
        width = int(line.get_label().split("=")[1])
        means = runs[runs["model.width"] == width].groupby("train.lr")["test/mse"].mean()
        assert list(line.get_xdata()) == pytest.approx(list(means.index))
        assert list(line.get_ydata()) == pytest.approx(list(means.values))
    with pytest.raises(ValueError, match="not in this store; final metrics present"):
        plot_loss_vs_lr(store, tmp_path / "x.png", metric="test/nope")
    with pytest.raises(ValueError, match="valid choices"):
        plot_loss_vs_lr(store, tmp_path / "x.png", lr="train.momentum")


def test_l2_vs_linf_plots_each_runs_final_errors(store, tmp_path):
    """L2 (RMS: sqrt of the mean square, as only mse was measured) against L∞, per run."""
    path = tmp_path / "l.png"
    fig = plot_l2_vs_linf(store, path)
    assert is_png(path)
    ax = fig.axes[0]
    runs = store.runs()
    got = np.concatenate([c.get_offsets() for c in ax.collections])
    want = np.stack([np.sqrt(runs["test/mse"].to_numpy(float)), runs["test/linf"].to_numpy(float)], axis=1)
    assert (want[:, 0] <= want[:, 1]).all()  # RMS <= max: every point on or above y = x
    np.testing.assert_allclose(sorted(map(tuple, got)), sorted(map(tuple, want)), rtol=1e-12)
    assert len(ax.collections) == 6  # one colour per (width, lr) config
    diagonal = next(ln for ln in ax.get_lines() if ln.get_label() == "y = x")
    assert list(diagonal.get_xdata()) == list(diagonal.get_ydata()) and diagonal.get_linestyle() == "--"


def test_sharpness_is_the_seed_mean_with_its_2_over_lr_line(store, tmp_path):
    path = tmp_path / "s.png"
    fig = plot_sharpness(store, path)
    assert is_png(path)
    runs = store.runs().set_index("run_id")
    hist = store.metrics(names=["probe/sharpness"])
    hist = hist.join(runs[["model.width", "train.lr"]], on="run_id")
    lines = fig.axes[0].get_lines()
    for (width, lr), rows in hist.groupby(["model.width", "train.lr"]):
        mean = rows.groupby("step")["value"].mean()
        k = next(i for i, ln in enumerate(lines) if ln.get_label() == f"model.width={width}, train.lr={lr}")
        np.testing.assert_allclose(lines[k].get_ydata(), mean.to_numpy(), rtol=1e-12)
        edge = lines[k + 1]  # the config's 2/lr line: dashed, same colour
        assert edge.get_linestyle() == "--" and edge.get_color() == lines[k].get_color()
        np.testing.assert_allclose(edge.get_ydata(), 2.0 / lr, rtol=1e-6)


def test_missing_data_says_how_to_get_it(single_out, tmp_path):
    with learnlab.open_store(single_out) as s:
        with pytest.raises(ValueError, match=r"no uniform error \(linf\).*add 'linf'.*to train.metrics"):
            plot_l2_vs_linf(s, tmp_path / "l.png")
        with pytest.raises(ValueError, match=r"train.probes: \[\{name: sharpness"):
            plot_sharpness(s, tmp_path / "s.png")
        with pytest.raises(ValueError, match="no numeric config axis that varies"):
            plot_time_to_threshold(s, tmp_path / "t.png")


# ---- report ---------------------------------------------------------------------------------


class Tables(HTMLParser):
    """Every <table> of a page as a list of rows of cell texts."""

    def __init__(self):
        super().__init__()
        self.tables, self._cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def assert_offline(html: str):
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"<(script|link|iframe)\b", html)
    assert not re.search(r"""(src|href)\s*=\s*["']?(?!data:)[a-z]""", html)  # only inline data


def test_report_is_one_offline_file_with_the_summary_and_every_figure(store, tmp_path):
    path = report(store, tmp_path / "sub" / "r.html", title="widths & rates")
    html = path.read_text()
    assert path == tmp_path / "sub" / "r.html"
    assert "<h1>widths &amp; rates</h1>" in html
    assert_offline(html)
    # test/mse and train/loss curves, a heatmap, time to 0.3 and to 0.5, loss vs lr, L2 vs L-inf, sharpness,
    # and the Transfer section's figure (lr along width)
    pngs = images(html)
    assert len(pngs) == 9 and all(p[:8] == PNG for p in pngs)
    parser = Tables()
    parser.feed(html)
    status, summary = parser.tables[0], parser.tables[1]
    assert status == [["status", "runs"], ["finished", "12"]]
    frame = summary_table(store)
    assert summary[0] == [
        "width",
        "lr",
        "runs",
        "diverged",
        "failed",
        "test mse",
        "test linf",
        "steps to 0.3",
        "steps to 0.5",
    ]
    assert len(summary) == 1 + len(frame)
    for cells, (_, row) in zip(summary[1:], frame.iterrows()):  # numbers as summary_table has them
        assert [float(c) for c in cells[:3] + cells[4:7]] == pytest.approx(
            [row["model.width"], row["train.lr"], row["runs"], row["failed"], row["test/mse"], row["test/linf"]],
            rel=1e-2,
        )
        assert cells[3] == "0"
    assert "Failures" not in html


def test_report_of_a_single_diverged_config(single_out, tmp_path):
    with learnlab.open_store(single_out) as s:
        runs = s.runs()
        html = report(s, tmp_path / "r.html").read_text()
    assert_offline(html)
    assert len(images(html)) == 2  # test/mse and train/loss curves; no axis, linf or probe to plot
    assert (runs["status"] == "diverged").all()
    assert "Failures" in html
    for error in runs["error"]:  # each run's reason, once
        assert html.count(escape(error.strip().splitlines()[-1])) == 1
    parser = Tables()
    parser.feed(html)
    steps = sorted(int(s) for s in runs["diverged_at"])
    at = f"{steps[0]}" if steps[0] == steps[-1] else f"{steps[0]}-{steps[-1]}"
    assert parser.tables[1][1][:4] == ["2", f"2/2 @ {at}", "0", "-"]  # runs, diverged, failed, no test mse
    assert "<h1>single: " in html


# ---- CLI ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["curves", "thresholds", "lr", "l2-linf", "sharpness"])
def test_cli_plot_each_kind(sweep_out, tmp_path, kind):
    to = tmp_path / f"{kind}.png"
    result = CliRunner().invoke(app, ["plot", str(sweep_out), "--kind", kind, "--to", str(to)])
    assert result.exit_code == 0, result.output
    assert is_png(to) and str(to) in result.output
    if kind == "thresholds":
        with learnlab.open_store(sweep_out) as s:
            _, fits = plot_time_to_threshold(s, tmp_path / "ref.png")
        for label, fit in fits.items():
            assert f"{label}: steps ~ {fit['prefactor']:.3g} * model.width^({fit['exponent']:.3f}" in result.output


def test_cli_plot_default_path_and_report(sweep_out):
    result = CliRunner().invoke(
        app, ["plot", str(sweep_out), "--kind", "thresholds", "--threshold", "0.5", "--x", "train.lr"]
    )
    assert result.exit_code == 0, result.output
    assert is_png(sweep_out / "thresholds.png") and "model.width=64: steps ~" in result.output
    result = CliRunner().invoke(app, ["report", str(sweep_out)])
    assert result.exit_code == 0, result.output
    html = (sweep_out / "report.html").read_text()
    assert len(images(html)) == 9 and str(sweep_out / "report.html") in result.output


@pytest.mark.parametrize(
    "args, match",
    [
        (
            ["--kind", "histogram"],
            "unknown --kind 'histogram': choose one of curves, thresholds, lr, l2-linf, sharpness",
        ),
        (["--kind", "thresholds", "--x", "task.inputs.d"], "valid choices: model.width, train.lr"),
        (["--kind", "thresholds", "--threshold", "0.01"], "thresholds present: 0.3, 0.5"),
        (
            ["--kind", "curves", "--metric", "test/acc"],
            "'test/acc' is not in this store; metrics present: probe/sharpness",
        ),
    ],
)
def test_cli_plot_bad_input(sweep_out, tmp_path, args, match):
    result = CliRunner().invoke(app, ["plot", str(sweep_out), *args, "--to", str(tmp_path / "x.png")])
    assert result.exit_code == 2
    assert match in result.output
    assert not (tmp_path / "x.png").exists()


def test_cli_missing_store_and_missing_metric(single_out, tmp_path):
    for command in (["plot", str(tmp_path / "nowhere")], ["report", str(tmp_path / "nowhere")]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2 and "no results store at" in result.output
    result = CliRunner().invoke(app, ["plot", str(single_out), "--kind", "l2-linf", "--to", str(tmp_path / "l.png")])
    assert result.exit_code == 2 and "add 'linf'" in result.output and "train.metrics" in result.output
