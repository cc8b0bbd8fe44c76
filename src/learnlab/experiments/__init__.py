"""Experiments: specs, sweeps, executors and the results store."""

from learnlab.experiments._errors import SpecError
from learnlab.experiments._executors import EXECUTORS, make_executor
from learnlab.experiments._expand import Run, canonical_json, derive_seed, expand, run_id
from learnlab.experiments._runner import Built, build_group, build_run, run_group
from learnlab.experiments._spec import RunConfig, Spec, SweepSpec, load_spec
from learnlab.experiments._store import RunResult, Store, open_store
from learnlab.experiments._sweep import Plan, plan, sweep

__all__ = [
    "Built",
    "build_group",
    "build_run",
    "EXECUTORS",
    "Plan",
    "Run",
    "RunConfig",
    "RunResult",
    "Spec",
    "SpecError",
    "Store",
    "SweepSpec",
    "canonical_json",
    "derive_seed",
    "expand",
    "load_spec",
    "make_executor",
    "open_store",
    "plan",
    "run_group",
    "run_id",
    "sweep",
]
