"""``learnlab coord-check``: mean |activation| per layer across widths (or depths) for a spec's model."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from learnlab.cli._app import app, bad_input, console, store_errors


def _parse_sizes(text: str, option: str = "--widths", example: str = "256,512,1024") -> list[int]:
    try:
        sizes = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        bad_input(f"{option} must be comma-separated integers like {example}; got {text!r}")
    if len(set(sizes)) < 2 or min(sizes) < 1:
        bad_input(f"{option} needs at least two integers >= 1 that differ (a slope needs two); got {text!r}")
    return sorted(set(sizes))


def _configs(spec: Path, overrides: list[str], widths: list[int], axis: str = "width") -> list[dict]:
    """The spec's first run at each width (or depth), validated; bad input exits with code 2."""
    import warnings

    from learnlab.experiments import SpecError, load_spec, plan, validate_config
    from learnlab.models import BaseWidthWarning

    try:
        _, raw = load_spec(spec, overrides)
        raw.pop("sweep", None)  # one run: the spec's own values and the overrides, not a sweep's first point
        with warnings.catch_warnings():  # the check scans widths on purpose: its base width is the spec's
            warnings.simplefilter("ignore", BaseWidthWarning)
            base = plan(raw).runs[0].config
    except SpecError as exc:
        bad_input(str(SpecError(exc.problems, source=str(spec))))
    if base["model"]["name"] not in ("mlp", "cnn", "resmlp"):
        bad_input(
            str(
                SpecError(
                    [
                        (
                            "model.name",
                            (
                                f"coord-check varies model.{axis} of learnlab's mlp, cnn or resmlp; "
                                f"{base['model']['name']!r} is your own model. Parameterize it with "
                                "learnlab.apply_parameterization and call learnlab.models.coord_check "
                                f"from Python with a factory of {axis}s"
                            ),
                        )
                    ],
                    source=str(spec),
                )
            )
        )
    configs, problems = [], []
    for width in widths:
        config = copy.deepcopy(base)
        config["model"][axis] = width
        try:
            validate_config(config)
        except SpecError as exc:
            problems += [(p, f"{m} [{axis} {width}]") for p, m in exc.problems]
        configs.append(config)
    if problems:
        bad_input(str(SpecError(problems, source=str(spec))))
    return configs


def _factory(configs: dict[int, dict], d: int, outputs: int, dtype):
    import torch

    from learnlab.experiments import derive_seed
    from learnlab.models import ModelSpec, build_model

    def make(width: int, seed: int):
        config = configs[width]
        section = ModelSpec.model_validate(config["model"])
        init = section.init_seed if section.init_seed is not None else config["seed"]
        generator = torch.Generator().manual_seed(derive_seed(init, f"coord-check/{width}", f"init/{seed}"))
        return build_model(section, d, outputs, generators=[generator], dtype=dtype)

    return make


@app.command("coord-check")
@store_errors
def coord_check_command(
    spec: Annotated[Path, typer.Argument(help="YAML spec; its model and train sections are used (no sweep).")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides with dotted keys.")] = None,
    widths: Annotated[str, typer.Option(help="Comma-separated widths.")] = "256,512,1024,2048",
    depths: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated depths (residual blocks of a resmlp): vary model.depth instead of the width."
        ),
    ] = None,
    steps: Annotated[int, typer.Option(min=0, help="Optimizer steps on one fixed batch.")] = 3,
    seeds: Annotated[int, typer.Option(min=1, help="Models per width (l1 is averaged).")] = 3,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("runs/coord_check"),
) -> None:
    """Coordinate check: write OUT/coord_check.csv (width, layer, step, l1, delta) and OUT/coord_check.png.

    l1 = mean |output| of every layer, at initialisation and after each of STEPS steps on one
    batch of train.batch_size points, for models built from the spec's model and train sections
    (its sweep is ignored; use overrides) at each width; delta = mean |change since
    initialisation|. Slopes ~0 (log l1 vs log width) mean the parameterization keeps every
    layer's coordinates O(1) (muP); growing ones blow up (SP).

    With --depths, the width stays the spec's and model.depth varies (a resmlp's blocks):
    OUT/coord_check_depth.csv and .png, layers compared by place (block.1, block.last,
    branch.last, ...); slopes ~0 under depth_mup and completep.
    """
    import torch

    from learnlab.experiments import SpecError
    from learnlab.models import ModelSpec, coord_check, coord_slopes, plot_coord_check
    from learnlab.tasks import make_task
    from learnlab.train import get_loss

    axis = "width" if depths is None else "depth"
    width_list = _parse_sizes(widths) if depths is None else _parse_sizes(depths, "--depths", "2,4,8,16,32")
    configs = _configs(spec, overrides or [], width_list, axis)
    first = configs[0]
    train, dtype = first["train"], getattr(torch, first["train"]["dtype"])
    task = make_task(first["task"])
    problems = ModelSpec.model_validate(first["model"]).problems_with_inputs(task.d)
    if problems:
        bad_input(str(SpecError([("model.image_shape", p) for p in problems], source=str(spec))))
    x, y = task.sample(train["batch_size"], torch.Generator().manual_seed(first["seed"]), dtype=dtype)
    loss_fn = get_loss(train["loss"])
    frame = coord_check(
        _factory(dict(zip(width_list, configs)), task.d, task.outputs, dtype),
        width_list,
        x.unsqueeze(0),
        y.unsqueeze(0),
        steps=steps,
        seeds=range(seeds),
        optimizer=train["optimizer"],
        lr=train["lr"],
        momentum=train["momentum"],
        betas=tuple(train["betas"]),
        eps=train["eps"],
        weight_decay=train["weight_decay"],
        loss=lambda o, t: loss_fn(o, t).sum(),
        axis=axis,
    )
    out.mkdir(parents=True, exist_ok=True)
    stem = "coord_check" if axis == "width" else "coord_check_depth"
    frame[[axis, "layer", "step", "l1", "delta"]].to_csv(out / f"{stem}.csv", index=False)
    plot_coord_check(frame, out / f"{stem}.png", title=_title(first, axis))
    _print_slopes(coord_slopes(frame), axis)
    if axis == "depth":
        _print_slopes(coord_slopes(frame[frame["step"] > 0], "delta"), axis, "delta")
    console.print(f"table:  {out / f'{stem}.csv'}\nfigure: {out / f'{stem}.png'}")


def _title(config: dict, axis: str) -> str:
    model, train = config["model"], config["train"]
    title = f"{model['param'] if isinstance(model['param'], str) else 'custom'}"
    if model["name"] == "resmlp":
        depth_param = model["depth_param"]
        title += f" x {depth_param if isinstance(depth_param, str) else 'custom depth'}"
    fixed = f"width {model['width']}, " if axis == "depth" else ""
    return f"{title}, {fixed}{train['optimizer']}, lr={train['lr']}"


def _print_slopes(slopes, axis: str = "width", value: str = "l1") -> None:
    what = "l1" if value == "l1" else "delta (change since init)"
    table = Table(title=f"slope of log {what} vs log {axis} (0 = {axis}-independent)")
    steps = sorted(slopes["step"].unique())
    table.add_column("layer")
    for step in steps:
        table.add_column(f"step {step}", justify="right")
    for layer, rows in slopes.groupby("layer", sort=False):
        by_step = dict(zip(rows["step"], rows["slope"]))
        cells = [f"{by_step[s]:+.2f}" if by_step.get(s) == by_step.get(s) else "n/a" for s in steps]
        table.add_row(layer, *cells)
    console.print(table)
    blown = slopes[slopes["diverged"] != ""]
    for step, rows in blown.groupby("step"):
        widths = sorted({int(w) for ws in rows["diverged"] for w in ws.split(",")})
        console.print(
            f"warning: at step {step} the runs at {axis}s {', '.join(map(str, widths))} blew up (non-finite "
            f"activations): their slopes are fitted on the finite {axis}s only (n/a: fewer than two). Lower the "
            f"learning rate, or this parameterization does not keep these {axis}s stable.",
            style="yellow",
            markup=False,
            soft_wrap=True,
        )
