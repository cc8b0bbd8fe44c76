"""Experiments: specs, plans, sweeps, executors and the results store.

The path of a sweep: a spec is read and validated (:func:`load_spec`), expanded into runs
and grouped into a :class:`Plan` (:func:`plan`), executed group by group
(:func:`sweep`, :func:`run_group`), and every result is committed to a :class:`Store`
(:func:`open_store`).
"""

from learnlab._devices import resolve_device
from learnlab._errors import SpecError
from learnlab.experiments._build import Built, build_group, build_run
from learnlab.experiments._executors import EXECUTORS, make_executor
from learnlab.experiments._expand import Run, canonical_json, derive_seed, expand, run_id
from learnlab.experiments._folder import FolderBusy, StoreError
from learnlab.experiments._groups import group_key, member_paths
from learnlab.experiments._plan import EXECUTOR_NAMES, Plan, plan
from learnlab.experiments._runner import run_group
from learnlab.experiments._spec import RunConfig, Spec, SweepSpec, load_spec, validate_config
from learnlab.experiments._store import RunResult, Store, open_store
from learnlab.experiments._sweep import sweep

__all__ = [
    "EXECUTORS",
    "EXECUTOR_NAMES",
    "Built",
    "FolderBusy",
    "Plan",
    "Run",
    "RunConfig",
    "RunResult",
    "Spec",
    "SpecError",
    "Store",
    "StoreError",
    "SweepSpec",
    "build_group",
    "build_run",
    "canonical_json",
    "derive_seed",
    "expand",
    "group_key",
    "load_spec",
    "make_executor",
    "member_paths",
    "open_store",
    "plan",
    "resolve_device",
    "run_group",
    "run_id",
    "sweep",
    "validate_config",
]
