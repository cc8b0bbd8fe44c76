"""Models: architectures whose layers read a parameterization (data), and their optimizers."""

from learnlab.models._mlp import ACTIVATIONS, MLP
from learnlab.models._optim import OPTIMIZERS, SGD, Adam, build_optimizer, select_members
from learnlab.models._param import PARAMETERIZATIONS, Parameterization, get_parameterization
from learnlab.models._spec import ModelSpec, ParamSpec

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "OPTIMIZERS",
    "PARAMETERIZATIONS",
    "SGD",
    "Adam",
    "ModelSpec",
    "ParamSpec",
    "Parameterization",
    "build_optimizer",
    "get_parameterization",
    "select_members",
]
