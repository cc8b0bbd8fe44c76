"""A task = input distribution + target + label noise + sample sizes."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import torch

from learnlab._cpu import one_thread
from learnlab.tasks._inputs import Inputs
from learnlab.tasks._targets import Target, add_label_noise, is_rowwise

if TYPE_CHECKING:
    from learnlab.tasks._spec import TaskSpec

__all__ = ["Task"]


@dataclass(frozen=True)
class Task:
    """What is learned.

    Attributes:
        inputs: the input distribution (``inputs.d`` = input dimension).
        target: y = target(x), shape (n, outputs); ``target.labels`` says what the noise means.
        noise: label noise of training labels (never of test labels): the std of Gaussian
            noise for real-valued targets, the flip probability for +-1 labels, the
            probability of a uniformly drawn other class for one-hot labels.
        n_train: size of the fixed training sample (offline), or None for online learning.
        n_test: size of the fixed test sample.
        spec: the ``task`` section it was built from (``make_task``), which seeds its data
            streams in a run (see ``learnlab._seeds``); None for a task built by hand.
    """

    inputs: Inputs
    target: Target
    noise: float = 0.0
    n_train: int | None = None
    n_test: int | None = 2048
    spec: TaskSpec | None = field(default=None, compare=False, repr=False)

    @property
    def d(self) -> int:
        return self.inputs.d

    @property
    def outputs(self) -> int:
        return self.target.outputs

    @property
    def online(self) -> bool:
        return self.n_train is None

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        noise: bool = True,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw (x, y) with x: (n, d) and y: (n, outputs), whole-batch from ``generator``.

        Label noise (if ``self.noise > 0`` and ``noise``) is drawn from the same
        generator right after x, so a stream is reproducible from its seed alone.
        """
        x = self.inputs.sample(n, generator, dtype=dtype, device=device)
        # a target's matrix products: one thread's bits in every process (elementwise ones have them)
        with contextlib.nullcontext() if is_rowwise(self.target, x) else one_thread():
            y = self.target(x)
        if noise and self.noise > 0:
            y = add_label_noise(y, getattr(self.target, "labels", "value"), self.noise, generator)
        return x, y

    def train_sample(
        self,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        """The fixed training sample of an offline task: ``n_train`` points with label noise."""
        if self.n_train is None:
            raise ValueError("an online task (n_train: null) has no fixed training sample")
        return self.sample(self.n_train, generator, dtype=dtype, device=device)

    def test_sample(
        self,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        """The fixed test sample: ``n_test`` noise-free points (x: (n_test, d), y: (n_test, outputs))."""
        # a synthetic task's spec requires an n_test (None is a dataset's whole split, see DatasetTask)
        return self.sample(cast(int, self.n_test), generator, noise=False, dtype=dtype, device=device)

    def torch_dataset(
        self,
        split: str = "train",
        *,
        seed: int = 0,
        batch_size: int = 256,
        batches: int | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        """A ``torch.utils.data`` dataset of this task; see :func:`learnlab.tasks.torch_dataset`."""
        from learnlab.tasks._torch_data import torch_dataset

        return torch_dataset(self, split, seed=seed, batch_size=batch_size, batches=batches, dtype=dtype)
