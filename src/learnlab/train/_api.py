"""``learnlab.train(model, task, **recipe)``: the loop for notebooks and scripts.

Takes any ``nn.Module`` (or a learnlab model), any loss callable and any
``torch.optim`` optimizer as well as learnlab's own names, and runs the same loop as
a sweep does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from learnlab._errors import SpecError, validated
from learnlab._seeds import data_seeds, derive_seed, init_seed
from learnlab.models._spec import ModelSpec
from learnlab.train._history import History
from learnlab.train._loop import fit
from learnlab.train._members import loop_settings, make_member
from learnlab.train._spec import ProbeSpec, TrainSpec
from learnlab.train._threads import step_threads

__all__ = ["train"]

_TORCH_OPTIMIZERS = {
    "sgd": lambda params, r: torch.optim.SGD(params, lr=r.lr, weight_decay=r.weight_decay),
    "momentum": lambda params, r: torch.optim.SGD(params, lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay),
    "nesterov": lambda params, r: torch.optim.SGD(
        params, lr=r.lr, momentum=r.momentum, nesterov=True, weight_decay=r.weight_decay
    ),
    "adam": lambda params, r: torch.optim.Adam(params, lr=r.lr, betas=r.betas, eps=r.eps, weight_decay=r.weight_decay),
    "adamw": lambda params, r: torch.optim.AdamW(
        params, lr=r.lr, betas=r.betas, eps=r.eps, weight_decay=r.weight_decay
    ),
}


def train(
    model: nn.Module | dict | ModelSpec,
    task,
    *,
    optimizer: str | torch.optim.Optimizer = "sgd",
    loss: str | Callable = "mse",
    probes: Sequence = (),
    seed: int = 0,
    progress: bool = True,
    **recipe,
) -> History:
    """Train a model on ``task`` with the recipe's keys (those of a spec's ``train`` section).

    Given the ``model`` and ``task`` sections of a spec, a recipe and a seed, this is the run a
    sweep makes of that config and seed, bit for bit: the same initial draw, data streams and
    target (every random role seeded as in a sweep, see :mod:`learnlab._seeds`).

    Args:
        model: a ``model`` section (dict or ``ModelSpec``: built here, with the run's initial
            draw), a learnlab model (a stack of one), or any ``nn.Module`` mapping
            (batch, d) -> (batch, k), trained in place.
        task: a ``task`` section (dict or ``TaskSpec``: built here for this seed) or a
            :class:`~learnlab.tasks.Task` (used as built; ``make_task(section, seed)``).
        optimizer: a name (``sgd``, ``momentum``, ``nesterov``, ``adam``, ``adamw``) or a
            ``torch.optim.Optimizer`` already built on ``model``'s parameters.
        loss: a name (``mse``, ``cross_entropy``, ``hinge``, ``logistic``) or a callable
            ``loss(out, y) -> scalar`` on (batch, k) tensors, like ``nn.MSELoss()``.
        probes: probe callables (``probe(model, ctx) -> dict``, attribute ``every``) and/or
            ``train.probes`` entries (``{"name": "param_norm", "every": 100}``).
        seed: the run's seed: its data streams, a random target and (for a model section)
            its initial draw derive from it.
        progress: show a progress bar.
        **recipe: any other ``train`` key: ``lr``, ``steps``, ``epochs``, ``batch_size``,
            ``eval_every``, ``metrics``, ``eval_sets``, ``thresholds``, ``schedule``,
            ``dtype`` and ``device`` (of a model built from a section), ...

    Returns:
        The run's :class:`History` (``history.to_frame()`` for a DataFrame).
    """
    from learnlab._cpu import tune_cpu
    from learnlab.models import as_stack
    from learnlab.tasks import Task, make_task

    tune_cpu()
    task = task if isinstance(task, Task) else make_task(task, seed)
    entries = [p for p in probes if isinstance(p, (dict, ProbeSpec))]  # spec entries; the rest are callables
    probes = [p for p in probes if not isinstance(p, (dict, ProbeSpec))]
    if entries:
        recipe = {**recipe, "probes": [*recipe.get("probes", []), *entries]}
    spec = validated(
        TrainSpec,
        recipe,
        "train",
        source="learnlab.train",
        optimizer=optimizer if isinstance(optimizer, str) else "sgd",
        loss=loss if isinstance(loss, str) else "mse",
    )
    if spec.metrics is None:  # those that match the loss and the task's labels
        labels = task.spec.label_kind() if task.spec is not None else getattr(task.target, "labels", "value")
        spec.metrics = spec.measured(labels)
    if isinstance(model, (dict, ModelSpec)):
        model = _built(model, task, spec, seed)
    stack = as_stack(model)
    if stack.members != 1:
        raise ValueError(
            f"learnlab.train trains one run; the model stacks {stack.members} members "
            "(train stacks through a sweep, or build the model with one generator)"
        )
    param = next(model.parameters())
    dtype, device = param.dtype, param.device
    _check_fits(stack, task, dtype, device)
    opt = optimizer if isinstance(optimizer, torch.optim.Optimizer) else _build_optimizer(model, spec)
    loss_fn = None
    if not isinstance(loss, str):
        loss_fn = lambda out, y: loss(out[0], y[0]).reshape(1)  # noqa: E731 - a stack of one
    streams = data_seeds(task.spec, seed) if task.spec is not None else lambda stream: derive_seed(seed, "", stream)
    member = make_member(task, spec, streams, dtype=dtype, device=device)
    member.probes = [*member.probes, *probes]
    n_train = None if member.stream.sample is None else member.stream.sample[0].shape[0]
    settings = loop_settings([spec], n_train, loss=loss_fn)
    bar = _progress(settings.steps) if progress else None
    try:
        with step_threads(stack, spec.batch_size) as tune:
            hooks = [h for h in (tune, bar and (lambda t: bar.update(1))) if h]
            (history,) = fit(
                stack, opt, [member], settings, on_step=(lambda t: [h(t) for h in hooks]) if hooks else None
            )
    finally:
        if bar is not None:
            bar.close()
    return history


def _built(section: dict | ModelSpec, task, recipe: TrainSpec, seed: int) -> nn.Module:
    """The model a section describes for this task, with the run's initial draw (as a sweep builds it)."""
    from learnlab.models import build_model

    spec = section if isinstance(section, ModelSpec) else validated(ModelSpec, section, "model", "learnlab.train")
    from learnlab._devices import resolve_device

    generator = torch.Generator().manual_seed(init_seed(spec, seed, task.d, task.outputs))
    device = resolve_device(recipe.device)
    return build_model(spec, task.d, task.outputs, generators=[generator], dtype=recipe.torch_dtype, device=device)


@torch.no_grad()
def _check_fits(stack, task, dtype, device) -> None:
    """SpecError unless the model maps the task's (batch, d) inputs to its (batch, outputs): one
    forward of zeros in eval mode (no batch statistics change, no random draw)."""
    modes = [(m, m.training) for m in stack.modules()]
    stack.eval()
    try:
        out = stack(torch.zeros(1, 2, task.d, dtype=dtype, device=device))
    except (RuntimeError, ValueError, TypeError) as exc:
        size = _input_size(stack)
        takes = f", but its first layer takes {size}" if size is not None and size != task.d else ""
        raise SpecError(
            [
                (
                    "model",
                    f"the task's inputs have d = {task.d} features{takes}: the model fails on a (batch, {task.d}) "
                    f"batch ({str(exc).splitlines()[0]}); build it for d = {task.d}",
                )
            ],
            source="learnlab.train",
        ) from None
    finally:
        for m, training in modes:
            m.training = training
    if out.shape[-1] != task.outputs:
        raise SpecError(
            [
                (
                    "model",
                    f"the model has {out.shape[-1]} outputs, the task's targets {task.outputs}; build it with "
                    f"{task.outputs}",
                )
            ],
            source="learnlab.train",
        )


def _input_size(module) -> int | None:
    """in_features / in_channels of the first Linear or convolution, if there is one."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            return m.in_features
        if isinstance(m, nn.modules.conv._ConvNd):
            return m.in_channels
    return None


def _build_optimizer(model, spec: TrainSpec):
    if hasattr(model, "learnlab_scaling"):  # learnlab models and apply_parameterization
        from learnlab.models import build_optimizer

        return build_optimizer(
            model,
            spec.optimizer,
            lr=spec.lr,
            momentum=spec.momentum,
            betas=spec.betas,
            eps=spec.eps,
            weight_decay=spec.weight_decay,
            independent_weight_decay=spec.independent_weight_decay,
        )
    return _TORCH_OPTIMIZERS[spec.optimizer](model.parameters(), spec)


def _progress(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="train", unit="step", leave=False)
