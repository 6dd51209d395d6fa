"""eqprop: fast Equilibrium Propagation on multicore CPUs.

Scellier & Bengio (2016), "Equilibrium Propagation: Bridging the Gap between
Energy-Based Models and Backpropagation", arXiv:1602.05179.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from eqprop.layers import Conv2d
from eqprop.network import EqPropNetwork, rho
from eqprop.step import StepEngine
from eqprop.trainer import EpochRecord, Evaluation, History, Trainer, TrainingDiverged

try:
    __version__ = version("eqprop")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "Conv2d",
    "StepEngine",
    "EpochRecord",
    "EqPropNetwork",
    "Evaluation",
    "History",
    "Trainer",
    "TrainingDiverged",
    "__version__",
    "rho",
]
