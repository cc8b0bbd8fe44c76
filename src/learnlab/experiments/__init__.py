"""Experiments: specs, plans, sweeps, executors and the results store.

The path of a sweep: a spec is read and validated (:func:`load_spec`), expanded into runs
and grouped into a :class:`Plan` (:func:`plan`), executed group by group
(:func:`sweep`, :func:`run_group`), and every result is committed to a :class:`Store`
(:func:`open_store`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from learnlab._lazy import lazy_exports

if TYPE_CHECKING:
    from learnlab._devices import resolve_device
    from learnlab._errors import SpecError
    from learnlab.experiments._build import Built, build_group, build_run
    from learnlab.experiments._executors import EXECUTORS, make_executor
    from learnlab.experiments._expand import Run, canonical_json, derive_seed, expand, run_id
    from learnlab.experiments._folder import FolderBusy, StoreError
    from learnlab.experiments._groups import group_key, member_paths
    from learnlab.experiments._plan import EXECUTOR_NAMES, Plan, plan
    from learnlab.experiments._runner import run_group
    from learnlab.experiments._slurm import SlurmError, slurm_jobs
    from learnlab.experiments._spec import RunConfig, SlurmSpec, Spec, SweepSpec, load_spec, validate_config
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
    "SlurmError",
    "SlurmSpec",
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
    "slurm_jobs",
    "sweep",
    "validate_config",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "EXECUTORS": "learnlab.experiments._executors",
        "EXECUTOR_NAMES": "learnlab.experiments._plan",
        "Built": "learnlab.experiments._build",
        "FolderBusy": "learnlab.experiments._folder",
        "Plan": "learnlab.experiments._plan",
        "Run": "learnlab.experiments._expand",
        "RunConfig": "learnlab.experiments._spec",
        "RunResult": "learnlab.experiments._store",
        "SlurmError": "learnlab.experiments._slurm",
        "SlurmSpec": "learnlab.experiments._spec",
        "Spec": "learnlab.experiments._spec",
        "SpecError": "learnlab._errors",
        "Store": "learnlab.experiments._store",
        "StoreError": "learnlab.experiments._folder",
        "SweepSpec": "learnlab.experiments._spec",
        "build_group": "learnlab.experiments._build",
        "build_run": "learnlab.experiments._build",
        "canonical_json": "learnlab.experiments._expand",
        "derive_seed": "learnlab.experiments._expand",
        "expand": "learnlab.experiments._expand",
        "group_key": "learnlab.experiments._groups",
        "load_spec": "learnlab.experiments._spec",
        "make_executor": "learnlab.experiments._executors",
        "member_paths": "learnlab.experiments._groups",
        "open_store": "learnlab.experiments._store",
        "plan": "learnlab.experiments._plan",
        "resolve_device": "learnlab._devices",
        "run_group": "learnlab.experiments._runner",
        "run_id": "learnlab.experiments._expand",
        "slurm_jobs": "learnlab.experiments._slurm",
        "sweep": "learnlab.experiments._sweep",
        "validate_config": "learnlab.experiments._spec",
    },
)
