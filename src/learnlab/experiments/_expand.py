"""Expand a spec into runs: grid x zip x seeds; run ids; derived seeds."""

from __future__ import annotations

import copy
import hashlib
import itertools
from dataclasses import dataclass, field

from pydantic import ValidationError

from learnlab._errors import SpecError, problems_from_validation
from learnlab._seeds import canonical_json, derive_seed
from learnlab.experiments._facts import PlanFacts
from learnlab.experiments._spec import RunConfig, Spec, cross_checks, set_dotted

__all__ = ["Run", "expand", "run_id", "derive_seed", "canonical_json"]


@dataclass(frozen=True)
class Run:
    """One run of a sweep: its id, resolved config (JSON-able) and sweep coordinates.

    ``spec`` is the validated config the plan checked (None for a run made from a bare
    config dict: :meth:`validated` then validates it once). ``extends`` is (id, steps) of a
    shorter run of the same config whose saved state this run continues from (``--extend``).
    """

    run_id: str
    config: dict
    point: dict = field(default_factory=dict)
    spec: RunConfig | None = field(default=None, compare=False, repr=False)
    extends: tuple[str, int] | None = None

    @classmethod
    def of(cls, run: Run | dict) -> Run:
        """A run as it is, or a resolved config dict as a run (its id computed)."""
        return run if isinstance(run, Run) else cls(run_id(run), run)

    def validated(self) -> RunConfig:
        """The validated config."""
        return self.spec if self.spec is not None else RunConfig.model_validate(self.config)


def run_id(config: dict) -> str:
    """Id of a resolved run config: the first 16 hex digits of its canonical SHA-256."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:16]


def _points(spec: Spec) -> list[dict]:
    grid = spec.sweep.grid
    zipped = spec.sweep.zip
    grid_points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]
    n_zip = len(next(iter(zipped.values()))) if zipped else 0
    zip_points = [{k: v[i] for k, v in zipped.items()} for i in range(n_zip)] or [{}]
    return [{**g, **z} for g in grid_points for z in zip_points]


def _matches(point: dict, partial: dict) -> bool:
    """Whether a sweep point sets every key of ``partial`` to its value."""
    return all(key in point and point[key] == value for key, value in partial.items())


def expand(spec: Spec, raw: dict, source: str | None = None, facts: PlanFacts | None = None) -> list[Run]:
    """Every run of the sweep, validated; raises SpecError listing all problems.

    ``sweep.seeds: n`` gives seeds ``spec.seed + i`` for i < n; a list gives them
    explicitly. The run config's ``seed`` is that seed; each of the run's random roles is
    seeded from it and the config that role depends on (see :mod:`learnlab._seeds`).
    ``facts`` (a plan's) builds user models and reads datasets once for every run's cross-checks.
    """
    facts = facts if facts is not None else PlanFacts()
    seeds = spec.sweep.seeds
    seeds = [spec.seed + i for i in range(seeds)] if isinstance(seeds, int) else list(seeds)
    base = {k: v for k, v in copy.deepcopy(raw).items() if k not in ("name", "sweep", "base")}
    runs, problems, seen = [], [], set()
    for point in _points(spec):
        if any(_matches(point, partial) for partial in spec.sweep.exclude):
            continue
        for seed in seeds:
            tree = copy.deepcopy(base)
            for key, value in point.items():
                set_dotted(tree, key, value)
            tree["seed"] = seed
            try:
                validated = RunConfig.model_validate(tree)
                config = validated.model_dump(mode="json")
            except ValidationError as err:
                where = ", ".join(f"{k}={v!r}" for k, v in point.items())
                for path, msg in problems_from_validation(err, RunConfig):
                    suffix = (
                        f" [sweep point {where}]"
                        if where and any(path.startswith(k) or k.startswith(path) for k in point)
                        else ""
                    )
                    problems.append((path, msg + suffix))
                continue
            crossed = cross_checks(validated, facts)
            if crossed:
                problems += crossed
                continue
            rid = run_id(config)
            if rid in seen:
                continue
            seen.add(rid)
            runs.append(Run(rid, config, {**point, "seed": seed}, validated))
    if problems:
        raise SpecError(problems, source=source)
    return runs
