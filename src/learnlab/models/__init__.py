"""Models: architectures whose layers read a parameterization (data), and their optimizers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from learnlab._lazy import lazy_exports

if TYPE_CHECKING:
    from learnlab.models._apply import LAYER_ROLES, apply_parameterization
    from learnlab.models._build import OPTIMIZERS, build_optimizer
    from learnlab.models._cnn import CNN
    from learnlab.models._coord import coord_check, coord_slopes, plot_coord_check
    from learnlab.models._depth import DEPTH_PARAMETERIZATIONS, DepthParameterization, get_depth_parameterization
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
    from learnlab.models._resmlp import ResMLP
    from learnlab.models._scaling import Scaling, Slot, lr_factors, lr_table, scaling_of
    from learnlab.models._spec import DepthParamSpec, ModelSpec, ParamSpec
    from learnlab.models._stack import Stack
    from learnlab.models._user import UserStack, as_stack, build_user_members, vectorization_problem

__all__ = [
    "ACTIVATIONS",
    "CNN",
    "DEPTH_PARAMETERIZATIONS",
    "GAMMA_LR_RULES",
    "LAYER_ROLES",
    "MLP",
    "MODELS",
    "OPTIMIZERS",
    "PARAMETERIZATIONS",
    "SGD",
    "Adam",
    "BaseWidthWarning",
    "DepthParamSpec",
    "DepthParameterization",
    "ModelSpec",
    "ParamSpec",
    "Parameterization",
    "ResMLP",
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
    "get_depth_parameterization",
    "get_parameterization",
    "lr_factors",
    "lr_table",
    "plot_coord_check",
    "scaling_of",
    "select_members",
    "vectorization_problem",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ACTIVATIONS": "learnlab.models._mlp",
        "CNN": "learnlab.models._cnn",
        "DEPTH_PARAMETERIZATIONS": "learnlab.models._depth",
        "DepthParameterization": "learnlab.models._depth",
        "DepthParamSpec": "learnlab.models._spec",
        "ResMLP": "learnlab.models._resmlp",
        "get_depth_parameterization": "learnlab.models._depth",
        "GAMMA_LR_RULES": "learnlab.models._param",
        "LAYER_ROLES": "learnlab.models._apply",
        "MLP": "learnlab.models._mlp",
        "MODELS": "learnlab.models._factory",
        "OPTIMIZERS": "learnlab.models._build",
        "PARAMETERIZATIONS": "learnlab.models._param",
        "SGD": "learnlab.models._optim",
        "Adam": "learnlab.models._optim",
        "BaseWidthWarning": "learnlab.models._param",
        "ModelSpec": "learnlab.models._spec",
        "ParamSpec": "learnlab.models._spec",
        "Parameterization": "learnlab.models._param",
        "Scaling": "learnlab.models._scaling",
        "Slot": "learnlab.models._scaling",
        "Stack": "learnlab.models._stack",
        "UserStack": "learnlab.models._user",
        "apply_parameterization": "learnlab.models._apply",
        "as_stack": "learnlab.models._user",
        "base_width_note": "learnlab.models._param",
        "build_model": "learnlab.models._factory",
        "build_optimizer": "learnlab.models._build",
        "build_user_members": "learnlab.models._user",
        "coord_check": "learnlab.models._coord",
        "coord_slopes": "learnlab.models._coord",
        "gamma_lr_factor": "learnlab.models._param",
        "get_parameterization": "learnlab.models._param",
        "lr_factors": "learnlab.models._scaling",
        "lr_table": "learnlab.models._scaling",
        "plot_coord_check": "learnlab.models._coord",
        "scaling_of": "learnlab.models._scaling",
        "select_members": "learnlab.models._optim",
        "vectorization_problem": "learnlab.models._user",
    },
)
