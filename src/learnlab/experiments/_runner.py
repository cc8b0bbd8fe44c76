"""Train one group of runs (a single run is a group of one) and collect its results."""

from __future__ import annotations

import hashlib
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from learnlab._callables import install
from learnlab.experiments._build import Built, build_group
from learnlab.experiments._expand import Run
from learnlab.experiments._store import RunResult
from learnlab.train import History, fit
from learnlab.train._checkpoint import Checkpointer, read_state
from learnlab.train._loggers import make_loggers
from learnlab.train._threads import step_threads

__all__ = ["run_group"]


def run_group(
    runs: Sequence[Run | dict],
    out: str | Path | None = None,
    callables: dict | None = None,
    device: str | None = None,
    on_result: Callable[[RunResult], object] | None = None,
    checkpoint_on_request: bool = False,
) -> list[RunResult]:
    """Train runs sharing all shapes as one stacked model; never raises for a run's own failure.

    Args:
        runs: the group's runs (or resolved config dicts).
        out: the sweep's output folder, for checkpoints, artifacts and loggers (optional).
        callables: cloudpickled notebook callables the configs reference (from the driver).
        device: run on this device instead of ``train.device`` (the executors' ``--devices``).
        on_result: called with each run's result as soon as the run is over: when it leaves the
            stack (diverged, or stopped at its thresholds) or at the group's last step (an
            exception it raises is not a run's failure: it propagates).
        checkpoint_on_request: keep a checkpointer even if no run asks for periodic checkpoints,
            so that a request (a SLURM job's time-limit signal) saves the group's state.

    Returns:
        Every run's result, in order. A run that cannot be built or crashes is ``failed`` with
        the traceback, so a sweep goes on.
    """
    started = time.time()
    group = [Run.of(r) for r in runs]
    ids = [r.run_id for r in group]
    results: dict[int, RunResult] = {}
    loggers = []
    try:
        install(callables)
        built = build_group(group, device)
        out = Path(out) if out is not None else None
        for member, run in zip(built.members, group):
            member.history.sinks = make_loggers(run.config["train"]["loggers"], out, run.run_id, run.config)
            loggers += member.history.sinks

        def ended(i: int, history: History) -> None:
            results[i] = _result(built, i, history, out, started)
            if on_result is not None:
                try:
                    on_result(results[i])
                except BaseException as exc:  # the caller's, not the run's
                    raise _CallerError() from exc

        checkpoint = _checkpointer(built, out, checkpoint_on_request)
        resume = _resume_states(group, out)
        with step_threads(built.model, built.configs[0].train.batch_size) as on_step:
            histories = fit(
                built.model,
                built.optimizer,
                built.members,
                built.settings,
                on_step=on_step,
                checkpoint=checkpoint,
                resume=resume,
                on_end=ended,
            )
        for i, history in enumerate(histories):  # runs that ended before a restored checkpoint
            if i not in results:
                results[i] = _result(built, i, history, out, started)
        if checkpoint is not None:
            checkpoint.remove()
    except _CallerError as exc:
        raise exc.__cause__ from None  # type: ignore[misc]
    except Exception:  # noqa: BLE001 - recorded as the outcome of the runs not over yet
        err = traceback.format_exc()
        for i, rid in enumerate(ids):
            if i not in results:
                results[i] = RunResult(rid, "failed", error=err, started=started, finished=time.time())
    finally:
        for logger in loggers:
            logger.close()
    return [results[i] for i in range(len(ids))]


class _CallerError(Exception):
    """An exception raised by ``on_result``, carried through the training loop."""


def _result(built: Built, i: int, history: History, out: Path | None, started: float) -> RunResult:
    """Run i's result, its outputs (artifacts, saved weights and state) written first."""
    rid = built.ids[i]
    artifacts = _save_outputs(rid, built.members[i], out)
    metrics = [(s, name, v) for name, rows in history.metrics.items() for s, v in rows]
    final = dict(history.final)
    if built.runs[i].config.get("theory") is not None:
        rows, finals = _theory(built, i)
        metrics += rows
        final |= finals
    return RunResult(
        rid,
        history.status,
        error=history.reason,
        step=history.step,
        started=started,
        finished=time.time(),
        final=final,
        thresholds={repr(float(c)): s for c, s in history.thresholds.items()},
        metrics=metrics,
        artifacts=artifacts,
    )


def _theory(built: Built, i: int) -> tuple[list[tuple[int, str, float]], dict[str, float]]:
    """Run i's kernel predictions (its ``theory`` section) on its own training sample and test set.

    A prediction that cannot be computed (a singular Gram matrix, say) is a warning, not the
    run's failure: its training results stand."""
    import warnings

    from learnlab.theory._run import run_predictions

    config, member = built.configs[i], built.members[i]
    sample = member.stream.sample
    if sample is None:  # the spec requires an offline task for theory
        raise ValueError(f"run {built.ids[i]} has a theory section but no fixed training sample")
    test = member.evals["test"]
    x_test, y_test = (torch.cat(parts) for parts in zip(*test.chunks(test.n)))
    n_train = sample[0].shape[0]
    try:
        return run_predictions(
            built.runs[i].config,
            built.tasks[i],
            sample,
            (x_test, y_test),
            eval_every=config.train.eval_every,
            steps=config.train.total_steps(n_train),
            seed=int(built.runs[i].config["seed"]),
        )
    except (ValueError, RuntimeError, torch.linalg.LinAlgError) as exc:
        warnings.warn(f"run {built.ids[i]}: no theory predictions: {exc}", RuntimeWarning, stacklevel=2)
        return [], {}


def _checkpointer(built: Built, out: Path | None, on_request: bool = False) -> Checkpointer | None:
    """One checkpoint file per group, every min(checkpoint_every) steps of the members that ask;
    with ``on_request`` (a SLURM job) also for groups that ask for none, saving only when requested."""
    every = [c.train.checkpoint_every for c in built.configs if c.train.checkpoint_every]
    if out is None or not (every or on_request):
        return None
    name = hashlib.sha256(",".join(sorted(built.ids)).encode()).hexdigest()[:16]
    return Checkpointer(out / "checkpoints" / f"group-{name}.pt", min(every) if every else sys.maxsize)


def state_path(out: Path, run_id: str) -> Path:
    """Where a run with ``save_final`` keeps the loop state a longer run of its config continues from."""
    return out / "checkpoints" / f"{run_id}.state.pt"


def _resume_states(group: list[Run], out: Path | None) -> dict[int, dict] | None:
    """The saved states the group's runs extend (every run of an extending group has one).

    None (the group trains from step 0, to the same result) if one of them cannot be read:
    it is moved aside with a :class:`~learnlab.train.CheckpointWarning`.
    """
    if out is None or not any(r.extends for r in group):
        return None
    states = {}
    for row, run in enumerate(group):
        if run.extends is None:
            raise ValueError(f"run {run.run_id} is grouped with runs that extend shorter runs, but extends none")
        others = f", as do the {len(group) - 1} runs grouped with it" if len(group) > 1 else ""
        then = f"run {run.run_id}, which continues it, restarts from step 0{others}"
        state = read_state(state_path(out, run.extends[0]), "saved state", then)
        if state is None:
            return None
        states[row] = state
    return states


def _save_outputs(rid: str, member, out: Path | None) -> str | None:
    """A run's probe tensors to artifacts/<run_id>.pt (their path, relative to ``out``, is returned);
    with save_final its final weights to checkpoints/<run_id>.pt and the state a longer run
    continues from to checkpoints/<run_id>.state.pt."""
    if out is None:
        return None
    if member.final_state is not None:  # train.save_final: this member's own state
        _save(member.final_state, out / "checkpoints" / f"{rid}.pt")
    if member.resume_state is not None:
        _save(member.resume_state, state_path(out, rid))
    if not member.artifacts:
        return None
    path = out / "artifacts" / f"{rid}.pt"
    _save({k: [(s, v) for s, v in rows] for k, rows in member.artifacts.items()}, path)
    return str(path.relative_to(out))


def _save(obj, path: Path) -> None:
    """torch.save to a temporary file renamed into place: a kill never leaves a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
