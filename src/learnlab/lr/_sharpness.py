"""Sharpness: the top eigenvalues of the loss Hessian (or Adam's preconditioned Hessian), and its probe.

Gradient descent at learning rate eta is stable on a quadratic iff lambda_max(H) < 2 / eta;
Cohen et al. (2021, "Gradient descent on neural networks typically occurs at the edge of
stability") found that full-batch GD drives lambda_max up to 2 / eta and then hovers there.
For heavy-ball momentum beta the threshold is (2 + 2 beta) / eta, and for Adam the relevant
quantity is the preconditioned sharpness lambda_max(P^-1 H), P = diag(sqrt(v_hat) + eps),
with threshold (2 + 2 beta1) / ((1 - beta1) eta) (Cohen et al. 2022, "Adaptive gradient
methods at the edge of stability"). ``SharpnessProbe`` logs both sides of the inequality.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from learnlab.lr._checks import check_batch, trainable
from learnlab.lr._hessian import LossFunction, lanczos

__all__ = ["SharpnessProbe", "adam_preconditioner", "sharpness", "stack_sharpness", "stability_threshold"]


def sharpness(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    criterion,
    k: int = 1,
    *,
    preconditioner: torch.optim.Optimizer | None = None,
    stacked: bool = False,
    iters: int | None = None,
    tol: float = 1e-4,
    seed: int = 0,
) -> torch.Tensor:
    """Top-k eigenvalues of the Hessian of criterion(model(x), y) w.r.t. the trainable parameters.

    Lanczos with Hessian-vector products (``torch.func``), in eval mode; nothing is
    changed, the global RNG is not used (the start vector comes from ``seed``).

    Args:
        model, x, y, criterion: the loss L(theta) = criterion(model(x), y) (summed if a vector).
        k: how many of the largest (algebraic) eigenvalues.
        preconditioner: an Adam-family optimizer (state ``exp_avg_sq``, at least one step
            taken): eigenvalues of P^-1/2 H P^-1/2 (those of P^-1 H), P = diag(sqrt(v_hat) + eps).
        stacked: parameters carry a leading member axis (learnlab's stacked models):
            one set of eigenvalues per member.
        iters: Lanczos iterations (Hessian-vector products) at most; default
            min(n, max(30, 3k)) for n parameters per member.
        tol: stop once every top-k Ritz value's residual is <= tol * |value|.
        seed: of the random start vector.

    Returns:
        float64 CPU tensor (k,) in descending order, or (E, k) if ``stacked``.
    """
    check_batch(x, y)
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    params = trainable(model)
    with _eval_mode(model):
        f = LossFunction(model, criterion, x, y, stacked=stacked)
        pre = None if preconditioner is None else adam_preconditioner(preconditioner, model)
        values = _top_eigenvalues(f, k, pre, iters, tol, seed, params[0])
    return values if stacked else values[0]


def stack_sharpness(stack, x, y, criterion, k: int = 1, *, preconditioner=None, iters=None, tol=1e-4, seed=0):
    """:func:`sharpness` of every member of a :class:`~learnlab.models.Stack`: (E, k).

    The stack gives the per-member views (its own parameter names, member axis first), so
    learnlab's models, stacked user modules and a user module held alone are measured alike.
    """
    check_batch(x, y)
    params = [p for _, p in stack.member_parameters() if p.requires_grad]
    with _eval_mode(stack):
        f = LossFunction.of_stack(stack, criterion, x, y)
        pre = None
        if preconditioner is not None:
            by_param = adam_preconditioner(preconditioner, stack)
            pre = {n: stack.per_member(by_param[id(p)]) for n, p in stack.member_parameters() if p.requires_grad}
        return _top_eigenvalues(f, k, pre, iters, tol, seed, params[0])


def _top_eigenvalues(f: LossFunction, k: int, pre: dict | None, iters, tol, seed, param) -> torch.Tensor:
    """Top-k eigenvalues (E, k) of f's Hessian (of P^-1/2 H P^-1/2 with ``pre`` = P by name)."""
    n = sum(t.numel() for t in f.theta.values()) // f.members
    if k > n:
        raise ValueError(f"k = {k} exceeds the number of parameters per member ({n})")
    scale = None if pre is None else f.flat(pre).rsqrt()

    def matvec(v: torch.Tensor) -> torch.Tensor:  # v: (E, n)
        v = v if scale is None else v * scale
        hv = f.flat(f.gradient_and_hvp(f.unflat(v))[1])
        return hv if scale is None else hv * scale

    breakdown = 100 * torch.finfo(param.dtype).eps
    iters = min(n, iters or max(30, 3 * k))
    return lanczos(matvec, f.members, n, k, iters=iters, tol=tol, seed=seed, device=param.device, breakdown=breakdown)


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    """Eval mode inside, every submodule's own mode restored after."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        yield
    finally:
        for m, training in modes:
            m.training = training


def adam_preconditioner(optimizer: torch.optim.Optimizer, model: nn.Module) -> dict:
    """P = sqrt(v_hat) + eps per trainable parameter, v_hat = v / (1 - beta2^t).

    Keyed by name (``model.named_parameters()``), or by ``id(parameter)`` for a
    :class:`~learnlab.models.Stack` (whose member names differ from its module names).

    Raises:
        ValueError: if a trainable parameter has no ``exp_avg_sq`` state (not an Adam-family
            optimizer, or no step taken yet).
    """
    from learnlab.models import Stack

    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    named = model.member_parameters() if isinstance(model, Stack) else list(model.named_parameters())
    out = {}
    for name, p in named:
        if not p.requires_grad:
            continue
        state = optimizer.state.get(p, {})
        if id(p) not in group_of or "exp_avg_sq" not in state:
            raise ValueError(
                f"the preconditioned sharpness needs Adam's second-moment state (exp_avg_sq) for every trainable "
                f"parameter; {type(optimizer).__name__} has none for {name!r}. Use an Adam-family optimizer "
                "that has taken at least one step, or preconditioner=None for the plain Hessian."
            )
        group = group_of[id(p)]
        v = state["max_exp_avg_sq"] if group.get("amsgrad") else state["exp_avg_sq"]
        beta2 = _member_view(group["betas"][1], p)
        bias2 = 1 - beta2 ** float(state["step"])
        out[id(p) if isinstance(model, Stack) else name] = (v / bias2).sqrt() + _member_view(group["eps"], p)
    return out


def _member_view(value, p: torch.Tensor):
    """A float stays; a per-member tensor (E,) is viewed as (E, 1, ..., 1) against p."""
    if isinstance(value, torch.Tensor) and value.dim() > 0:
        return value.to(dtype=p.dtype, device=p.device).view(-1, *([1] * (p.dim() - 1)))
    return float(value)


def stability_threshold(optimizer: torch.optim.Optimizer, preconditioned: bool = False):
    """The sharpness above which a quadratic diverges, at the first param group's lr eta.

    GD: 2 / eta; heavy-ball momentum beta: (2 + 2 beta) / eta; Nesterov: (2 + 2 beta) /
    ((1 + 2 beta) eta); Adam (preconditioned sharpness): (2 + 2 beta1) / ((1 - beta1) eta).
    A float, or a tensor (E,) for per-member learning rates.
    """
    group = optimizer.param_groups[0]
    lr = _as_value(group["lr"])
    if preconditioned:
        beta1 = _as_value(group["betas"][0])
        return (2 + 2 * beta1) / ((1 - beta1) * lr)
    beta = _as_value(group.get("momentum", 0.0))
    if group.get("nesterov", False):
        return (2 + 2 * beta) / ((1 + 2 * beta) * lr)
    return (2 + 2 * beta) / lr


def _as_value(value):
    if isinstance(value, torch.Tensor):
        return value.detach().to(device="cpu", dtype=torch.float64).flatten()
    return float(value)


class SharpnessProbe:
    """A training probe: top-k sharpness and the stability threshold it is compared with.

    ``probe(model, ctx) -> dict``: on the batch ``ctx.batch`` (or the fixed ``batch``
    given here) with ``ctx.loss_fn`` (or ``criterion``), per member of the stack ``model``.
    Keys: ``sharpness`` (``preconditioned_sharpness`` with ``preconditioned=True``),
    ``sharpness_2`` ... for k > 1, and ``threshold`` (see :func:`stability_threshold`)
    when ``ctx.optimizer`` is there; a run then shows sharpness against 2 / lr.

    Args:
        every: steps between calls.
        k: eigenvalues per call.
        preconditioned: Adam's preconditioned sharpness (needs an Adam-family optimizer).
        batch: a fixed (x, y) to measure on (e.g. the full training set for full-batch GD).
        criterion: the loss, if not the context's.
        iters, tol, seed: Lanczos settings, as for :func:`sharpness`.
    """

    def __init__(
        self,
        every: int = 100,
        k: int = 1,
        *,
        preconditioned: bool = False,
        batch=None,
        criterion=None,
        iters: int | None = 20,
        tol: float = 1e-3,
        seed: int = 0,
    ):
        self.every, self.k, self.preconditioned = every, k, preconditioned
        self.batch, self.criterion, self.iters, self.tol, self.seed = batch, criterion, iters, tol, seed

    def measure(self, model: nn.Module, x, y, criterion, optimizer=None, stacked: bool = False) -> dict:
        """The probe's values for an explicit batch, criterion and optimizer."""
        if self.preconditioned and optimizer is None:
            raise ValueError("preconditioned=True needs the optimizer (ctx.optimizer)")
        values = sharpness(
            model,
            x,
            y,
            criterion,
            self.k,
            preconditioner=optimizer if self.preconditioned else None,
            stacked=stacked,
            iters=self.iters,
            tol=self.tol,
            seed=self.seed,
        )
        return self._values(values if stacked else values.unsqueeze(0), optimizer, stacked)

    def _values(self, values: torch.Tensor, optimizer, stacked: bool) -> dict:
        """values (E, k) -> the probe's keys (floats for a single model, (E,) tensors for a stack)."""
        name = "preconditioned_sharpness" if self.preconditioned else "sharpness"
        members = values.shape[0]
        out = {name if i == 0 else f"{name}_{i + 1}": _scalar(values[:, i], stacked, members) for i in range(self.k)}
        if optimizer is not None:
            threshold = torch.as_tensor(stability_threshold(optimizer, self.preconditioned))
            out["threshold"] = _scalar(threshold, stacked, members)
        return out

    def __call__(self, model: nn.Module, ctx=None) -> dict:
        """(E,) values per member of a :class:`~learnlab.models.Stack` (the loop's model);
        floats for any other module (its batch and criterion as for that module)."""
        from learnlab.models import Stack

        x, y = self.batch if self.batch is not None else _ctx(ctx, "batch")
        criterion = self.criterion or _ctx(ctx, "loss_fn")
        optimizer = getattr(ctx, "optimizer", None)
        if not isinstance(model, Stack):
            return self.measure(model, x, y, criterion, optimizer)
        if self.preconditioned and optimizer is None:
            raise ValueError("preconditioned=True needs the optimizer (ctx.optimizer)")
        values = stack_sharpness(
            model,
            x,
            y,
            criterion,
            self.k,
            preconditioner=optimizer if self.preconditioned else None,
            iters=self.iters,
            tol=self.tol,
            seed=self.seed,
        )
        return self._values(values, optimizer, stacked=True)


def _scalar(values: torch.Tensor, stacked: bool, members: int):
    """One float (a single model) or (E,) float64 values (a stack)."""
    values = values.to(torch.float64).flatten()
    if not stacked:
        return float(values[0])
    return values.expand(members).clone() if values.numel() == 1 else values


def _ctx(ctx, name: str):
    value = getattr(ctx, name, None)
    if value is None:
        raise ValueError(f"SharpnessProbe needs {name!r}: give it to the probe or call it with a context that has it")
    return value
