"""Probes on the parameters: norms, distance from init, read-in Gram matrix, ranks.

Each returns one value per member of the stack it is given (a
:class:`~learnlab.models.Stack`: learnlab's models, or a user module stacked or held
alone): it asks the stack for its parameters by each member's own names
(``model.member_parameters()``: ``weights.0``, ``biases.1`` for learnlab's MLP,
``0.weight`` for an ``nn.Sequential``) and views them with the member axis first
(``model.per_member``). A *weight matrix* is a parameter whose per-member shape,
flattened after its first axis, is (m, n) with m, n >= 2 (biases and vector read-outs
are skipped; a conv kernel (out, in, kh, kw) is (out, in kh kw)).
"""

from __future__ import annotations

import torch

from learnlab.train._probes_api import ProbeContext

__all__ = [
    "weight_matrices",
    "ParamNorm",
    "GradNorm",
    "DistanceFromInit",
    "ReadInGram",
    "StableRank",
    "EffectiveRank",
]


def weight_matrices(model, names=None):
    """Yield (name, W (E, m, n)) for every weight matrix of a stack (or the named parameters)."""
    for name, p in model.member_parameters():
        if names is not None and name not in names:
            continue
        w = model.per_member(p.detach())
        if w.dim() < 3:
            if names is not None:
                raise ValueError(f"parameter {name!r} of shape {tuple(w.shape[1:])} is not a matrix")
            continue
        w = w.flatten(2)  # (E, m, n): trailing axes (conv kernels) flattened
        if min(w.shape[1:]) < 2 and names is None:
            continue
        yield name, w


class ParamNorm:
    """Frobenius norm of every parameter, per member: ``probe/param_norm/<name>`` = ||W||_F."""

    def __init__(self, every: int = 100):
        self.every = every

    @torch.no_grad()
    def __call__(self, model, ctx: ProbeContext):
        return {f"param_norm/{n}": model.per_member(p).flatten(1).norm(dim=1) for n, p in model.member_parameters()}


class GradNorm:
    """Norm of the whole gradient of the batch loss, per member: ``probe/grad_norm``.

    ||g|| = sqrt(sum_p ||dL/dp||_F^2) over every parameter, after clipping (the gradient
    the optimizer is about to use).
    """

    def __init__(self, every: int = 100):
        self.every = every

    @torch.no_grad()
    def __call__(self, model, ctx: ProbeContext):
        squares = [
            model.per_member(p.grad).flatten(1).to(torch.float64).pow(2).sum(dim=1)
            for _, p in model.member_parameters()
            if p.grad is not None
        ]
        if not squares:
            return {"grad_norm": torch.zeros(ctx.members, dtype=torch.float64)}
        return {"grad_norm": torch.stack(squares).sum(dim=0).sqrt().cpu()}  # one transfer, not one per tensor


class DistanceFromInit:
    """Distance of every parameter from its initial value, per member.

    With dW = W_t - W_0 (``ctx.init_params``):

        probe/dist_init/fro/<name> = ||dW||_F = sqrt(sum_ij dW_ij^2)
        probe/dist_init/inf/<name> = ||dW||_inf = max_ij |dW_ij|   (the entrywise max: the
                                     largest change of a single coordinate)

    Args:
        every: steps between calls.
        relative: divide each by the same norm of W_0 (NaN where W_0 = 0, e.g. zero biases).
    """

    def __init__(self, every: int = 100, relative: bool = False):
        self.every, self.relative = every, relative

    @torch.no_grad()
    def __call__(self, model, ctx: ProbeContext):
        out = {}
        for name, p in model.member_parameters():
            w = model.per_member(p).flatten(1)
            w0 = ctx.init_params[name].flatten(1).to(w.device)  # (E, ...): the loop keeps them per member
            diff = w - w0
            fro, inf = diff.norm(dim=1), diff.abs().amax(dim=1)
            if self.relative:
                fro, inf = fro / w0.norm(dim=1), inf / w0.abs().amax(dim=1)
            out[f"dist_init/fro/{name}"], out[f"dist_init/inf/{name}"] = fro, inf
        return out


class _SpectralProbe:
    """Base of the rank probes: singular values of every weight matrix (or ``params``)."""

    key = ""

    def __init__(self, every: int = 100, params: list[str] | None = None):
        self.every, self.params = every, params

    @torch.no_grad()
    def __call__(self, model, ctx: ProbeContext):
        return {
            f"{self.key}/{name}": self.measure(torch.linalg.svdvals(w))
            for name, w in weight_matrices(model, self.params)
        }

    @staticmethod
    def measure(s: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class StableRank(_SpectralProbe):
    """Stable rank of every weight matrix: ``probe/stable_rank/<name>``.

        srank(W) = ||W||_F^2 / ||W||_2^2 = sum_i s_i^2 / s_1^2

    (s_1 >= s_2 >= ... the singular values; 1 <= srank <= rank; Rudelson & Vershynin 2007).

    Args:
        every: steps between calls.
        params: parameter names to measure (default: every weight matrix).
    """

    key = "stable_rank"

    @staticmethod
    def measure(s):
        return s.pow(2).sum(dim=-1) / s[..., 0].pow(2)


class EffectiveRank(_SpectralProbe):
    """Effective rank of every weight matrix (Roy & Vetterli 2007): ``probe/effective_rank/<name>``.

        p_i = s_i / sum_j s_j,   H = -sum_i p_i log p_i   (0 log 0 = 0),   erank(W) = exp(H)

    (1 <= erank <= rank; equal to r for r equal nonzero singular values).

    Args:
        every: steps between calls.
        params: parameter names to measure (default: every weight matrix).
    """

    key = "effective_rank"

    @staticmethod
    def measure(s):
        p = s / s.sum(dim=-1, keepdim=True)
        entropy = -torch.special.xlogy(p, p).sum(dim=-1)
        return entropy.exp()


class ReadInGram:
    """The read-in Gram matrix, per member (seed 002's grab of W^T W).

    W is the read-in weight viewed as (d, n): row i holds the weights leaving input
    coordinate i (learnlab's ``weights.0`` (E, d, width) as stored; a torch ``nn.Linear``
    weight (width, d) transposed). Its Gram matrix over input coordinates is
    G = W W^T (d, d), i.e. the W^T W of a torch layer:

        probe/gram/diag/<i> = G_ii = sum_j W_ij^2       for i in ``indices``
        probe/gram/diag_rest = mean of G_ii over the other input coordinates
        probe/gram/trace     = tr G = ||W||_F^2
        artifact ``gram`` (E, d, d) = G, with ``full=True``

    A feature-learning network grows G_ii on the coordinates the target depends on.
    The raw trainable parameter is used (layer multipliers not applied).

    Args:
        every: steps between calls.
        indices: input coordinates to report (default: those the first member's target
            depends on: a parity's index sets or a Hermite target's monomials; none for
            other targets).
        param: name of the read-in parameter (default: ``weights.0`` for a learnlab
            model, else the first 2-d parameter with an axis of size d).
        full: also store the whole G as an artifact.
    """

    def __init__(
        self, every: int = 100, indices: list[int] | None = None, param: str | None = None, full: bool = False
    ):
        self.every, self.indices, self.param, self.full = every, indices, param, full

    @torch.no_grad()
    def __call__(self, model, ctx: ProbeContext):
        d = ctx.batch[0].shape[-1]
        w = read_in_weight(model, d, self.param)  # (E, d, n)
        indices = self.indices
        if indices is None and ctx.tasks:
            indices = target_indices(getattr(ctx.tasks[0], "target", None))
        indices = sorted(int(i) for i in (indices or []))
        if any(i < 0 or i >= d for i in indices):
            raise ValueError(f"gram probe: indices {indices} out of range for input dimension d = {d}")
        diag = w.pow(2).sum(dim=2)  # (E, d): G_ii
        out = {f"gram/diag/{i}": diag[:, i] for i in indices}
        rest = [i for i in range(d) if i not in set(indices)]
        if rest:
            out["gram/diag_rest"] = diag[:, rest].mean(dim=1)
        out["gram/trace"] = diag.sum(dim=1)
        if self.full:
            out["gram"] = w @ w.transpose(1, 2)
        return out


def read_in_weight(model, d: int, name: str | None = None) -> torch.Tensor:
    """The read-in weight of a stack as (E, d, n) (see :class:`ReadInGram`)."""
    from learnlab.models._stack import StackedModel

    params = dict(model.member_parameters())
    native = isinstance(model, StackedModel)  # learnlab stores (fan_in, fan_out); torch (fan_out, fan_in)
    if name is not None:
        if name not in params:
            raise ValueError(f"gram probe: no parameter {name!r}; parameters: {', '.join(params)}")
        candidates = [params[name]]
    elif native:
        candidates = [model.weights[0]]
    else:
        candidates = [p for p in params.values() if model.per_member(p).dim() == 3 and d in p.shape[-2:]]
    if not candidates:
        raise ValueError(f"gram probe: found no read-in weight with an axis of size d = {d}; give `param`")
    w = model.per_member(candidates[0].detach())
    if w.dim() != 3 or d not in w.shape[1:]:
        raise ValueError(f"gram probe: read-in weight of shape {tuple(w.shape[1:])} has no axis of size d = {d}")
    input_axis = 1 if native else 2  # prefer the layout's input axis
    if w.shape[input_axis] != d:
        input_axis = 3 - input_axis
    return w if input_axis == 1 else w.transpose(1, 2)


def target_indices(target) -> list[int] | None:
    """The input coordinates a target depends on, if it says: a parity's index sets, the
    indices of a Hermite target's monomials; None otherwise (e.g. index models)."""
    if target is None:
        return None
    if callable(getattr(target, "term_list", None)):
        return sorted({int(i) for mono, _ in target.term_list() for i in dict(mono)})
    if getattr(target, "monomial", None) is not None:
        return sorted({int(i) for i in dict(target.monomial)})
    if getattr(target, "indices", None) is not None:
        flat: set[int] = set()
        for item in target.indices:
            flat.update(int(i) for i in (item if isinstance(item, (list, tuple)) else [item]))
        return sorted(flat)
    return None
