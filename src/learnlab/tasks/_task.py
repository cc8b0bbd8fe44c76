"""A task = input distribution + target + label noise + sample sizes."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from learnlab.tasks._inputs import INPUTS, Inputs
from learnlab.tasks._spec import TaskSpec
from learnlab.tasks._targets import TARGETS, Hermite, Parity, Target

__all__ = ["Task", "make_task"]


@dataclass(frozen=True)
class Task:
    """What is learned.

    Attributes:
        inputs: the input distribution (``inputs.d`` = input dimension).
        target: y = target(x), shape (n, outputs).
        noise: std of Gaussian label noise added to training labels (never to test labels).
        n_train: size of the fixed training sample (offline), or None for online learning.
        n_test: size of the fixed test sample.
    """

    inputs: Inputs
    target: Target
    noise: float = 0.0
    n_train: int | None = None
    n_test: int = 2048

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
        y = self.target(x)
        if noise and self.noise > 0:
            y = y + self.noise * torch.randn(
                y.shape, generator=generator, dtype=dtype, device=device
            )
        return x, y

    def train_sample(self, generator: torch.Generator | None = None, *,
                     dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        """The fixed training sample of an offline task: ``n_train`` points with label noise."""
        if self.n_train is None:
            raise ValueError("an online task (n_train: null) has no fixed training sample")
        return self.sample(self.n_train, generator, dtype=dtype, device=device)

    def test_sample(self, generator: torch.Generator | None = None, *,
                    dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        """The fixed test sample: ``n_test`` noise-free points (x: (n_test, d), y: (n_test, outputs))."""
        return self.sample(self.n_test, generator, noise=False, dtype=dtype, device=device)


def make_task(section: dict | TaskSpec) -> Task:
    """Build a :class:`Task` from the ``task`` section of a spec (a dict or a validated spec)."""
    spec = section if isinstance(section, TaskSpec) else TaskSpec.model_validate(section)
    inputs = INPUTS[spec.inputs.name](d=spec.inputs.d)
    target = _make_target(spec.target)
    return Task(inputs=inputs, target=target, noise=spec.noise, n_train=spec.n_train, n_test=spec.n_test)


def _make_target(spec) -> Target:
    if spec.name == "parity":
        return Parity(indices=tuple(tuple(s) for s in spec.indices), normalize=spec.normalize)
    if spec.name == "hermite":
        return Hermite(monomial=tuple(sorted(spec.monomial.items())))
    return TARGETS[spec.name](**spec.model_dump(exclude={"name"}))
