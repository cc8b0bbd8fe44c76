"""Theory beside experiment: infinite-width kernels (NNGP, NTK) of learnlab's MLPs and the
learning-curve predictions of kernel methods for them (kernel regression, gradient-descent
dynamics of the linearised network, eigenlearning), with kernel spectra on the hypercube, the
sphere and, by Nystrom, any input distribution (docs/theory.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from learnlab._lazy import lazy_exports

if TYPE_CHECKING:
    from learnlab.theory._kernels import nngp, ntk
    from learnlab.theory._predict import Dynamics, Eigenlearning, eigenlearning, gd_dynamics, kernel_regression
    from learnlab.theory._spectra import (
        Spectrum,
        hypercube_spectrum,
        hypercube_target_power,
        nystrom_spectrum,
        sphere_spectrum,
    )
    from learnlab.theory._sphere_target import TargetPower, sphere_target_power

_EXPORTS = {
    "nngp": "learnlab.theory._kernels",
    "ntk": "learnlab.theory._kernels",
    "kernel_regression": "learnlab.theory._predict",
    "gd_dynamics": "learnlab.theory._predict",
    "eigenlearning": "learnlab.theory._predict",
    "Dynamics": "learnlab.theory._predict",
    "Eigenlearning": "learnlab.theory._predict",
    "Spectrum": "learnlab.theory._spectra",
    "hypercube_spectrum": "learnlab.theory._spectra",
    "hypercube_target_power": "learnlab.theory._spectra",
    "sphere_spectrum": "learnlab.theory._spectra",
    "nystrom_spectrum": "learnlab.theory._spectra",
    "TargetPower": "learnlab.theory._sphere_target",
    "sphere_target_power": "learnlab.theory._sphere_target",
}
__all__ = [
    "Dynamics",
    "Eigenlearning",
    "Spectrum",
    "TargetPower",
    "eigenlearning",
    "gd_dynamics",
    "hypercube_spectrum",
    "hypercube_target_power",
    "kernel_regression",
    "nngp",
    "ntk",
    "nystrom_spectrum",
    "sphere_spectrum",
    "sphere_target_power",
]
assert sorted(__all__) == sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
