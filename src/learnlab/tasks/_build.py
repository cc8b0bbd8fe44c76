"""From a validated ``TaskSpec`` to task objects (inputs, targets, datasets)."""

from __future__ import annotations

from typing import cast

import numpy as np
import torch

from learnlab._errors import validated
from learnlab._seeds import target_seed
from learnlab.tasks._index_models import MultiIndex, SingleIndex, random_directions
from learnlab.tasks._inputs import INPUTS, Gaussian, Inputs
from learnlab.tasks._power_law import PowerLaw, power_law_coefficients, relu_level_coefficients, top_monomials
from learnlab.tasks._spec import TaskSpec
from learnlab.tasks._targets import FunctionTarget, Hermite, Labelled, Parity, Sine
from learnlab.tasks._task import Task
from learnlab.tasks._teacher import Teacher

__all__ = ["make_task", "build_task", "build_inputs", "build_target"]


def make_task(section: dict | TaskSpec | Task, seed: int = 0) -> Task:
    """Build a :class:`Task` from the ``task`` section of a spec (a dict or a validated spec).

    A real dataset (``task.dataset``) gives a :class:`~learnlab.tasks.DatasetTask`, a
    subclass with the same interface; a task object is returned unchanged.

    Args:
        section: the ``task`` section, or a task (returned as it is).
        seed: the run's seed: a random target (teacher, index-model directions) whose own
            ``seed`` is null is drawn from it and the target section (as a run with this seed
            draws it; see ``learnlab._seeds``).

    Raises:
        learnlab.SpecError: if the section is invalid (every problem listed, ``task.<key>: ...``).
    """
    if isinstance(section, Task):
        return section
    spec = section if isinstance(section, TaskSpec) else validated(TaskSpec, section, "task")
    return build_task(spec, seed)


def build_task(spec: TaskSpec, seed: int = 0) -> Task:
    """The task a validated spec describes, for a run with this seed (see :func:`make_task`)."""
    if spec.dataset is not None:
        from learnlab.tasks._dataset_task import DatasetInputs, DatasetLabels, DatasetTask, class_groups
        from learnlab.tasks._datasets import DATASETS

        groups = class_groups(spec.classes, spec.binarize, DATASETS[spec.dataset].classes)
        shape = DATASETS[spec.dataset].shape
        channels = 1 if spec.grayscale and len(shape) == 3 else shape[0]
        d = int(np.prod(shape[1:])) * channels if len(shape) == 3 else int(np.prod(shape))
        labels = DatasetLabels(outputs=1 if len(groups) == 2 else len(groups), labels=spec.label_kind())
        return DatasetTask(
            # only inputs.d is read: DatasetTask draws its samples itself, not through inputs.sample
            inputs=cast(Inputs, DatasetInputs(spec.dataset, d)),
            target=labels,
            noise=spec.noise,
            n_train=spec.n_train,
            n_test=spec.n_test,
            dataset=spec.dataset,
            data_dir=spec.data_dir,
            groups=tuple(tuple(g) for g in groups),
            grayscale=spec.grayscale,
            center=spec.center,
            normalize=spec.normalize,
            spec=spec,
        )
    inputs = build_inputs(spec.inputs)
    target_spec = spec.target
    if target_spec is not None and getattr(target_spec, "seed", 1) is None:  # a random target seeded by the run
        target_spec = target_spec.model_copy(update={"seed": target_seed(spec, seed)})
    target = build_target(target_spec, inputs)
    return Task(inputs=inputs, target=target, noise=spec.noise, n_train=spec.n_train, n_test=spec.n_test, spec=spec)


def build_inputs(spec):
    """An input distribution from its spec model."""
    params = spec.model_dump(exclude={"name"})
    if spec.name == "gaussian" and spec.spectrum is not None:
        params["spectrum"] = tuple(spec.spectrum)
    return INPUTS[spec.name](**params)


def _scale(inputs) -> tuple[float, ...] | None:
    """sqrt(lambda) of anisotropic Gaussian inputs (Hermite targets use z = x / sqrt(lambda))."""
    if isinstance(inputs, Gaussian) and inputs.spectrum is not None:
        return tuple(np.sqrt(inputs.eigenvalues()).tolist())
    return None


def _terms(terms) -> tuple:
    return tuple((tuple(sorted(t.monomial.items())), float(t.coef)) for t in terms)


def build_target(spec, inputs):
    """A target from its spec model, for ``inputs`` (its d and spectrum)."""
    target = _BUILDERS[spec.name](spec, inputs)
    labels = getattr(spec, "labels", "value")
    return Labelled(target, labels) if labels != "value" else target


def _parity(spec, inputs):
    return Parity(indices=tuple(tuple(s) for s in spec.indices), normalize=spec.normalize)


def _staircase(spec, inputs):
    sets = spec.indices if spec.indices is not None else [list(range(k + 1)) for k in range(spec.degree)]
    return Parity(indices=tuple(tuple(s) for s in sets), normalize=spec.normalize)


def _hermite(spec, inputs):
    if spec.monomial is not None:
        return Hermite(monomial=tuple(sorted(spec.monomial.items())), scale=_scale(inputs))
    return Hermite(terms=_terms(spec.terms), scale=_scale(inputs))


def _single_index(spec, inputs):
    if spec.direction is not None:
        w = torch.tensor(spec.direction, dtype=torch.float64)
        w = w / torch.linalg.vector_norm(w)
    else:
        w = random_directions(inputs.d, 1, spec.seed)[0]
    coefs = tuple(spec.coefficients) if spec.coefficients is not None else None
    return SingleIndex(direction=tuple(w.tolist()), link=spec.link, coefficients=coefs)


def _multi_index(spec, inputs):
    if spec.directions is not None:
        w = torch.tensor(spec.directions, dtype=torch.float64)
        w = w / torch.linalg.vector_norm(w, dim=1, keepdim=True)
    else:
        w = random_directions(inputs.d, spec.r, spec.seed)
    terms = _terms(spec.terms) if spec.terms is not None else None
    outputs = spec.outputs if terms is None and spec.link not in ("product", "norm", "max") else 1
    return MultiIndex(directions=tuple(tuple(row) for row in w.tolist()), link=spec.link, terms=terms, outputs=outputs)


def _teacher(spec, inputs):
    return Teacher(d=inputs.d, widths=tuple(spec.widths), seed=spec.seed, init=spec.init, outputs=spec.outputs)


def _sine(spec, inputs):
    return Sine(f=spec.f)


def _power_law(spec, inputs):
    lam = inputs.eigenvalues()
    scale = _scale(inputs)
    if spec.target_monomials is not None:
        monomials = [tuple(sorted((i, k) for i, k in m.items() if k > 0)) for m in spec.target_monomials]
        m = len(monomials)
        coefs = np.full(m, 1.0 / np.sqrt(m) if spec.normalized else 1.0 / m)
        return PowerLaw(monomials=tuple(monomials), coefs=tuple(coefs.tolist()), scale=scale)
    level = relu_level_coefficients(lam / lam.sum(), spec.weight_variance, spec.bias_variance, spec.kmax)
    found, values = top_monomials(lam / lam.sum(), spec.cutoff_mode, level)
    coefs = power_law_coefficients(len(found), spec.beta, spec.yoffset, spec.normalized)
    return PowerLaw(
        monomials=tuple(tuple(sorted(m.items())) for m in found),
        coefs=tuple(coefs.tolist()),
        eigenvalues=tuple(values.tolist()),
        scale=scale,
    )


def _callable(spec, inputs):
    return FunctionTarget(ref=spec.function, outputs=spec.outputs, kwargs=tuple(sorted(spec.kwargs.items())))


_BUILDERS = {
    "parity": _parity,
    "staircase": _staircase,
    "hermite": _hermite,
    "single_index": _single_index,
    "multi_index": _multi_index,
    "teacher": _teacher,
    "sine": _sine,
    "power_law": _power_law,
    "callable": _callable,
}
