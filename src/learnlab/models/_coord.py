"""Coordinate check: does every layer's typical activation size stay O(1) as width (or depth) grows?

For each width and seed, a fresh model takes ``steps`` optimizer steps on one fixed
batch; before step 1 and after each step the mean absolute value of every layer's
output, l1 = mean |h_l|, and of its change since initialisation, delta = mean |h_l - h_l^0|
(the update's size), are recorded (Yang et al. 2022, Tensor Programs V, Fig. 5; the ``mup``
package's ``coord_check``). In muP the log-log slope of l1 against width is ~0 for every
layer and step >= 1; in SP with a fixed learning rate the output (and hidden layers) grow
with width after the first step.

With ``axis="depth"`` the same check runs over the depths of a residual network
(Yang et al. 2023, Tensor Programs VI; Bordelon et al. 2023): layers are compared by
their place (``block.1``, ``block.last``: the residual stream after the first and the
last block; ``branch.last``: the last branch's output), which every depth has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from learnlab.models._apply import LAYER_TYPES
from learnlab.models._build import build_optimizer
from learnlab.models._scaling import SCALING_ATTR

__all__ = ["coord_check", "coord_slopes", "plot_coord_check"]


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error; for a stack (E, batch, k) the sum over members of each member's mean."""
    err = (out - y).pow(2)
    return err.mean(dim=(1, 2)).sum() if err.dim() == 3 else err.mean()


def _activations(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(output, {layer name: output of the layer}) for native models and any module."""
    if hasattr(model, "activations"):
        return cast(Any, model).activations(x)  # learnlab.models.Stack implementations
    scaling = getattr(model, SCALING_ATTR, None)
    if scaling is not None:
        names = [s.weight.rpartition(".")[0] for s in scaling.slots]
        layers = [(n, model.get_submodule(n)) for n in names]
    else:
        layers = [(n, m) for n, m in model.named_modules() if isinstance(m, LAYER_TYPES)]
    return forward_with_outputs(model, x, layers)


def forward_with_outputs(model: torch.nn.Module, x: torch.Tensor, layers) -> tuple[torch.Tensor, dict]:
    """``model(x)`` and the first tensor output of each (name, submodule) in ``layers``, via forward hooks."""
    record: dict[str, torch.Tensor] = {}

    def hook(name):
        def keep(_module, _inputs, output):
            if isinstance(output, torch.Tensor):
                record.setdefault(name, output)

        return keep

    handles = [m.register_forward_hook(hook(n)) for n, m in layers]
    try:
        out = model(x)
    finally:
        for h in handles:
            h.remove()
    return out, record


def coord_check(
    make_model: Callable[[int, int], torch.nn.Module],
    widths: Sequence[int],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = 3,
    seeds: Iterable[int] = (0, 1, 2),
    optimizer: str | Callable[[torch.nn.Module], torch.optim.Optimizer] = "sgd",
    lr: float = 0.1,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    axis: str = "width",
    **optimizer_kwargs,
):
    """Mean |activation| of every layer across widths (or depths) and the first training steps.

    Args:
        make_model: ``make_model(width, seed)`` -> a parameterized model (``MLP``, ``CNN``
            or a module after ``apply_parameterization``; any module works with a callable
            ``optimizer``); with ``axis="depth"``, ``make_model(depth, seed)``.
        widths: the widths n (the depths L with ``axis="depth"``).
        x, y: the fixed batch, e.g. x (batch, d), y (batch, outputs).
        steps: optimizer steps; l1 is recorded at step 0 (initialisation) .. ``steps``.
        seeds: models per width; l1 is averaged over them.
        optimizer: a name for ``build_optimizer`` (the parameterization's lr rule), or
            ``optimizer(model) -> torch optimizer``.
        lr: base learning rate eta (with a name).
        loss: ``loss(output, y)`` -> scalar (default: mean squared error).
        axis: ``width`` or ``depth``: what ``widths`` are, and the frame's first column.
        optimizer_kwargs: passed to ``build_optimizer`` (momentum, betas, ...).

    Returns:
        A pandas DataFrame with columns ``width`` (or ``depth``), ``layer, step, l1, delta``
        (means over seeds), layers in forward order. Over depths, only the layers every depth
        has (by place: see the module docstring).

    Raises:
        ValueError: no widths, widths < 1, steps < 0, no seeds or an unknown axis.
    """
    import pandas as pd

    if axis not in ("width", "depth"):
        raise ValueError(f"axis must be 'width' or 'depth'; got {axis!r}")
    widths, seeds = [int(w) for w in widths], list(seeds)
    if not widths or min(widths) < 1:
        raise ValueError(f"{axis}s must be a non-empty list of integers >= 1; got {widths}")
    if steps < 0 or not seeds:
        raise ValueError(f"need steps >= 0 and at least one seed; got steps={steps}, seeds={seeds}")
    loss = loss or _mse
    rows = []
    for width in widths:
        for seed in seeds:
            model = make_model(width, seed)
            opt = optimizer(model) if callable(optimizer) else build_optimizer(model, optimizer, lr, **optimizer_kwargs)
            initial: dict[str, torch.Tensor] = {}
            for step in range(steps + 1):
                out, acts = _activations(model, x)
                if axis == "depth":
                    acts = _by_place(acts)
                for name, h in acts.items():
                    h = h.detach()
                    h0 = initial.setdefault(name, h.clone())
                    rows.append((width, seed, name, step, h.abs().mean().item(), (h - h0).abs().mean().item()))
                if step == steps:
                    break
                opt.zero_grad(set_to_none=True)
                loss(out, y).backward()
                opt.step()
    frame = pd.DataFrame(rows, columns=[axis, "seed", "layer", "step", "l1", "delta"])
    order = list(dict.fromkeys(frame["layer"]))
    if axis == "depth":  # the layers every depth has
        common = set.intersection(*(set(g["layer"]) for _, g in frame.groupby(axis)))
        order = [name for name in order if name in common]
        frame = frame[frame["layer"].isin(common)]
    mean = frame.groupby([axis, "layer", "step"], sort=False)[["l1", "delta"]].mean().reset_index()
    mean["layer"] = pd.Categorical(mean["layer"], categories=order, ordered=True)
    mean = mean.sort_values(["step", "layer", axis]).reset_index(drop=True)
    mean["layer"] = mean["layer"].astype(str)
    return mean


def _by_place(acts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A residual network's records named by place: the last block's stream ``block.last`` and
    the last branch layer's output ``branch.last`` (besides their own names)."""
    out = dict(acts)
    blocks = [n for n in acts if n.startswith("block.")]
    hidden = [n for n in acts if n.startswith("hidden.")]
    if blocks:
        out["block.last"] = acts[blocks[-1]]
    if hidden:
        out["branch.last"] = acts[hidden[-1]]
    return out


def coord_slopes(frame, value: str = "l1"):
    """Least-squares slope of log ``value`` (``l1`` or ``delta``) against log width (or depth:
    the frame's first column) per (layer, step).

    ~0 means the layer's coordinates are width-independent; +1 that they grow like n. Widths
    whose value is not finite (the run blew up) are left out of the fit and listed in
    ``diverged`` (comma-separated); with fewer than two finite widths the slope is NaN.

    Returns:
        DataFrame layer, step, slope, widths (how many were fitted), diverged.
    """
    import pandas as pd

    axis = str(frame.columns[0])
    rows = []
    for (layer, step), group in frame.groupby(["layer", "step"], sort=False):
        finite = np.isfinite(group[value].to_numpy(float))
        ok = group[finite & (group[value] > 0)]
        slope = np.polyfit(np.log(ok[axis]), np.log(ok[value]), 1)[0] if len(ok) >= 2 else float("nan")
        blown = ",".join(str(int(w)) for w in sorted(group.loc[~finite, axis].unique()))
        rows.append((layer, step, float(slope), len(ok), blown))
    return pd.DataFrame(rows, columns=["layer", "step", "slope", "widths", "diverged"])


def plot_coord_check(frame, path: str | Path, title: str | None = None, value: str = "l1"):
    """One log-log panel per step, one line per layer: ``value`` (``l1`` or ``delta``) against width
    (or depth: the frame's first column). Saves a PNG; returns the Figure."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    axis = str(frame.columns[0])
    steps = sorted(frame["step"].unique())
    if value == "delta":  # no change at initialisation
        steps = [s for s in steps if s > 0] or steps
    fig, axes = plt.subplots(1, len(steps), figsize=(3.2 * len(steps), 3.2), sharey=True, squeeze=False)
    for ax, step in zip(axes[0], steps):
        for layer, rows in frame[frame["step"] == step].groupby("layer", sort=False):
            rows = rows[rows[value] > 0]
            ax.plot(rows[axis], rows[value], marker="o", label=layer)
        ax.set_xscale("log")
        ax.set_yscale("log")
        widths = sorted(frame[axis].unique())
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"step {step}")
        ax.set_xlabel(axis)
    axes[0][0].set_ylabel("mean |activation|" if value == "l1" else "mean |change since init|")
    axes[0][-1].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return fig
