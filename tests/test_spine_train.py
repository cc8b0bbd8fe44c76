"""Training layer (issue 2): EMA time-to-threshold, divergence, early stop, stacked members.

The reference for a whole run is a slow, obvious loop written here from public pieces
(``make_task``, ``BatchStream``, ``MLP``, ``derive_seed``) and ``torch.optim.SGD``: it
reproduces a run exactly as the spec promises ("every run's seeds derive from
(spec seed, run id, role)"), so the library's loop is checked against it step by step.
"""

from __future__ import annotations

import math

import pytest
import torch

from learnlab._seeds import data_seeds, init_seed
from learnlab.experiments import open_store, run_group, sweep
from learnlab.models import MLP, ModelSpec
from learnlab.tasks import BatchStream, TaskSpec, make_task
from learnlab.train import ThresholdTracker

BASE = {
    "name": "train-tests",
    "seed": 0,
    "task": {"inputs": {"name": "hypercube", "d": 6}, "target": {"name": "parity", "indices": [[0, 1]]}, "n_test": 256},
    "model": {"name": "mlp", "width": 16, "depth": 1, "param": "sp"},
    "train": {
        "optimizer": "sgd",
        "lr": 0.3,
        "batch_size": 64,
        "steps": 40,
        "eval_every": 10,
        "log_every": 1,
        "thresholds": [0.9, 0.6],
        "ema": 0.9,
        "dtype": "float64",
    },
}

# ---------------------------------------------------------------------------- EMA tracker


def test_threshold_tracker_matches_a_hand_computed_ema():
    # s = 1/2 and dyadic losses keep every EMA exact in binary floating point:
    #   t:     0      1      2       3        4         5
    #   loss:  1      1/2    1/4     1/8      1/16      1
    #   ema:   1      3/4    1/2     5/16     operations below
    #   ema_4 = (5/16 + 1/16) / 2 = 3/16, ema_5 = (3/16 + 1) / 2 = 19/32
    tracker = ThresholdTracker([0.75, 0.5001, 0.2, 0.01], smoother=0.5)
    expected_ema = [1.0, 0.75, 0.5, 0.3125, 0.1875, 0.59375]
    for t, (loss, ema) in enumerate(zip([1.0, 0.5, 0.25, 0.125, 0.0625, 1.0], expected_ema)):
        tracker.update(t, loss)
        assert tracker.ema == ema
    # 0.75: ema_1 = 0.75 is not < 0.75 (strict), ema_2 = 0.5 is -> step 2
    # 0.5001: ema_2 = 0.5 -> step 2;  0.2: ema_4 = 0.1875 -> step 4 (the later rise does not undo it)
    # 0.01: never -> None, not 0
    assert tracker.steps == {0.75: 2, 0.5001: 2, 0.2: 4, 0.01: None}
    assert not tracker.all_crossed


def test_threshold_tracker_with_the_seed_smoother():
    # s = 0.9 (seed 002's EMA_SMOOTHER): ema_0 = 2, ema_1 = 0.9*2 + 0.1*0 = 1.8,
    # ema_2 = 1.62, ema_3 = 1.458, ema_4 = 1.3122; threshold 1.5 is first crossed at t = 3
    tracker = ThresholdTracker([1.5, 1.7], smoother=0.9)
    for t, loss in enumerate([2.0, 0.0, 0.0, 0.0, 0.0]):
        tracker.update(t, loss)
    assert tracker.ema == pytest.approx(1.3122, rel=1e-12)
    assert tracker.steps == {1.7: 2, 1.5: 3}
    assert tracker.all_crossed


# ---------------------------------------------------------------------------- the slow reference


def _reference_run(config: dict) -> dict:
    """Train ``config`` (sp, SGD, float64, online) with an obvious loop; stop as the spec says.

    Its streams are seeded by the documented roles (learnlab._seeds: tested on their own in
    test_experiments_randomness.py); everything else is written out here.
    """
    seed = config["seed"]
    task, m, tr = make_task(config["task"], seed), config["model"], config["train"]
    dtype = torch.float64
    assert m["param"] == "sp" and tr["optimizer"] == "sgd" and tr["dtype"] == "float64"
    data = data_seeds(TaskSpec.model_validate(config["task"]), seed)
    init = init_seed(ModelSpec.model_validate(m), seed, task.d, task.outputs)

    def generator(role):
        return torch.Generator().manual_seed(init if role == "init" else data(role))

    model = MLP(
        task.d,
        m["width"],
        m["depth"],
        task.outputs,
        activation=m["activation"],
        param="sp",
        generators=[generator("init")],
        dtype=dtype,
    )
    stream = BatchStream(task, tr["batch_size"], generator("data"), dtype=dtype)
    x_test, y_test = task.test_sample(generator("test"), dtype=dtype)
    opt = torch.optim.SGD(model.parameters(), lr=tr["lr"])  # sp: one learning rate for every layer
    s, thresholds = tr["ema"], sorted(tr["thresholds"], reverse=True)
    out = {
        "train/loss": {},
        "test/mse": {},
        "status": "finished",
        "step": tr["steps"],
        "thresholds": {c: None for c in thresholds},
    }
    ema = None
    for t in range(tr["steps"] + 1):
        if t % tr["eval_every"] == 0 or t == tr["steps"]:
            with torch.no_grad():
                out["test/mse"][t] = ((model(x_test) - y_test) ** 2).mean().item()
        if t == tr["steps"]:
            break
        x, y = stream.next()
        loss = ((model(x) - y) ** 2).mean()
        value = loss.item()
        if not math.isfinite(value):
            out["status"], out["step"] = "diverged", t
            out["test/mse"] = {k: v for k, v in out["test/mse"].items() if k < t}
            break
        out["train/loss"][t] = value
        ema = value if ema is None else s * ema + (1 - s) * value
        for c in thresholds:
            if out["thresholds"][c] is None and ema < c:
                out["thresholds"][c] = t
        if tr["stop_at_thresholds"] and all(v is not None for v in out["thresholds"].values()):
            with torch.no_grad():
                out["test/mse"][t] = ((model(x_test) - y_test) ** 2).mean().item()
            out["step"] = t
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    return out


def _history(result) -> dict[str, dict[int, float]]:
    hist: dict[str, dict[int, float]] = {}
    for step, name, value in result.metrics:
        hist.setdefault(name, {})[step] = value
    return hist


def _assert_matches_reference(result, ref, rtol):
    hist = _history(result)
    for name in ("train/loss", "test/mse"):
        assert sorted(hist.get(name, {})) == sorted(ref[name]), f"{name}: recorded steps differ"
        for step, value in ref[name].items():
            assert hist[name][step] == pytest.approx(value, rel=rtol), f"{name} at step {step}"


def test_a_run_follows_the_slow_reference_loop(resolve):
    (config,) = resolve(BASE)
    (result,) = run_group([config])
    ref = _reference_run(config)
    assert result.status == ref["status"] == "finished"
    assert result.step == 40
    # float64; the only differences are the order of a few sums (ulps), over 40 steps
    _assert_matches_reference(result, ref, rtol=1e-9)
    assert result.thresholds == {repr(c): s for c, s in ref["thresholds"].items()}


def test_a_huge_learning_rate_diverges_at_the_first_non_finite_batch_loss(resolve):
    (config,) = resolve(
        BASE, "train.lr=30", "train.eval_every=2", "train.thresholds=[1e-9]", "train.diverge_factor=null"
    )
    ref = _reference_run(config)
    assert ref["status"] == "diverged" and 2 <= ref["step"] < 40, "the reference must diverge mid-run"
    (result,) = run_group([config])
    assert result.status == "diverged"
    assert result.step == ref["step"]
    assert f"step {ref['step']}" in result.error
    steps = [s for s, _, _ in result.metrics]
    assert steps and max(steps) < ref["step"], "no record at or after the divergence step"
    # losses explode by ~10^30 per step before overflowing; relative agreement still holds
    _assert_matches_reference(result, ref, rtol=1e-6)
    assert result.thresholds == {"1e-09": None}


def test_stop_at_thresholds_ends_the_run_at_the_crossing_step(resolve):
    (config,) = resolve(BASE, "train.stop_at_thresholds=true", "train.steps=200", "train.eval_every=7")
    ref = _reference_run(config)
    crossing = ref["thresholds"][0.6]
    assert crossing is not None and crossing % 7 != 0, "pick a crossing between two evaluations"
    (result,) = run_group([config])
    assert result.status == "finished"
    assert result.step == crossing
    assert result.thresholds == {"0.9": ref["thresholds"][0.9], "0.6": crossing}
    hist = _history(result)
    assert max(hist["train/loss"]) == crossing
    assert max(hist["test/mse"]) == crossing, "the test error is measured where the run stops"
    _assert_matches_reference(result, ref, rtol=1e-9)


# ---------------------------------------------------------------------------- stacked members


STACK = {
    **BASE,
    "train": {**BASE["train"], "steps": 40},
    # three runs trained as one stacked model: one diverges, one stops early, one survives
    "sweep": {
        "zip": {
            "train.lr": [30, 0.3, 0.3],
            "train.stop_at_thresholds": [False, True, False],
            "train.thresholds": [[0.5], [1.0], [0.8]],
        }
    },
}


def _stacked_and_solo(resolve):
    configs = resolve(STACK)
    stacked = run_group(configs)
    assert [r.status for r in stacked] == ["diverged", "finished", "finished"]
    assert stacked[0].step < stacked[1].step < stacked[2].step == 40, "diverges, then stops early, then survives"
    return configs, stacked, [run_group([c])[0] for c in configs]


def test_stacked_members_do_not_touch_each_other(resolve):
    configs, stacked, solo = _stacked_and_solo(resolve)
    for s, r in zip(stacked, solo):
        assert (s.status, s.step, s.thresholds) == (r.status, r.step, r.thresholds)
        hs, hr = _history(s), _history(r)
        assert {k: sorted(v) for k, v in hs.items()} == {k: sorted(v) for k, v in hr.items()}
        for name in hs:
            for step in hs[name]:
                # float64: rounding-level differences only (see the strict test below)
                assert hs[name][step] == pytest.approx(hr[name][step], rel=1e-9, abs=1e-12)


def test_surviving_member_history_equals_its_solo_run_exactly(resolve):
    configs, stacked, solo = _stacked_and_solo(resolve)
    assert stacked[2].metrics == solo[2].metrics


def test_a_runs_results_do_not_depend_on_how_the_sweep_grouped_it(tiny_spec, tmp_path):
    """The same spec swept run by run (serial) and stacked (ensemble) must store identical histories:
    otherwise re-running a failed run, or growing a sweep, changes numbers of the same run id."""
    spec = {**tiny_spec, "train": {**tiny_spec["train"], "batch_size": 64, "steps": 50}}
    frames = []
    for executor in ("serial", "ensemble"):
        store = sweep(spec, out=tmp_path / executor, executor=executor)
        frames.append(store.metrics())
        store.close()
    assert len(frames[0]) == len(frames[1]) > 0
    assert frames[0].equals(frames[1])


# ---------------------------------------------------------------------------- missing values


def test_never_reached_threshold_is_none_and_nan_in_the_store(resolve, tmp_path):
    spec = {**BASE, "train": {**BASE["train"], "thresholds": [0.9, 1e-9], "steps": 30}}
    (config,) = resolve(spec)
    (result,) = run_group([config])
    assert result.thresholds["1e-09"] is None
    reached = result.thresholds["0.9"]
    assert isinstance(reached, int) and 0 < reached < 30
    store = sweep(spec, out=tmp_path, executor="serial")
    runs = store.runs()
    store.close()
    assert len(runs) == 1
    assert math.isnan(runs.loc[0, "steps_to/1e-09"]), "never reached is a missing value, not 0"
    assert runs.loc[0, "steps_to/0.9"] == reached
    with open_store(tmp_path / "results.db") as again:
        assert again.runs()["steps_to/1e-09"].isna().all()
