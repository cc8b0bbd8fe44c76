"""The slurm executor against a real SLURM (``.ci/slurm/start`` starts a single-node one).

Tests marked ``slurm`` are skipped, with the reason, where no controller answers. Each compares
what the SLURM path stores with the same spec run in this process: the same runs, statuses and
metric histories to the bit, also after a job was cancelled or hit its time limit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from learnlab.cli import app
from learnlab.experiments import SpecError, open_store, plan, sweep
from learnlab.experiments._slurm import Ledger, array_tasks, parse_time

sys.path.insert(0, str(Path(__file__).parent))
from conftest import slurm_problem  # noqa: E402

SPEC = {
    "name": "slurmy",
    "seed": 5,
    "task": {"inputs": {"name": "gaussian", "d": 8}, "target": {"name": "hermite", "monomial": {0: 2}}, "n_test": 256},
    "model": {"width": 16, "depth": 2},
    "train": {"lr": 0.05, "batch_size": 32, "steps": 300, "eval_every": 50},
    "sweep": {"grid": {"train.lr": [0.01, 0.05], "model.width": [16, 24]}, "seeds": 2},
}


def _spec(**train) -> dict:
    spec = json.loads(json.dumps(SPEC))
    spec["train"] |= train
    return spec


def _same_results(a: Path, b: Path) -> None:
    """Two folders hold the same runs, statuses, final values and metric histories (bit for bit)."""
    sa, sb = open_store(a), open_store(b)
    assert sa.statuses() == sb.statuses()
    ma = sa.metrics().sort_values(["run_id", "step", "name"]).reset_index(drop=True)
    mb = sb.metrics().sort_values(["run_id", "step", "name"]).reset_index(drop=True)
    assert len(ma) > 0 and ma.equals(mb)
    finals = [c for c in sa.runs().columns if c.startswith(("final.", "steps_to."))]
    ra, rb = (s.runs().set_index("run_id").sort_index()[finals] for s in (sa, sb))
    assert ra.equals(rb)
    sa.close()
    sb.close()


def _refused(tmp_path: Path, *flags: str) -> str:
    """``learnlab run`` of SPEC with ``flags``: exit 2 within seconds, nothing written; what it said."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    out = tmp_path / "out"
    start = time.monotonic()
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(out), *flags])
    assert result.exit_code == 2, result.output
    assert time.monotonic() - start < 10
    assert not out.exists()
    said = " ".join(result.output.split())
    assert "Traceback" not in said
    return said


def _wait(predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)


def _queued(array_id: str) -> list[str]:
    done = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-j", array_id], capture_output=True, text=True)
    return done.stdout.split()


def _paced(tmp_path: Path, monkeypatch, seconds: float, **train) -> dict:
    """A spec of two stacked runs that take at least ``seconds`` inside a SLURM job (the ``pace`` probe
    sleeps there, and only there: the same spec trains at full speed in this process). The probe's
    module is in ``tmp_path``, importable here and, through ``sweep.slurm.setup``, in the jobs."""
    (tmp_path / "learnlab_pace.py").write_text(PACE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # for a driver started as a subprocess
    spec = _spec(**train)
    every = 10
    calls = train["steps"] // every
    spec["train"]["probes"] = [{"name": "learnlab_pace:pace", "every": every, "options": {"seconds": seconds / calls}}]
    spec["sweep"] = {"grid": {"train.lr": [0.01, 0.05]}, "slurm": {"setup": [f"export PYTHONPATH={tmp_path}"]}}
    return spec


@pytest.fixture(scope="module")
def serial_reference(tmp_path_factory):
    """The default spec run in this process (the reference every SLURM path must equal)."""
    out = tmp_path_factory.mktemp("serial")
    sweep(SPEC, out=out, executor="serial", progress=False).close()
    return out


# --- without SLURM -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, minutes",
    [(90, 90), ("90", 90), ("1:30", 2), ("01:00:00", 60), ("2-0", 2880), ("1-02:03", 1563), ("0-00:00:01", 1)],
)
def test_time_limits_are_read_as_slurm_reads_them(text, minutes):
    assert parse_time(text) == minutes


@pytest.mark.parametrize("bad", ["soon", "1:2:3:4", "-5", 0, "0:00", True, "1-xx"])
def test_bad_time_limits_name_the_allowed_forms(bad):
    with pytest.raises(ValueError, match="time limit"):
        parse_time(bad)


def test_spec_slurm_section_is_validated_with_the_key_named(tmp_path):
    spec = _spec()
    spec["sweep"]["slurm"] = {"time": "soon", "mem": "lots", "gpus": -1, "partitionn": "gpu"}
    with pytest.raises(SpecError) as err:
        plan(spec, out=tmp_path / "out", executor="slurm")
    text = str(err.value)
    for key in ("sweep.slurm.time", "sweep.slurm.mem", "sweep.slurm.gpus", "sweep.slurm.partitionn"):
        assert key in text
    assert not (tmp_path / "out").exists()


def test_slurm_section_does_not_change_run_ids():
    spec = _spec()
    spec["sweep"]["slurm"] = {"partition": "gpu", "time": "4:00:00", "gpus": 1}
    assert [r.run_id for r in plan(spec).runs] == [r.run_id for r in plan(_spec()).runs]


def test_slurm_options_need_the_slurm_executor(tmp_path):
    assert "need executor 'slurm'" in _refused(tmp_path, "--executor", "ensemble", "--slurm-partition", "x")


def test_no_sbatch_on_path_is_exit_2_within_seconds_and_nothing_written(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"  # a PATH with python but no SLURM commands
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    said = _refused(tmp_path, "--executor", "slurm")
    assert "sbatch" in said and "not on PATH" in said


def test_groups_are_packed_whole_into_array_tasks():
    groups = [[1, 2, 3], [4], [5, 6], [7]]
    assert array_tasks(groups, 3) == [[[1, 2, 3]], [[4], [5, 6]], [[7]]]
    assert array_tasks(groups, 1) == [[g] for g in groups]
    assert array_tasks(groups, 100) == [groups]
    many = [[k] for k in range(2000)]  # by default at most 512 tasks
    assert len(array_tasks(many, None)) == 500 and [g for t in array_tasks(many, None) for g in t] == many


# --- against a real SLURM --------------------------------------------------------------------------


@pytest.mark.slurm
def test_controller_down_is_exit_2_within_seconds_and_nothing_written(tmp_path, monkeypatch):
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))
    text = conf.read_text().replace("SlurmctldPort=6817", "SlurmctldPort=6899")
    assert "6899" in text
    (tmp_path / "slurm.conf").write_text(text)
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "slurm.conf"))
    assert "controller does not answer" in _refused(tmp_path, "--executor", "slurm")


@pytest.mark.slurm
def test_unknown_partition_is_slurms_error_before_anything_is_written(tmp_path):
    said = _refused(tmp_path, "--executor", "slurm", "--slurm-partition", "nosuchpart")
    assert "invalid partition" in said.lower()


@pytest.mark.slurm
def test_a_slurm_sweep_stores_what_a_serial_one_does(tmp_path, serial_reference):
    out = tmp_path / "out"
    store = sweep(SPEC, out=out, executor="slurm", progress=False)
    assert set(store.statuses().values()) == {"finished"}
    store.close()
    _same_results(out, serial_reference)
    ledger = Ledger(out)
    assert ledger.jobs and not ledger.open_jobs()  # every job collected
    assert all(not (out / "slurm" / j.id / f"{j.id}_0_result.pkl").exists() for j in ledger.jobs)
    assert all((out / "slurm" / j.id / f"{j.id}_0_log.out").is_file() for j in ledger.jobs)  # logs are kept


@pytest.mark.slurm
def test_more_tasks_than_an_array_job_may_have_go_out_as_several_array_jobs(tmp_path, serial_reference, monkeypatch):
    import learnlab.experiments._slurm as slurm

    monkeypatch.setattr(slurm, "max_array_tasks", lambda: 1)  # as on a cluster with MaxArraySize=2
    out = tmp_path / "out"
    sweep(SPEC, out=out, executor="slurm", progress=False).close()  # 2 stacked groups: 2 tasks
    jobs = Ledger(out).jobs
    assert len(jobs) == 2 and len({j.id.split("_")[0] for j in jobs}) == 2  # two array jobs of one task
    _same_results(out, serial_reference)


@pytest.mark.slurm
def test_detach_then_a_later_run_collects(tmp_path, serial_reference):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    out = tmp_path / "out"
    runner = CliRunner()
    start = time.monotonic()
    result = runner.invoke(app, ["run", str(spec), "--out", str(out), "--executor", "slurm", "--detach"])
    assert result.exit_code == 0, result.output
    assert time.monotonic() - start < 15  # it submits and returns
    said = " ".join(result.output.split())
    assert "8 runs in" in said and "SLURM jobs" in said and f"learnlab status {out}" in said
    jobs = Ledger(out).open_jobs()
    assert jobs and sum(len(j.runs) for j in jobs) == 8
    status = runner.invoke(app, ["status", str(out)])
    assert status.exit_code == 0
    assert jobs[0].id in status.output
    again = runner.invoke(app, ["run", str(spec), "--out", str(out)])  # auto: collects the jobs, waits for them
    assert again.exit_code == 0, again.output
    assert "executor: slurm" in " ".join(again.output.split())
    _same_results(out, serial_reference)
    assert not Ledger(out).open_jobs()


@pytest.mark.slurm
def test_a_job_cancelled_mid_run_is_submitted_again_and_resumes_to_the_same_values(tmp_path, monkeypatch):
    """The job takes >= 20 s (paced), so it is surely mid-run when cancelled (SLURM's KillWait is 5 s)."""
    spec = _paced(tmp_path, monkeypatch, 20.0, steps=4000, eval_every=500, checkpoint_every=100)
    reference = tmp_path / "reference"
    sweep(spec, out=reference, executor="ensemble", progress=False).close()
    out = tmp_path / "out"
    sweep(spec, out=out, executor="slurm", detach=True, progress=False).close()
    (job,) = Ledger(out).open_jobs()
    _wait(lambda: any((out / "checkpoints").glob("group-*.pt")), 120, "the job's first checkpoint")
    subprocess.run(["scancel", job.id.split("_")[0]], check=True)
    _wait(lambda: not _queued(job.id.split("_")[0]), 60, "the cancelled job to leave the queue")
    assert any((out / "checkpoints").glob("group-*.pt"))  # the runs stopped mid-way
    store = sweep(spec, out=out, progress=False)  # auto: the folder's SLURM jobs are collected
    assert set(store.statuses().values()) == {"finished"}
    store.close()
    _same_results(out, reference)
    ledger = Ledger(out)
    assert len(ledger.jobs) == 2 and set(ledger.attempts.values()) == {2}


@pytest.mark.slurm
def test_a_job_cancelled_while_the_driver_watches_leaves_interrupted_runs_a_rerun_completes(tmp_path, monkeypatch):
    spec = _paced(tmp_path, monkeypatch, 20.0, steps=4000, eval_every=500, checkpoint_every=100)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    learnlab = Path(sys.executable).parent / "learnlab"
    driver = subprocess.Popen(
        [str(learnlab), "run", str(path), "--out", str(out), "--executor", "slurm"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait(lambda: any((out / "checkpoints").glob("group-*.pt")), 120, "the job's first checkpoint")
        (job,) = Ledger(out).open_jobs()
        subprocess.run(["scancel", job.id.split("_")[0]], check=True)
        output, _ = driver.communicate(timeout=120)
    finally:
        driver.kill()
    assert driver.returncode == 0, output
    store = open_store(out)
    runs = store.runs()
    assert set(runs["status"]) == {"interrupted"}
    assert runs["error"].str.contains(f"SLURM job {job.id} was cancelled").all()
    store.close()
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    store = open_store(out)
    assert set(store.statuses().values()) == {"finished"}
    store.close()


@pytest.mark.slurm
def test_a_job_that_fails_leaves_its_runs_failed_with_slurms_reason(tmp_path):
    spec = _spec()
    spec["sweep"]["slurm"] = {"setup": ["exit 3"]}  # the job script fails before learnlab starts
    out = tmp_path / "out"
    store = sweep(spec, out=out, executor="slurm", progress=False)
    runs = store.runs()
    assert set(runs["status"]) == {"failed"}
    assert runs["error"].str.contains("ended FAILED").all()
    assert runs["error"].str.contains("exit code 3:0").all()
    store.close()
    # the failed runs are not results: the same sweep without the broken setup completes them
    spec["sweep"]["slurm"] = {}
    store = sweep(spec, out=out, executor="slurm", progress=False)
    assert set(store.statuses().values()) == {"finished"}
    store.close()


PACE = """
import os
import time


def pace(model, ctx, seconds=0.0):
    \"\"\"A probe that measures nothing and, inside a SLURM job only, takes ``seconds``.\"\"\"
    if os.environ.get("SLURM_JOB_ID"):
        time.sleep(seconds)
    return {}
"""


@pytest.mark.slurm
@pytest.mark.slow
def test_a_job_hitting_its_time_limit_is_requeued_and_completes(tmp_path, monkeypatch):
    """A 1-minute limit and runs that take at least 30 s in the job (a probe sleeps there): SLURM signals
    the job by 30 s in (its timer ticks every 30 s); the group saves its state at the next step, submitit
    requeues the job, and the runs resume from there (without that save no attempt could finish: the
    runs have no periodic checkpoints) to the values of one uninterrupted run in this process."""
    spec = _paced(tmp_path, monkeypatch, 30.0, steps=6000, eval_every=500)  # no periodic checkpoints
    spec["sweep"]["slurm"] |= {"time": 1, "max_requeues": 8}
    out = tmp_path / "out"
    store = sweep(spec, out=out, executor="slurm", progress=False)
    assert set(store.statuses().values()) == {"finished"}
    store.close()
    (job,) = Ledger(out).jobs
    log = (out / "slurm" / job.id / f"{job.id}_0_log.err").read_text()
    assert "this job is timed-out" in log  # it was signalled and requeued at least once
    reference = tmp_path / "reference"
    sweep(spec, out=reference, executor="ensemble", progress=False).close()
    _same_results(out, reference)


def test_slurm_tests_are_skipped_with_a_reason_where_no_slurm_is():
    """The hook in conftest: without a controller, the reason names how to start one."""
    problem = slurm_problem()
    if problem is not None:
        assert ".ci/slurm/start" in problem
    elif shutil.which("scontrol") is None:  # pragma: no cover
        pytest.fail("slurm_problem() found SLURM although scontrol is missing")


@pytest.mark.parametrize(
    "state, earlier, attempts, expect",
    [
        ("TIMEOUT", False, 1, "resubmit"),
        ("PREEMPTED", False, 3, "resubmit"),
        ("NODE_FAIL", True, 1, "resubmit-later"),
        ("TIMEOUT", False, 4, "failed"),  # max_requeues 3: the fourth end is the last
        ("OUT_OF_MEMORY", False, 1, "failed"),
        ("FAILED", True, 1, "failed"),
        ("CANCELLED", False, 1, "interrupted"),
        ("CANCELLED by 0", True, 1, "resubmit-later"),
        ("UNKNOWN", True, 1, "resubmit-later"),
        ("UNKNOWN", False, 1, "failed"),
    ],
)
def test_how_a_job_that_ended_without_a_result_is_handled(tmp_path, state, earlier, attempts, expect):
    """The classification the real-SLURM tests reach only in part (a node failure cannot be staged here)."""
    from learnlab.experiments._slurm import Job, SlurmExecutor, SlurmOptions

    ex = object.__new__(SlurmExecutor)
    ex.out, ex.options = tmp_path, SlurmOptions(max_requeues=3)
    ledger = Ledger(tmp_path)
    ledger.attempts = {"a": attempts, "b": 1}
    (tmp_path / "slurm" / "7_1").mkdir(parents=True)
    (tmp_path / "slurm" / "7_1" / "7_1_0_log.err").write_text("x\nMemoryError: out of it\n")
    resubmit: list[str] = []
    results = [
        r
        for group in ex._ended(Job("7_1", ["a", "b"], 0.0), state, "reason R", earlier, ledger, resubmit)
        for r in group
    ]
    if expect == "resubmit":
        assert resubmit == ["a", "b"] and not results
    elif expect == "resubmit-later":  # found by a later run: its runs go out with the missing ones
        assert not resubmit and not results
    else:
        assert not resubmit and [r.run_id for r in results] == ["a", "b"]
        assert {r.status for r in results} == {expect}
        assert all("SLURM job 7_1" in r.error for r in results)
        if expect == "failed":
            assert "MemoryError: out of it" in results[0].error and "reason R" in results[0].error


def test_status_counts_many_jobs_by_state(serial_reference, monkeypatch):
    """Past 20 jobs, `learnlab status` counts them by state and reason instead of listing each."""
    import learnlab.experiments._slurm as slurm

    rows = [{"job": f"9_{k}", "state": "PENDING", "reason": "Priority", "runs": 64} for k in range(23)]
    rows += [{"job": "9_23", "state": "RUNNING", "reason": "None", "runs": 8}]
    monkeypatch.setattr(slurm, "slurm_jobs", lambda out: rows)
    result = CliRunner().invoke(app, ["status", str(serial_reference)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "SLURM jobs not yet collected (24)" in said
    assert "PENDING │ Priority │ 23 │ 1472 │ 9_0" in said and "RUNNING │ None │ 1 │ 8 │ 9_23" in said
    assert "9_5 " not in said  # not listed one by one


@pytest.mark.slurm
def test_runs_on_cuda_ask_for_a_gpu_and_a_cluster_without_one_says_so_at_plan_time(tmp_path):
    """train.device: cuda makes each job ask for one GPU (unless --slurm-gpus says otherwise); the test
    cluster has none, so sbatch --test-only refuses it while planning, before anything is written."""
    spec = _spec(device="cuda")
    with pytest.raises(ValueError, match="SLURM refuses the jobs"):
        plan(spec, out=tmp_path / "out", executor="slurm")
    assert not (tmp_path / "out").exists()


def test_status_leaves_out_jobs_whose_runs_are_all_done(serial_reference, tmp_path):
    """A folder whose runs were trained by another executor while its SLURM jobs were queued: the
    ledger still has them open, but there is nothing of them to show (and SLURM is not asked)."""
    import shutil as sh

    from learnlab.experiments import slurm_jobs
    from learnlab.experiments._slurm import Job

    out = tmp_path / "out"
    sh.copytree(serial_reference, out)
    ledger = Ledger(out)
    ledger.jobs = [Job("77_0", list(open_store(out).statuses()), 0.0)]
    ledger.save()
    assert Ledger(out).open_jobs() and slurm_jobs(out) == []


REQUEUE_PROBE = """
from learnlab.train._checkpoint import RUNNING

AT = {"step": None}


class Requeued(BaseException):
    pass


def requeue_at(model, ctx):
    # at step AT: ask the running loop's checkpointer to save, then 'requeue' (raise), as a SLURM signal does
    if ctx.step == AT["step"]:
        AT["step"] = None

        def then():
            raise Requeued(ctx.step)

        RUNNING[-1].request(then)
    return {}
"""


def test_a_signal_saves_the_group_at_the_next_step_and_the_requeued_job_resumes_there(tmp_path, monkeypatch):
    """What a SLURM job does on its time-limit signal, without SLURM: the running loop's checkpointer is
    asked to save (no run has checkpoint_every), saves at the next step boundary, then the requeue runs;
    the group run again resumes from that step and ends bit for bit as one uninterrupted run."""
    from learnlab.experiments import run_group

    (tmp_path / "requeue_probe.py").write_text(REQUEUE_PROBE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import requeue_probe

    spec = _spec(steps=60, eval_every=10)
    spec["train"]["probes"] = [{"name": "requeue_probe:requeue_at", "every": 1}]
    spec["sweep"] = {"grid": {"train.lr": [0.01, 0.05]}}
    configs = [r.config for r in plan(spec).runs]
    whole = run_group(configs, out=tmp_path / "whole", checkpoint_on_request=True)
    assert not list((tmp_path / "whole" / "checkpoints").glob("*"))  # nothing asked: nothing saved

    requeue_probe.AT["step"] = 23
    with pytest.raises(requeue_probe.Requeued):
        run_group(configs, out=tmp_path / "job", checkpoint_on_request=True)
    (path,) = (tmp_path / "job" / "checkpoints").glob("group-*.pt")
    assert torch.load(path, weights_only=True)["step"] == 24  # the step boundary after the signal

    resumed = run_group(configs, out=tmp_path / "job", checkpoint_on_request=True)
    assert not path.exists()
    for a, b in zip(whole, resumed):
        assert (a.run_id, a.status, a.step) == (b.run_id, b.status, b.step)
        assert a.metrics == b.metrics and a.final == b.final


def test_without_on_request_checkpoints_a_request_finds_no_loop_to_ask(tmp_path, monkeypatch):
    """Outside a SLURM job (no checkpoint_on_request, no checkpoint_every) no checkpointer runs."""
    from learnlab.experiments import run_group
    from learnlab.train._checkpoint import RUNNING

    seen = []
    spec = _spec(steps=5, eval_every=5)
    spec["train"]["probes"] = [{"name": lambda model, ctx: seen.append(list(RUNNING)) or {}, "every": 1}]
    run_group([r.config for r in plan(spec).runs][:1], out=tmp_path)
    assert seen and all(r == [] for r in seen) and RUNNING == []
