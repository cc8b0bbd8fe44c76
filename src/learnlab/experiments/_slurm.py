"""The ``slurm`` executor: groups of runs as one SLURM array job, submitted with submitit.

Consecutive groups (stacked where possible) are packed into array tasks; each task trains its
groups one after another with :func:`run_group` and returns their results through submitit's
result file. The driver watches the files and the queue (``squeue``; no accounting database
is needed) and alone writes the store: nothing writes SQLite over a shared file system.

What SLURM does to jobs, and what the driver makes of it:

* a job that reaches its time limit, or is preempted, gets submitit's signal: the group it trains
  saves its state at the next step, then submitit requeues the job (the same job id), which
  resumes there; a job that ends TIMEOUT, PREEMPTED, NODE_FAIL or BOOT_FAIL without being
  requeued is submitted again by the driver (up to ``max_requeues`` times) and resumes from the
  last periodic checkpoint (``train.checkpoint_every``), if any;
* a job that fails (FAILED, OUT_OF_MEMORY, ...) leaves its runs ``failed`` with SLURM's state,
  reason and exit code, and the last line of the job's log;
* a job cancelled (``scancel``) while the driver watches leaves its runs ``interrupted``; a job
  found cancelled when a later ``learnlab run`` collects is submitted again.

The driver keeps a ledger of its jobs in ``OUT/slurm/jobs.json`` (the jobs' logs and submitit's
files are in ``OUT/slurm/<job id>/``), so ``--detach`` can submit and return, and a later run
collects what finished and submits what is missing.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from learnlab._callables import install, payload, refs_in
from learnlab._worker import Warned, forwarded_warnings
from learnlab.experiments._expand import Run
from learnlab.experiments._groups import batch_groups
from learnlab.experiments._slurm_queue import (
    ACTIVE,
    CANCELLED,
    MAX_ARRAY_TASKS,
    RETRY,
    SlurmError,
    check_reachable,
    ended_state,
    max_array_tasks,
    partition_time,
    queue_states,
    run_command,
)
from learnlab.experiments._spec import parse_time
from learnlab.experiments._store import RunResult

__all__ = [
    "SlurmExecutor",
    "SlurmError",
    "check_reachable",
    "check_submittable",
    "parse_time",
    "Ledger",
    "slurm_jobs",
    "SLURM_DIR",
]

SLURM_DIR = "slurm"  # OUT/slurm: the ledger, and a folder per job with its logs and submitit's files
LEDGER = "jobs.json"
POLL_S = 1.0  # result files are looked for this often
QUEUE_POLL_S = 5.0  # squeue is asked this often (a cluster's controller is shared)


@dataclass
class SlurmOptions:
    """What each job asks SLURM for (``sweep.slurm`` in a spec, ``--slurm-*`` on the command line)."""

    partition: str | None = None
    time: int | None = None  # minutes
    cpus: int | None = None
    gpus: int = 0
    mem: str | None = None
    qos: str | None = None
    account: str | None = None
    max_jobs: int | None = None
    runs_per_job: int | None = None
    max_requeues: int = 3
    setup: list[str] = field(default_factory=list)
    sbatch: dict[str, str] = field(default_factory=dict)

    def parameters(self, name: str) -> dict:
        """submitit's ``update_parameters`` arguments."""
        extra = dict(self.sbatch)
        if self.mem is not None:
            extra["mem"] = self.mem
        params: dict = {"job_name": name, "setup": list(self.setup), "additional_parameters": extra}
        for key, value in (
            ("partition", self.partition),
            ("cpus_per_task", self.cpus),
            ("qos", self.qos),
            ("account", self.account),
            ("array_parallelism", self.max_jobs),
        ):
            if value is not None:
                params[key] = value
        if self.gpus:
            params["gpus_per_node"] = self.gpus
        params["time"] = self.time  # None: no --time, the partition's default applies
        if self.time is not None:
            # the signal that lets a job requeue itself comes this long before its time limit
            params["signal_delay_s"] = int(min(90, self.time * 60 / 2))
        return params


def _executor(folder: Path, options: SlurmOptions, name: str):
    try:
        import submitit
    except ImportError as exc:  # pragma: no cover - CI installs the extra
        raise ImportError("the slurm executor needs submitit: pip install 'learnlab[slurm]'") from exc
    ex = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=options.max_requeues)
    ex.update_parameters(**options.parameters(name))
    return ex


def check_submittable(options: SlurmOptions, name: str = "learnlab") -> None:
    """``sbatch --test-only`` with the jobs' flags: SLURM's own error (an unknown partition,
    account or QOS, a time limit over the partition's) as a SlurmError, before anything is written."""
    from submitit.slurm.slurm import _make_sbatch_string

    with tempfile.TemporaryDirectory(prefix="learnlab-slurm-") as tmp:
        ex = _executor(Path(tmp), options, name)
        params = dict(ex.parameters)
        params.pop("array_parallelism", None)
        script = Path(tmp) / "test.sh"
        text = _make_sbatch_string(command="true", folder=Path(tmp) / "%j", **params)
        script.write_text(text)
        done = run_command(["sbatch", "--test-only", str(script)])
    if done.returncode != 0:
        said = " ".join(line.strip() for line in done.stderr.strip().splitlines()) or f"exit code {done.returncode}"
        skip = ("--output", "--error", "--open-mode", "--signal", "--wckey")
        flags = [line.removeprefix("#SBATCH ") for line in text.splitlines() if line.startswith("#SBATCH")]
        asked = " ".join(f for f in flags if not f.startswith(skip))
        raise SlurmError(f"SLURM refuses the jobs: {said}; each job asks for: {asked}")


class _Task:
    """One array task: train its groups one after another; submitit requeues it on a time limit or
    preemption (``checkpoint``), and the groups resume from their checkpoints."""

    def __call__(self, groups, out, callables, device) -> tuple[list[list[RunResult]], list[Warned]]:
        import torch

        from learnlab._cpu import tune_cpu
        from learnlab.experiments._runner import run_group

        tune_cpu()
        torch.set_num_threads(max(1, int(os.environ.get("SLURM_CPUS_PER_TASK", "1"))))
        install(callables)
        _save_before_requeue()
        warned: list[Warned] = []
        with forwarded_warnings(warned.append):
            return [run_group(group, out, None, device, checkpoint_on_request=True) for group in groups], warned

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on the time-limit (or preemption) signal: run the same task again."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def _save_before_requeue() -> None:
    """In a job: on submitit's signal (time limit or preemption), the group training now saves its
    state at the next step boundary and only then does submitit requeue the job (and exit), so the
    requeued job resumes exactly there; outside a training loop the signal is submitit's at once."""
    import signal

    from submitit.core.job_environment import JobEnvironment

    from learnlab.train._checkpoint import RUNNING

    sig = JobEnvironment._usr_sig()
    requeue = signal.getsignal(sig)  # submitit's handler, installed before the task runs
    if not callable(requeue):
        return

    def on_signal(signum, frame):
        if RUNNING:
            RUNNING[-1].request(lambda: requeue(signum, None))
        else:
            requeue(signum, frame)

    signal.signal(sig, on_signal)


@dataclass
class Job:
    """A submitted array task: its id (``123_4``, or ``123``), its runs, and whether it was collected."""

    id: str
    runs: list[str]
    submitted: float
    open: bool = True
    state: str = "SUBMITTED"


class Ledger:
    """``OUT/slurm/jobs.json``: the jobs a driver submitted (written only by the driver, atomically)."""

    def __init__(self, out: Path):
        self.path = Path(out) / SLURM_DIR / LEDGER
        self.jobs: list[Job] = []
        self.options: dict = {}
        self.attempts: dict[str, int] = {}  # run id -> jobs submitted for it
        if self.path.is_file():
            data = json.loads(self.path.read_text())
            self.jobs = [Job(**j) for j in data.get("jobs", [])]
            self.options = data.get("options", {})
            self.attempts = data.get("attempts", {})

    def open_jobs(self) -> list[Job]:
        return [j for j in self.jobs if j.open]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"options": self.options, "attempts": self.attempts, "jobs": [j.__dict__ for j in self.jobs]}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)


class SlurmExecutor:
    """Runs groups of runs as a SLURM array job; yields each task's groups as its result appears.

    Args:
        workers: unused (SLURM decides how many jobs run at once; cap it with ``max_jobs``).
        out: the sweep's output folder: a path every node of the cluster can read and write
            (checkpoints, artifacts, the jobs' logs under ``OUT/slurm/``).
        detach: submit and return; a later run (``learnlab run`` on the same folder) collects.
        devices: only ``["cpu"]``; SLURM places GPU jobs itself (``gpus``).
        **options: :class:`SlurmOptions` fields (``partition``, ``time``, ``gpus``, ...).

    Raises:
        SlurmError: SLURM is not reachable, or refuses the jobs' flags (its message), within seconds.
        ImportError: if submitit is not installed.
    """

    def __init__(
        self, workers=None, out=None, detach: bool = False, devices=None, job_name: str = "learnlab", **options
    ):
        if out is None:
            raise ValueError("the slurm executor needs an output folder every node can reach (out=...)")
        if devices and set(devices) != {"cpu"}:
            raise ValueError(
                f"devices {devices} name this machine's GPUs, but SLURM places jobs itself: set train.device: cuda "
                "and --slurm-gpus (each job sees its GPUs as cuda:0, ...)"
            )
        self.device = "cpu" if devices else None
        self.out = Path(out).resolve()
        self.detach = detach
        self.name = job_name
        self.options = options_from(options)
        check_reachable()
        if self.options.time is None:  # submitit needs the limit to tell a time-out from a preemption
            self.options.time = partition_time(self.options.partition)
        self.max_array = max_array_tasks()
        self.submitted: list[Job] = []  # this call's submissions (what --detach reports)

    def run(self, groups: list[list[Run]], on_result=None) -> Iterator[list[RunResult]]:
        """Collect the folder's earlier jobs, submit what no job holds, then (unless ``detach``)
        yield results as the jobs finish. Jobs keep running if the driver stops: a later run collects them."""
        todo = {r.run_id: r for g in groups for r in g}
        ledger = Ledger(self.out)
        ledger.options = asdict(self.options)
        watching: dict[str, Job] = {}
        for job in ledger.open_jobs():  # earlier jobs (a --detach, or a driver that stopped)
            if any(rid in todo for rid in job.runs):
                watching[job.id] = job
            else:
                job.open, job.state = False, "COLLECTED"
        gone: set[str] = set()  # runs whose results (or outcome) were yielded
        resubmit: list[str] = []
        if watching:
            for results in self._sweep_queue(watching, ledger, earlier=True, resubmit=resubmit):
                gone.update(r.run_id for r in results)
                yield results
        held = {rid for job in watching.values() for rid in job.runs}
        missing = [[r for r in g if r.run_id not in held and r.run_id not in gone] for g in groups]
        self._submit([g for g in missing if g], ledger, watching)
        ledger.save()
        if self.detach:
            return
        last_queue = time.monotonic()
        while watching:
            time.sleep(POLL_S * max(1, len(watching) / 100))  # a shared file system: ~100 looks a second at most
            ask = time.monotonic() - last_queue >= QUEUE_POLL_S
            if ask:
                last_queue = time.monotonic()
            resubmit = []
            yield from self._sweep_queue(watching, ledger, earlier=False, resubmit=resubmit, ask=ask)
            if resubmit:
                again = [[todo[rid] for rid in resubmit]]
                self._submit(again, ledger, watching)

    def _sweep_queue(self, watching, ledger, *, earlier: bool, resubmit: list[str], ask: bool = True):
        """Results of watched jobs that ended (yielded, and so stored, before the ledger closes
        their jobs); jobs that ended without one are classified."""
        states = None
        closed = False
        for job in list(watching.values()):
            result = self.out / SLURM_DIR / job.id / f"{job.id}_0_result.pkl"
            if result.is_file():
                del watching[job.id]
                job.open, job.state, closed = False, "COLLECTED", True
                yield from self._collect(job, result)
                continue
            if not ask:
                continue
            if states is None:
                states = queue_states(list(watching))
            if job.id in states and states[job.id][0] in ACTIVE:
                job.state = states[job.id][0]
                continue
            if result.is_file():  # it ended between the two looks: collected at the next
                continue
            state, detail = ended_state(job.id)
            del watching[job.id]
            job.open, job.state, closed = False, state, True
            yield from self._ended(job, state, detail, earlier, ledger, resubmit)
        if closed:
            ledger.save()

    def _ended(self, job: Job, state: str, detail: str, earlier: bool, ledger: Ledger, resubmit: list[str]):
        """A job SLURM finished without a result file."""
        base = state.split()[0] if state else "UNKNOWN"
        if base == CANCELLED:
            if not earlier:  # cancelled while this driver watched: the user stopped it
                reason = f"SLURM job {job.id} was cancelled ({detail}); run the sweep again to submit its runs again"
                yield [RunResult(rid, "interrupted", error=reason) for rid in job.runs]
            return  # found cancelled by a later run: its runs are submitted again
        tries = max(ledger.attempts.get(rid, 1) for rid in job.runs)
        if (base in RETRY or base == "UNKNOWN" and earlier) and tries <= self.options.max_requeues:
            if not earlier:
                resubmit.extend(job.runs)
            return  # an earlier job's runs are submitted again with the missing ones
        log = _last_line(self.out / SLURM_DIR / job.id / f"{job.id}_0_log.err")
        reason = f"SLURM job {job.id} ended {base} without a result ({detail})" + (f"; its log: {log}" if log else "")
        if base in RETRY:
            reason += f"; submitted {tries} times (max_requeues {self.options.max_requeues})"
        yield [RunResult(rid, "failed", error=reason) for rid in job.runs]

    def _collect(self, job: Job, path: Path) -> Iterator[list[RunResult]]:
        """A task's result file: its groups' results, or every run failed with the job's error."""
        import cloudpickle

        with open(path, "rb") as f:
            outcome, value = cloudpickle.load(f)
        if outcome == "success":
            results, warned = value
            for warning in warned:
                warning.warn()
            yield from results
        else:
            last = str(value).strip().splitlines()[-1:] or ["no message"]
            reason = f"SLURM job {job.id} failed: {last[0]} (log: {path.parent})"
            yield [RunResult(rid, "failed", error=reason) for rid in job.runs]
        for name in (f"{job.id}_submitted.pkl", f"{job.id}_0_result.pkl"):
            (path.parent / name).unlink(missing_ok=True)

    def _submit(self, groups: list[list[Run]], ledger: Ledger, watching: dict[str, Job]) -> None:
        """One array job for ``groups`` (packed into tasks), recorded in the ledger at once."""
        if not groups:
            return
        runs = [r for g in groups for r in g]
        cuda = [str(r.config["train"].get("device", "cpu")).startswith("cuda") for r in runs]
        device = "cuda" if all(cuda) and self.device is None else self.device
        options = self.options
        if any(cuda) and not options.gpus and self.device is None:
            options = SlurmOptions(**{**options.__dict__, "gpus": 1})
        tasks = array_tasks(groups, options.runs_per_job)
        shipped = payload(set().union(*(refs_in(r.config) for r in runs)))
        ex = _executor(self.out / SLURM_DIR, options, self.name)
        for start in range(0, len(tasks), self.max_array):  # the cluster's MaxArraySize caps one array job
            chunk = tasks[start : start + self.max_array]
            try:
                with ex.batch():
                    jobs = [ex.submit(_Task(), task, str(self.out), shipped, device) for task in chunk]
            except Exception as exc:  # noqa: BLE001 - submitit's errors carry sbatch's message
                error = SlurmError(f"SLURM refused the jobs: {' '.join(str(exc).split())}")
                error.nothing_started = not self.submitted  # type: ignore[attr-defined]
                raise error from None
            now = time.time()
            for job, task in zip(jobs, chunk):
                ids = [r.run_id for g in task for r in g]
                record = Job(str(job.job_id), ids, now)
                ledger.jobs.append(record)
                watching[record.id] = record
                self.submitted.append(record)
                for rid in ids:
                    ledger.attempts[rid] = ledger.attempts.get(rid, 0) + 1
            ledger.save()


def array_tasks(groups: list[list[Run]], runs_per_job: int | None) -> list[list[list[Run]]]:
    """The array tasks ``groups`` are submitted as: ``runs_per_job`` runs each (default: as many
    as keep the tasks at most MAX_ARRAY_TASKS), whole groups only."""
    runs = sum(len(g) for g in groups)
    return batch_groups(groups, runs_per_job or max(1, math.ceil(runs / MAX_ARRAY_TASKS)))


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1].strip()[:300] if lines else ""


def options_from(given: dict) -> SlurmOptions:
    """SlurmOptions from validated ``sweep.slurm`` / ``--slurm-*`` values (``time`` in any SLURM form)."""
    values = {k: v for k, v in given.items() if v is not None}
    unknown = sorted(set(values) - set(SlurmOptions.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown slurm options {unknown}; valid: {sorted(SlurmOptions.__dataclass_fields__)}")
    if "time" in values:
        values["time"] = parse_time(values["time"])
    return SlurmOptions(**values)


def slurm_jobs(out: str | Path) -> list[dict]:
    """The folder's jobs still in SLURM's hands (for ``learnlab status``): id, state, reason, runs.

    Jobs whose runs are all done in the store (collected, or trained again by another executor)
    are left out. Raises SlurmError if some remain and SLURM cannot be asked."""
    from learnlab.experiments._store import DONE_STATUSES, Store, db_path

    out = Path(out)
    jobs = Ledger(out).open_jobs()
    if jobs and db_path(out).is_file():
        with Store(out) as store:
            status = store.statuses()
        jobs = [j for j in jobs if any(status.get(rid) not in DONE_STATUSES for rid in j.runs)]
    if not jobs:
        return []
    check_reachable()
    states = queue_states([j.id for j in jobs])
    rows = []
    for job in jobs:
        state, reason = states.get(job.id, ("ENDED", "result not collected yet"))
        rows.append({"job": job.id, "state": state, "reason": reason, "runs": len(job.runs)})
    return rows
