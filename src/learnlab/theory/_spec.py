"""The ``theory`` section of a spec: which kernel predictions to store beside each run (torch-free)."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, NonNegativeFloat

from learnlab._spec_base import Section

__all__ = ["TheorySpec", "PREDICTIONS"]

Prediction = Literal["kernel_regression", "dynamics", "eigenlearning"]
PREDICTIONS: tuple[Prediction, ...] = get_args(Prediction)


class TheorySpec(Section):
    """Predictions of the run's own infinite-width kernel, stored as metrics ``theory/...``
    (docs/theory.md#in-a-sweep).

    ``kernel_regression``: test MSE of (ridge) regression with the kernel on the run's training
    sample (``theory/kernel_regression/test/mse``). ``dynamics``: train and test MSE of the
    linearised network under full-batch gradient descent with the run's learning rate, at its
    eval steps (``theory/dynamics/{train,test}/mse``; the NTK weighted by learnlab's per-layer
    SGD rates). ``eigenlearning``: the eigenlearning prediction at n = n_train
    (``theory/eigenlearning/{train,test}/mse``) from the kernel's spectrum on the task's inputs
    (exact on the hypercube, Nystrom on ``nystrom`` fresh points otherwise).
    """

    kernel: Literal["ntk", "nngp"] = "ntk"
    predict: list[Prediction] = Field(default_factory=lambda: list(PREDICTIONS), min_length=1)
    ridge: NonNegativeFloat = 0.0  # kernel_regression and eigenlearning (0: interpolation, a tiny jitter if singular)
    nystrom: int = Field(2000, ge=10, le=20_000)  # points for the spectrum of non-hypercube inputs
