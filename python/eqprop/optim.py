"""Optimizers and learning-rate schedules for EP training.

EP estimates the gradient of the loss J = mean C(s^0) from two relaxations
(Scellier & Bengio 2016, eq. 13):

    g = -(1 / beta) mean_batch(dPhi/dtheta(s^beta) - dPhi/dtheta(s^0))

and plain SGD, the paper's rule and this library's default, is
theta <- theta - lr g. The optimizers here take the same g and follow the
update equations of ``torch.optim.SGD`` and ``torch.optim.Adam``, with
PyTorch's defaults:

``"sgd"``
    theta <- theta - lr d, with d = g + wd theta.
``"momentum"``
    b <- mu b + d; theta <- theta - lr b  (b = 0 before the first step, so
    b_1 = d_1 as in PyTorch; dampening 0). Default mu = 0.9.
``"nesterov"``
    b <- mu b + d; theta <- theta - lr (d + mu b). Default mu = 0.9.
``"adam"``
    m <- beta1 m + (1 - beta1) d; v <- beta2 v + (1 - beta2) d^2;
    theta <- theta - lr (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps),
    t the step count (one step per mini-batch). Defaults betas = (0.9, 0.999),
    eps = 1e-8.

**Weight decay** is L2 regularisation added to the gradient, d = g + wd theta,
which is what ``weight_decay`` means in ``torch.optim.SGD`` and
``torch.optim.Adam``: hyperparameters carry over from PyTorch code unchanged,
and for the SGD family it is the same as decoupled decay (theta shrinks by
lr wd per step). (For Adam the two differ; decoupled AdamW is not provided.)
It is given per weight matrix, like the learning rates, and applies to the
weights only: biases are not decayed.

**Learning rates** are per weight matrix; the bias of layer k + 1 uses rate k
unless ``bias_learning_rates`` gives its own. A **schedule** multiplies every
rate by a factor f(e) for epoch e = 1, 2, ... (counted across resumed runs):
the rates of epoch e are lr_k f(e), constant over its mini-batches. f(1) = 1.

``"constant"``
    f(e) = 1.
``"cosine"``
    f(e) = floor + (1 - floor) (1 + cos(pi min(e - 1, E) / E)) / 2 over E
    epochs (PyTorch's ``CosineAnnealingLR`` with T_max = E and eta_min = floor
    lr): from 1 at the first epoch down towards ``floor``, which every epoch
    after E keeps.
``"exponential"``
    f(e) = gamma^(e - 1) (``ExponentialLR``).
``"step"``
    f(e) = gamma^floor((e - 1) / step_size) (``StepLR``; default gamma 0.1).

The factor is a function of the epoch alone, so a resumed run, which restores
the epoch, continues the schedule exactly. Plain SGD without weight decay or
bias rates keeps the compiled in-place update (the scale lr_k f(e) / beta goes
straight to the core); every other setting computes g into buffers and applies
the step with :func:`eqcore.optimizer_step` (compiled, nogil, element-wise in
fixed blocks over the threads).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import eqcore
from eqprop._validation import check_real

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
SCHEDULES = ("constant", "cosine", "exponential", "step")
DEFAULT_MOMENTUM = 0.9
DEFAULT_BETAS = (0.9, 0.999)
DEFAULT_EPS = 1e-8
DEFAULT_STEP_GAMMA = 0.1
#: The state arrays each optimizer keeps, one per parameter array.
STATE_BUFFERS: Mapping[str, tuple[str, ...]] = {
    "sgd": (),
    "momentum": ("momentum_buffer",),
    "nesterov": ("momentum_buffer",),
    "adam": ("exp_avg", "exp_avg_sq"),
}
_KINDS = {
    "sgd": eqcore.OPTIMIZER_SGD,
    "momentum": eqcore.OPTIMIZER_MOMENTUM,
    "nesterov": eqcore.OPTIMIZER_NESTEROV,
    "adam": eqcore.OPTIMIZER_ADAM,
}
#: The arguments of :class:`eqprop.Trainer` that configure the optimizer and the schedule.
OPTIMIZER_KEYS = ("optimizer", "momentum", "betas", "eps", "weight_decay", "bias_learning_rates")
SCHEDULE_KEYS = ("schedule", "schedule_epochs", "schedule_floor", "schedule_gamma", "schedule_step_size")
#: Their values when not given: today's training (plain SGD, constant rates).
DEFAULTS: Mapping[str, Any] = {
    "optimizer": "sgd", "momentum": None, "betas": None, "eps": None, "weight_decay": None,
    "bias_learning_rates": None, "schedule": "constant", "schedule_epochs": None, "schedule_floor": None,
    "schedule_gamma": None, "schedule_step_size": None,
}


def _name(names: Mapping[str, str] | None, key: str) -> str:
    return names.get(key, key) if names else key


_real = check_real  # a finite real number, or a TypeError / ValueError naming it


def _int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    if not 1 <= value < 2**31:
        raise ValueError(f"{name} must be a positive integer (at most 2147483647); got {value}")
    return int(value)


def _per_matrix(value: object, name: str, n_matrices: int, *, allow_scalar: bool) -> tuple[float, ...]:
    """One non-negative finite number per weight matrix (a single number for all if ``allow_scalar``)."""
    if allow_scalar and isinstance(value, numbers.Real) and not isinstance(value, bool):
        values = [value] * n_matrices
    elif isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        what = "a number or a sequence" if allow_scalar else "a sequence"
        raise TypeError(f"{name} must be {what} of {n_matrices} numbers (one per weight matrix); got {value!r}")
    else:
        values = list(value)
        if len(values) != n_matrices:
            raise ValueError(f"{name} needs one value per weight matrix ({n_matrices}); got {len(values)}")
    checked = tuple(_real(v, f"{name}[{k}]") for k, v in enumerate(values))
    negative = [v for v in checked if v < 0]
    if negative:
        raise ValueError(f"{name} must be non-negative; got {list(checked)}")
    return checked


def _only_for(value: object, key: str, applies: bool, where: str, names: Mapping[str, str] | None) -> None:
    if value is not None and not applies:
        raise ValueError(f"{_name(names, key)} applies only to {where}; got {_name(names, key)} = {value!r}")


# ---------------------------------------------------------------- optimizer
@dataclass(frozen=True)
class OptimizerSettings:
    """A checked optimizer configuration (see :func:`resolve_optimizer`).

    Attributes
    ----------
    name : {"sgd", "momentum", "nesterov", "adam"}
    momentum : float or None
        mu for ``"momentum"`` and ``"nesterov"``, else None.
    betas : (float, float) or None
        Adam's (beta1, beta2), else None.
    eps : float or None
        Adam's eps, else None.
    weight_decay : tuple of float
        L2 weight decay per weight matrix (zeros: none).
    bias_learning_rates : tuple of float or None
        Rates of the biases, or None: bias k uses learning rate k.
    """

    name: str = "sgd"
    momentum: float | None = None
    betas: tuple[float, float] | None = None
    eps: float | None = None
    weight_decay: tuple[float, ...] = ()
    bias_learning_rates: tuple[float, ...] | None = None

    @property
    def in_core(self) -> bool:
        """Plain SGD: the compiled EP update applies it in place (today's path, bit for bit)."""
        return self.name == "sgd" and not any(self.weight_decay) and self.bias_learning_rates is None

    def config(self) -> dict[str, Any]:
        """The Trainer keyword arguments, JSON-compatible (None where a setting does not apply)."""
        return {
            "optimizer": self.name,
            "momentum": self.momentum,
            "betas": None if self.betas is None else list(self.betas),
            "eps": self.eps,
            "weight_decay": list(self.weight_decay) if any(self.weight_decay) else None,
            "bias_learning_rates": None if self.bias_learning_rates is None else list(self.bias_learning_rates),
        }


def resolve_optimizer(
    optimizer: object = "sgd",
    *,
    momentum: object = None,
    betas: object = None,
    eps: object = None,
    weight_decay: object = None,
    bias_learning_rates: object = None,
    n_matrices: int,
    names: Mapping[str, str] | None = None,
) -> OptimizerSettings:
    """Check an optimizer configuration and fill in PyTorch's defaults.

    Parameters
    ----------
    optimizer : {"sgd", "momentum", "nesterov", "adam"}
    momentum : float, optional
        In [0, 1) (``"nesterov"``: (0, 1)); default 0.9. Only for ``"momentum"``
        and ``"nesterov"``.
    betas : (float, float), optional
        Each in [0, 1); default (0.9, 0.999). Only for ``"adam"``.
    eps : float, optional
        Positive; default 1e-8. Only for ``"adam"``.
    weight_decay : float or sequence of float, optional
        L2 decay per weight matrix (one number: the same for all), >= 0.
    bias_learning_rates : sequence of float, optional
        One rate >= 0 per bias vector (0 freezes it).
    n_matrices : int
        Weight matrices of the network.
    names : mapping, optional
        How to call each argument in messages (the command line passes its flags).

    Returns
    -------
    OptimizerSettings

    Raises
    ------
    ValueError, TypeError
        Naming the argument: an unknown optimizer, a value out of range, a
        list of the wrong length, or a setting the optimizer does not use.
    """
    if not isinstance(optimizer, str) or optimizer not in OPTIMIZERS:
        raise ValueError(f"{_name(names, 'optimizer')} must be one of {', '.join(OPTIMIZERS)}; got {optimizer!r}")
    uses_momentum = optimizer in ("momentum", "nesterov")
    _only_for(momentum, "momentum", uses_momentum, "the optimizers 'momentum' and 'nesterov'", names)
    _only_for(betas, "betas", optimizer == "adam", "the optimizer 'adam'", names)
    _only_for(eps, "eps", optimizer == "adam", "the optimizer 'adam'", names)
    resolved_momentum = resolved_betas = resolved_eps = None
    if uses_momentum:
        resolved_momentum = DEFAULT_MOMENTUM if momentum is None else _real(momentum, _name(names, "momentum"))
        low_ok = resolved_momentum > 0 if optimizer == "nesterov" else resolved_momentum >= 0
        if not (low_ok and resolved_momentum < 1):
            interval = "(0, 1)" if optimizer == "nesterov" else "[0, 1)"
            raise ValueError(f"{_name(names, 'momentum')} must be in {interval} for {optimizer!r}; "
                             f"got {resolved_momentum}")
    if optimizer == "adam":
        if betas is None:
            resolved_betas = DEFAULT_BETAS
        else:
            if isinstance(betas, (str, bytes)) or not isinstance(betas, (Sequence, np.ndarray)) or len(betas) != 2:
                raise TypeError(f"{_name(names, 'betas')} must be a pair (beta1, beta2); got {betas!r}")
            resolved_betas = tuple(_real(b, f"{_name(names, 'betas')}[{k}]") for k, b in enumerate(betas))
            if not all(0 <= b < 1 for b in resolved_betas):
                raise ValueError(f"{_name(names, 'betas')} must each be in [0, 1); got {list(resolved_betas)}")
        resolved_eps = DEFAULT_EPS if eps is None else _real(eps, _name(names, "eps"))
        if resolved_eps <= 0:
            raise ValueError(f"{_name(names, 'eps')} must be positive; got {resolved_eps}")
    decay = (0.0,) * n_matrices if weight_decay is None else _per_matrix(
        weight_decay, _name(names, "weight_decay"), n_matrices, allow_scalar=True)
    bias_rates = None if bias_learning_rates is None else _per_matrix(
        bias_learning_rates, _name(names, "bias_learning_rates"), n_matrices, allow_scalar=False)
    return OptimizerSettings(optimizer, resolved_momentum, resolved_betas, resolved_eps, decay, bias_rates)


# ----------------------------------------------------------------- schedule
@dataclass(frozen=True)
class Schedule:
    """A checked learning-rate schedule (see :func:`resolve_schedule` and the module documentation).

    Attributes
    ----------
    name : {"constant", "cosine", "exponential", "step"}
    epochs : int or None
        Cosine: the epochs E it spans.
    floor : float or None
        Cosine: the final factor, in [0, 1].
    gamma : float or None
        Exponential and step: the factor per epoch / per step, in (0, 1].
    step_size : int or None
        Step: epochs between two multiplications by gamma.
    """

    name: str = "constant"
    epochs: int | None = None
    floor: float | None = None
    gamma: float | None = None
    step_size: int | None = None

    def factor(self, epoch: int) -> float:
        """f(epoch): the multiplier of every learning rate in epoch ``epoch`` (1-based)."""
        index = max(int(epoch) - 1, 0)
        if self.name == "cosine":
            progress = min(index, self.epochs) / self.epochs
            return self.floor + (1.0 - self.floor) * (1.0 + math.cos(math.pi * progress)) / 2.0
        if self.name == "exponential":
            return self.gamma ** index
        if self.name == "step":
            return self.gamma ** (index // self.step_size)
        return 1.0

    def config(self) -> dict[str, Any]:
        """The Trainer keyword arguments, JSON-compatible (None where a setting does not apply)."""
        return {"schedule": self.name, "schedule_epochs": self.epochs, "schedule_floor": self.floor,
                "schedule_gamma": self.gamma, "schedule_step_size": self.step_size}


def resolve_schedule(
    schedule: object = "constant",
    *,
    epochs: object = None,
    floor: object = None,
    gamma: object = None,
    step_size: object = None,
    names: Mapping[str, str] | None = None,
) -> Schedule:
    """Check a schedule configuration and fill in its defaults.

    Parameters
    ----------
    schedule : {"constant", "cosine", "exponential", "step"}
    epochs : int
        Cosine only, required: the epochs the cosine spans (usually the run's total).
    floor : float, optional
        Cosine only: the factor it decays to, in [0, 1]; default 0.
    gamma : float
        Exponential (required) and step (default 0.1): in (0, 1].
    step_size : int
        Step only, required: epochs per multiplication by gamma.
    names : mapping, optional
        How to call each argument in messages.

    Returns
    -------
    Schedule

    Raises
    ------
    ValueError, TypeError
        Naming the argument.
    """
    keys = {"epochs": "schedule_epochs", "floor": "schedule_floor", "gamma": "schedule_gamma",
            "step_size": "schedule_step_size"}
    if not isinstance(schedule, str) or schedule not in SCHEDULES:
        raise ValueError(f"{_name(names, 'schedule')} must be one of {', '.join(SCHEDULES)}; got {schedule!r}")
    _only_for(epochs, keys["epochs"], schedule == "cosine", "schedule 'cosine'", names)
    _only_for(floor, keys["floor"], schedule == "cosine", "schedule 'cosine'", names)
    _only_for(gamma, keys["gamma"], schedule in ("exponential", "step"), "the schedules 'exponential' and 'step'",
              names)
    _only_for(step_size, keys["step_size"], schedule == "step", "schedule 'step'", names)
    if schedule == "cosine":
        if epochs is None:
            raise ValueError(f"schedule 'cosine' needs {_name(names, keys['epochs'])}, the epochs it spans "
                             f"(usually the run's total)")
        resolved_floor = 0.0 if floor is None else _real(floor, _name(names, keys["floor"]))
        if not 0.0 <= resolved_floor <= 1.0:
            raise ValueError(f"{_name(names, keys['floor'])} must be in [0, 1] (a fraction of each base rate); "
                             f"got {resolved_floor}")
        return Schedule("cosine", epochs=_int(epochs, _name(names, keys["epochs"])), floor=resolved_floor)
    if schedule in ("exponential", "step"):
        if gamma is None and schedule == "exponential":
            raise ValueError(f"schedule 'exponential' needs {_name(names, keys['gamma'])}, the factor per epoch")
        resolved_gamma = DEFAULT_STEP_GAMMA if gamma is None else _real(gamma, _name(names, keys["gamma"]))
        if not 0.0 < resolved_gamma <= 1.0:
            raise ValueError(f"{_name(names, keys['gamma'])} must be in (0, 1]; got {resolved_gamma}")
        if schedule == "exponential":
            return Schedule("exponential", gamma=resolved_gamma)
        if step_size is None:
            raise ValueError(f"schedule 'step' needs {_name(names, keys['step_size'])}, the epochs per step")
        return Schedule("step", gamma=resolved_gamma, step_size=_int(step_size, _name(names, keys["step_size"])))
    return Schedule()


# -------------------------------------------------------------------- state
class OptimizerState:
    """What a stateful optimizer carries from one mini-batch to the next.

    Parameters
    ----------
    optimizer : str
        One of :data:`OPTIMIZERS`.
    weights, biases : list of ndarray
        The parameters; the state arrays take their shapes and dtype (zeros).

    Attributes
    ----------
    optimizer : str
    step : int
        Steps taken (mini-batches); Adam's t of the last step.
    buffers : dict of str to (list of ndarray, list of ndarray)
        Each state array of :data:`STATE_BUFFERS` for the weights and the biases:
        ``"momentum_buffer"`` (momentum, nesterov), ``"exp_avg"`` and
        ``"exp_avg_sq"`` (adam, PyTorch's names).
    """

    def __init__(self, optimizer: str, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]) -> None:
        self.optimizer = optimizer
        self.step = 0
        self.buffers: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {
            name: ([np.zeros_like(w) for w in weights], [np.zeros_like(b) for b in biases])
            for name in STATE_BUFFERS[optimizer]
        }

    def fits(self, optimizer: str, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]) -> bool:
        """Whether this state belongs to ``optimizer`` on parameters of these shapes and dtype."""
        if optimizer != self.optimizer:
            return False
        for saved_w, saved_b in self.buffers.values():
            for state, param in zip((*saved_w, *saved_b), (*weights, *biases), strict=True):
                if state.shape != param.shape or state.dtype != param.dtype:
                    return False
        return True

    def load(self, step: int, buffers: Mapping[str, tuple[Sequence[np.ndarray], Sequence[np.ndarray]]]) -> None:
        """Copy a saved state (a checkpoint's) into this one; shapes must match."""
        if set(buffers) != set(self.buffers):
            raise ValueError(f"the {self.optimizer} state needs {sorted(self.buffers)}; got {sorted(buffers)}")
        for name, (weights, biases) in buffers.items():
            for dest, value in zip((*self.buffers[name][0], *self.buffers[name][1]), (*weights, *biases),
                                   strict=True):
                dest[...] = value
        self.step = int(step)

    def __repr__(self) -> str:
        return f"OptimizerState({self.optimizer!r}, step={self.step}, buffers={list(self.buffers)})"


class OptimizerStep:
    """An optimizer bound to a network's arrays for one ``fit``: gradient buffers and flat views.

    Parameters
    ----------
    settings : OptimizerSettings
    state : OptimizerState
        Updated in place by every :meth:`apply`.
    weights, biases : list of ndarray
        The parameters, updated in place.
    grads : (list of ndarray, list of ndarray), optional
        C-contiguous arrays shaped like the weights and biases to use as the
        gradient buffers (data-parallel training passes the views its
        Allreduce sums into); default: new zeroed arrays.

    Attributes
    ----------
    grads : (list of ndarray, list of ndarray)
        Gradient buffers shaped like the weights and biases: fill them (after
        :meth:`zero_grads`) with the EP estimate, then call :meth:`apply`.
    """

    def __init__(self, settings: OptimizerSettings, state: OptimizerState, weights: Sequence[np.ndarray],
                 biases: Sequence[np.ndarray],
                 grads: tuple[Sequence[np.ndarray], Sequence[np.ndarray]] | None = None) -> None:
        self.settings = settings
        self.state = state
        if grads is None:
            grads = ([np.zeros_like(w) for w in weights], [np.zeros_like(b) for b in biases])
        else:
            grads = (list(grads[0]), list(grads[1]))
            for grad, param in zip((*grads[0], *grads[1]), (*weights, *biases), strict=True):
                if grad.shape != param.shape or grad.dtype != param.dtype or not grad.flags.c_contiguous:
                    raise ValueError("grads must be C-contiguous arrays shaped like the parameters, in their dtype")
        self.grads = grads
        self._n_weights = len(weights)
        self._params = [a.reshape(-1) for a in (*weights, *biases)]
        self._flat_grads = [a.reshape(-1) for a in (*self.grads[0], *self.grads[1])]
        flat_state = [[a.reshape(-1) for a in (*w, *b)] for w, b in state.buffers.values()]
        self._first = flat_state[0] if flat_state else None
        self._second = flat_state[1] if len(flat_state) > 1 else None
        self._decay = np.array([*settings.weight_decay, *([0.0] * len(biases))], dtype=np.float64)
        for view, array in zip(self._params, (*weights, *biases)):
            if not np.shares_memory(view, array):  # pragma: no cover - parameters are C-contiguous
                raise ValueError("the parameters must be C-contiguous arrays")

    def zero_grads(self) -> None:
        for grad in self._flat_grads:
            grad.fill(0)

    def rates(self, learning_rates: np.ndarray, factor: float) -> np.ndarray:
        """The per-array rates (weights, then biases) of an epoch whose schedule factor is ``factor``."""
        bias = self.settings.bias_learning_rates
        base = np.concatenate([learning_rates, learning_rates if bias is None else np.asarray(bias)])
        return base * factor

    def apply(self, rates: np.ndarray, threads: int) -> bool:
        """One step with the gradients in :attr:`grads`; returns whether the biases are finite."""
        settings = self.settings
        self.state.step += 1
        beta1, beta2 = settings.betas if settings.betas is not None else DEFAULT_BETAS
        return eqcore.optimizer_step(
            _KINDS[settings.name], self._params, self._flat_grads, self._first, self._second,
            np.ascontiguousarray(rates, dtype=np.float64), self._decay,
            settings.momentum or 0.0, beta1, beta2, settings.eps or DEFAULT_EPS, self.state.step,
            self._n_weights, threads,
        )
