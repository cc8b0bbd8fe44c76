"""A real dataset as a fixed task: seeded subsets of the official splits, preprocessed.

Pipeline (the same for train and test): keep the examples of the chosen class groups,
pick the subset, average colour channels (``grayscale``), flatten to (n, d), subtract
the training split's mean (``center``), scale each example to unit norm (``normalize``,
as seed 002). Labels: two class groups give y in {-1, +1} (first group -1, as seed 002),
more give one-hot float vectors, so MSE applies directly (cross-entropy arrives with
the training recipe). Label noise flips training labels with probability ``noise``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from learnlab.tasks._datasets import DATASETS, load_raw
from learnlab.tasks._targets import add_label_noise
from learnlab.tasks._task import Task

__all__ = ["DatasetTask", "DatasetInputs", "DatasetLabels", "class_groups"]


def class_groups(classes, binarize: bool, n_classes: int) -> list[list[int]]:
    """The class groups: ``classes`` as given, seed 002's halves for ``binarize``, else one per class."""
    if classes is not None:
        return [list(g) for g in classes]
    if binarize:
        half = n_classes // 2
        return [list(range(half)), list(range(half, n_classes))]
    return [[c] for c in range(n_classes)]


@dataclass(frozen=True)
class DatasetInputs:
    """The inputs of a dataset task: ``d`` features per example (no generative distribution)."""

    name: str
    d: int


@dataclass(frozen=True)
class DatasetLabels:
    """The labels of a dataset task: ``outputs`` columns, ``labels`` = ``sign`` or ``onehot``."""

    outputs: int
    labels: str

    def __call__(self, x):
        raise TypeError("a dataset's labels are not a function of x: use task.train_sample / test_sample")


@dataclass(frozen=True)
class DatasetTask(Task):
    """A fixed task on a real dataset (see the module docstring).

    ``n_train`` / ``n_test`` None mean the whole (class-filtered) split. ``sample(n)`` draws n
    training examples uniformly with replacement.
    """

    dataset: str = "mnist"
    data_dir: str | None = None
    groups: tuple[tuple[int, ...], ...] = ()
    grayscale: bool = False
    center: bool = False
    normalize: bool = False
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def online(self) -> bool:
        return False

    def _split(self, split: str):
        """(raw x of the kept examples, their group labels) for ``train`` or ``test``, cached."""
        if split not in self._cache:
            xtr, ytr, xte, yte, scale = load_raw(self.dataset, self.data_dir)
            x, y = (xtr, ytr) if split == "train" else (xte, yte)
            group_of = np.full(max(int(y.max(initial=0)) + 1, DATASETS[self.dataset].classes), -1)
            for g, members in enumerate(self.groups):
                group_of[list(members)] = g
            keep = np.flatnonzero(group_of[y] >= 0)
            self._cache[split] = (x, keep, group_of[y[keep]], scale)
        return self._cache[split]

    def _mean(self) -> np.ndarray:
        if "mean" not in self._cache:  # the training split's mean image, float64
            x, keep, _, scale = self._split("train")
            self._cache["mean"] = self._features(x[keep].mean(axis=0, dtype=np.float64)[None] / scale)[0]
        return self._cache["mean"]

    def _features(self, x: np.ndarray) -> np.ndarray:
        if self.grayscale and x.ndim == 4:
            x = x.mean(axis=1)
        return x.reshape(x.shape[0], -1)

    def available(self, split: str) -> int:
        """Examples of the kept classes in ``split``."""
        return len(self._split(split)[1])

    def _take(self, split: str, n: int | None, generator, replace: bool = False):
        x, keep, groups, scale = self._split(split)
        total = len(keep)
        if n is not None and n > total and not replace:
            raise ValueError(
                f"{self.dataset} has {total} {split} examples of classes {list(map(list, self.groups))}; "
                f"asked for n_{split} = {n}: lower it or set it to null for the whole split"
            )
        if n is None:
            rows = np.arange(total)
        else:  # seeded subset, drawn on the generator's device then brought to CPU
            dev = generator.device if generator is not None else "cpu"
            idx = (
                torch.randint(total, (n,), generator=generator, device=dev)
                if replace
                else torch.randperm(total, generator=generator, device=dev)[:n]
            )
            rows = idx.cpu().numpy()
        feats = self._features(x[keep[rows]].astype(np.float64) / scale)
        if self.center:
            feats = feats - self._mean()
        if self.normalize:
            feats = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
        return feats, groups[rows]

    def _labels(self, groups: np.ndarray) -> torch.Tensor:
        g = torch.from_numpy(groups)
        if len(self.groups) == 2:
            return (2.0 * g - 1.0).to(torch.float64).unsqueeze(1)
        return torch.nn.functional.one_hot(g, len(self.groups)).to(torch.float64)

    def _tensors(self, feats, groups, generator, noise: bool, dtype, device):
        x = torch.from_numpy(feats).to(device=device, dtype=dtype)
        y = self._labels(groups).to(device=device, dtype=dtype)
        if noise:
            y = add_label_noise(y, self.target.labels, self.noise, generator)
        return x, y

    def sample(self, n, generator=None, *, noise=True, dtype=torch.float32, device="cpu"):
        """n training examples drawn with replacement: x (n, d), y (n, outputs)."""
        feats, groups = self._take("train", n, generator, replace=True)
        return self._tensors(feats, groups, generator, noise, dtype, device)

    def train_sample(self, generator=None, *, dtype=torch.float32, device="cpu"):
        """The fixed training set: a seeded subset of ``n_train`` examples (all when None), with label noise."""
        feats, groups = self._take("train", self.n_train, generator)
        return self._tensors(feats, groups, generator, True, dtype, device)

    def test_sample(self, generator=None, *, dtype=torch.float32, device="cpu"):
        """A seeded subset of ``n_test`` examples of the official test split (all when None), noise-free."""
        feats, groups = self._take("test", self.n_test, generator)
        return self._tensors(feats, groups, generator, False, dtype, device)
