"""Trainer: epochs of mini-batch Equilibrium Propagation with persistent particles.

Each epoch visits the training set in a fresh random order drawn from the
trainer's own ``numpy.random.Generator``. For every mini-batch the trainer

1. gathers the inputs and one-hot targets into buffers allocated once per fit;
2. runs the free phase (beta = 0) from the examples' persistent particles (their
   free fixed points from the previous epoch: the persistent particles of the paper)
   or, with ``persistent=False``, from zeros;
3. records the free-phase output (the training error and cost of an epoch are
   those of the outputs seen during the epoch, as in the paper's code) and
   stores the free state back as the examples' particles;
4. runs the nudged phase with beta, its sign drawn at random per mini-batch when
   ``random_sign`` (the paper's regulariser), and updates the parameters in place
   (eq. 13 of the paper), or, with another optimizer, computes the EP gradient
   and takes one optimizer step (:mod:`eqprop.optim`). The learning rates of
   epoch e are the base rates times the schedule's factor f(e).

The relaxations and the update run in the compiled core; the loop does no
Python work per example. With the in-core SGD update on one process (any
schedule, a one-sided or centered contrast, either cost) the whole sequence
of mini-batches of an epoch runs in one compiled call
(``StepEngine.train_batches``), with no Python work per mini-batch either;
other optimizers, the clamped algorithms and ``comm`` take the Python loop
over the same kernels. Both give bitwise the
same results.

Divergence: the states are clipped to [0, 1], so large learning rates saturate
the units rather than blow them up; what can go wrong numerically is a NaN or an
infinity (a corrupted weight, or an update beyond the float range). After every
mini-batch the free state and the biases (which sum the nudged states) are
checked, and all parameters before every checkpoint; a non-finite value raises
:class:`TrainingDiverged` naming the epoch and mini-batch. Results depend only on the seed, the data, the
hyperparameters and the thread count: the same four give bitwise the same
weights, including across a checkpoint and resume.

With ``comm`` (an MPI communicator), every rank trains a replica of the
network on its share of each global mini-batch and one Allreduce per
mini-batch sums the updates, or with another optimizer the gradient
estimates, after which every rank takes the same optimizer step
(:mod:`eqprop.distributed`): the same training up to the order of the
floating-point sums.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from eqcore._batch import gather_batch, summarise_free_phase
from eqcore._epoch import FAILED_FREE_PHASE, FAILED_NONE, FAILED_UPDATE
from eqprop import _validation as check
from eqprop import distributed as _distributed
from eqprop._threads import resolve_threads, single_threaded_blas
from eqprop.checkpoint import Checkpoint, CheckpointError, check_training_meta, load_checkpoint, save_checkpoint
from eqprop.layers import format_layers, layers_to_json
from eqprop.algorithms import (
    Contrast,
    check_algorithm,
    check_coupling,
    legacy_algorithm,
    needs_negative_beta,
    uses_beta,
)
from eqprop.algorithms import contrast as contrast_of
from eqprop.augment import check_image_shape, check_translate, translate_images
from eqprop.network import EqPropNetwork
from eqprop.optim import DEFAULTS as OPTIM_DEFAULTS
from eqprop.optim import (
    OptimizerSettings,
    OptimizerState,
    OptimizerStep,
    Schedule,
    resolve_optimizer,
    resolve_schedule,
)
from eqprop.step import StepEngine

Callback = Callable[["Trainer", "EpochRecord"], Any]

#: Rows per batch when evaluating: larger than a training mini-batch so the
#: threads get enough rows each; examples relax independently, so it does not
#: change the result.
EVAL_BATCH_SIZE = 1000
#: Mini-batches between two updates of the progress bar's live numbers in the
#: Python loop, and, with the bar shown, the compiled epoch loop's first call
#: (and its fewest per call: it updates the bar after each call).
PROGRESS_EVERY = 50
#: With the bar shown, the compiled epoch loop's calls run about this long
#: (each call's setup, 0.2 ms for 784-500-10, stays a small part of it).
PROGRESS_SECONDS = 0.1


class TrainingDiverged(FloatingPointError):
    """The state or the parameters became NaN or infinite during training.

    Attributes
    ----------
    epoch : int
        The epoch (1-based) in which it happened.
    batch : int
        The mini-batch (1-based) within that epoch.
    """

    def __init__(self, message: str, *, epoch: int, batch: int) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch measured.

    Attributes
    ----------
    epoch : int
        1-based epoch number (it keeps counting across resumed runs).
    train_error : float
        Fraction of training examples whose free-phase output during the epoch
        was misclassified (the weights change within the epoch, as in the paper).
    val_error : float or None
        Validation error after the epoch (free relaxation from zeros), or None
        when ``fit`` had no validation set.
    mean_cost : float
        Mean of the network's cost C over the free-phase outputs of the epoch:
        1/2 ||y - d||^2, or the cross-entropy -log p_label (``cost="cross-entropy"``).
    wall_time : float
        Seconds for the epoch: training plus validation (checkpointing excluded).
    examples_per_second : float
        Training examples per second of the training part alone.
    """

    epoch: int
    train_error: float
    val_error: float | None
    mean_cost: float
    wall_time: float
    examples_per_second: float


class History(Sequence):
    """The per-epoch records of a training run (a sequence of :class:`EpochRecord`)."""

    columns: tuple[str, ...] = tuple(f.name for f in fields(EpochRecord))

    def __init__(self, records: Sequence[EpochRecord] = ()) -> None:
        self.records: list[EpochRecord] = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index):  # type: ignore[override]
        return self.records[index]

    def __iter__(self) -> Iterator[EpochRecord]:
        return iter(self.records)

    def __repr__(self) -> str:
        if not self.records:
            return "History([])"
        last = self.records[-1]
        return f"History({len(self)} epochs, last: {last})"

    def append(self, record: EpochRecord) -> None:
        self.records.append(record)

    def column(self, name: str) -> list:
        """One field over all epochs, e.g. ``history.column("val_error")``."""
        if name not in self.columns:
            raise ValueError(f"name must be one of {self.columns}; got {name!r}")
        return [getattr(record, name) for record in self.records]

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per epoch (JSON-compatible: a missing validation error is None)."""
        return [asdict(record) for record in self.records]

    @classmethod
    def from_rows(cls, rows: Sequence[dict[str, Any]]) -> History:
        return cls([EpochRecord(**{name: row[name] for name in cls.columns}) for row in rows])

    def to_csv(self) -> str:
        """The history as CSV text with a header row (an empty cell for no validation)."""
        lines = [",".join(self.columns)]
        for record in self.records:
            cells = ("" if value is None else repr(value) for value in asdict(record).values())
            lines.append(",".join(cells))
        return "\n".join(lines) + "\n"


class Evaluation(NamedTuple):
    """Error rate (fraction misclassified) and mean cost C (1/2 ||y - d||^2, or the cross-entropy)."""

    error: float
    mean_cost: float


_check_bool = check.check_bool


def _check_seed(seed: object) -> int:
    """None draws a fresh seed (kept, so the run can be repeated and resumed)."""
    if seed is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"seed must be None or a non-negative integer; got {seed!r}")
    return int(seed)


def _labels_fingerprint(labels: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(labels, dtype=np.int64).tobytes())


class Trainer:
    """Mini-batch Equilibrium Propagation training of an :class:`EqPropNetwork`.

    Parameters
    ----------
    net : EqPropNetwork
        The network; its parameters are updated in place. Either cost: with
        ``cost="cross-entropy"`` the readout learns the free phase's cost
        gradient with its layer's rate and the scores use its softmax (the
        clamped algorithms are refused).
    beta : float
        Nudging strength (nonzero). The update is divided by it (eq. 13).
    free_steps, nudged_steps : int
        Relaxation steps of the free and the nudged phase.
    epsilon : float
        Euler step size in (0, 1]; the paper uses 0.5.
    learning_rates : sequence of float
        One positive rate per weight matrix; the bias of layer k + 1 uses rate k.
    batch_size : int
        Examples per mini-batch (the paper: 20). The last mini-batch of an
        epoch holds the remainder, so every example is seen once per epoch.
    random_sign : bool, default True
        Draw the sign of beta at random per mini-batch (the paper's regulariser).
    symmetric : bool, default False
        Use the two-sided (+beta and -beta) estimate of Laborieux et al. (2021).
    algorithm : str, optional
        One estimator of the EP family (:mod:`eqprop.algorithms`): "positive",
        "negative", "random-sign", "centered", "contrastive" or "coupled".
        When given it replaces ``random_sign`` and ``symmetric`` (they are set
        to match it); when None they choose, as before (``random_sign`` draws
        the sign per mini-batch also with ``symmetric``, which does not change
        the centered estimate but keeps old runs' random streams).
    coupling : float, default 0.5
        eta of "coupled": the output is clamped to y^0 + eta (d - y^0), in (0, 1].
    persistent : bool, default True
        Start each example's free phase from its previous free fixed point (the
        paper's persistent particles) instead of from zeros.
    threads : int, optional
        OpenMP threads; default: the network's setting (all cores if unset).
        Results are repeatable for a given thread count.
    seed : int, optional
        Seed of the trainer's RNG (shuffling, signs of beta). None draws one;
        it is kept in :attr:`seed` and in checkpoints.
    solver : {"euler", "alternating", "fixed-point"}, default "euler"
        Relaxation dynamics (see :meth:`EqPropNetwork.relax`).
    eval_steps : int, optional
        Steps of the free relaxation used by :meth:`evaluate` (default:
        ``free_steps``). Evaluation starts from zeros, not from particles: a
        held-out example has none, and the result then depends on the weights
        only. With persistent training the free phase starts warm, so from
        zeros the same number of steps may fall short of the fixed point on deep
        networks; raise ``eval_steps`` if the error still drops with more steps.
    optimizer : {"sgd", "momentum", "nesterov", "adam"}, default "sgd"
        How the EP gradient estimate updates the parameters (:mod:`eqprop.optim`,
        PyTorch's update equations). ``"sgd"`` without weight decay or bias
        rates is the paper's rule, applied in place by the compiled update.
    momentum : float, optional
        mu of ``"momentum"`` and ``"nesterov"`` (default 0.9); only for them.
    betas : (float, float), optional
        Adam's coefficients (default (0.9, 0.999)); only for ``"adam"``.
    eps : float, optional
        Adam's eps (default 1e-8); only for ``"adam"``.
    weight_decay : float or sequence of float, optional
        L2 weight decay per weight matrix (one number: the same for all),
        added to the gradient as PyTorch's ``weight_decay`` (d = g + wd W);
        biases are not decayed. Default: none.
    bias_learning_rates : sequence of float, optional
        One rate >= 0 per bias vector; default: bias k uses ``learning_rates[k]``.
    schedule : {"constant", "cosine", "exponential", "step"}, default "constant"
        Learning-rate schedule: the rates of epoch e (1-based, counted across
        resumed runs) are the base rates times f(e), f(1) = 1.
    schedule_epochs : int, optional
        ``"cosine"`` (required): the epochs E the cosine spans; later epochs
        keep the floor.
    schedule_floor : float, optional
        ``"cosine"``: the factor it decays to, in [0, 1] (default 0).
    schedule_gamma : float, optional
        ``"exponential"`` (required) and ``"step"`` (default 0.1): in (0, 1].
    schedule_step_size : int, optional
        ``"step"`` (required): epochs between two multiplications by gamma.
    translate : int, default 0
        Augment the training set by random translations: each epoch every
        training image moves by an integer offset drawn uniformly from
        ``-translate .. translate`` pixels per axis, zeros entering the frame
        (:mod:`eqprop.augment`). The offsets come from the trainer's RNG, so
        resume stays exact; evaluation never moves images. 0: no augmentation.
    image_shape : (int, int, int), optional
        The (C, H, W) the flat inputs are images of, for ``translate``; default:
        the network's input shape when it is an image (a conv network).
    comm : mpi4py.MPI.Comm, optional
        Train data-parallel over the ranks of this communicator (for example
        ``MPI.COMM_WORLD`` under ``mpiexec``; see :mod:`eqprop.distributed`).
        Every rank then constructs the trainer and calls :meth:`fit` and
        :meth:`evaluate` with the same arguments; each global mini-batch of
        ``batch_size`` examples (a multiple of the number of ranks) is split
        across the ranks and their updates (for an optimizer other than
        plain SGD: their gradient estimates, then every rank takes the same
        optimizer step, so the optimizer state stays identical) are summed
        by one Allreduce, so the result equals single-process training up to
        float rounding. Only rank 0 writes checkpoints and shows progress. With ``threads`` unset,
        each rank uses its node's cores divided by the ranks on that node.
        Not a hyperparameter: it is neither in :meth:`config` nor pickled.

    Attributes
    ----------
    epoch : int
        Epochs completed so far (restored by :meth:`resume`).
    history : History
        One :class:`EpochRecord` per completed epoch.
    rng : numpy.random.Generator
        The trainer's RNG; its state goes into every checkpoint.
    particles : list of ndarray or None
        The persistent particles of the training set once ``fit`` has run.
    optimizer_state : eqprop.optim.OptimizerState
        The optimizer's buffers (momentum, Adam's moments) and step count;
        saved in every checkpoint.
    stop_training : bool
        A callback may set this to True to end ``fit`` after the current epoch.
    """

    #: Run the epochs of plain SGD on one process in the compiled loop (bitwise the
    #: same as the Python loop, which tests select by setting this to False on an
    #: instance; not a hyperparameter).
    _compiled_epochs: bool = True
    #: A float64 array of ``len(eqcore._epoch.STAGES)`` entries to which the compiled loop
    #: adds the wall time of each stage of its mini-batches (``tools/epoch_speed.py
    #: --stages``); None (the default) times nothing. A profiling aid, not a setting.
    _stage_seconds: np.ndarray | None = None

    def __init__(
        self,
        net: EqPropNetwork,
        *,
        beta: float | None = None,
        free_steps: int,
        nudged_steps: int,
        epsilon: float,
        learning_rates: Sequence[float],
        batch_size: int,
        random_sign: bool = True,
        symmetric: bool = False,
        algorithm: str | None = None,
        coupling: float = 0.5,
        persistent: bool = True,
        threads: int | None = None,
        seed: int | None = None,
        solver: str = "euler",
        eval_steps: int | None = None,
        optimizer: str = "sgd",
        momentum: float | None = None,
        betas: Sequence[float] | None = None,
        eps: float | None = None,
        weight_decay: float | Sequence[float] | None = None,
        bias_learning_rates: Sequence[float] | None = None,
        schedule: str = "constant",
        schedule_epochs: int | None = None,
        schedule_floor: float | None = None,
        schedule_gamma: float | None = None,
        schedule_step_size: int | None = None,
        translate: int = 0,
        image_shape: Sequence[int] | None = None,
        comm: object | None = None,
    ) -> None:
        if not isinstance(net, EqPropNetwork):
            raise TypeError(f"net must be an EqPropNetwork; got {type(net).__name__}")
        self.net = net
        self.solver = solver
        self.beta = beta
        self.random_sign = random_sign
        self.symmetric = symmetric
        self.algorithm = algorithm
        self.coupling = coupling
        self.persistent = persistent
        self.free_steps = free_steps
        self.nudged_steps = nudged_steps
        self.epsilon = epsilon
        self.learning_rates = learning_rates
        self.batch_size = batch_size
        self.threads = threads
        self.eval_steps = free_steps if eval_steps is None else eval_steps
        self.optimizer = optimizer
        self.momentum = momentum
        self.betas = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.bias_learning_rates = bias_learning_rates
        self.schedule = schedule
        self.schedule_epochs = schedule_epochs
        self.schedule_floor = schedule_floor
        self.schedule_gamma = schedule_gamma
        self.schedule_step_size = schedule_step_size
        self.translate = translate
        self.image_shape = image_shape
        self.optimizer_state: OptimizerState | None = None
        self.comm = None
        self._node_ranks = 1
        if comm is None:
            self._check_settings()
        else:
            self._attach(comm)
        self.seed = _check_seed(seed)
        self.rng = np.random.default_rng(self.seed)
        self._fit_lock = threading.Lock()
        self.epoch = 0
        self.history = History()
        self.particles: list[np.ndarray] | None = None
        self.stop_training = False
        self._data_fingerprint: dict[str, int] | None = None

    def _attach(self, comm: object) -> None:
        """Train on ``comm`` from now on (collective: checks the settings on every rank together)."""
        self.comm = _distributed.check_comm(comm)
        # a rank given settings the others accept must not leave them waiting in a collective
        _distributed.collectively(self.comm, self._check_settings)
        self._node_ranks = _distributed.local_ranks(self.comm)

    def _check_settings(self) -> None:
        """Validate (and normalise) every hyperparameter attribute.

        Run by ``__init__`` and again at the start of every :meth:`fit` and
        :meth:`evaluate`: the attributes are public and may have been changed
        since (``trainer.batch_size = 0`` is refused here, not deep in an epoch).
        """
        if not isinstance(self.net, EqPropNetwork):
            raise TypeError(f"net must be an EqPropNetwork; got {type(self.net).__name__}")
        dtype = self.net.dtype
        solver = check.check_solver(self.solver)
        random_sign = _check_bool(self.random_sign, "random_sign")
        symmetric = _check_bool(self.symmetric, "symmetric")
        persistent = _check_bool(self.persistent, "persistent")
        coupling = check_coupling(self.coupling)
        if self.algorithm is None:
            algorithm = legacy_algorithm(symmetric, random_sign)
        else:
            algorithm = check_algorithm(self.algorithm)
            random_sign, symmetric = algorithm == "random-sign", algorithm == "centered"
            if algorithm in ("contrastive", "coupled") and len(self.net.weights) < 2:
                raise ValueError(f"algorithm={algorithm!r} clamps the output and relaxes the hidden layers: "
                                 f"the network needs a hidden layer")
            if algorithm in ("contrastive", "coupled"):
                self.net._check_clamp(algorithm)
        beta = self.beta
        if uses_beta(algorithm) or beta is not None:
            if beta is None:
                raise ValueError(f"beta is required with algorithm={algorithm!r}: the EP update divides by it")
            beta = check.check_beta(beta, solver, dtype)
            if beta == 0.0:
                raise ValueError("beta must be nonzero: the EP update divides by it")
        if uses_beta(algorithm) and (needs_negative_beta(algorithm) or random_sign):
            check.check_beta(-beta, solver)
        free_steps = check.check_int(self.free_steps, "free_steps")
        nudged_steps = check.check_int(self.nudged_steps, "nudged_steps")
        epsilon = check.check_epsilon(self.epsilon)
        rates = self.net.check_learning_rates(self.learning_rates)
        check.check_update_scale(rates, beta if uses_beta(algorithm) else (1.0 if algorithm == "contrastive" else coupling),
                                 dtype)
        batch_size = check.check_int(self.batch_size, "batch_size")
        threads = check.check_threads(self.threads)
        eval_steps = check.check_int(self.eval_steps, "eval_steps")
        translate = check_translate(self.translate)
        image_shape = self.image_shape
        if image_shape is None and len(self.net.input_shape) == 3:
            image_shape = self.net.input_shape
        image_shape = check_image_shape(image_shape, self.net.sizes[0], translate)
        if translate and image_shape is None:
            raise ValueError(f"translate={translate} moves images, but the network's input is flat "
                             f"({self.net.sizes[0]} features): give image_shape=(C, H, W)")
        if self.comm is not None:
            ranks = self.comm.Get_size()
            if batch_size % ranks:
                raise ValueError(
                    f"batch_size {batch_size} must be a multiple of the number of MPI ranks ({ranks}): "
                    f"every rank relaxes batch_size / ranks examples of each mini-batch"
                )
        self.solver, self.beta, self.random_sign, self.symmetric = solver, beta, random_sign, symmetric
        self.coupling, self._algorithm = coupling, algorithm
        self.persistent, self.free_steps, self.nudged_steps, self.epsilon = persistent, free_steps, nudged_steps, epsilon
        self.learning_rates = tuple(float(r) for r in rates)
        self.batch_size, self.threads, self.eval_steps = batch_size, threads, eval_steps
        self.translate = translate
        if self.image_shape is not None:
            self.image_shape = image_shape
        self._image_shape = image_shape
        self._optimizer = resolve_optimizer(
            self.optimizer, momentum=self.momentum, betas=self.betas, eps=self.eps,
            weight_decay=self.weight_decay, bias_learning_rates=self.bias_learning_rates,
            n_matrices=len(self.net.weights),
        )
        if self._optimizer.bias_learning_rates is not None:
            check.check_update_scale(self._optimizer.bias_learning_rates, beta, dtype, what="bias_learning_rates")
        self._schedule = resolve_schedule(
            self.schedule, epochs=self.schedule_epochs, floor=self.schedule_floor, gamma=self.schedule_gamma,
            step_size=self.schedule_step_size,
        )
        state = self.optimizer_state
        if state is None or not state.fits(self._optimizer.name, self.net.weights, self.net.biases):
            # a new trainer, or its optimizer was changed since: fresh buffers
            self.optimizer_state = OptimizerState(self._optimizer.name, self.net.weights, self.net.biases)

    @property
    def optimizer_settings(self) -> OptimizerSettings:
        """The checked optimizer configuration, with its defaults filled in."""
        return self._optimizer

    @property
    def lr_schedule(self) -> Schedule:
        """The checked learning-rate schedule."""
        return self._schedule

    def epoch_learning_rates(self, epoch: int | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The (weight, bias) learning rates used in ``epoch`` (1-based; default: the next epoch).

        The base rates times the schedule's factor f(epoch); bias k uses
        ``bias_learning_rates[k]`` if set, else ``learning_rates[k]``.
        """
        epoch = self.epoch + 1 if epoch is None else check.check_int(epoch, "epoch")
        factor = self._schedule.factor(epoch)
        bias = self._optimizer.bias_learning_rates or self.learning_rates
        return tuple(r * factor for r in self.learning_rates), tuple(r * factor for r in bias)

    def reset_optimizer(self) -> None:
        """Forget the optimizer's state: zero momentum buffers and Adam moments, step count 0."""
        self.optimizer_state = OptimizerState(self._optimizer.name, self.net.weights, self.net.biases)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_fit_lock"]  # a lock belongs to one process: a new one on unpickling
        state["comm"] = None  # so does a communicator: an unpickled trainer trains alone
        state["_node_ranks"] = 1
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("comm", None)  # pickled before trainers had one
        self.__dict__.setdefault("_node_ranks", 1)
        self.__dict__.setdefault("translate", 0)  # pickled before augmentation
        self.__dict__.setdefault("image_shape", None)
        self.__dict__.setdefault("_image_shape", None)
        self._fit_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"Trainer({self.net!r}, beta={self.beta}, free_steps={self.free_steps}, "
            f"nudged_steps={self.nudged_steps}, epsilon={self.epsilon}, "
            f"learning_rates={list(self.learning_rates)}, batch_size={self.batch_size}, epoch={self.epoch})"
        )

    def _draws_sign(self) -> bool:
        """Whether every mini-batch draws the sign of beta (one ``rng.random()``)."""
        if self.algorithm is None:  # the older switches, with their random stream
            return bool(self.random_sign)
        return self._algorithm == "random-sign"

    def _contrast(self, negative: bool) -> Contrast:
        """The contrast of a mini-batch whose drawn sign is ``negative``."""
        if self.algorithm is None:
            return Contrast("centered" if self.symmetric else "one-sided", -self.beta if negative else self.beta)
        return contrast_of(self._algorithm, self.beta or 0.0, self.coupling, negative)

    def _batch_contrast(self) -> Contrast:
        """The contrast of the next mini-batch (draws the sign of beta where the algorithm does)."""
        return self._contrast(self._draws_sign() and self.rng.random() < 0.5)

    def _epoch_contrasts(self, n_batches: int) -> tuple[str, np.ndarray]:
        """The contrast mode and the signed beta of each of ``n_batches`` mini-batches.

        Draws from the RNG exactly what ``n_batches`` calls of
        :meth:`_batch_contrast` draw: ``Generator.random(k)`` yields the values
        of k calls of ``Generator.random()`` and leaves the same state.
        """
        negative = self.rng.random(n_batches) < 0.5 if self._draws_sign() else np.zeros(n_batches, dtype=bool)
        first, second = self._contrast(False), self._contrast(True)
        return first.mode, np.where(negative, second.beta, first.beta).astype(np.float64)

    # -------------------------------------------------------------- config
    def config(self) -> dict[str, Any]:
        """The hyperparameters as a JSON-compatible dict (the keyword arguments of ``Trainer``)."""
        return {
            "beta": self.beta,
            "free_steps": self.free_steps,
            "nudged_steps": self.nudged_steps,
            "epsilon": self.epsilon,
            "learning_rates": list(self.learning_rates),
            "batch_size": self.batch_size,
            "random_sign": self.random_sign,
            "symmetric": self.symmetric,
            "algorithm": self.algorithm,
            "coupling": self.coupling,
            "persistent": self.persistent,
            "threads": self.threads,
            "seed": self.seed,
            "solver": self.solver,
            "eval_steps": self.eval_steps,
            "translate": self.translate,
            "image_shape": None if self.image_shape is None else list(self.image_shape),
            **self._optimizer.config(),
            **self._schedule.config(),
        }

    def _n_threads(self) -> int:
        threads = self.threads if self.threads is not None else self.net.threads
        if threads is None and self._node_ranks > 1:  # the node's cores shared by its ranks
            return max(1, resolve_threads(None) // self._node_ranks)
        return resolve_threads(threads)

    @property
    def is_root(self) -> bool:
        """True on the rank that writes checkpoints and prints: rank 0, or the only process."""
        return self.comm is None or self.comm.Get_rank() == 0

    # ---------------------------------------------------------------- data
    def _check_data(self, x: object, labels: object, x_name: str, labels_name: str) -> tuple[np.ndarray, np.ndarray]:
        """x as a C-contiguous batch in [0, 1] of the network's dtype, labels as int64 in range."""
        x = check.as_batch(self.net._flat(x, x_name, self.net.input_shape), x_name, self.net.sizes[0],
                           self.net.dtype)
        if x.shape[0] == 0:
            raise ValueError(f"{x_name} holds no examples")
        if x.min() < 0 or x.max() > 1:
            x = np.clip(x, 0.0, 1.0)  # the input layer is passed through rho like every layer
        array = np.asarray(labels)
        if array.dtype.kind not in "iu":
            raise TypeError(f"{labels_name} must hold integer class indices; got dtype {array.dtype}")
        if array.ndim != 1:
            raise ValueError(f"{labels_name} must be 1-D (one class index per example); got shape {array.shape}")
        if array.shape[0] != x.shape[0]:
            raise ValueError(f"{labels_name} has {array.shape[0]} entries but {x_name} has {x.shape[0]} examples")
        n_classes = self.net.sizes[-1]
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= n_classes:
            raise ValueError(
                f"{labels_name} must be class indices in 0..{n_classes - 1} (the network has "
                f"{n_classes} outputs); got values from {low} to {high}"
            )
        return x, np.ascontiguousarray(array, dtype=np.int64)

    def _check_parameters_finite(self) -> None:
        self.net._checked_parameters()
        for name, arrays in (("weights", self.net.weights), ("biases", self.net.biases)):
            for k, array in enumerate(arrays):
                if not np.isfinite(array).all():
                    raise ValueError(f"net.{name}[{k}] contains NaN or infinite values; training cannot start")

    # ----------------------------------------------------------- evaluation
    def evaluate(self, x: object, labels: object) -> Evaluation:
        """Error rate and mean cost of the network on ``(x, labels)``.

        Each example relaxes freely from zeros for ``eval_steps`` steps (see the
        class documentation for why); its prediction is the argmax of the output.
        With ``comm``, every rank must call it with the same data: each relaxes
        its share of the examples and the counts are summed.
        """
        def prepare() -> tuple[np.ndarray, np.ndarray]:
            self._check_settings()
            checked = self._check_data(x, labels, "x", "labels")
            self._check_parameters_finite()
            return checked

        x, labels = prepare() if self.comm is None else _distributed.collectively(self.comm, prepare)
        with single_threaded_blas():
            return self._evaluate(x, labels, self._n_threads())

    def _evaluate(self, x: np.ndarray, labels: np.ndarray, threads: int) -> Evaluation:
        n = x.shape[0]
        if self.comm is None:
            errors, cost = self._evaluation_sums(x, labels, threads)
        else:  # a contiguous share of the examples per rank; they relax independently
            start, stop = _distributed.share(self.comm.Get_rank(), self.comm.Get_size(), n)
            local = self._evaluation_sums(x[start:stop], labels[start:stop], threads) if stop > start else (0, 0.0)
            errors, cost = _distributed.sum_over(self.comm, *local)
            errors = int(round(errors))
        return Evaluation(error=errors / n, mean_cost=float(cost) / n)

    def _evaluation_sums(self, x: np.ndarray, labels: np.ndarray, threads: int) -> tuple[int, float]:
        """(misclassified examples, summed cost) of the free relaxation from zeros."""
        net = self.net
        n = x.shape[0]
        rows = min(EVAL_BATCH_SIZE, n)
        state_buffer = net.zero_state(rows)
        engine = net.step_engine(rows)
        errors = 0
        cost = 0.0
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            m = stop - start
            state = [s[:m] for s in state_buffer]
            for s in state:
                s.fill(0)
            engine.free_phase(x[start:stop], state, steps=self.eval_steps, epsilon=self.epsilon,
                              solver=self.solver, threads=threads)
            output = state[-1]
            expected = labels[start:stop]
            errors += int(np.count_nonzero(output.argmax(axis=1) != expected))
            if net.readout:  # -log p_label, with p >= the dtype's smallest normal number (EqPropNetwork.cost)
                chosen = np.maximum(output[np.arange(m), expected].astype(np.float64), np.finfo(net.dtype).tiny)
                cost -= float(np.log(chosen).sum())
                continue
            squared = np.einsum("ij,ij->", output, output, dtype=np.float64)
            # ||y - d||^2 = ||y||^2 - 2 y_label + 1 for a one-hot d: no target array needed
            cost += 0.5 * (squared - 2.0 * float(output[np.arange(m), expected].sum(dtype=np.float64)) + m)
        return errors, float(cost)

    # -------------------------------------------------------------- training
    def fit(
        self,
        x: object,
        labels: object,
        *,
        epochs: int,
        validation: tuple[object, object] | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        callbacks: Sequence[Callback] | None = None,
        progress: bool | None = None,
        resume: bool = False,
    ) -> History:
        """Train for ``epochs`` more epochs.

        One trainer trains in one thread at a time: a second concurrent call
        raises RuntimeError instead of interleaving epochs.

        With ``comm``, every rank calls ``fit`` with the same data and epochs
        (checked; rank 0's parameters, optimizer state, particles and RNG
        state are broadcast first). Only rank 0 writes ``checkpoint_dir`` and shows progress;
        callbacks run on every rank with rank 0's record, and
        ``stop_training`` set on any rank stops every rank.

        Parameters
        ----------
        x : array-like, shape (n_examples, sizes[0])
            Training inputs, scaled to [0, 1].
        labels : array-like of int, shape (n_examples,)
            Class indices in ``0 .. sizes[-1] - 1`` (targets are their one-hot codes).
        epochs : int
            Number of epochs to run in this call; :attr:`epoch` keeps counting,
            so calling ``fit`` again continues the run.
        validation : (x_val, labels_val), optional
            Evaluated after every epoch (see :meth:`evaluate`).
        checkpoint_dir : path, optional
            Directory where a checkpoint is written atomically after every epoch.
        callbacks : sequence of callables, optional
            Each is called as ``callback(trainer, record)`` after every epoch,
            once the checkpoint is written. Setting ``trainer.stop_training =
            True`` ends the fit after that epoch.
        progress : bool, optional
            Show a tqdm bar over the mini-batches with the live training error
            and examples/s. Default: only when standard error is a terminal.
        resume : bool, default False
            First restore the trainer and network from the checkpoint in
            ``checkpoint_dir`` (which must exist), then train ``epochs`` more.

        Returns
        -------
        History
            :attr:`history`, including the epochs of earlier calls.

        Raises
        ------
        TrainingDiverged
            The state or parameters became NaN or infinite; the network keeps
            the parameters of that moment, the checkpoint on disk those of the
            last completed epoch.
        RuntimeError
            ``fit`` is already running on this trainer in another thread.
        """
        if not self._fit_lock.acquire(blocking=False):
            raise RuntimeError(
                "this Trainer is already training (fit is running in another thread); one trainer "
                "trains in one thread at a time: wait for it, or use a second Trainer and network"
            )
        try:
            return self._fit(
                x, labels, epochs=epochs, validation=validation, checkpoint_dir=checkpoint_dir,
                callbacks=callbacks, progress=progress, resume=resume,
            )
        finally:
            self._fit_lock.release()

    def _fit(self, x, labels, *, epochs, validation, checkpoint_dir, callbacks, progress, resume) -> History:
        """The body of :meth:`fit`, run under the trainer's lock."""
        def prepare():
            return self._prepare_fit(x, labels, epochs, validation, checkpoint_dir, callbacks, progress, resume)

        replicas = None
        if self.comm is None:
            x, labels, epochs, validation, checkpoint_dir, callbacks, progress = prepare()
        else:
            x, labels, epochs, validation, checkpoint_dir, callbacks, progress = _distributed.collectively(
                self.comm, prepare)
            replicas = _distributed.Replicas(self.comm, self.net)
            self._synchronise(replicas, x, validation, epochs)
            progress = progress and replicas.is_root
            if not replicas.is_root:
                checkpoint_dir = None  # rank 0 writes for every rank

        self.stop_training = False
        threads = self._n_threads()
        moved = np.empty_like(x) if self.translate else None  # the epoch's translated training set
        size = min(self.batch_size, x.shape[0])
        rows = size if replicas is None else -(-size // replicas.size)  # the largest share of a mini-batch
        buffers = (
            np.empty((rows, x.shape[1]), dtype=self.net.dtype),
            np.zeros((rows, self.net.sizes[-1]), dtype=self.net.dtype),
            self.net.zero_state(rows),
            self.net.step_engine(rows),
            None if self._optimizer.in_core else OptimizerStep(
                self._optimizer, self.optimizer_state, self.net.weights, self.net.biases,
                # with comm the optimizer steps on the Allreduced gradient, where it lands
                grads=None if replicas is None else replicas.summed),
        )
        with single_threaded_blas():
            for _ in range(epochs):
                epoch = self.epoch + 1
                started = time.perf_counter()
                train_error, mean_cost = self._train_epoch(
                    x, labels, epoch, threads, progress, checkpoint_dir, buffers, size, replicas, moved
                )
                trained = time.perf_counter()
                val_error = None
                if validation is not None:
                    val_error = self._evaluate(validation[0], validation[1], threads).error
                finished = time.perf_counter()
                self._check_parameters_after_epoch(epoch, checkpoint_dir)
                if replicas is not None and not replicas.parameters_agree(self._replicated_arrays(),
                                                                          self.optimizer_state.step):
                    # an MPI whose Allreduce gave the ranks different last bits, or a callback that
                    # changed one replica: rank 0's wins, with its optimizer state
                    if replicas.is_root:
                        warnings.warn("the ranks' parameters differed after an epoch; rank 0's were broadcast "
                                      "(with its optimizer state)", RuntimeWarning, stacklevel=3)
                    replicas.broadcast_arrays(self._replicated_arrays())
                    self.optimizer_state.step = self.comm.bcast(self.optimizer_state.step, root=0)
                record = EpochRecord(
                    epoch=epoch,
                    train_error=train_error,
                    val_error=val_error,
                    mean_cost=mean_cost,
                    wall_time=finished - started,
                    examples_per_second=x.shape[0] / max(trained - started, 1e-12),
                )
                if replicas is not None:
                    record = self.comm.bcast(record, root=0)  # rank 0's timings in every history
                self.epoch = epoch
                self.history.append(record)
                if checkpoint_dir is not None:
                    self.save_checkpoint(checkpoint_dir)
                for callback in callbacks:
                    callback(self, record)
                stop = self.stop_training
                if replicas is not None:  # a callback on any rank stops every rank
                    stop = any(self.comm.allgather(bool(stop)))
                    self.stop_training = stop
                if stop:
                    break
        return self.history

    def _prepare_fit(self, x, labels, epochs, validation, checkpoint_dir, callbacks, progress, resume):
        """Check and convert fit's arguments, restore a checkpoint if asked; allocate the particles."""
        self._check_settings()
        epochs = check.check_int(epochs, "epochs")
        x, labels = self._check_data(x, labels, "x", "labels")
        if validation is not None:
            if not isinstance(validation, (tuple, list)) or len(validation) != 2:
                raise TypeError("validation must be a pair (x_val, labels_val)")
            validation = self._check_data(validation[0], validation[1], "validation x", "validation labels")
        if callbacks is None:
            callbacks = ()
        elif not isinstance(callbacks, Sequence) or not all(callable(c) for c in callbacks):
            raise TypeError("callbacks must be a sequence of callables callback(trainer, record)")
        if progress is not None:
            progress = _check_bool(progress, "progress")
        resume = _check_bool(resume, "resume")
        if checkpoint_dir is not None:
            checkpoint_dir = Path(checkpoint_dir)
            if checkpoint_dir.exists() and not checkpoint_dir.is_dir():
                raise ValueError(f"checkpoint_dir must be a directory; {checkpoint_dir} is a file")
        if resume:
            if checkpoint_dir is None:
                raise ValueError("resume=True needs checkpoint_dir (where the checkpoint to resume is)")
            self.load_checkpoint(checkpoint_dir)
            self._check_settings()
        self._check_parameters_finite()
        fingerprint = {"n_examples": int(x.shape[0]), "labels_crc32": _labels_fingerprint(labels)}
        if self.persistent and self.particles is not None:
            if self.particles[0].shape[0] != x.shape[0]:
                raise ValueError(
                    f"x has {x.shape[0]} examples but the trainer holds persistent particles for "
                    f"{self.particles[0].shape[0]}; call trainer.reset_particles() to train on other data"
                )
            if self._data_fingerprint is not None and self._data_fingerprint != fingerprint:
                raise ValueError(
                    "labels differ from those the persistent particles were made for; resume with the "
                    "same training data, or call trainer.reset_particles() first"
                )
        if self.persistent and self.particles is None:
            self.particles = _zeroed_particles(x.shape[0], self.net.layer_sizes, self.net.dtype)
        self._data_fingerprint = fingerprint
        if progress is None:
            progress = sys.stderr is not None and sys.stderr.isatty()
        return x, labels, epochs, validation, checkpoint_dir, callbacks, progress

    def _synchronise(self, replicas: _distributed.Replicas, x: np.ndarray, validation, epochs: int) -> None:
        """Check that every rank was given the same run, then make every replica rank 0's (collective).

        The settings (but threads and seed), the network, the data and the
        number of epochs must agree (or the ranks would part ways mid-run);
        rank 0's parameters, optimizer state, particles, RNG state, epoch and
        history are then broadcast, so ``seed=None`` or a checkpoint restored
        on rank 0 alone still starts every rank from the same state.
        """
        def digest(array: np.ndarray) -> int:
            return zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"))

        config = {key: value for key, value in self.config().items() if key not in ("threads", "seed")}
        mine = {
            "settings": config,
            "network": (self.net.architecture, self.net.dtype.name),
            "training data": (self._data_fingerprint, digest(x)),
            "validation data": None if validation is None else (digest(validation[0]),
                                                                _labels_fingerprint(validation[1])),
            "epochs": epochs,
        }
        everyone = self.comm.allgather(mine)
        for rank, theirs in enumerate(everyone):
            differing = [key for key in mine if theirs[key] != everyone[0][key]]
            if differing:
                raise _distributed.mark_collective(ValueError(
                    f"MPI rank {rank} was given other {', '.join(differing)} than rank 0: every rank must "
                    f"construct the same Trainer and call fit with the same data and epochs"
                ))
        root = replicas.is_root
        state = (self.seed, self.rng.bit_generator.state, self.epoch, self.history.to_rows(),
                 self.optimizer_state.step) if root else None
        self.seed, rng_state, self.epoch, rows, self.optimizer_state.step = self.comm.bcast(state, root=0)
        self.rng.bit_generator.state = rng_state
        self.history = History.from_rows(rows)
        replicas.broadcast_arrays([*self._replicated_arrays(), *(self.particles or [])])

    def _replicated_arrays(self) -> list[np.ndarray]:
        """The arrays every replica must hold bitwise alike: the parameters and the optimizer's buffers."""
        buffers = [array for weights, biases in self.optimizer_state.buffers.values() for array in (*weights, *biases)]
        return [*self.net.weights, *self.net.biases, *buffers]

    def reset_particles(self) -> None:
        """Forget the persistent particles (before training on a different training set)."""
        self.particles = None
        self._data_fingerprint = None

    def _train_epoch(
        self,
        x: np.ndarray,
        labels: np.ndarray,
        epoch: int,
        threads: int,
        progress: bool,
        checkpoint_dir: Path | None,
        buffers: tuple[np.ndarray, np.ndarray, list[np.ndarray], StepEngine, OptimizerStep | None],
        size: int,
        replicas: _distributed.Replicas | None = None,
        moved: np.ndarray | None = None,
    ) -> tuple[float, float]:
        """One pass over the training set; returns (training error, mean cost) of the free phases.

        With ``translate``, ``moved`` receives the epoch's translated copy of
        ``x`` (offsets drawn after the permutation), which is trained on instead.

        ``buffers`` (inputs, one-hot targets, state, the step engine, which
        owns the drive, and the optimizer step, None for the in-core SGD
        update) hold one mini-batch of ``size`` examples, or with
        ``replicas`` this rank's largest share of one; a short mini-batch uses
        their leading rows, which stay C-contiguous.
        """
        n = x.shape[0]
        x_buffer, target_buffer, state_buffer, engine, optimizer_step = buffers
        n_batches = math.ceil(n / size)
        rates = np.asarray(self.learning_rates, dtype=np.float64)
        factor = self._schedule.factor(epoch)
        if optimizer_step is not None:
            rates = optimizer_step.rates(rates, factor)  # one per array: weights, then biases
        elif self._schedule.name != "constant":
            rates = rates * factor  # a constant schedule leaves the paper's update untouched
        optimizer_state = self.optimizer_state
        order = self.rng.permutation(n)
        if self.translate:
            x = translate_images(x, self._image_shape, self.translate, self.rng, out=moved)
        if replicas is None and optimizer_step is None and self._compiled_epochs and self._contrast(False).mode != "clamped":
            return self._train_epoch_compiled(x, labels, epoch, threads, progress, checkpoint_dir, buffers, size,
                                              order, rates)
        particles = self.particles if self.persistent else None
        errors = relaxed = 0
        cost = 0.0
        bar = _progress_bar(n_batches, epoch, enabled=progress)
        started = time.perf_counter()
        try:
            for batch in range(n_batches):
                index = order[batch * size:(batch + 1) * size]
                m_global = index.shape[0]
                if replicas is not None:
                    start, stop = replicas.share(m_global)
                    index = index[start:stop]
                m = index.shape[0]
                xb, target = x_buffer[:m], target_buffer[:m]
                state = [s[:m] for s in state_buffer]
                finite, batch_errors, batch_cost = True, 0, 0.0
                if m:  # a rank's share of a short last mini-batch may be empty
                    gather_batch(x, labels, index, xb, target, particles, state)
                    engine.free_phase(xb, state, steps=self.free_steps, epsilon=self.epsilon,
                                      solver=self.solver, threads=threads)
                    # NaN propagates through the core's clip, so a non-finite weight shows up here;
                    # the particles are only written when the state is finite
                    finite, batch_errors, batch_cost = summarise_free_phase(state, target, labels, index, particles,
                                                                            self.net.readout)
                if not finite and replicas is None:
                    raise self._diverged(epoch, batch, n_batches, "the free phase", checkpoint_dir)
                errors += batch_errors
                cost += batch_cost
                relaxed += m

                contrast = self._batch_contrast()
                # the bias update sums the nudged states: its check covers the nudged phase
                if replicas is None and optimizer_step is None:
                    updated = engine.update(
                        xb, state, target, contrast=contrast, nudged_steps=self.nudged_steps,
                        epsilon=self.epsilon, rates=rates, solver=self.solver, threads=threads,
                    )
                    optimizer_state.step += 1
                elif replicas is None:
                    updated = engine.optimizer_update(
                        xb, state, target, contrast=contrast, nudged_steps=self.nudged_steps,
                        epsilon=self.epsilon, rates=rates, solver=self.solver, threads=threads,
                        step=optimizer_step,
                    )
                else:
                    replicas.clear()
                    if finite and m:
                        positive, negative, spread = engine.contrasted_states(
                            xb, state, target, contrast=contrast, nudged_steps=self.nudged_steps,
                            epsilon=self.epsilon, solver=self.solver, threads=threads,
                        )
                        # scaled by the global mini-batch, so the ranks' sums add up to its mean: the
                        # EP update itself (in-core SGD), or the gradient estimate for the optimizer
                        numerators = rates if optimizer_step is None else np.full(len(self.net.weights), -1.0)
                        scales = engine.update_scales(numerators, spread, m_global)
                        engine.accumulate(xb, positive, negative, scales, threads, out=replicas.local,
                                          free=state, target=target)
                    if not replicas.combine(finite):  # on some rank: every rank stops here
                        raise self._diverged(epoch, batch, n_batches, "the free phase", checkpoint_dir)
                    # every rank takes the same step from the same sum: the replicas and the optimizer
                    # state stay identical
                    if optimizer_step is None:
                        updated = replicas.apply_sum()
                        optimizer_state.step += 1
                    else:  # optimizer_step's gradients are the summed buffers
                        updated = replicas.sum_finite() and optimizer_step.apply(rates, threads)
                if not updated:
                    raise self._diverged(epoch, batch, n_batches, "the nudged phase or the update", checkpoint_dir)
                bar.update(1)
                if bar.enabled and ((batch + 1) % PROGRESS_EVERY == 0 or batch + 1 == n_batches):
                    seen = min((batch + 1) * size, n)  # of the global mini-batches
                    elapsed = max(time.perf_counter() - started, 1e-12)
                    # the error of this rank's examples (all of them on one process)
                    bar.set_postfix_str(f"error={errors / max(relaxed, 1):.2%}, {seen / elapsed:,.0f} ex/s",
                                        refresh=False)
        finally:
            bar.close()
        if replicas is not None:
            errors, cost = _distributed.sum_over(self.comm, errors, cost)
            errors = int(round(errors))
            if particles is not None:
                replicas.gather_particles(particles, order, size)
        return errors / n, cost / n

    def _train_epoch_compiled(
        self,
        x: np.ndarray,
        labels: np.ndarray,
        epoch: int,
        threads: int,
        progress: bool,
        checkpoint_dir: Path | None,
        buffers: tuple[np.ndarray, np.ndarray, list[np.ndarray], StepEngine, OptimizerStep | None],
        size: int,
        order: np.ndarray,
        rates: np.ndarray,
    ) -> tuple[float, float]:
        """:meth:`_train_epoch` for in-core SGD on one process: the mini-batches run in compiled code.

        One call of :meth:`StepEngine.train_batches` per epoch (when the
        progress bar shows, per ``PROGRESS_EVERY`` mini-batches at first, then
        per as many as the last call ran in about ``PROGRESS_SECONDS``: each
        call copies W_0 into padded rows and back, which 50 mini-batches of
        784-500-10 (9 ms) felt), bitwise the Python loop: the signs of beta are
        drawn up front from the same generator, which after a divergence is rewound to where the Python
        loop would have left it.
        """
        n = x.shape[0]
        x_buffer, target_buffer, state_buffer, engine, _ = buffers
        n_batches = math.ceil(n / size)
        rng_state = self.rng.bit_generator.state
        mode, betas = self._epoch_contrasts(n_batches)
        particles = self.particles if self.persistent else None
        batch_errors = np.zeros(n_batches, dtype=np.int64)
        batch_costs = np.zeros(n_batches, dtype=np.float64)
        errors, cost, done = 0, 0.0, 0
        bar = _progress_bar(n_batches, epoch, enabled=progress)
        chunk = PROGRESS_EVERY if bar.enabled else n_batches
        started = time.perf_counter()
        try:
            while done < n_batches:
                chunk_started = time.perf_counter()
                completed, failure, errors, cost = engine.train_batches(
                    x, labels, order, batch_size=size, start=done, stop=min(done + chunk, n_batches),
                    x_buffer=x_buffer, target_buffer=target_buffer, state_buffer=state_buffer,
                    particles=particles, betas=betas, centered=mode == "centered", rates=rates,
                    free_steps=self.free_steps, nudged_steps=self.nudged_steps, epsilon=self.epsilon,
                    solver=self.solver, threads=threads, batch_errors=batch_errors, batch_costs=batch_costs,
                    errors=errors, cost=cost, stage_seconds=self._stage_seconds,
                )
                # the Python loop counts a step before it checks the update
                self.optimizer_state.step += completed + (failure == FAILED_UPDATE)
                done += completed
                if failure != FAILED_NONE:
                    # the Python loop draws the sign after the free phase: one more if that passed
                    self.rng.bit_generator.state = rng_state
                    drawn = done + (failure == FAILED_UPDATE)
                    if self._draws_sign() and drawn:
                        self.rng.random(drawn)
                    where = "the free phase" if failure == FAILED_FREE_PHASE else "the nudged phase or the update"
                    raise self._diverged(epoch, done, n_batches, where, checkpoint_dir)
                bar.update(completed)
                if bar.enabled:
                    now = time.perf_counter()
                    chunk = min(max(PROGRESS_EVERY, int(completed * PROGRESS_SECONDS
                                                        / max(now - chunk_started, 1e-9))), n_batches)
                    seen = min(done * size, n)
                    elapsed = max(now - started, 1e-12)
                    bar.set_postfix_str(f"error={errors / max(seen, 1):.2%}, {seen / elapsed:,.0f} ex/s",
                                        refresh=False)
        finally:
            bar.close()
        return errors / n, cost / n

    def _diverged(self, epoch: int, batch: int, n_batches: int, where: str, checkpoint_dir: Path | None):
        kept = ""
        if checkpoint_dir is not None:
            if self.epoch > 0:
                kept = f" The last good checkpoint (epoch {self.epoch}) is kept in {checkpoint_dir}."
            else:
                kept = " No epoch completed, so no checkpoint was written."
        message = (
            f"training diverged in epoch {epoch}, batch {batch + 1} of {n_batches}: {where} produced "
            f"NaN or infinite values. Lower the learning rates (now {list(self.learning_rates)}) or "
            f"epsilon (now {self.epsilon}).{kept}"
        )
        error = TrainingDiverged(message, epoch=epoch, batch=batch + 1)
        # with comm, every rank sees the same summed update and so raises at the same mini-batch
        return error if self.comm is None else _distributed.mark_collective(error)

    def _check_parameters_after_epoch(self, epoch: int, checkpoint_dir: Path | None) -> None:
        """A full check before a checkpoint is written: never save non-finite parameters."""
        for array in (*self.net.weights, *self.net.biases):
            if not np.isfinite(array).all():
                n_batches = math.ceil(self._data_fingerprint["n_examples"] / self.batch_size)
                raise self._diverged(epoch, n_batches - 1, n_batches, "the parameter updates", checkpoint_dir)

    # ----------------------------------------------------------- checkpoints
    def save_checkpoint(self, directory: str | os.PathLike) -> Path:
        """Atomically write the network and the trainer's state into ``directory``."""
        import eqprop

        meta = {
            "eqprop_version": eqprop.__version__,
            "network": {"sizes": list(self.net.sizes), "layers": layers_to_json(self.net.layers),
                        "dtype": self.net.dtype.name, "output": self.net.output, "cost": self.net.cost_function,
                        "precision": self.net.precision},
            "config": self.config(),
            "epoch": self.epoch,
            "rng_state": self.rng.bit_generator.state,
            "history": self.history.to_rows(),
            "data": self._data_fingerprint,
            "ranks": 1 if self.comm is None else int(self.comm.Get_size()),
            "optimizer_state": {"optimizer": self.optimizer_state.optimizer, "step": self.optimizer_state.step,
                                "buffers": list(self.optimizer_state.buffers)},
            # the schedule is a function of the epoch: its position is the epochs done
            "schedule_state": {"schedule": self._schedule.name, "position": self.epoch,
                               "next_factor": self._schedule.factor(self.epoch + 1)},
        }
        return save_checkpoint(
            directory, meta=meta, weights=self.net.weights, biases=self.net.biases,
            particles=self.particles if self.persistent else None,
            optimizer_buffers=self.optimizer_state.buffers,
        )

    def load_checkpoint(self, location: str | os.PathLike) -> Checkpoint:
        """Restore parameters, particles, optimizer state, RNG state, epoch and history from a checkpoint.

        The network must have the checkpoint's sizes and dtype. Hyperparameters
        stay those of this trainer; a warning lists any that differ from the
        checkpoint's (the continuation is then not the same run). The
        optimizer state is restored when the checkpoint's optimizer is this
        trainer's, and starts from zeros otherwise.
        """
        checkpoint = load_checkpoint(location)
        check_training_meta(checkpoint)
        saved = format_layers(checkpoint.layers)
        if saved != self.net.architecture or checkpoint.dtype != self.net.dtype.name:
            raise ValueError(
                f"the checkpoint is for a {saved} {checkpoint.dtype} network; "
                f"this trainer's network is {self.net.architecture} {self.net.dtype.name}"
            )
        if checkpoint.cost != self.net.cost_function:
            raise ValueError(f"the checkpoint is for a network with cost={checkpoint.cost!r}; this trainer's "
                             f"network has cost={self.net.cost_function!r}")
        saved_config = {**OPTIM_DEFAULTS, **checkpoint.config}  # format 1: plain SGD, constant rates
        differing = sorted(
            [key for key, value in saved_config.items()
             if key not in ("threads", "seed") and self.config().get(key) != value]
            + (["precision"] if checkpoint.precision != self.net.precision else [])
        )
        if differing:
            warnings.warn(
                f"resuming with hyperparameters that differ from the checkpoint's: {', '.join(differing)}",
                stacklevel=2,
            )
        named = [("weight", checkpoint.weights), ("bias", checkpoint.biases)]
        for buffer, (buffer_w, buffer_b) in (checkpoint.optimizer_buffers or {}).items():
            named += [(f"optimizer_{buffer}_weight", buffer_w), (f"optimizer_{buffer}_bias", buffer_b)]
        for name, arrays in named:
            for k, array in enumerate(arrays):
                if not np.isfinite(array).all():
                    raise CheckpointError(f"{checkpoint.path}: array {name}_{k} contains NaN or infinite values")
        try:
            seed = _check_seed(checkpoint.config["seed"])
            rng = np.random.default_rng(seed)
            rng.bit_generator.state = checkpoint.meta["rng_state"]
            history = History.from_rows(checkpoint.meta["history"])
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"{checkpoint.path} has damaged metadata (seed, RNG state or history): {type(exc).__name__}: {exc}"
            ) from exc
        self.net.set_params(checkpoint.weights, checkpoint.biases)
        state = OptimizerState(self._optimizer.name, self.net.weights, self.net.biases)
        saved_state = checkpoint.meta.get("optimizer_state")
        if saved_state is not None and saved_state["optimizer"] == state.optimizer:
            state.load(saved_state["step"], checkpoint.optimizer_buffers or {})
        self.optimizer_state = state
        if self.persistent and checkpoint.particles is not None:
            self.particles = [np.ascontiguousarray(p, dtype=self.net.dtype) for p in checkpoint.particles]
        else:
            self.particles = None
        self.seed = seed
        self.rng.bit_generator.state = rng.bit_generator.state
        self.epoch = checkpoint.epoch
        self.history = history
        data = checkpoint.meta.get("data")
        self._data_fingerprint = dict(data) if data else None
        ranks = checkpoint.meta.get("ranks", 1)
        self._checkpoint_ranks = ranks if isinstance(ranks, int) and ranks >= 1 else 1  # for messages only
        return checkpoint

    @classmethod
    def resume(cls, location: str | os.PathLike, *, threads: int | None = None, comm: object | None = None) -> Trainer:
        """A trainer and its network restored exactly from a checkpoint.

        Parameters
        ----------
        location : path
            A checkpoint directory (or the ``.npz`` file).
        threads : int, optional
            Override the saved thread count (results are bitwise repeatable only
            with the same count).
        comm : mpi4py.MPI.Comm, optional
            Continue data-parallel on this communicator (collective: every rank
            reads the checkpoint, so it must be visible to all). The number of
            ranks may differ from the checkpoint's (``batch_size`` must be a
            multiple of it): the mini-batches are the same, and the run goes on
            as with the old count up to float rounding, as with another
            thread count; bitwise only with the same ranks and threads.

        Examples
        --------
        >>> trainer = Trainer.resume("runs/digits")              # doctest: +SKIP
        >>> trainer.fit(x, labels, epochs=5, checkpoint_dir="runs/digits")  # doctest: +SKIP
        """
        def load() -> Trainer:
            checkpoint = load_checkpoint(location)
            check_training_meta(checkpoint)
            config = checkpoint.config
            if threads is not None:
                config["threads"] = threads
            try:
                net = checkpoint.build_network(threads=config["threads"])
                trainer = cls(net, **config)
            except (TypeError, ValueError) as exc:
                raise CheckpointError(f"{checkpoint.path} holds invalid settings: {exc}") from exc
            trainer.load_checkpoint(location)
            return trainer

        if comm is None:
            return load()
        trainer = _distributed.collectively(comm, load)  # every rank reads it; one failing stops all
        trainer._attach(comm)
        return trainer


#: Transparent huge pages on x86-64 and arm64 (2 MiB), and the size from which NumPy
#: asks the kernel for them (4 MiB).
_HUGE_PAGE = 1 << 21
_HUGE_PAGE_ARRAYS = 1 << 22


def _zeroed_particles(n: int, widths: Sequence[int], dtype: np.dtype) -> list[np.ndarray]:
    """Zeroed (n, width) particle arrays, their memory mapped now rather than in epoch 1.

    ``np.zeros`` leaves the pages to be mapped on first touch, and epoch 1
    touches them in the shuffled order, mini-batch by mini-batch, inside the
    training loop: at 20,000 examples of 784-500-10 that was 40 MB and about
    1,400 minor page faults (4 KiB pages at the ends of the array, which the
    kernel cannot map as huge pages) taken one at a time between the OpenMP
    regions, while the other threads wait. Here every layer lives in one block
    aligned to 2 MiB, so the whole of it can be huge pages, and it is written
    once, sequentially, before training starts.
    """
    dtype = np.dtype(dtype)
    sizes = [n * width * dtype.itemsize for width in widths]
    total = sum(sizes)
    if total < _HUGE_PAGE_ARRAYS:
        arrays = [np.zeros((n, width), dtype=dtype) for width in widths]
        for array in arrays:
            array.fill(0)
        return arrays
    raw = np.zeros(-(-total // _HUGE_PAGE) * _HUGE_PAGE + _HUGE_PAGE, dtype=np.uint8)
    offset = -raw.ctypes.data % _HUGE_PAGE
    block = raw[offset:offset + total]
    block.fill(0)
    arrays, start = [], 0
    for width, size in zip(widths, sizes):
        arrays.append(block[start:start + size].view(dtype).reshape(n, width))
        start += size
    return arrays


def _progress_bar(total: int, epoch: int, *, enabled: bool):
    """A tqdm bar over mini-batches, or a do-nothing stand-in when disabled."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=f"epoch {epoch}", unit="batch", leave=False, file=sys.stderr, dynamic_ncols=True)
    bar.enabled = True
    return bar


class _NoBar:
    enabled = False

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass
