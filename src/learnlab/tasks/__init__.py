"""Tasks: what is learned (input distributions, targets, label noise, samples, real datasets)."""

from learnlab.tasks._build import make_task
from learnlab.tasks._catalogue import catalogue
from learnlab.tasks._dataset_task import DatasetTask
from learnlab.tasks._datasets import DATASETS, DatasetFilesError, read_idx
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
