"""Learning-rate tools: the loss after one step per learning rate, Taylor predictions, sharpness, range test.

* :func:`loss_per_learning_rate` — the loss after one optimizer step at each of many
  learning rates, for any model, loss and ``torch.optim`` optimizer, leaving everything
  as it was (seed 004, made exact and fast).
* :func:`taylor_predictions` — first/second-order predictions of that curve and the
  learning rate minimising the second-order one.
* :func:`sharpness` — top Hessian eigenvalues (Lanczos), Adam's preconditioned version,
  and :class:`SharpnessProbe` to follow them against 2 / lr during training.
* :func:`range_test` — a short run on a rising learning rate and the steepest-descent rate.
"""

from learnlab.lr._loss_per_lr import loss_per_learning_rate
from learnlab.lr._range_test import RangeTestResult, range_test
from learnlab.lr._sharpness import SharpnessProbe, adam_preconditioner, sharpness, stability_threshold
from learnlab.lr._taylor import TaylorPrediction, taylor_predictions

__all__ = [
    "RangeTestResult",
    "SharpnessProbe",
    "TaylorPrediction",
    "adam_preconditioner",
    "loss_per_learning_rate",
    "range_test",
    "sharpness",
    "stability_threshold",
    "taylor_predictions",
]
