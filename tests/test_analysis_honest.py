"""Honest results (issue 14): every number and figure says what happened, at any sweep size."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from typer.testing import CliRunner

import learnlab
from learnlab.analysis import plot_heatmap, plot_learning_curves, plot_loss_vs_lr, report, summary_table
from learnlab.cli import app
from learnlab.experiments import open_store, plan, sweep

BASE = {
    "name": "honest",
    "seed": 0,
    "task": {"inputs": {"name": "hypercube", "d": 8}, "target": {"name": "parity", "indices": [[0, 1]]}, "n_test": 128},
    "model": {"name": "mlp", "width": 16, "depth": 1},
    "train": {"optimizer": "sgd", "lr": 0.1, "batch_size": 16, "steps": 40, "eval_every": 5, "log_every": 1},
}


def _spec(**sections) -> dict:
    spec = copy.deepcopy(BASE)
    for key, value in sections.items():
        spec[key] = {**spec[key], **value} if isinstance(value, dict) and key in spec else value
    return spec


def _said(result) -> str:
    return " ".join(result.output.split())


# ---- outcomes in every number ---------------------------------------------------------------


def test_adam_at_a_huge_learning_rate_is_diverged_by_default_with_no_final_values(tmp_path):
    spec = _spec(train={"optimizer": "adam", "lr": 1e3}, sweep={"seeds": 2})
    with sweep(spec, out=tmp_path, progress=False) as store:
        runs = store.runs()
        table = summary_table(store)
    assert (runs["status"] == "diverged").all()
    assert runs["test/mse"].isna().all() and runs["train/loss"].isna().all()
    assert (runs["diverged_at"] == runs["step"]).all() and runs["error"].str.contains("diverge_factor").all()
    assert table.loc[0, "diverged"] == 2 and math.isnan(table.loc[0, "test/mse"])


def test_the_summary_says_how_many_diverged_and_when(write_spec, tmp_path):
    spec = _spec(sweep={"grid": {"train.lr": [0.1, 400.0]}, "seeds": 2})
    result = CliRunner().invoke(
        app, ["run", str(write_spec(spec)), "--out", str(tmp_path / "o"), "--executor", "serial"]
    )
    assert result.exit_code == 0, result.output
    with open_store(tmp_path / "o") as store:
        at = store.runs().query("status == 'diverged'")["diverged_at"].astype(int)
    steps = f"{at.min()}" if at.min() == at.max() else f"{at.min()}-{at.max()}"
    assert f"2/2 @ {steps}" in result.output
    row = next(line for line in result.output.splitlines() if f"2/2 @ {steps}" in line)
    assert "│ - │" in row.replace("  ", " ").replace("  ", " ") or " - " in row  # no test mse for it


def test_loss_vs_lr_marks_diverged_rates_at_the_top_edge_and_never_a_value(tmp_path):
    spec = _spec(sweep={"grid": {"train.lr": [0.01, 0.1, 500.0]}, "seeds": 2})
    with sweep(spec, out=tmp_path, progress=False) as store:
        fig, best = plot_loss_vs_lr(store, tmp_path / "lr.png")
    ax = fig.axes[0]
    drawn = [line for line in ax.get_lines() if line.get_marker() == "o" and line.get_linestyle() == "-"]
    assert all(500.0 not in list(line.get_xdata()) for line in drawn)  # no loss drawn for a diverged rate
    crosses = [line for line in ax.get_lines() if line.get_marker() == "x" and list(line.get_xdata())]
    assert crosses and list(crosses[0].get_xdata()) == [500.0]
    assert crosses[0].get_ydata()[0] == pytest.approx(ax.get_ylim()[1])
    assert best["all runs"] in (0.01, 0.1)


def test_a_best_rate_at_the_edge_of_the_range_is_flagged(tmp_path):
    spec = _spec(sweep={"grid": {"train.lr": [0.001, 0.003, 0.01]}, "seeds": 1})  # smaller is worse here
    with sweep(spec, out=tmp_path, progress=False) as store:
        fig, best = plot_loss_vs_lr(store, tmp_path / "lr.png")
        warnings = learnlab.analysis.best_at_edge(summary_table(store), "train.lr", "test/mse")
    assert best["all runs"] == 0.01
    assert "edge of the range" in fig.axes[0].get_title()
    assert len(warnings) == 1 and "the largest tried" in warnings[0] and "outside the range" in warnings[0]


# ---- survivor-aware aggregates ----------------------------------------------------------------


def test_curves_count_the_survivors_and_average_only_them(tmp_path):
    """Seeds that stop early leave the mean: count < total from there, and the mean is the survivors'."""
    spec = _spec(train={"thresholds": [0.7], "stop_at_thresholds": True, "lr": 0.3, "steps": 120}, sweep={"seeds": 4})
    with sweep(spec, out=tmp_path, progress=False) as store:
        table = store.curves("test/mse")
        history = store.metrics(names=["test/mse"])
        runs = store.runs()
    assert runs["step"].nunique() > 1, "the seeds must stop at different steps"
    by_hand = history.groupby("step")["value"].agg(["mean", "min", "max", "count"])
    for step, row in table.set_index("step").iterrows():
        assert row["count"] == by_hand.loc[step, "count"] and row["total"] == 4
        assert row["mean"] == pytest.approx(by_hand.loc[step, "mean"], rel=1e-12)
    alive = {step: int((runs["step"] >= step).sum()) for step in table["step"]}
    assert dict(zip(table["step"], table["count"])) == alive
    # the figure draws the mean only where all four run, and the survivors one by one after
    fig = plot_learning_curves(store_of(tmp_path), tmp_path / "c.png")
    mean_line = next(line for line in fig.axes[0].get_lines() if line.get_label() == "all runs")
    assert max(mean_line.get_xdata()) == max(s for s, n in alive.items() if n == 4)
    assert any(text.get_text().endswith("/4") for text in fig.axes[0].texts)


def store_of(path):
    return open_store(path)


# ---- figures that scale ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_200_config_sweep_gives_readable_figures(tmp_path):
    spec = _spec(
        train={"steps": 10, "eval_every": 5},
        sweep={"grid": {"train.lr": [0.01 * 1.5**k for k in range(10)], "model.width": list(range(4, 84, 4))}},
    )
    with sweep(spec, out=tmp_path, progress=False) as store:
        assert len(store.runs()) == 200
        fig = plot_learning_curves(store, tmp_path / "curves.png")
        panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_lines()]
        assert 2 <= len(panels) <= 30
        for ax in panels:  # lines of a panel: at most 12 configs (+ marks)
            assert len({line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")}) <= 12
        legend = fig.legends[0]
        entries = [t.get_text() for t in legend.get_texts() if t.get_text().startswith("lr=")]
        assert len(entries) == 10 and legend.get_title().get_text() == "train.lr"
        rates = [float(e.split("=")[1]) for e in entries]
        assert rates == sorted(rates)  # numeric order, not text order
        assert fig._suptitle.get_text().startswith("honest")
        heat = plot_heatmap(store, tmp_path / "heat.png")
        image = heat.axes[0].images[0].get_array()
        assert image.shape == (10, 20)  # lr x width: the two axes, every cell
        path = report(store, tmp_path / "report.html")
    assert "<img" in path.read_text()


def test_legends_are_in_numeric_order_outside_the_axes_and_titled(tmp_path):
    spec = _spec(train={"steps": 10}, sweep={"grid": {"model.width": [128, 256, 32, 64]}})
    with sweep(spec, out=tmp_path, progress=False) as store:
        fig = plot_learning_curves(store, tmp_path / "c.png")
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["width=32", "width=64", "width=128", "width=256"]
    assert legend.get_title().get_text() == "model.width"
    assert fig._suptitle.get_text().startswith("honest: test/mse")


# ---- metrics that match the task ------------------------------------------------------------------


def test_classification_is_summarised_by_cross_entropy_and_accuracy(write_spec, tmp_path):
    spec = {
        "name": "digits",
        "task": {"dataset": "digits", "n_train": 300, "n_test": 200},
        "model": {"name": "mlp", "width": 32, "depth": 1},
        "train": {"loss": "cross_entropy", "lr": 0.1, "batch_size": 32, "steps": 60, "eval_every": 20},
    }
    (run,) = plan(spec).runs
    assert run.config["train"]["metrics"] == ["cross_entropy", "accuracy"]
    result = CliRunner().invoke(app, ["run", str(write_spec(spec)), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "test cross_entropy" in _said(result) and "test accuracy" in _said(result)
    with open_store(tmp_path / "o") as store:
        runs = store.runs()
        hist = store.metrics(names=["test/accuracy"])
    assert 0.5 < runs["test/accuracy"].iloc[0] <= 1  # ten classes: chance is 0.1
    assert hist["value"].iloc[-1] > hist["value"].iloc[0]
    status = CliRunner().invoke(app, ["status", str(tmp_path / "o"), "--metrics", "accuracy"])
    assert status.exit_code == 0 and "test accuracy" in _said(status) and "cross_entropy" not in _said(status)


def test_the_cross_entropy_metric_is_the_loss_on_one_hot_labels():
    logits = torch.randn(1, 50, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    labels = torch.nn.functional.one_hot(torch.arange(50) % 4, 4).to(torch.float64).unsqueeze(0)
    from learnlab.train._metrics import MetricAccumulator

    acc = MetricAccumulator(["cross_entropy", "accuracy"], 1)
    acc.update(logits[:, :20], labels[:, :20])
    acc.update(logits[:, 20:], labels[:, 20:])
    got = acc.result()
    ref = torch.nn.functional.cross_entropy(logits[0], labels[0].argmax(-1)).item()
    assert got["cross_entropy"][0] == pytest.approx(ref, rel=1e-12)
    assert got["accuracy"][0] == pytest.approx((logits[0].argmax(-1) == labels[0].argmax(-1)).double().mean().item())


# ---- warnings where a reader could be misled -----------------------------------------------------


def test_lr_probe_says_when_the_best_rate_is_at_an_edge(write_spec, tmp_path):
    result = CliRunner().invoke(
        app, ["lr-probe", str(write_spec(BASE)), "--lrs", "1e-5:1e-4:5", "--out", str(tmp_path / "lr")]
    )
    assert result.exit_code == 0, result.output
    assert "the best rate is the largest probed" in _said(result) and "widen --lrs" in _said(result)


def test_coord_check_reports_widths_that_blew_up(write_spec, tmp_path):
    spec = _spec(train={"lr": 1e6})
    result = CliRunner().invoke(
        app, ["coord-check", str(write_spec(spec)), "--widths", "16,64,256", "--steps", "3", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "blew up" in _said(result) and "fitted on the finite widths only" in _said(result)
    assert "nan" not in result.output.lower().replace("n/a", "")


# ---- Python API errors like the CLI's --------------------------------------------------------------


def test_python_api_errors_are_spec_errors_naming_the_key():
    task = {"inputs": {"name": "gaussian", "d": 30}, "target": {"name": "hermite", "monomial": {0: 2}}}
    net = torch.nn.Sequential(torch.nn.Linear(20, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    with pytest.raises(learnlab.SpecError, match=r"train.step: unknown key \(did you mean steps\?\)"):
        learnlab.train(net, task, step=10, progress=False)
    with pytest.raises(learnlab.SpecError, match=r"model: the task's inputs have d = 30 .* its first layer takes 20"):
        learnlab.train(net, task, steps=10, progress=False)
    with pytest.raises(learnlab.SpecError, match=r"task.inputs.d"):
        learnlab.make_task({"inputs": {"name": "gaussian", "d": -1}, "target": {"name": "sine"}})
    with pytest.raises(learnlab.SpecError, match=r"model.width"):
        learnlab.train({"width": 0}, task, steps=5, progress=False)
    assert issubclass(learnlab.SpecError, ValueError)
    fits = torch.nn.Sequential(torch.nn.Linear(30, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    with pytest.raises(learnlab.SpecError, match="the model has 2 outputs, the task's targets 1"):
        learnlab.train(fits, task, steps=5, progress=False)


# ---- progress and interruption -----------------------------------------------------------------------


def test_a_run_leaving_a_stack_is_committed_before_its_group_ends(tmp_path):
    """Seen from a second connection while the group trains: the early run is stored, the others not yet."""
    spec = _spec(train={"steps": 200}, sweep={"grid": {"train.lr": [0.1, 900.0]}, "seeds": 2})
    p = plan(spec, executor="ensemble")
    assert [len(g) for g in p.groups] == [4]
    seen = []

    def look(result, done, total):
        with open_store(tmp_path) as other:  # another connection, as a reader would have
            seen.append((result.status, sorted(other.statuses().values())))

    sweep(p, out=tmp_path, on_result=look, progress=False).close()
    first_status, statuses = seen[0]
    assert first_status == "diverged"
    assert statuses.count("diverged") == 1 and statuses.count("pending") == 3  # the stack is still training


@pytest.mark.slow
def test_process_pool_workers_send_a_run_as_it_ends(tmp_path):
    spec = _spec(train={"steps": 300}, sweep={"grid": {"train.lr": [0.1, 900.0]}, "seeds": 2})
    p = plan(spec, executor="processes", workers=1, max_members=4)
    assert [len(g) for g in p.groups] == [4]
    seen = []
    sweep(p, out=tmp_path, on_result=lambda r, d, t: seen.append((r.status, d)), progress=False).close()
    assert seen[0][0] == "diverged" and [d for _, d in seen] == [1, 2, 3, 4]


def test_progress_bar_and_what_an_interrupted_sweep_says(tmp_path, capsys):
    spec = _spec(sweep={"grid": {"train.lr": [0.05, 0.1, 0.2]}})

    def stop(result, done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(spec, out=tmp_path, executor="serial", on_result=stop, progress=True)
    err = " ".join(capsys.readouterr().err.split())
    assert "honest: runs" in err  # the bar
    assert "interrupted: 1 of 3 runs finished and are stored" in err and "Run the same command again" in err
    with open_store(tmp_path) as store:
        assert sorted(store.statuses().values()) == ["finished", "interrupted", "interrupted"]
