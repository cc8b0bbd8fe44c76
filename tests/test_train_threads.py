"""The CPU thread tuner: it keeps the faster thread count, and the choice never changes results."""

from __future__ import annotations

import pytest
import torch

import learnlab.train._threads as threads_mod
from learnlab._cpu import one_thread
from learnlab.experiments import plan, sweep
from learnlab.experiments._runner import build_group
from learnlab.models import MLP
from learnlab.train import fit
from learnlab.train._threads import SMALL_STEP_FLOPS, ThreadTuner, step_threads


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _drive(tuner, clock, cost, steps, start=1):
    """Call the tuner after each of ``steps`` simulated steps; a step on n threads lasts cost[n]."""
    for step in range(start, start + steps):
        clock[0] += cost[torch.get_num_threads()]
        tuner(step)


def test_tuner_keeps_the_faster_choice_and_checks_again(monkeypatch, restore_threads):
    clock = [0.0]
    monkeypatch.setattr(threads_mod.time, "perf_counter", lambda: clock[0])
    torch.set_num_threads(4)
    tuner = ThreadTuner(4, trial=3, every=20)
    assert torch.get_num_threads() == 4  # the first trial block runs on all threads
    _drive(tuner, clock, {4: 3.0, 1: 1.0}, steps=8)  # 2 blocks of trial + 1 steps
    assert tuner.chosen == 1 and torch.get_num_threads() == 1
    assert tuner.times == {4: [3.0] * 3, 1: [1.0] * 3}  # each block's first step is not counted
    _drive(tuner, clock, {4: 3.0, 1: 1.0}, steps=11, start=9)  # steps 9..19: no trial yet
    assert torch.get_num_threads() == 1
    # the load changes: from step 20 on, four threads are faster, and the next trial sees it
    _drive(tuner, clock, {4: 0.5, 1: 2.0}, steps=9, start=20)
    assert tuner.chosen == 4 and torch.get_num_threads() == 4


def test_tuner_ignores_an_outlier_step(monkeypatch, restore_threads):
    """Medians: one slow step (an evaluation) inside a block does not flip the choice."""
    clock = [0.0]
    monkeypatch.setattr(threads_mod.time, "perf_counter", lambda: clock[0])
    torch.set_num_threads(2)
    tuner = ThreadTuner(2, trial=5, every=100)
    costs = iter([9, 1, 1, 50.0, 1, 1] + [9, 2, 2, 2, 2, 2])  # block on 2 threads, then on 1
    for step in range(1, 13):
        clock[0] += next(costs)
        tuner(step)
    assert tuner.chosen == 2


def test_step_threads_only_for_small_cpu_steps(restore_threads):
    torch.set_num_threads(2)
    small = MLP(4, 8, 2, generators=[torch.Generator().manual_seed(s) for s in range(2)])
    with step_threads(small, batch_size=16) as hook:
        assert isinstance(hook, ThreadTuner)
        torch.set_num_threads(1)  # whatever the tuner did is undone on exit
    assert torch.get_num_threads() == 2
    with step_threads(MLP(4, 8, 2), batch_size=16) as hook:  # a run alone: one thread, always
        assert hook is None and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    big_batch = int(SMALL_STEP_FLOPS / (6 * sum(p.numel() for p in small.parameters()))) + 1
    with step_threads(small, batch_size=big_batch) as hook:
        assert hook is None
    torch.set_num_threads(1)
    with step_threads(small, batch_size=16) as hook:
        assert hook is None  # nothing to choose from


HERMITE = {"name": "hermite", "monomial": {0: 1, 1: 1}}


def _spec(steps, target=HERMITE, batch=32, width=96):
    return {
        "name": "threads",
        "seed": 3,
        "task": {"inputs": {"name": "gaussian", "d": 12}, "target": target, "n_test": 256},
        "model": {"width": width, "depth": 2},
        "train": {"optimizer": "sgd", "batch_size": batch, "steps": steps, "eval_every": 10, "metrics": ["mse"]},
        "sweep": {"grid": {"train.lr": [0.01, 0.05, 0.2]}, "seeds": 2},
    }


@pytest.mark.parametrize(
    "target, batch, width",
    # a batch of 7 and the power-law target's small blocks are shapes where MKL may round differently
    # on one thread and on two (measured on an AMD EPYC)
    [(HERMITE, 32, 96), (HERMITE, 7, 128), ({"name": "power_law", "cutoff_mode": 300}, 37, 32)],
    ids=["hermite-32", "hermite-7", "power_law-37"],
)
def test_histories_do_not_depend_on_the_thread_count(target, batch, width, restore_threads):
    """The premise of the tuner: a stacked group's whole history is the same bits on 1 and 2 threads."""
    configs = [r.config for r in plan(_spec(40, target, batch, width)).runs]
    histories = {}
    for n in (1, 2):
        torch.set_num_threads(n)
        built = build_group(configs)
        histories[n] = [h.metrics for h in fit(built.model, built.optimizer, built.members, built.settings)]
    assert histories[1] == histories[2]


@pytest.mark.parametrize("executor", ["serial", "ensemble"])
def test_a_sweep_stores_the_same_bits_on_one_and_two_threads(executor, tmp_path, restore_threads):
    """Runs alone train on one thread whatever the process has; stacks' products are per member."""
    spec = _spec(30, {"name": "power_law", "cutoff_mode": 300}, batch=32, width=16)
    spec["task"]["inputs"]["d"] = 8
    stores = []
    for n in (1, 2):
        torch.set_num_threads(n)
        store = sweep(spec, out=tmp_path / f"{executor}{n}", executor=executor, progress=False)
        stores.append(store.metrics().sort_values(["run_id", "step", "name"]).reset_index(drop=True))
        store.close()
    assert len(stores[0]) > 0 and stores[0].equals(stores[1])


def test_a_stack_left_with_one_member_trains_it_as_its_run_alone(tmp_path, monkeypatch, restore_threads):
    """When the other members have diverged, the last one's products are a single GEMM again (no
    longer MKL's batched path): it goes on on one thread, with the bits of its run alone."""
    spec = _spec(60, batch=32, width=32)
    spec["task"]["inputs"]["d"] = 5  # a run of 5 -> 32 -> 32 -> 1 at batch 32 rounds per thread count here
    spec["sweep"] = {"grid": {"train.lr": [0.05, 500.0]}}  # the second diverges within a few steps
    torch.set_num_threads(2)

    class TwoThreads(ThreadTuner):  # a tuner that would keep both threads (as on a quiet machine)
        def __init__(self, threads, **kwargs):
            super().__init__(threads, **kwargs)
            self.choices, self._plan = (threads,), []
            self._set(threads)

    monkeypatch.setattr(threads_mod, "ThreadTuner", TwoThreads)
    stores = []
    for executor in ("ensemble", "serial"):
        store = sweep(spec, out=tmp_path / executor, executor=executor, progress=False)
        assert sorted(store.statuses().values()) == ["diverged", "finished"]
        stores.append(store.metrics().sort_values(["run_id", "step", "name"]).reset_index(drop=True))
        store.close()
    assert len(stores[0]) > 0 and stores[0].equals(stores[1])


def test_a_target_and_a_probe_are_computed_on_one_thread(restore_threads):
    torch.set_num_threads(2)
    seen = []
    with one_thread():
        seen.append(torch.get_num_threads())
    assert seen == [1] and torch.get_num_threads() == 2
