"""Fuzz the command line with mutated specs, overrides, dataset files, stores and checkpoints.

Every case runs ``learnlab run --dry-run`` (and, when the plan is small and valid, the real
``learnlab run``; for damaged stores also ``status``, ``report`` and ``export``) in a worker
process. A case passes when every command exits 0 or 2 without a traceback. The driver
counts tracebacks, other exit codes, hangs (a case over its time limit: the worker is
killed) and memory kills (a worker that dies), prints a table of the failures and, as its
last line, one JSON object of the counts.

    python tools/fuzz_cli.py --cases 1000 --workers 2
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing as mp
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from fuzz_cases import BASE_SPECS, make_case  # noqa: E402 - beside this script

MAX_RUN_STEPS = 20_000  # a valid plan is also run when its runs' steps add up to at most this


def _small_enough(spec: str, overrides: list[str]) -> bool:
    from learnlab.experiments import plan

    try:
        p = plan(spec, overrides)
    except Exception:  # noqa: BLE001 - the dry run said what was wrong
        return False
    steps = 0
    for run in p.runs:
        config = run.validated()
        steps += config.train.total_steps(getattr(config.task, "n_train", None))
    return steps <= MAX_RUN_STEPS


def _damage_store(kind: str, seed: int) -> None:
    """Make a real store in ``out`` (a short sweep, killed midway or not), then damage it."""
    from learnlab.experiments import sweep

    rng = random.Random(seed)
    spec = copy.deepcopy(BASE_SPECS["parity"])
    if kind == "checkpoint":
        spec["train"].update(checkpoint_every=2, save_final=True)
    sweep(spec, out="out", executor="serial", progress=False).close()
    if kind == "store":
        db = Path("out/results.db")
        data = bytearray(db.read_bytes())
        op = rng.randrange(4)
        if op == 0:
            data = data[: rng.randrange(len(data))]
        elif op == 1:
            for _ in range(rng.randint(1, 50)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 2:
            data = bytearray()
        else:
            data[:16] = b"not a database!!"
        db.write_bytes(bytes(data))
        import sqlite3

        conn = sqlite3.connect("out/results.db")
        try:  # some cases: a run left unfinished
            conn.execute("UPDATE runs SET status = 'running' WHERE rowid = 1")
            conn.commit()
        except (sqlite3.DatabaseError, UnicodeDecodeError):  # the store is damaged: that is the case
            pass
        finally:
            conn.close()
    else:
        import sqlite3

        conn = sqlite3.connect("out/results.db")
        conn.execute("UPDATE runs SET status = 'interrupted'")  # so the run resumes from checkpoints
        conn.commit()
        conn.close()
        for path in sorted(Path("out").glob("**/*.pt")):
            op = rng.randrange(4)
            if op == 0:
                path.write_bytes(path.read_bytes()[: rng.randrange(path.stat().st_size)])
            elif op == 1:
                path.write_bytes(os.urandom(rng.randint(0, 4096)))
            elif op == 2:
                import pickle

                class Evil:
                    def __reduce__(self):
                        return (os.system, ("touch pwned",))

                path.write_bytes(pickle.dumps(Evil()))
            # op 3: left intact


# ---- workers -----------------------------------------------------------------------------


MEMORY_LIMIT = 6 * 2**30  # address space of a worker: a case that would take more fails, not the machine


def _worker(conn) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    os.environ.setdefault("LEARNLAB_TUNE_CPU", "0")
    from typer.testing import CliRunner

    from learnlab.cli import app

    runner = CliRunner()
    while True:
        case = conn.recv()
        if case is None:
            return
        outcomes = []
        folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
        cwd = os.getcwd()
        try:
            for rel, data in case["files"].items():
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                (folder / rel).write_bytes(data)
            os.chdir(folder)
            for command in case["commands"]:
                if command[0] == "store-setup":
                    _damage_store(command[1], int(command[2]))
                    continue
                if command[0] == "run-if-small":
                    args = [a for a in command[1:] if a not in ("--out", "out")]
                    if outcomes and outcomes[-1]["code"] != 0 or not _small_enough(args[0], args[1:]):
                        continue
                    command = ["run", *command[1:]]
                result = runner.invoke(app, command)
                exc = result.exception
                tb = exc is not None and not isinstance(exc, SystemExit)
                text = result.output
                outcomes.append(
                    {
                        "command": " ".join(command)[:200],
                        "code": result.exit_code,
                        "traceback": tb or "Traceback (most recent call last)" in text,
                        "error": "".join(traceback.format_exception(exc))[-1500:] if tb else "",
                        "tail": text[-300:],
                    }
                )
            if Path("pwned").exists():
                outcomes.append({"command": "checkpoint", "code": -1, "traceback": True, "error": "pickle ran"})
        except Exception:  # noqa: BLE001 - the harness's own failure is a finding too
            outcomes.append({"command": "harness", "code": -1, "traceback": True, "error": traceback.format_exc()})
        finally:
            os.chdir(cwd)
            shutil.rmtree(folder, ignore_errors=True)
        conn.send(outcomes)


class Worker:
    def __init__(self, ctx):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child,))  # not a daemon: process pools start children
        self.proc.start()

    def stop(self):
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a case may take before it is a hang")
    args = parser.parse_args(argv)
    ctx = mp.get_context("spawn")
    cases = iter(range(args.cases))
    workers: dict[Worker, tuple[dict, float] | None] = {Worker(ctx): None for _ in range(args.workers)}
    counts = {"cases": 0, "commands": 0, "exit_0": 0, "exit_2": 0, "tracebacks": 0, "other_exits": 0}
    counts |= {"hangs": 0, "memory_kills": 0, "by_kind": {}}
    failures: list[tuple[dict, str]] = []
    started = time.monotonic()
    pending = True
    while pending or any(v is not None for v in workers.values()):
        for worker, job in list(workers.items()):
            if job is None and pending:
                i = next(cases, None)
                if i is None:
                    pending = False
                    continue
                case = make_case(i, args.seed)
                worker.conn.send(case)
                workers[worker] = (case, time.monotonic())
                continue
            if job is None:
                continue
            case, since = job
            if worker.conn.poll(0.01):
                try:
                    outcomes = worker.conn.recv()
                except EOFError:
                    outcomes = None
                if outcomes is not None:
                    _count(counts, failures, case, outcomes)
                    workers[worker] = None
                    continue
            dead = not worker.proc.is_alive()
            if dead or time.monotonic() - since > args.timeout:
                code = worker.proc.exitcode
                worker.stop()
                key = "memory_kills" if dead else "hangs"
                counts[key] += 1
                counts["cases"] += 1
                failures.append((case, f"{key[:-1]} (worker exit {code})"))
                del workers[worker]
                workers[Worker(ctx)] = None
        time.sleep(0.005)
    for worker in workers:
        worker.conn.send(None)
        worker.proc.join(timeout=10)
        worker.stop()
    counts["seconds"] = round(time.monotonic() - started, 1)
    _report(counts, failures)
    return counts


def _count(counts: dict, failures: list, case: dict, outcomes: list[dict]) -> None:
    counts["cases"] += 1
    counts["by_kind"][case["kind"]] = counts["by_kind"].get(case["kind"], 0) + 1
    for outcome in outcomes:
        counts["commands"] += 1
        if "MemoryError" in outcome["error"] or "can't allocate" in outcome["error"]:
            counts["memory_kills"] += 1  # past the worker's memory limit: a kill without it
            failures.append((case, f"{outcome['command']}: out of memory: {outcome['error']}"))
        elif outcome["traceback"]:
            counts["tracebacks"] += 1
            failures.append((case, f"{outcome['command']}: {outcome['error'] or outcome['tail']}"))
        elif outcome["code"] in (0, 2):
            counts[f"exit_{outcome['code']}"] += 1
        else:
            counts["other_exits"] += 1
            failures.append((case, f"{outcome['command']}: exit {outcome['code']}: {outcome['tail']}"))


def _report(counts: dict, failures: list) -> None:
    print(f"{'case':>6}  {'kind':<10} {'base':<8} problem")
    for case, problem in failures[:50]:
        first = problem.strip().splitlines()
        print(f"{case['i']:>6}  {case['kind']:<10} {case['base']:<8} {first[0][:120] if first else ''}")
        for line in first[-3:]:
            print(f"{'':>27}{line[:120]}")
    if len(failures) > 50:
        print(f"... {len(failures) - 50} more")
    print(
        f"{counts['cases']} cases, {counts['commands']} commands in {counts['seconds']} s: "
        f"{counts['exit_0']} exit 0, {counts['exit_2']} exit 2, {counts['tracebacks']} tracebacks, "
        f"{counts['other_exits']} other exits, {counts['hangs']} hangs, {counts['memory_kills']} memory kills"
    )
    print(json.dumps(counts))


if __name__ == "__main__":
    result = main()
    sys.exit(
        0 if not (result["tracebacks"] or result["other_exits"] or result["hangs"] or result["memory_kills"]) else 1
    )
