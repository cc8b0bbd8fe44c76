"""From a recipe (``TrainSpec``) to the loop's pieces: a Member per run and shared settings.

Used by the sweep runner and by the Python API alike, so both train the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from learnlab.tasks import BatchStream
from learnlab.train._evaluation import fixed_source, streamed_source, target_components
from learnlab.train._loop import LoopSettings, Member
from learnlab.train._losses import get_loss
from learnlab.train._probes import make_probes
from learnlab.train._spec import TrainSpec
from learnlab.train._thresholds import ThresholdTracker

__all__ = ["make_member", "loop_settings"]


def make_member(
    task, recipe: TrainSpec, seed_for: Callable[[str], int], *, dtype: torch.dtype = torch.float32, device="cpu"
) -> Member:
    """A run's data stream, eval sets and trackers; ``seed_for(role)`` seeds each random stream."""
    data_gen = torch.Generator(device=device).manual_seed(seed_for("data"))
    test_gen = torch.Generator(device=device).manual_seed(seed_for("test"))
    stream = BatchStream(task, recipe.batch_size, data_gen, dtype=dtype, device=device)
    evals = {"test": fixed_source(*task.test_sample(test_gen, dtype=dtype, device=device))}
    for name in recipe.eval_sets:
        if name == "train":
            evals["train"] = fixed_source(*stream.sample)
        elif name == "grid":
            x = task.inputs.grid(recipe.grid_points, dtype=dtype, device=device)
            evals["grid"] = fixed_source(x, task.target(x))
        elif name == "large":
            evals["large"] = streamed_source(task, recipe.large_n, seed_for("large"), dtype=dtype, device=device)
    smoother = recipe.ema if recipe.threshold_metric == "train/loss" else 0.0
    return Member(
        stream=stream,
        evals=evals,
        tracker=ThresholdTracker(recipe.thresholds, smoother, relative=recipe.relative_thresholds),
        threshold_metric=recipe.threshold_metric,
        stop_at_thresholds=recipe.stop_at_thresholds,
        diverge_factor=recipe.diverge_factor,
        task=task,
        components=target_components(task.target),
    )


def loop_settings(
    recipe: TrainSpec, n_train: int | None, *, loss=None, probes=(), stacked=True, lr_hook=None
) -> LoopSettings:
    """Shared loop settings of a recipe (``loss``/``probes`` objects override the spec's names)."""
    schedule = recipe.schedule
    return LoopSettings(
        steps=recipe.total_steps(n_train),
        eval_every=recipe.eval_every,
        log_every=recipe.log_every,
        metrics=tuple(recipe.metrics),
        loss_fn=loss if loss is not None else get_loss(recipe.loss),
        schedule=schedule if schedule.name != "constant" or schedule.warmup else None,
        clip_grad_norm=recipe.clip_grad_norm,
        probes=[*make_probes(recipe.probes), *probes],
        stacked=stacked,
        lr_hook=lr_hook,
        keep_final=recipe.save_final,
    )
