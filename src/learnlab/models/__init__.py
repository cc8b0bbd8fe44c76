"""Models: architectures whose layers read a parameterization (data), and their optimizers."""

from learnlab.models._apply import LAYER_ROLES, apply_parameterization
from learnlab.models._build import OPTIMIZERS, build_optimizer
from learnlab.models._cnn import CNN
from learnlab.models._coord import coord_check, coord_slopes, plot_coord_check
from learnlab.models._factory import MODELS, build_model
from learnlab.models._mlp import ACTIVATIONS, MLP
from learnlab.models._optim import SGD, Adam, select_members
from learnlab.models._param import (
    GAMMA_LR_RULES,
    PARAMETERIZATIONS,
    BaseWidthWarning,
    Parameterization,
    base_width_note,
    gamma_lr_factor,
    get_parameterization,
)
from learnlab.models._scaling import Scaling, Slot, lr_factors, lr_table, scaling_of
from learnlab.models._spec import ModelSpec, ParamSpec
from learnlab.models._stack import Stack
from learnlab.models._user import UserStack, as_stack, build_user_members, vectorization_problem

__all__ = [
    "ACTIVATIONS",
    "CNN",
    "GAMMA_LR_RULES",
    "LAYER_ROLES",
    "MLP",
    "MODELS",
    "OPTIMIZERS",
    "PARAMETERIZATIONS",
    "SGD",
    "Adam",
    "BaseWidthWarning",
    "ModelSpec",
    "ParamSpec",
    "Parameterization",
    "Scaling",
    "Slot",
    "Stack",
    "UserStack",
    "apply_parameterization",
    "as_stack",
    "base_width_note",
    "build_model",
    "build_optimizer",
    "build_user_members",
    "coord_check",
    "coord_slopes",
    "gamma_lr_factor",
    "get_parameterization",
    "lr_factors",
    "lr_table",
    "plot_coord_check",
    "scaling_of",
    "select_members",
    "vectorization_problem",
]
