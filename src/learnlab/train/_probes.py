"""Built-in probes and the registry that specs name (``train.probes: [{name: ..., every: ...}]``).

Every built-in works on any :class:`~learnlab.models.Stack` (a stacked learnlab model,
a stack of user modules, or a user module trained alone by ``learnlab.train``), asks it
for per-member views, and returns one value per member: (E,) tensors become scalars ``probe/<key>`` in the
run's metric history, (E, ...) tensors become artifacts (see ``_probes_api``).
Formulas are in each class's docstring and in ``docs/probes.md``. The sharpness (top
Hessian eigenvalue) is in ``learnlab.lr``.
"""

from __future__ import annotations

import functools
import inspect

from learnlab.train._probes_forward import ActivationSize, EmpiricalNTK, KernelAlignment
from learnlab.train._probes_params import DistanceFromInit, EffectiveRank, GradNorm, ParamNorm, ReadInGram, StableRank

__all__ = [
    "PROBES",
    "make_probes",
    "probe_problems",
    "ParamNorm",
    "GradNorm",
    "DistanceFromInit",
    "StableRank",
    "EffectiveRank",
    "ActivationSize",
    "ReadInGram",
    "EmpiricalNTK",
    "KernelAlignment",
]


# name -> probe class; constructed as cls(every=..., **options)
PROBES = {
    "param_norm": ParamNorm,
    "grad_norm": GradNorm,
    "dist_init": DistanceFromInit,
    "gram": ReadInGram,
    "ntk": EmpiricalNTK,
    "kernel_alignment": KernelAlignment,
    "stable_rank": StableRank,
    "effective_rank": EffectiveRank,
    "activation_size": ActivationSize,
    "sharpness": "learnlab.lr:SharpnessProbe",  # top Hessian eigenvalues vs 2/lr (loaded lazily)
}


def _probe_class(name: str):
    """The class of a built-in probe (lazily imported where registered as ``module:attr``)."""
    cls = PROBES[name]
    if isinstance(cls, str):
        from learnlab._imports import resolve

        cls = resolve(cls)
    return cls


def _options_of(cls) -> list[str]:
    return [n for n in inspect.signature(cls).parameters if n != "every"]


def probe_problems(spec) -> list[str]:
    """What is wrong with one ``train.probes`` entry (``name``, ``options``), as messages.

    A name must be a built-in or a ``"package.module:attr"`` that imports; a built-in's
    options must be among its keyword arguments. Meant for spec validation, so a bad
    probe fails before any run.
    """
    name, options = spec.name, dict(spec.options)
    if name in PROBES:
        allowed = _options_of(_probe_class(name))
        bad = sorted(set(options) - set(allowed))
        if bad:
            return [f"probe {name!r} has no options {bad}; valid: {', '.join(allowed) or 'none'}"]
        return []
    if ":" not in name:
        return [f"unknown probe {name!r}; valid: {', '.join(PROBES)} or 'package.module:attr'"]
    from learnlab._imports import resolve

    try:
        resolve(name)
    except ValueError as exc:
        return [f"probe {name!r}: {exc}"]
    return []


def make_probes(specs) -> list:
    """Probe objects from ``train.probes`` entries (built-in names or ``"package.module:attr"``).

    A class is constructed with ``every`` (if it takes it) and the options; a function
    (or any other callable) gets the options bound as keyword arguments and is wrapped,
    never mutated. Either way the probe's ``every`` is the spec's.

    Raises:
        ValueError: an unknown name or option, or a reference that does not import.
    """
    probes = []
    for spec in specs:
        problems = probe_problems(spec)
        if problems:
            raise ValueError("; ".join(problems))
        if spec.name in PROBES:
            probes.append(_probe_class(spec.name)(every=spec.every, **spec.options))
            continue
        from learnlab._imports import resolve

        obj = resolve(spec.name)
        if isinstance(obj, type):
            takes_every = "every" in inspect.signature(obj).parameters
            probe = obj(every=spec.every, **spec.options) if takes_every else obj(**spec.options)
            probe.every = spec.every
        else:  # a function or a shared object: wrapped, never mutated
            probe = _Every(functools.partial(obj, **spec.options) if spec.options else obj, spec.every)
        probes.append(probe)
    return probes


class _Every:
    """A probe callable with the spec's ``every``."""

    def __init__(self, fn, every: int):
        self.fn, self.every = fn, every

    def __call__(self, model, ctx):
        return self.fn(model, ctx)
