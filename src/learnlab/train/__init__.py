"""Training: one loop for single runs and stacked ensembles, metrics, thresholds, probes.

``learnlab.train`` is also callable: ``learnlab.train(model, task, **recipe)`` trains
any ``nn.Module`` on a task and returns a :class:`History` (see :func:`train`)."""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

from learnlab._lazy import lazy_exports

if TYPE_CHECKING:
    from learnlab.train._api import train
    from learnlab.train._checkpoint import Checkpointer, CheckpointWarning
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
    "CheckpointWarning",
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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "LOSSES": "learnlab.train._losses",
        "METRICS": "learnlab.train._metrics",
        "PROBES": "learnlab.train._probes",
        "CheckpointWarning": "learnlab.train._checkpoint",
        "Checkpointer": "learnlab.train._checkpoint",
        "History": "learnlab.train._history",
        "LoopSettings": "learnlab.train._loop",
        "Member": "learnlab.train._loop",
        "Probe": "learnlab.train._probes_api",
        "ProbeContext": "learnlab.train._probes_api",
        "ThresholdTracker": "learnlab.train._thresholds",
        "TrainSpec": "learnlab.train._spec",
        "fit": "learnlab.train._loop",
        "get_loss": "learnlab.train._losses",
        "make_probes": "learnlab.train._probes",
        "train": "learnlab.train._api",
    },
)


class _CallableModule(types.ModuleType):
    """Lets ``learnlab.train(model, task, ...)`` call :func:`train` while staying a subpackage."""

    def __call__(self, *args, **kwargs):
        from learnlab.train._api import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
