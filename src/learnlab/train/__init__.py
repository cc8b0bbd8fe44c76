"""Training: one loop for single runs and stacked ensembles, metrics, thresholds, probes.

``learnlab.train`` is also callable: ``learnlab.train(model, task, **recipe)`` trains
any ``nn.Module`` on a task and returns a :class:`History` (see :func:`train`).
"""

import sys
import types

from learnlab.train._api import train
from learnlab.train._checkpoint import Checkpointer
from learnlab.train._history import History
from learnlab.train._loop import LoopSettings, Member, fit
from learnlab.train._losses import LOSSES, get_loss
from learnlab.train._metrics import METRICS
from learnlab.train._probes import PROBES, make_probes
from learnlab.train._probes_api import Probe, ProbeContext
from learnlab.train._spec import TrainSpec
from learnlab.train._thresholds import ThresholdTracker

__all__ = [
    "LOSSES",
    "METRICS",
    "PROBES",
    "Checkpointer",
    "History",
    "LoopSettings",
    "Member",
    "Probe",
    "ProbeContext",
    "ThresholdTracker",
    "TrainSpec",
    "fit",
    "get_loss",
    "make_probes",
    "train",
]


class _CallableModule(types.ModuleType):
    """Lets ``learnlab.train(model, task, ...)`` call :func:`train` while staying a subpackage."""

    def __call__(self, *args, **kwargs):
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
