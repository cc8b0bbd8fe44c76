"""Training: one loop for single runs and stacked ensembles, metrics, thresholds."""

from learnlab.train._history import History
from learnlab.train._loop import Member, fit, mse_per_member
from learnlab.train._spec import TrainSpec
from learnlab.train._thresholds import ThresholdTracker

__all__ = ["History", "Member", "ThresholdTracker", "TrainSpec", "fit", "mse_per_member"]
