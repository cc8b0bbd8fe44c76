"""Tasks: what is learned (input distributions, targets, label noise, samples)."""

from learnlab.tasks._hermite import hermite, hermite_monomial
from learnlab.tasks._inputs import INPUTS, Gaussian, Hypercube, Inputs
from learnlab.tasks._spec import TaskSpec
from learnlab.tasks._stream import BatchStream
from learnlab.tasks._targets import TARGETS, Hermite, Parity, Target
from learnlab.tasks._task import Task, make_task

__all__ = [
    "BatchStream",
    "INPUTS",
    "TARGETS",
    "Gaussian",
    "Hermite",
    "Hypercube",
    "Inputs",
    "Parity",
    "Target",
    "Task",
    "TaskSpec",
    "hermite",
    "hermite_monomial",
    "make_task",
]
