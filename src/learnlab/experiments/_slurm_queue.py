"""Talking to SLURM: is it there, what a partition and the cluster allow, what state a job is in.

Only SLURM's own commands (``scontrol``, ``squeue``, ``sacct`` where accounting is on), each
within a timeout; no accounting database is needed. The slurm executor (``_slurm``) builds on these.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from learnlab.experiments._spec import parse_time

__all__ = [
    "SlurmError",
    "run_command",
    "check_reachable",
    "partition_time",
    "max_array_tasks",
    "queue_states",
    "ended_state",
    "ACTIVE",
    "RETRY",
    "CANCELLED",
    "MAX_ARRAY_TASKS",
]

COMMAND_TIMEOUT_S = 10.0  # a SLURM command that takes longer is treated as SLURM not answering
MAX_ARRAY_TASKS = 512  # default: groups are packed into at most this many array tasks

# squeue states of a job that is not over (it may still write its result)
ACTIVE = {
    "PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
    "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT",
}  # fmt: skip
RETRY = {"TIMEOUT", "PREEMPTED", "NODE_FAIL", "BOOT_FAIL"}  # the job's fault is SLURM's: submit again
CANCELLED = "CANCELLED"


class SlurmError(ValueError):
    """SLURM cannot be reached, or refused a submission (its own message is in the text)."""


def run_command(args: list[str], timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise SlurmError(
            f"`{' '.join(args[:2])}` did not answer within {timeout:g} s: is the SLURM controller up?"
        ) from None
    except OSError as exc:
        raise SlurmError(f"cannot run {args[0]}: {exc}") from None


def check_reachable() -> None:
    """Fail fast (SlurmError, within seconds) unless ``sbatch`` exists and the controller answers.

    ``scontrol ping`` says at once whether slurmctld is up (``sinfo`` retries for ~10 s)."""
    missing = [c for c in ("sbatch", "squeue", "scontrol") if shutil.which(c) is None]
    if missing:
        raise SlurmError(
            f"the slurm executor needs SLURM's commands, and {', '.join(missing)} is not on PATH: run learnlab "
            "on a machine of the cluster (a login node), or use another --executor"
        )
    done = run_command(["scontrol", "ping"])
    text = (done.stdout + done.stderr).strip()
    if done.returncode != 0 or " is UP" not in text:
        first = text.splitlines()[0] if text else f"exit code {done.returncode}"
        raise SlurmError(f"the SLURM controller does not answer (`scontrol ping`: {first}); nothing was submitted")


def partition_time(partition: str | None) -> int | None:
    """The time limit (minutes) a job gets in ``partition`` (None: the default partition) when it
    asks for none: the partition's DefaultTime, else its MaxTime; None if both are unlimited."""
    done = run_command(["scontrol", "-o", "show", "partition", *([partition] if partition else [])])
    for line in done.stdout.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if partition is None and fields.get("Default") != "YES":
            continue
        for key in ("DefaultTime", "MaxTime"):
            value = fields.get(key, "")
            if value and value.upper() not in ("NONE", "UNLIMITED", "INFINITE"):
                return parse_time(value)
        return None
    return None


def max_array_tasks() -> int:
    """Tasks one array job may have here: the cluster's MaxArraySize - 1 (indices start at 0)."""
    done = run_command(["scontrol", "show", "config"])
    found = re.search(r"^MaxArraySize\s*=\s*(\d+)", done.stdout, re.M)
    return max(1, int(found[1]) - 1) if found else MAX_ARRAY_TASKS


def queue_states(ids: list[str]) -> dict[str, tuple[str, str]]:
    """job id -> (state, reason) of the jobs SLURM still lists (array tasks one per line)."""
    if not ids:
        return {}
    done = run_command(["squeue", "-h", "-r", "-o", "%i|%T|%r", "-j", ",".join(sorted({i.split("_")[0] for i in ids}))])
    states = {}
    for line in done.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            states[parts[0]] = (parts[1], parts[2])
    if done.returncode != 0 and not states and "Invalid job id" not in done.stderr:
        raise SlurmError(f"squeue failed: {done.stderr.strip() or done.returncode}")
    return states


def ended_state(job_id: str) -> tuple[str, str]:
    """(state, detail) of a job SLURM no longer queues: from ``scontrol show job`` (kept for
    MinJobAge after the end), else ``sacct`` (where accounting is on), else UNKNOWN."""
    done = run_command(["scontrol", "-o", "show", "job", job_id])
    if done.returncode == 0 and "JobState=" in done.stdout:
        fields = dict(re.findall(r"(\w+)=(\S*)", done.stdout))
        detail = f"reason {fields.get('Reason', '?')}, exit code {fields.get('ExitCode', '?')}"
        return fields.get("JobState", "UNKNOWN"), detail
    if shutil.which("sacct"):
        acct = run_command(["sacct", "-n", "-X", "-P", "-o", "State,ExitCode", "-j", job_id])
        line = acct.stdout.strip().splitlines()[:1]
        if acct.returncode == 0 and line and "|" in line[0]:
            state, code = line[0].split("|", 1)
            return state.split()[0], f"exit code {code}"
    return "UNKNOWN", "SLURM no longer knows the job"
