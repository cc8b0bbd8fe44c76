"""Built-in probes and the registry that specs name (``train.probes: [{name: ..., every: ...}]``).

Every built-in works on a stacked learnlab model (parameters with a leading member
axis, ``ctx.stacked``) and on a plain user module trained alone, and returns one value
per member.
"""

from __future__ import annotations

import torch

from learnlab.train._probes_api import ProbeContext

__all__ = ["PROBES", "make_probes", "ParamNorm", "GradNorm"]


def _per_member(t: torch.Tensor, stacked: bool) -> torch.Tensor:
    """View a parameter as (E, -1)."""
    return t.flatten(1) if stacked else t.reshape(1, -1)


class ParamNorm:
    """Frobenius norm of every parameter tensor: ``probe/param_norm/<name>``."""

    def __init__(self, every: int = 100):
        self.every = every

    @torch.no_grad()
    def __call__(self, model, ctx: ProbeContext):
        return {f"param_norm/{n}": _per_member(p, ctx.stacked).norm(dim=1) for n, p in model.named_parameters()}


class GradNorm:
    """Norm of the whole gradient of the batch loss, per member: ``probe/grad_norm``."""

    def __init__(self, every: int = 100):
        self.every = every

    @torch.no_grad()
    def __call__(self, model, ctx: ProbeContext):
        sq = torch.zeros(ctx.members, dtype=torch.float64)
        for p in model.parameters():
            if p.grad is not None:
                sq += _per_member(p.grad, ctx.stacked).pow(2).sum(dim=1).to(torch.float64).cpu()
        return {"grad_norm": sq.sqrt()}


# name -> probe class; constructed as cls(every=..., **options)
PROBES = {"param_norm": ParamNorm, "grad_norm": GradNorm}


def make_probes(specs) -> list:
    """Probe objects from ``train.probes`` entries (built-in names or ``"package.module:attr"``)."""
    probes = []
    for spec in specs:
        if spec.name in PROBES:
            probes.append(PROBES[spec.name](every=spec.every, **spec.options))
            continue
        from learnlab._imports import resolve

        obj = resolve(spec.name)
        probe = obj(**spec.options) if isinstance(obj, type) else obj
        if not hasattr(probe, "every") or spec.every != 100:
            try:
                probe.every = spec.every
            except AttributeError:
                pass
        probes.append(probe)
    return probes
