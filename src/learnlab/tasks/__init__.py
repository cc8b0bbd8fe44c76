"""Tasks: what is learned (input distributions, targets, label noise, samples, real datasets)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from learnlab._lazy import lazy_exports

if TYPE_CHECKING:
    from learnlab.tasks._build import make_task
    from learnlab.tasks._catalogue import catalogue
    from learnlab.tasks._dataset_task import DatasetTask
    from learnlab.tasks._datasets import DATASETS, DatasetFilesError, check_files, read_idx
    from learnlab.tasks._fetch import FetchError, fetch
    from learnlab.tasks._hermite import hermite, hermite_monomial, hermite_stack
    from learnlab.tasks._index_models import MultiIndex, SingleIndex, random_directions
    from learnlab.tasks._inputs import (
        INPUTS,
        Box,
        Gaussian,
        Hypercube,
        Inputs,
        PowerLawGaussian,
        Sphere,
        power_law_spectrum,
    )
    from learnlab.tasks._polynomial import HermitePolynomial
    from learnlab.tasks._power_law import PowerLaw, power_law_coefficients, relu_level_coefficients, top_monomials
    from learnlab.tasks._spec import TaskSpec
    from learnlab.tasks._stream import BatchStream, next_stacked
    from learnlab.tasks._targets import TARGETS, FunctionTarget, Hermite, Labelled, Parity, Sine, Target
    from learnlab.tasks._task import Task
    from learnlab.tasks._teacher import Teacher
    from learnlab.tasks._torch_data import FixedDataset, OnlineBatches, torch_dataset

__all__ = [
    "DATASETS",
    "INPUTS",
    "TARGETS",
    "BatchStream",
    "Box",
    "DatasetFilesError",
    "DatasetTask",
    "FetchError",
    "FixedDataset",
    "FunctionTarget",
    "Gaussian",
    "Hermite",
    "HermitePolynomial",
    "Hypercube",
    "Inputs",
    "Labelled",
    "MultiIndex",
    "OnlineBatches",
    "Parity",
    "PowerLaw",
    "PowerLawGaussian",
    "Sine",
    "SingleIndex",
    "Sphere",
    "Target",
    "Task",
    "TaskSpec",
    "Teacher",
    "catalogue",
    "check_files",
    "fetch",
    "hermite",
    "hermite_monomial",
    "hermite_stack",
    "make_task",
    "next_stacked",
    "power_law_coefficients",
    "power_law_spectrum",
    "random_directions",
    "read_idx",
    "relu_level_coefficients",
    "top_monomials",
    "torch_dataset",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DATASETS": "learnlab.tasks._datasets",
        "INPUTS": "learnlab.tasks._inputs",
        "TARGETS": "learnlab.tasks._targets",
        "BatchStream": "learnlab.tasks._stream",
        "Box": "learnlab.tasks._inputs",
        "DatasetFilesError": "learnlab.tasks._datasets",
        "DatasetTask": "learnlab.tasks._dataset_task",
        "FetchError": "learnlab.tasks._fetch",
        "FixedDataset": "learnlab.tasks._torch_data",
        "FunctionTarget": "learnlab.tasks._targets",
        "Gaussian": "learnlab.tasks._inputs",
        "Hermite": "learnlab.tasks._targets",
        "HermitePolynomial": "learnlab.tasks._polynomial",
        "Hypercube": "learnlab.tasks._inputs",
        "Inputs": "learnlab.tasks._inputs",
        "Labelled": "learnlab.tasks._targets",
        "MultiIndex": "learnlab.tasks._index_models",
        "OnlineBatches": "learnlab.tasks._torch_data",
        "Parity": "learnlab.tasks._targets",
        "PowerLaw": "learnlab.tasks._power_law",
        "PowerLawGaussian": "learnlab.tasks._inputs",
        "Sine": "learnlab.tasks._targets",
        "SingleIndex": "learnlab.tasks._index_models",
        "Sphere": "learnlab.tasks._inputs",
        "Target": "learnlab.tasks._targets",
        "Task": "learnlab.tasks._task",
        "TaskSpec": "learnlab.tasks._spec",
        "Teacher": "learnlab.tasks._teacher",
        "catalogue": "learnlab.tasks._catalogue",
        "check_files": "learnlab.tasks._datasets",
        "fetch": "learnlab.tasks._fetch",
        "hermite": "learnlab.tasks._hermite",
        "hermite_monomial": "learnlab.tasks._hermite",
        "hermite_stack": "learnlab.tasks._hermite",
        "make_task": "learnlab.tasks._build",
        "next_stacked": "learnlab.tasks._stream",
        "power_law_coefficients": "learnlab.tasks._power_law",
        "power_law_spectrum": "learnlab.tasks._inputs",
        "random_directions": "learnlab.tasks._index_models",
        "read_idx": "learnlab.tasks._datasets",
        "relu_level_coefficients": "learnlab.tasks._power_law",
        "top_monomials": "learnlab.tasks._power_law",
        "torch_dataset": "learnlab.tasks._torch_data",
    },
)
