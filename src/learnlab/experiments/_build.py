"""Build a group of runs: one stacked model and optimizer, one Member per run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from learnlab._devices import resolve_device
from learnlab._seeds import canonical_json, data_seeds, init_seed, target_seed
from learnlab.experiments._expand import Run
from learnlab.experiments._spec import RunConfig
from learnlab.models import build_model, build_optimizer
from learnlab.tasks import Task, make_task
from learnlab.train import LoopSettings, Member
from learnlab.train._members import ProbeCache, loop_settings, make_member

__all__ = ["Built", "build_group", "build_run"]


@dataclass
class Built:
    """A group of runs ready to train: stacked model, optimizer, one Member per run, shared settings."""

    runs: list[Run]
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    members: list[Member]
    tasks: list
    settings: LoopSettings

    @property
    def ids(self) -> list[str]:
        return [r.run_id for r in self.runs]

    @property
    def configs(self) -> list[RunConfig]:
        return [r.validated() for r in self.runs]


def build_group(runs: Sequence[Run | dict], device: str | None = None) -> Built:
    """Build the stacked model, optimizer, tasks, data streams and eval sets of runs sharing all shapes.

    Every random stream comes from its role's seed (see :mod:`learnlab._seeds`): the data
    streams from the run's seed and its inputs (or ``task.data_seed``), a random target from
    the run's seed and the target section (or its own ``seed``), the initial draw from the
    run's seed and the architecture (or ``model.init_seed``). ``device`` (from ``--devices``)
    overrides ``train.device``. Each member owns its per-member settings; the settings every
    member shares must agree (else ValueError).
    """
    group = [Run.of(r) for r in runs]
    configs = [r.validated() for r in group]
    first = configs[0]
    dtype, dev = first.train.torch_dtype, resolve_device(device or first.train.device)
    members: list[Member] = []
    init_generators: list[torch.Generator] = []
    tasks: list[Task] = []
    cache: dict[tuple[str, int | None], Task] = {}
    probes = ProbeCache()
    streams: dict = {}  # members with the same task, batch size and data seed share their stream
    for config in configs:
        key = (canonical_json(config.task.model_dump(mode="json")), target_seed(config.task, config.seed))
        if key not in cache:  # runs with the same task and target share it (and its target's evaluations)
            cache[key] = make_task(config.task, config.seed)
        task = cache[key]
        tasks.append(task)
        init_generators.append(
            torch.Generator().manual_seed(init_seed(config.model, config.seed, task.d, task.outputs))
        )
        members.append(
            make_member(
                task,
                config.train,
                data_seeds(config.task, config.seed),
                dtype=dtype,
                device=dev,
                probes=probes(config.train.probes),
                streams=streams,
            )
        )
    model = build_model(
        [c.model for c in configs], tasks[0].d, tasks[0].outputs, generators=init_generators, dtype=dtype, device=dev
    )
    optimizer = build_optimizer(
        model,
        first.train.optimizer,
        lr=[c.train.lr for c in configs],
        momentum=[c.train.momentum for c in configs],
        weight_decay=[c.train.weight_decay for c in configs],
        betas=[c.train.betas for c in configs],  # tuples already (validated)
        eps=[c.train.eps for c in configs],
        independent_weight_decay=first.train.independent_weight_decay,
    )
    sample = members[0].stream.sample  # the fixed training set of an offline task (or None); equal sizes
    settings = loop_settings([c.train for c in configs], None if sample is None else sample[0].shape[0])
    return Built(group, model, optimizer, members, tasks, settings)


def build_run(config: dict | Run) -> Built:
    """Build one run (a group of one): ``built.model`` takes (batch, d) like any module."""
    return build_group([config])
