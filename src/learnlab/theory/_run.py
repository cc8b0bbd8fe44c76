"""A run's theory metrics: its own kernel's predictions on its own data (the spec's ``theory`` section).

Given a run's resolved config, its training sample and its test set, :func:`run_predictions`
returns metric rows ``(step, name, value)`` and final values named ``theory/<prediction>/<set>/mse``:

* ``kernel_regression``: the test MSE of (ridge) kernel regression on the training sample;
* ``dynamics``: train and test MSE of the linearised network under full-batch gradient descent
  with the run's learning rate, at the run's eval steps (NTK weighted by the per-layer SGD
  rates of the run's parameterization, so "lr" means what it means for the network);
* ``eigenlearning``: the predicted train and test MSE at n = n_train from the kernel's spectrum
  on the task's inputs: exact on the hypercube (Walsh degrees) and, for a target of one direction
  (``single_index``), on the sphere (Gegenbauer degrees 0..``_SPHERE_KMAX``; the target's power
  above them put on the last, their eigenvalues' trace added to the ridge), by Nystrom on fresh
  points otherwise; the test error is against the noise-free target, as the run's test set is.

All predictions start from f_0 = 0 (the kernel regime of a network whose initial output is
small or centred); the test set's labels are noise-free.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["run_predictions"]

_HYPERCUBE_MAX_D = 22  # the target's Walsh power is computed over all 2^d points
_SPHERE_KMAX = 40  # degrees of the sphere's exact spectrum and target power
_JITTER = 1e-10  # ridge 0 on a singular Gram matrix: this times its largest diagonal entry


class _Memo:
    """A kernel whose Gram matrices are computed once per pair of input tensors."""

    def __init__(self, kernel):
        self.kernel, self.grams = kernel, {}

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        key = (id(a), id(b))
        if key not in self.grams:
            self.grams[key] = (a, b, self.kernel(a, b))  # the tensors are kept so their ids stay theirs
        return self.grams[key][2]


def run_predictions(
    config: dict,
    task,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    eval_every: int,
    steps: int,
    seed: int = 0,
) -> tuple[list[tuple[int, str, float]], dict[str, float]]:
    """The theory metrics of one run (see the module docstring).

    Args:
        config: the run's resolved config (``theory``, ``model``, ``train`` sections).
        task: its :class:`~learnlab.tasks.Task` (inputs, target, noise).
        train: its training sample (x (n, d), y (n, k)).
        test: its test set (x, y), noise-free.
        eval_every, steps: when the run evaluated (``dynamics`` is recorded at the same steps).
        seed: seeds the Nystrom sample.

    Returns:
        (rows, finals): metric rows (step, name, value) and the final value of each metric.
    """
    from learnlab.theory._kernels import nngp, ntk

    theory, model = config["theory"], config["model"]
    x_train, y_train = (t.to(torch.float64) for t in train)
    x_test, y_test = (t.to(torch.float64) for t in test)
    if theory["kernel"] == "ntk":
        kernel = _Memo(lambda a, b: ntk(model, a, b))
    else:
        kernel = _Memo(lambda a, b: nngp(model, a, b))
    rows: list[tuple[int, str, float]] = []
    predict: Sequence[str] = theory["predict"]
    if "kernel_regression" in predict:
        rows += _kernel_regression(kernel, x_train, y_train, x_test, y_test, theory["ridge"], steps)
    if "dynamics" in predict:
        rows += _dynamics(model, theory, x_train, y_train, x_test, y_test, config["train"]["lr"], steps, eval_every)
    if "eigenlearning" in predict:
        rows += _eigenlearning(kernel, task, theory, x_train.shape[0], steps, seed)
    finals: dict[str, float] = {}
    for _, name, value in sorted(rows):
        finals[name] = value  # the last step's
    return rows, finals


def _mse(prediction: torch.Tensor, y: torch.Tensor) -> float:
    return float((prediction.reshape(y.shape) - y).pow(2).mean())


def _kernel_regression(kernel, x_train, y_train, x_test, y_test, ridge: float, steps: int):
    from learnlab.theory._predict import kernel_regression

    try:
        prediction = kernel_regression(kernel, x_train, y_train, x_test, ridge=ridge)
    except ValueError:
        if ridge > 0:
            raise
        # ridge 0 with repeated training points (a sample drawn with replacement): the ridge -> 0
        # limit, through a jitter far below the kernel's scale
        jitter = _JITTER * float(torch.diagonal(kernel(x_train, x_train)).max())
        prediction = kernel_regression(kernel, x_train, y_train, x_test, ridge=jitter)
    return [(steps, "theory/kernel_regression/test/mse", _mse(prediction, y_test))]


def _dynamics(model, theory, x_train, y_train, x_test, y_test, lr: float, steps: int, every: int):
    from learnlab.theory._kernels import nngp, ntk
    from learnlab.theory._predict import gd_dynamics

    if theory["kernel"] == "ntk":  # the kernel gradient descent follows: each layer at its own SGD rate
        kernel = _Memo(lambda a, b: ntk(model, a, b, lr_weighted="sgd"))
    else:
        kernel = _Memo(lambda a, b: nngp(model, a, b))
    result = gd_dynamics(kernel, x_train, y_train, x_test, lr, steps, y_test=y_test, every=every)
    rows = []
    assert result.test_mse is not None  # y_test was given
    for step, train_mse, test_mse in zip(result.steps.tolist(), result.train_mse.tolist(), result.test_mse.tolist()):
        rows += [(step, "theory/dynamics/train/mse", train_mse), (step, "theory/dynamics/test/mse", test_mse)]
    return rows


def _eigenlearning(kernel, task, theory, n: int, steps: int, seed: int):
    from learnlab.theory._eigenlearning import eigenlearning
    from learnlab.theory._spectra import hypercube_spectrum, hypercube_target_power, nystrom_spectrum, sphere_spectrum
    from learnlab.theory._sphere_target import sphere_target_power

    noise = float(getattr(task, "noise", 0.0) or 0.0)
    from learnlab.tasks._inputs import Hypercube, Sphere

    inputs = getattr(task, "inputs", None)
    if isinstance(inputs, Hypercube) and task.d <= _HYPERCUBE_MAX_D:
        spectrum = hypercube_spectrum(kernel, task.d)
        power = hypercube_target_power(lambda x: task.target(x.to(torch.float64)), task.d)
        result = eigenlearning(
            spectrum.eigenvalues, n=n, ridge=theory["ridge"], noise=noise, multiplicity=spectrum.multiplicities,
            power=power,
        )  # fmt: skip
    elif isinstance(inputs, Sphere) and getattr(task.target, "direction", None) is not None and task.outputs == 1:
        spectrum = sphere_spectrum(kernel, task.d, _SPHERE_KMAX)
        target = sphere_target_power(task.target, task.d, _SPHERE_KMAX)
        power = target.power.copy()
        power[-1] += target.rest  # unlearned at any n of interest, like the degree-kmax modes
        # the modes above kmax (eigenvalues << kappa) act on kappa as a ridge of their total trace
        point = torch.zeros(1, task.d, dtype=torch.float64)
        point[0, 0] = task.d**0.5
        tail = max(float(kernel(point, point)) - spectrum.trace, 0.0)
        result = eigenlearning(
            spectrum.eigenvalues.clip(min=0), n=n, ridge=theory["ridge"] + tail, noise=noise,
            multiplicity=spectrum.multiplicities, power=power,
        )  # fmt: skip
    else:
        x, y = task.sample(theory["nystrom"], torch.Generator().manual_seed(seed), noise=False, dtype=torch.float64)
        spectrum = nystrom_spectrum(kernel, x)
        result = eigenlearning(spectrum.eigenvalues, spectrum.coefficients(y), n=n, ridge=theory["ridge"], noise=noise)
    test = float(result.test_mse) - noise**2  # the run's test set is noise-free
    return [
        (steps, "theory/eigenlearning/test/mse", test),
        (steps, "theory/eigenlearning/train/mse", float(result.train_mse)),
    ]
