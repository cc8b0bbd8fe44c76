"""``learnlab lr-probe``: loss after one step against the learning rate, one curve per config.

For every config of a spec's sweep (seeds and ``train.lr`` collapse: the probe sweeps the
learning rate itself) the model, optimizer and task are built as ``learnlab run`` would
build them, one training batch is drawn, and :func:`learnlab.lr.loss_per_learning_rate`
gives the test loss after one step at every base learning rate eta (each param group at
eta times its parameterization's multiple). Curves are averaged over seeds. Across widths
this is the muTransfer picture: under muP the optimum stays put, under SP it drifts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from learnlab.cli._app import app, bad_input, console, store_errors

__all__ = ["lr_probe", "parse_lrs"]

_NOT_AXES = ("seed", "train.lr")


def parse_lrs(text: str) -> list[float]:
    """``start:stop:count`` -> count log-spaced learning rates from start to stop (inclusive)."""
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"--lrs must be start:stop:count, e.g. 1e-4:10:50; got {text!r}")
    try:
        start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise ValueError(f"--lrs must be start:stop:count with numbers and an integer count; got {text!r}") from None
    if not (math.isfinite(start) and math.isfinite(stop) and 0 < start <= stop) or count < 1:
        raise ValueError(f"--lrs needs 0 < start <= stop and count >= 1; got start={start}, stop={stop}, count={count}")
    if count == 1 or start == stop:
        return [start] * count
    ratio = math.log(stop / start) / (count - 1)
    return [start * math.exp(i * ratio) for i in range(count)]


@app.command("lr-probe")
@store_errors
def lr_probe(
    spec: Annotated[Path, typer.Argument(help="YAML spec file.")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides with dotted keys.")] = None,
    lrs: Annotated[str, typer.Option("--lrs", help="Base learning rates start:stop:count, log-spaced.")] = "1e-4:10:50",
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (loss_vs_lr.csv, .png).")] = Path(
        "runs/lr_probe"
    ),
    on: Annotated[
        str, typer.Option("--on", help="Loss after the step on the 'test' sample or the 'train' batch.")
    ] = "test",
) -> None:
    """Loss after one optimizer step vs learning rate for each config of SPEC (CSV + figure in OUT)."""
    from learnlab.experiments import SpecError, plan

    try:
        grid = parse_lrs(lrs)
    except ValueError as exc:
        bad_input(str(exc))
    if on not in ("test", "train"):
        bad_input(f"--on must be 'test' or 'train'; got {on!r}")
    try:
        p = plan(spec, overrides or [])
    except SpecError as exc:
        bad_input(str(exc))
    curves = _curves(p.runs, grid, on)
    out.mkdir(parents=True, exist_ok=True)
    frame = _frame(curves, grid)
    frame.to_csv(out / "loss_vs_lr.csv", index=False)
    _plot(curves, grid, out / "loss_vs_lr.png", title=f"{p.spec.name}: loss after one step ({on})")
    _print(curves, grid)
    console.print(f"table:  {out / 'loss_vs_lr.csv'}\nfigure: {out / 'loss_vs_lr.png'}")


def _curves(runs, grid: list[float], on: str) -> dict[str, dict]:
    """label -> {"point": axes, "losses": [per-seed loss lists]} over the sweep's configs."""
    import torch

    groups: dict[str, dict] = {}
    first_lr: dict[tuple[str, object], float] = {}
    for run in runs:
        point = {k: v for k, v in run.point.items() if k not in _NOT_AXES}
        label = ", ".join(f"{k}={v}" for k, v in point.items()) or "spec"
        key = (label, run.point.get("seed"))
        if first_lr.setdefault(key, run.config["train"]["lr"]) != run.config["train"]["lr"]:
            continue  # the probe sweeps lr itself: one run per (config, seed)
        group = groups.setdefault(label, {"point": point, "losses": []})
        try:
            group["losses"].append(_curve(run.config, grid, on))
        except (ValueError, TypeError) as exc:
            bad_input(f"{label}: {exc}")
    for group in groups.values():
        stacked = torch.stack(group["losses"])  # (seeds, lrs)
        group["mean"], group["min"], group["max"] = stacked.mean(0), stacked.min(0).values, stacked.max(0).values
    return groups


def _curve(config: dict, grid: list[float], on: str):
    """Loss after one step at each base lr eta for one run config."""
    import torch

    from learnlab.experiments import build_run
    from learnlab.lr import loss_per_learning_rate
    from learnlab.train import get_loss

    built = build_run(config)
    member = built.members[0]
    x, y = member.stream.next()  # x (batch, d), y (batch, outputs)
    ex, ey = _test_sample(member) if on == "test" else (x, y)
    per_member = get_loss(config["train"]["loss"])  # (E, n, k) -> (E,)

    def criterion(out, target):
        return per_member(out.unsqueeze(0), target.unsqueeze(0))[0]

    # group 0's lr is eta * (its parameterization multiple): keep the x axis in units of eta
    first = torch.as_tensor(built.optimizer.param_groups[0]["lr"], dtype=torch.float64).flatten()[0]
    scale = float(first) / config["train"]["lr"]
    alphas = torch.tensor(grid, dtype=torch.float64) * scale
    return loss_per_learning_rate(built.model, x, y, criterion, built.optimizer, alphas, eval_x=ex, eval_y=ey)


def _test_sample(member):
    """The member's fixed test sample (x, y), whole."""
    import torch

    test = getattr(member, "test", None)
    if test is not None:
        return test
    source = member.evals["test"]
    xs, ys = zip(*source.chunks(source.n))
    return torch.cat(xs), torch.cat(ys)


def _frame(curves: dict, grid: list[float]):
    import pandas as pd

    rows = []
    for group in curves.values():
        for i, lr in enumerate(grid):
            rows.append(
                {
                    **{k: _cell(v) for k, v in group["point"].items()},
                    "lr": lr,
                    "loss": float(group["mean"][i]),
                    "loss_min": float(group["min"][i]),
                    "loss_max": float(group["max"][i]),
                    "seeds": len(group["losses"]),
                }
            )
    return pd.DataFrame(rows)


def _cell(value):
    return value if isinstance(value, (int, float, str, bool)) or value is None else json.dumps(value)


def _best(mean, grid: list[float]) -> tuple[float, float]:
    import torch

    finite = torch.where(torch.isfinite(mean), mean, torch.full_like(mean, math.inf))
    i = int(finite.argmin())
    return grid[i], float(mean[i])


def _plot(curves: dict, grid: list[float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    low, high, start = math.inf, -math.inf, -math.inf
    edge = False
    for label, group in curves.items():
        finite = [(lr, float(v)) for lr, v in zip(grid, group["mean"]) if math.isfinite(float(v))]
        if not finite:
            continue
        (line,) = ax.plot([f[0] for f in finite], [f[1] for f in finite], label=label)
        best_lr, best_loss = _best(group["mean"], grid)
        ax.plot([best_lr], [best_loss], "o", color=line.get_color())
        if len(grid) >= 3 and best_lr in (grid[0], grid[-1]):
            edge = True
        low, high = min(low, best_loss), max(high, max(f[1] for f in finite))
        start = max(start, finite[0][1])
    ax.set_xscale("log")
    if math.isfinite(low):
        top = min(high, 3 * start) if start > 0 else high  # divergence runs off the chart
        if low > 0:
            ax.set_yscale("log")
        pad = 0.05 * (top - low) if top > low else 0.05 * abs(low) + 1e-12
        ax.set_ylim(low * 0.95 if low > 0 else low - pad, top * 1.05 if top > 0 else top + pad)
    ax.set_xlabel("learning rate (base, eta)")
    ax.set_ylabel("loss after one step")
    note = "\n(o = best; a best rate at the edge of the range: the optimum may lie outside)" if edge else " (o = best)"
    ax.set_title(title + note, fontsize=9)
    if curves:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _print(curves: dict, grid: list[float]) -> None:
    table = Table(title="best learning rate per config (mean over seeds)")
    for col in ("config", "best lr", "loss", "seeds"):
        table.add_column(col, justify="right" if col != "config" else "left")
    edges = []
    for label, group in curves.items():
        lr, loss = _best(group["mean"], grid)
        at_edge = len(grid) >= 3 and lr in (grid[0], grid[-1])
        table.add_row(label, f"{lr:.4g}" + (" (edge)" if at_edge else ""), f"{loss:.4g}", str(len(group["losses"])))
        if at_edge:
            edges.append((label, lr, "smallest" if lr == grid[0] else "largest"))
    console.print(table)
    for label, lr, edge in edges:
        console.print(
            f"warning: {label}: the best rate is the {edge} probed ({lr:.4g}); the optimum may lie outside "
            "the range: widen --lrs",
            style="yellow",
            markup=False,
            soft_wrap=True,
        )
