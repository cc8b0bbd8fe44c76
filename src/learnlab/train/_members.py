"""From recipes (``TrainSpec``) to the loop's pieces: a Member per run and the settings they share.

Used by the sweep runner and by the Python API alike, so both train the same way. What a
member owns and what the stack shares follows the spec's declaration: a field declared
``per_member`` goes to the :class:`Member`, every other field must agree across the
stack and goes to :class:`LoopSettings`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import cast

import torch

from learnlab._spec_base import member_fields
from learnlab.tasks import BatchStream
from learnlab.train._evaluation import fixed_source, streamed_source, target_components
from learnlab.train._loop import LoopSettings, Member
from learnlab.train._losses import get_loss
from learnlab.train._probes import make_probes
from learnlab.train._spec import ProbeSpec, TrainSpec
from learnlab.train._thresholds import ThresholdTracker

__all__ = ["make_member", "loop_settings", "ProbeCache"]


class ProbeCache:
    """Probe objects for ``train.probes`` entries, one per distinct entry, so members that ask
    for the same probe share it (the loop then runs it once for the whole stack)."""

    def __init__(self):
        self._built: dict[str, object] = {}

    def __call__(self, specs: Sequence[ProbeSpec]) -> list:
        out = []
        for spec in specs:
            key = json.dumps(spec.model_dump(mode="json"), sort_keys=True, default=str)
            if key not in self._built:
                (self._built[key],) = make_probes([spec])
            out.append(self._built[key])
        return out


def make_member(
    task,
    recipe: TrainSpec,
    seed_for: Callable[[str], int],
    *,
    dtype: torch.dtype = torch.float32,
    device="cpu",
    probes: Sequence | None = None,
    streams: dict | None = None,
) -> Member:
    """A run's data stream, eval sets, trackers and per-member settings.

    Args:
        task: its task.
        recipe: its ``train`` section.
        seed_for: ``seed_for(role)`` seeds each random stream (``data``, ``test``, ``large``).
        dtype, device: of its data.
        probes: its probe objects (default: built from ``recipe.probes``).
        streams: the data streams of the stack built so far: a member with the same task object,
            batch size and data seed shares its stream (drawn once per step for all of them), and
            with the same task object and test seed its test set (drawn once).
    """
    key = (id(task), recipe.batch_size, seed_for("data"), dtype, str(device))
    stream = None if streams is None else streams.get(key)
    if stream is None:
        data_gen = torch.Generator(device=device).manual_seed(seed_for("data"))
        stream = BatchStream(task, recipe.batch_size, data_gen, dtype=dtype, device=device)
        if streams is not None:
            streams[key] = stream
    test_key = ("test", id(task), seed_for("test"), dtype, str(device))  # the same points: one copy
    test = None if streams is None else streams.get(test_key)
    if test is None:
        test_gen = torch.Generator(device=device).manual_seed(seed_for("test"))
        test = fixed_source(*task.test_sample(test_gen, dtype=dtype, device=device))
        if streams is not None:
            streams[test_key] = test
    evals = {"test": test}
    for name in recipe.eval_sets:
        if name == "train":
            # an offline task's sample (the experiment spec requires n_train for eval set 'train')
            evals["train"] = fixed_source(*cast("tuple[torch.Tensor, torch.Tensor]", stream.sample))
        elif name == "grid":
            x = task.inputs.grid(recipe.grid_points, dtype=dtype, device=device)
            evals["grid"] = fixed_source(x, task.target(x))
        elif name == "large":
            evals["large"] = streamed_source(task, recipe.large_n, seed_for("large"), dtype=dtype, device=device)
    smoother = recipe.ema if recipe.threshold_metric == "train/loss" else 0.0
    schedule = recipe.schedule
    return Member(
        stream=stream,
        evals=evals,
        tracker=ThresholdTracker(recipe.thresholds, smoother, relative=recipe.relative_thresholds),
        threshold_metric=recipe.threshold_metric,
        stop_at_thresholds=recipe.stop_at_thresholds,
        diverge_factor=recipe.diverge_factor,
        task=task,
        components=target_components(task.target),
        probes=make_probes(recipe.probes) if probes is None else list(probes),
        schedule=schedule if schedule.name != "constant" or schedule.warmup else None,
        clip_grad_norm=recipe.clip_grad_norm,
        keep_final=recipe.save_final,
    )


def loop_settings(recipes: Sequence[TrainSpec], n_train: int | None, *, loss=None) -> LoopSettings:
    """The settings a stack's recipes share (``loss``, a callable, overrides the spec's name).

    Raises:
        ValueError: if the recipes differ in a field that is not declared per-member.
    """
    recipes = list(recipes)
    first, shared = recipes[0], _shared(recipes[0])
    for i, recipe in enumerate(recipes[1:], start=1):
        other = _shared(recipe)
        diff = sorted(k for k in shared if shared[k] != other[k])
        if diff:
            raise ValueError(
                f"train sections 0 and {i} differ in {diff}, which every member of a stack shares; "
                f"only {', '.join(_member_train_keys())} may differ"
            )
    return LoopSettings(
        steps=first.total_steps(n_train),
        eval_every=first.eval_every,
        log_every=first.log_every,
        metrics=tuple(first.measured()),
        loss_fn=loss if loss is not None else get_loss(first.loss),
        compile=first.compile,
    )


@functools.cache
def _member_train_keys() -> tuple[str, ...]:
    return tuple(member_fields(TrainSpec))


def _shared(recipe: TrainSpec) -> dict:
    return recipe.model_dump(mode="json", exclude=set(_member_train_keys()))
