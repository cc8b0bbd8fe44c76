"""learnlab: rigorous, fast, reproducible experiments on how neural networks learn.

Public names are loaded lazily, so ``import learnlab`` is cheap (torch is imported
only when a name that needs it is used). Importing changes nothing else: CPU tuning
(see :mod:`learnlab._cpu`) happens where work starts.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "open_store": "learnlab.experiments",
    "sweep": "learnlab.experiments",
    "plan": "learnlab.experiments",
    "Plan": "learnlab.experiments",
    "load_spec": "learnlab.experiments",
    "SpecError": "learnlab.experiments",
    "Store": "learnlab.experiments",
    "StoreError": "learnlab.experiments",
    "FolderBusy": "learnlab.experiments",
    "make_task": "learnlab.tasks",
    "Task": "learnlab.tasks",
    "MLP": "learnlab.models",
    "Parameterization": "learnlab.models",
    "build_optimizer": "learnlab.models",
    "apply_parameterization": "learnlab.models",
    "coord_check": "learnlab.models",
    "History": "learnlab.train",
    "fit": "learnlab.train",
    "plot_learning_curves": "learnlab.analysis",
}

__all__ = sorted(_EXPORTS) + ["__version__", "train"]


# Subpackages, imported on first attribute access (``learnlab.train`` is also callable).
_SUBPACKAGES = ("analysis", "experiments", "lr", "models", "tasks", "train")


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"learnlab.{name}")
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'learnlab' has no attribute {name!r}")


def __dir__():
    return __all__
