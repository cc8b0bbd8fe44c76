"""Bad input to the learning-rate tools: clear errors that say what was got and what to do."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from learnlab.lr import loss_per_learning_rate, sharpness, taylor_predictions


@pytest.fixture
def setup(gen):
    g = gen(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    x, y = torch.randn(16, 4, generator=g), torch.randn(16, 1, generator=g)
    return model, x, y, torch.optim.SGD(model.parameters(), lr=0.1)


@pytest.mark.parametrize(
    "lrs, match",
    [
        ([], "empty"),
        (torch.empty(0), "empty"),
        ([0.1, 0.0], r"finite and > 0.*\[0\.0\] at flat positions \[1\]"),
        ([-1e-3], r"> 0.*-0\.001"),
        ([0.1, math.nan], "finite"),
        ([math.inf], "finite"),
    ],
)
def test_bad_learning_rates(setup, lrs, match):
    model, x, y, optimizer = setup
    with pytest.raises(ValueError, match=match):
        loss_per_learning_rate(model, x, y, nn.MSELoss(), optimizer, lrs)


def test_learning_rates_that_are_not_numbers(setup):
    model, x, y, optimizer = setup
    with pytest.raises(TypeError, match="numbers"):
        loss_per_learning_rate(model, x, y, nn.MSELoss(), optimizer, ["fast"])


def test_batch_mismatch(setup):
    model, x, y, optimizer = setup
    with pytest.raises(ValueError, match=r"same size of dim 0.*x \(16, 4\) and y \(15, 1\)"):
        loss_per_learning_rate(model, x, y[:15], nn.MSELoss(), optimizer, [0.1])
    with pytest.raises(ValueError, match=r"eval_x \(3, 4\) and eval_y \(2, 1\)"):
        loss_per_learning_rate(model, x, y, nn.MSELoss(), optimizer, [0.1], eval_x=x[:3], eval_y=y[:2])
    with pytest.raises(ValueError, match="both eval_x and eval_y"):
        loss_per_learning_rate(model, x, y, nn.MSELoss(), optimizer, [0.1], eval_x=x)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        loss_per_learning_rate(model, x.tolist(), y, nn.MSELoss(), optimizer, [0.1])


def test_model_without_trainable_parameters(setup):
    model, x, y, optimizer = setup
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no parameters that require grad.*requires_grad_"):
        loss_per_learning_rate(model, x, y, nn.MSELoss(), optimizer, [0.1])
    with pytest.raises(ValueError, match="no parameters that require grad"):
        sharpness(model, x, y, nn.MSELoss())
    with pytest.raises(ValueError, match="no parameters that require grad"):
        taylor_predictions(model, x, y, nn.MSELoss(), [0.1])
    with pytest.raises(ValueError, match=r"no parameters that require grad \(it has no parameters at all\)"):
        loss_per_learning_rate(nn.ReLU(), x, y, nn.MSELoss(), optimizer, [0.1])


def test_optimizer_of_another_model(setup):
    model, x, y, _ = setup
    other = nn.Linear(4, 1)
    with pytest.raises(ValueError, match=r"not a parameter of the Sequential.*build the optimizer"):
        loss_per_learning_rate(model, x, y, nn.MSELoss(), torch.optim.SGD(other.parameters(), lr=0.1), [0.1])
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        loss_per_learning_rate(model, x, y, nn.MSELoss(), "sgd", [0.1])


def test_other_bad_settings(setup):
    model, x, y, optimizer = setup
    with pytest.raises(ValueError, match="method must be one of"):
        loss_per_learning_rate(model, x, y, nn.MSELoss(), optimizer, [0.1], method="quick")
    with pytest.raises(ValueError, match="scalar.*reduction='mean'"):
        loss_per_learning_rate(model, x, y, nn.MSELoss(reduction="none"), optimizer, [0.1])
    zero_first = torch.optim.SGD(
        [{"params": model[0].parameters(), "lr": 0.0}, {"params": model[2].parameters(), "lr": 0.1}]
    )
    with pytest.raises(ValueError, match="relative=False"):
        loss_per_learning_rate(model, x, y, nn.MSELoss(), zero_first, [0.1])
    same = loss_per_learning_rate(model, x, y, nn.MSELoss(), zero_first, [0.1], relative=False)
    torch.testing.assert_close(same, loss_per_learning_rate(model, x, y, nn.MSELoss(), optimizer, [0.1]))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        sharpness(model, x, y, nn.MSELoss(), k=0)
    with pytest.raises(ValueError, match="exceeds the number of parameters"):
        sharpness(nn.Linear(4, 1), x, y, nn.MSELoss(), k=6)
