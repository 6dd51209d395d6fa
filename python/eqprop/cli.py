"""The ``eqprop`` command line: train, evaluate, plot, presets, info.

A training run lives in one directory (``--out``)::

    config.json          every setting of the run (preset, data, hyperparameters, seed)
    metrics.csv          one row per epoch, rewritten after every epoch
    checkpoint.npz       the latest epoch: parameters, persistent particles, RNG state
    best/checkpoint.npz  the epoch with the lowest validation error so far (never chosen on the test set)
    best.json            which epoch that is and its validation error
    learning_curves.png  error and cost per epoch (``eqprop plot DIR`` redraws it)
    summary.json         final training / validation / test error (written at the end)
    .eqprop.lock         held (fcntl.flock) by the one process using the directory

``mpiexec -n R eqprop train ... --distributed`` trains data-parallel on R MPI
ranks (``eqprop.distributed``): rank 0 checks the settings, takes the lock,
writes every file and prints; the other ranks receive the settings from it,
train in lockstep and print nothing. An error every rank meets is reported
once, by rank 0; an error on one rank alone is printed with its rank and
aborts the job, so no rank waits forever.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import platform
import re
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from eqprop._validation import check_precision
from eqprop.algorithms import ALGORITHMS
from eqprop.layers import format_layers, layers_from_json, layers_to_json, resolve_layers

CONFIG_NAME = "config.json"
SUMMARY_NAME = "summary.json"
BEST_DIR = "best"
BEST_NAME = "best.json"
DATASET_NAMES = ("digits", "mnist", "fashion-mnist")
SPLITS = ("test", "val", "train")

#: Used for settings neither a preset nor a flag gives: the paper's 1-hidden-layer dynamics.
DEFAULTS: dict[str, Any] = {
    "beta": 1.0,
    "free_steps": 20,
    "nudged_steps": 4,
    "epsilon": 0.5,
    "batch_size": 20,
    "epochs": 25,
    "random_sign": True,
    "persistent": True,
    "symmetric": False,
    "solver": "euler",
    "eval_steps": None,
    "dtype": "float32",
    "precision": "float32",
}
#: Training examples of each dataset (before --train-size), for the memory estimate.
TRAIN_SIZES = {"digits": 1197, "mnist": 50_000, "fashion-mnist": 50_000}
#: Its standard validation set (``eqprop.datasets``), which --validation-size replaces.
VALIDATION_SIZES = {"digits": 300, "mnist": 10_000, "fashion-mnist": 10_000}
#: The splits a run is evaluated on (summary.json), in order.
SPLITS = ("train", "val", "test")
#: eqcore's default threshold of the event-driven relaxation (eqcore.set_delta_threshold), which new runs record.
DEFAULT_DELTA_THRESHOLD = 0.1
#: Flags that may accompany --resume (they do not change what is computed).
RESUME_FLAGS = ("epochs", "threads", "conv_algorithm", "delta_threshold", "data_dir", "quiet", "distributed")
HYPERPARAMETER_FLAGS = (
    "preset", "dataset", "layers", "beta", "free_steps", "nudged_steps", "epsilon", "lr",
    "batch_size", "seed", "solver", "symmetric", "persistent", "random_sign", "train_size",
    "validation_size", "dtype", "precision", "eval_steps", "out", "init_gain", "algorithm", "coupling", "output",
    "cost", "translate",
    "optimizer", "momentum", "betas", "eps", "weight_decay", "bias_lr",
    "schedule", "schedule_epochs", "schedule_floor", "schedule_gamma", "schedule_step_size",
)
#: Settings of the optimizer and of the schedule, by the flag that sets each one (``eqprop.optim``).
OPTIMIZER_FLAGS = {
    "optimizer": "--optimizer", "momentum": "--momentum", "betas": "--betas", "eps": "--eps",
    "weight_decay": "--weight-decay", "bias_learning_rates": "--bias-lr",
}
SCHEDULE_FLAGS = {
    "schedule": "--schedule", "schedule_epochs": "--schedule-epochs", "schedule_floor": "--schedule-floor",
    "schedule_gamma": "--schedule-gamma", "schedule_step_size": "--schedule-step-size",
}


# ------------------------------------------------------------- argument types
#: Step and thread counts reach the compiled core as C ints.
INT_MAX = 2**31 - 1


def _int_at_least(minimum: int, description: str, maximum: int = INT_MAX):
    """An argparse type: an integer in ``minimum .. maximum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {description} integer; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {description} integer; got {value}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"expected a {description} integer at most {maximum}; got {value}")
        return value

    return parse


_positive_int = _int_at_least(1, "positive")
_non_negative_int = _int_at_least(0, "non-negative")


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number; got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number; got {text}")
    return value


def _fraction(text: str) -> float:
    value = _finite_float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1]; got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number; got {text}")
    return value


def _coupling(text: str) -> float:
    value = _finite_float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"the coupling must be in (0, 1]; got {text}")
    return value


def _nonzero_float(text: str) -> float:
    value = _finite_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("beta must be nonzero (the EP update divides by it)")
    return value


def _epsilon(text: str) -> float:
    value = _finite_float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"epsilon must be in (0, 1]; got {text}")
    return value


def _layers(text: str) -> list:
    """``--layers``: the grammar of :func:`eqprop.layers.parse_layers`, as JSON-compatible data."""
    from eqprop.layers import layers_to_json, parse_layers, resolve_layers

    try:
        layers = parse_layers(text)
        resolve_layers(layers)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return layers_to_json(layers)


# ------------------------------------------------------------------ helpers
def _print(*args: Any, quiet: bool = False) -> None:
    if not quiet:
        print(*args, flush=True)


def _load_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.json, validated (a one-line error naming the file and setting otherwise)."""
    from eqprop.rundir import load_config

    return load_config(run_dir / CONFIG_NAME)


def _load_data(config: dict[str, Any], data_dir: str | None, quiet: bool):
    """The run's dataset, split by ``validation_size``, its training set cut to ``train_size`` examples."""
    from eqprop.datasets import load_dataset

    dataset = load_dataset(config["dataset"], data_dir=data_dir, quiet=quiet)
    if config.get("validation_size") is not None:
        dataset = dataset.with_validation_size(config["validation_size"])
    x_train, y_train = dataset.x_train, dataset.y_train
    if config.get("train_size") is not None:
        x_train, y_train = x_train[: config["train_size"]], y_train[: config["train_size"]]
    return dataset, x_train, y_train


def _format_error(error: float | None) -> str:
    return "-" if error is None else f"{100 * error:.2f}%"


# ------------------------------------------------------------------- train
def _settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The run's settings: preset values, overridden by flags, completed by DEFAULTS."""
    from eqprop.presets import get_preset

    settings: dict[str, Any] = {"preset": None}
    if args.preset is not None:
        try:
            preset = get_preset(args.preset)
        except ValueError as exc:
            parser.error(str(exc))
        settings.update(
            preset=preset.name, dataset=preset.dataset, layers=layers_to_json(preset.sizes), beta=preset.beta,
            free_steps=preset.free_steps, nudged_steps=preset.nudged_steps, epsilon=preset.epsilon,
            learning_rates=list(preset.learning_rates), batch_size=preset.batch_size, epochs=preset.epochs,
            random_sign=preset.random_sign, persistent=preset.persistent, symmetric=preset.symmetric,
            solver=preset.solver, eval_steps=preset.eval_steps,
            init_gains=list(preset.init_gains) if preset.init_gains else None,
            algorithm=preset.algorithm, coupling=preset.coupling, output=preset.output,
            **{key: value for key, value in preset.to_dict().items()
               if key in OPTIMIZER_FLAGS or key in SCHEDULE_FLAGS},
        )
        # another optimizer or schedule on the command line: the preset's own parameters of it do not apply
        if args.optimizer is not None and args.optimizer != preset.optimizer:
            for key in ("momentum", "betas", "eps"):
                settings.pop(key, None)
        if args.schedule is not None and args.schedule != preset.schedule:
            for key in ("schedule_epochs", "schedule_floor", "schedule_gamma", "schedule_step_size"):
                settings.pop(key, None)
    overrides = {
        "dataset": args.dataset, "layers": list(args.layers) if args.layers else None, "beta": args.beta,
        "free_steps": args.free_steps, "nudged_steps": args.nudged_steps, "epsilon": args.epsilon,
        "learning_rates": list(args.lr) if args.lr else None, "batch_size": args.batch_size,
        "epochs": args.epochs, "random_sign": args.random_sign, "persistent": args.persistent,
        "symmetric": args.symmetric, "solver": args.solver, "eval_steps": args.eval_steps,
        "dtype": args.dtype, "threads": args.threads, "seed": args.seed, "train_size": args.train_size,
        "validation_size": args.validation_size, "precision": args.precision,
        "conv_algorithm": args.conv_algorithm, "delta_threshold": args.delta_threshold,
        "init_gains": list(args.init_gain) if args.init_gain else None,
        "algorithm": args.algorithm, "coupling": args.coupling, "output": args.output, "cost": args.cost,
        "translate": args.translate,
        "optimizer": args.optimizer, "momentum": args.momentum, "betas": args.betas, "eps": args.eps,
        "weight_decay": args.weight_decay, "bias_learning_rates": args.bias_lr, "schedule": args.schedule,
        "schedule_epochs": args.schedule_epochs, "schedule_floor": args.schedule_floor,
        "schedule_gamma": args.schedule_gamma, "schedule_step_size": args.schedule_step_size,
    }
    settings.update({key: value for key, value in overrides.items() if value is not None})
    for key, value in DEFAULTS.items():
        settings.setdefault(key, value)
    settings.setdefault("threads", None)
    settings.setdefault("train_size", None)
    settings.setdefault("validation_size", None)
    settings.setdefault("cost", "squared-error")  # no preset sets it
    settings.setdefault("translate", 0)
    settings.setdefault("conv_algorithm", "auto")
    settings.setdefault("delta_threshold", DEFAULT_DELTA_THRESHOLD)
    missing = [flag for flag, key in (("--dataset", "dataset"), ("--layers", "layers"), ("--lr", "learning_rates"))
               if key not in settings]
    if missing:
        parser.error(f"give --preset NAME, or at least {', '.join(missing)}")
    if len(settings["learning_rates"]) != len(settings["layers"]) - 1:
        parser.error(
            f"--lr needs one rate per weight matrix: {len(settings['layers']) - 1} for --layers "
            f"{format_layers(layers_from_json(settings['layers']))}; got {len(settings['learning_rates'])}"
        )
    together = TRAIN_SIZES[settings["dataset"]] + VALIDATION_SIZES[settings["dataset"]]
    if settings["validation_size"] is not None and settings["validation_size"] >= together:
        parser.error(f"--validation-size must be below {together} ({settings['dataset']} has {together} training "
                     f"and validation images together); got {settings['validation_size']}")
    gains = settings.get("init_gains")
    if gains is not None and len(gains) not in (1, len(settings["layers"]) - 1):
        parser.error(f"--init-gain needs one gain, or one per weight matrix ({len(settings['layers']) - 1}); "
                     f"got {len(gains)}")
    if settings["cost"] == "cross-entropy":  # the readout is the last connection, outside the energy
        if settings.get("output", "clipped") == "linear":
            parser.error("--cost cross-entropy reads the classes from a softmax readout, which does not relax: "
                         "it takes no --output linear (give --output clipped)")
        if settings.get("algorithm") in ("contrastive", "coupled"):
            parser.error(f"--algorithm {settings['algorithm']} clamps the output layer, but with --cost "
                         f"cross-entropy the output is the softmax readout: use an EP algorithm")
        if len(settings["layers"]) < 3:
            parser.error("--cost cross-entropy needs a hidden layer: the last connection is the readout")
    try:
        check_precision(settings["precision"], settings["dtype"])
    except ValueError as exc:
        parser.error(f"--precision: {exc}")
    try:
        settings.update(_optimizer_settings(settings))
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    if settings.get("seed") is None:
        import numpy as np

        settings["seed"] = int(np.random.SeedSequence().entropy % 2**32)  # recorded in config.json
    return settings


class _ReportedByRankZero(Exception):
    """On a rank other than 0: the run stops, and rank 0 says why."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _UsageError(ValueError):
    """``parser.error`` on a rank other than 0: nothing printed (rank 0 prints the same)."""


def _silent_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """A copy of ``parser`` whose ``error`` raises :class:`_UsageError` instead of printing and exiting."""
    quiet = copy.copy(parser)

    def error(message: str):
        raise _UsageError(message)

    quiet.error = error  # type: ignore[method-assign]
    return quiet


def _optimizer_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The optimizer and schedule settings checked, completed and normalised (as config.json records them).

    The cosine schedule spans the run's ``epochs`` unless --schedule-epochs
    says otherwise. Raises ValueError or TypeError naming the flag.
    """
    from eqprop.optim import DEFAULTS, resolve_optimizer, resolve_schedule

    given = {key: settings.get(key, DEFAULTS[key]) for key in (*OPTIMIZER_FLAGS, *SCHEDULE_FLAGS)}
    if given["schedule"] == "cosine" and given["schedule_epochs"] is None:
        given["schedule_epochs"] = settings["epochs"]
    if isinstance(given["weight_decay"], list) and len(given["weight_decay"]) == 1:
        given["weight_decay"] = given["weight_decay"][0]  # --weight-decay RATE: the same for every matrix
    optimizer = resolve_optimizer(
        given["optimizer"], momentum=given["momentum"], betas=given["betas"], eps=given["eps"],
        weight_decay=given["weight_decay"], bias_learning_rates=given["bias_learning_rates"],
        n_matrices=len(settings["layers"]) - 1, names=OPTIMIZER_FLAGS,
    )
    schedule = resolve_schedule(
        given["schedule"], epochs=given["schedule_epochs"], floor=given["schedule_floor"],
        gamma=given["schedule_gamma"], step_size=given["schedule_step_size"], names=SCHEDULE_FLAGS,
    )
    return {**optimizer.config(), **schedule.config()}


def _cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    comm = None
    if args.distributed:
        from eqprop.distributed import world

        comm = args.comm = world()  # MPIUnavailable: main prints one line
        if comm.Get_rank() != 0:
            # rank 0 checks the settings, takes the lock and says whether and what to train
            message = comm.bcast(None, root=0)
            if message[0] == "stop":
                raise _ReportedByRankZero(message[1])
            _, run_dir, settings, resume = message
            return _train(run_dir, settings, resume=resume, quiet=True, parser=_silent_parser(parser), comm=comm)
    announced = False

    def announce(message: tuple) -> None:
        nonlocal announced
        if comm is not None and not announced:
            announced = True
            comm.bcast(message, root=0)

    try:
        return _cmd_train_root(args, parser, comm, announce)
    except SystemExit as exc:  # parser.error: status 2
        announce(("stop", exc.code if isinstance(exc.code, int) else 1))
        raise
    except BaseException:
        announce(("stop", 1))
        raise


def _cmd_train_root(args: argparse.Namespace, parser: argparse.ArgumentParser, comm: Any, announce) -> int:
    """``eqprop train`` on its one process, or on rank 0 of a distributed run (``announce`` tells the others)."""
    from eqprop.checkpoint import has_checkpoint
    from eqprop.rundir import RunDirectoryLock, check_run_path, remove_orphaned_temporaries

    resume = args.resume is not None
    if resume:
        extra = [name for name in HYPERPARAMETER_FLAGS if getattr(args, name) is not None]
        if extra:
            flags = ", ".join("--" + name.replace("_", "-") for name in extra)
            parser.error(
                f"--resume continues a run exactly as its checkpoint and config.json record it; {flags} cannot be "
                f"changed (only --epochs, --threads, --conv-algorithm, --delta-threshold, --data-dir, --quiet and "
                f"--distributed may be "
                f"given)"
            )
        run_dir = check_run_path(args.resume, "--resume")
        config_path = run_dir / CONFIG_NAME
        if not config_path.is_file():
            raise FileNotFoundError(f"{run_dir} is not an eqprop run directory: {config_path} does not exist")
        settings = None
    else:
        settings = _settings(args, parser)
        default_name = settings["preset"] or settings["dataset"]
        run_dir = check_run_path(args.out if args.out is not None else Path("runs") / default_name, "--out")
        _check_memory(settings)
    with RunDirectoryLock(run_dir):  # refuses a directory another process is using
        args.run_dir_in_use = run_dir  # for main's message on Ctrl-C
        remove_orphaned_temporaries(run_dir)
        if resume:
            settings = _resume_settings(run_dir, args)
            _check_memory(settings)
        elif has_checkpoint(run_dir):
            parser.error(
                f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out"
            )
        if args.data_dir is not None:
            settings["data_dir"] = args.data_dir
        announce(("train", run_dir, settings, resume))
        return _train(run_dir, settings, resume=resume, quiet=args.quiet, parser=parser, comm=comm)


def _resume_settings(run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """config.json of a run to resume, checked against its checkpoint and metrics.csv; nothing is written.

    A resume continues the checkpoint's run exactly, so config.json must agree
    with it (an edited setting is refused with the setting named); only the
    flags in RESUME_FLAGS may change.
    """
    from eqprop.checkpoint import check_training_meta, has_checkpoint, load_checkpoint
    from eqprop.plotting import METRICS_NAME
    from eqprop.rundir import check_config, check_resume_consistency, read_config_json

    config_path = run_dir / CONFIG_NAME
    settings = read_config_json(config_path)
    if not has_checkpoint(run_dir):
        raise FileNotFoundError(
            f"{run_dir} holds no checkpoint.npz to resume from (no epoch completed); start the run again"
        )
    check_config(settings, config_path)
    checkpoint = load_checkpoint(run_dir)
    check_training_meta(checkpoint)
    check_resume_consistency(settings, checkpoint, run_dir / METRICS_NAME, config_path)
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    if args.threads is not None:
        settings["threads"] = args.threads
    if args.conv_algorithm is not None:
        settings["conv_algorithm"] = args.conv_algorithm
    if args.delta_threshold is not None:
        settings["delta_threshold"] = args.delta_threshold
    return settings


def _check_memory(settings: dict[str, Any]) -> None:
    """Refuse, with the figures, a run whose arrays cannot fit in memory (before allocating them)."""
    from eqprop._memory import check_training_memory

    n_train = TRAIN_SIZES[settings["dataset"]]
    if settings.get("validation_size") is not None:
        n_train += VALIDATION_SIZES[settings["dataset"]] - settings["validation_size"]
    if settings.get("train_size") is not None:
        n_train = min(n_train, settings["train_size"])
    check_training_memory(
        settings["layers"], settings["dtype"], n_train=n_train, batch_size=settings["batch_size"],
        persistent=settings["persistent"], optimizer_arrays=_optimizer_arrays(settings),
    )


def _optimizer_arrays(settings: dict[str, Any]) -> int:
    """Parameter-sized arrays the optimizer adds: the gradient and its state (none for in-place SGD)."""
    from eqprop.optim import STATE_BUFFERS

    name = settings.get("optimizer", "sgd")
    if name == "sgd" and not any(settings.get("weight_decay") or ()) and settings.get("bias_learning_rates") is None:
        return 0
    return 1 + len(STATE_BUFFERS.get(name, ()))


def _interrupted_message(args: argparse.Namespace) -> str:
    """What to say on Ctrl-C: the resume command only when a checkpoint exists to resume from."""
    from eqprop.checkpoint import has_checkpoint, load_checkpoint

    run_dir = getattr(args, "run_dir_in_use", None)
    if args.command != "train" or run_dir is None:
        return "interrupted"
    if not has_checkpoint(run_dir):
        return (
            "interrupted before the first epoch completed: no checkpoint was written, so there is "
            "nothing to resume; run the same command again to start over"
        )
    try:
        epoch = f" (its checkpoint of epoch {load_checkpoint(run_dir).epoch} is complete)"
    except (OSError, ValueError):
        epoch = ""
    return f"interrupted; continue with: eqprop train --resume {run_dir}{epoch}"


def _kernel_change_note(recorded: dict | None, current: dict) -> str | None:
    """A note when a resumed run multiplies with other kernels than it started with.

    The run goes on correctly, but its sums are rounded in another order, so it no
    longer repeats bitwise what an uninterrupted run on the first machine gives.
    """
    if not recorded or recorded == current:
        return None
    changed = ", ".join(f"{key} {recorded.get(key)} -> {value}" for key, value in current.items()
                        if recorded.get(key) != value)
    return (f"note: this run started with other products ({changed}): it continues correctly, "
            f"but not bitwise as it would have on the first machine")


def _busy_machine_note(threads: int) -> str | None:
    """A hint when other processes already load the cores a multi-threaded run needs.

    Every mini-batch waits for its slowest thread, so a thread that loses its
    core to another process stalls the others: on a busy machine fewer threads
    can be faster.
    """
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on this platform
        return None
    cores = os.cpu_count() or 1
    if threads <= 1 or load <= cores - threads + 0.5:
        return None
    return (
        f"note: load average {load:.1f} on {cores} cores: other work is using them, and with {threads} "
        f"threads every mini-batch waits for its slowest thread; --threads 1 may well be faster"
    )


def _train(run_dir: Path, settings: dict[str, Any], *, resume: bool, quiet: bool,
           parser: argparse.ArgumentParser, comm: Any = None) -> int:
    """``_train_run`` with the run's convolution algorithm (``--conv-algorithm``) and event-driven
    relaxation (``--delta-threshold``), restored after."""
    with _run_kernels(settings):
        return _train_run(run_dir, settings, resume=resume, quiet=quiet, parser=parser, comm=comm)


@contextlib.contextmanager
def _run_kernels(settings: dict[str, Any]) -> Iterator[None]:
    """The process's kernel settings as a run records them (runs made before a setting: how they ran then),
    restored after."""
    import eqcore

    conv, threshold = eqcore.gemm_path()["conv"], eqcore.delta_threshold()
    eqcore.set_conv_algorithm(settings.get("conv_algorithm", "auto"))
    eqcore.set_delta_threshold(settings.get("delta_threshold", 0.0))
    try:
        yield
    finally:
        eqcore.set_conv_algorithm(conv)
        eqcore.set_delta_threshold(threshold)


def _train_run(run_dir: Path, settings: dict[str, Any], *, resume: bool, quiet: bool,
               parser: argparse.ArgumentParser, comm: Any = None) -> int:
    """Load the data, build or restore the trainer, train, evaluate and write the run's files.

    With ``comm`` every rank runs this; rank 0 alone writes and prints.
    """
    import eqcore
    import eqprop
    from eqprop.checkpoint import atomic_write_json, atomic_write_text
    from eqprop.distributed import collectively
    from eqprop.plotting import METRICS_NAME, plot_learning_curves

    root = comm is None or comm.Get_rank() == 0

    def together(func):
        # on one process: func(); on several: func() on each, and if it fails anywhere every rank stops
        return func() if comm is None else collectively(comm, func, catch=(Exception, SystemExit))

    def load() -> tuple:
        dataset, x_train, y_train = _load_data(settings, settings.get("data_dir"), quiet)
        settings["data_folder"] = dataset.source
        layers = layers_from_json(settings["layers"])
        input_shape, connections = resolve_layers(layers)
        if int(np.prod(input_shape)) != dataset.n_features or connections[-1].n_out != dataset.n_classes:
            parser.error(
                f"--layers {format_layers(layers)} does not fit {dataset.name}: it needs "
                f"{dataset.n_features} inputs and {dataset.n_classes} outputs"
            )
        if not resume:  # the images' shape, which translations need (a conv network's input has it)
            translate = settings.get("translate", 0)
            settings["image_shape"] = list(dataset.image_shape) if translate else None
            if translate >= min(dataset.image_shape[1:]):
                parser.error(f"--translate must be below the images' side ({dataset.image_shape[1]} pixels "
                             f"for {dataset.name}); got {translate}")
        return dataset, x_train, y_train, layers

    dataset, x_train, y_train, layers = together(load)
    if resume:
        trainer = eqprop.Trainer.resume(run_dir, threads=settings["threads"], comm=comm)
    else:
        net = eqprop.EqPropNetwork(layers, dtype=settings["dtype"], seed=settings["seed"],
                                   init_gains=settings.get("init_gains"), output=settings.get("output", "clipped"),
                                   cost=settings.get("cost", "squared-error"),
                                   precision=settings.get("precision", "float32"), threads=settings["threads"])
        trainer = eqprop.Trainer(
            net, beta=settings["beta"], free_steps=settings["free_steps"], nudged_steps=settings["nudged_steps"],
            epsilon=settings["epsilon"], learning_rates=settings["learning_rates"],
            batch_size=settings["batch_size"], random_sign=settings["random_sign"],
            symmetric=settings["symmetric"], persistent=settings["persistent"], threads=settings["threads"],
            seed=settings["seed"], solver=settings["solver"], eval_steps=settings["eval_steps"], comm=comm,
            algorithm=settings.get("algorithm"), coupling=settings.get("coupling", 0.5),
            translate=settings["translate"], image_shape=settings["image_shape"],
            **{key: settings.get(key) for key in (*OPTIMIZER_FLAGS, *SCHEDULE_FLAGS)},
        )
        settings["random_sign"], settings["symmetric"] = trainer.random_sign, trainer.symmetric
        settings["eval_steps"] = trainer.eval_steps
        settings.update({key: trainer.config()[key] for key in (*OPTIMIZER_FLAGS, *SCHEDULE_FLAGS)})
        settings["eqprop_version"] = eqprop.__version__
        settings["kernels"] = eqcore.gemm_path()
    if resume:
        note = _kernel_change_note(settings.get("kernels"), eqcore.gemm_path())
        if note:
            _print(note, quiet=quiet)
    if root:  # only now: every check has passed
        together(lambda: atomic_write_json(run_dir / CONFIG_NAME, settings))
    else:
        together(lambda: None)

    ranks = 1 if comm is None else comm.Get_size()
    total = settings["epochs"]
    remaining = total - trainer.epoch
    where = "" if comm is None else f" on {ranks} MPI rank{'s' if ranks > 1 else ''} x {trainer._n_threads()} threads"
    _print(
        f"{'resuming' if resume else 'training'} {format_layers(layers)} on {dataset.name} "
        f"({len(x_train)} training examples, data from {dataset.source}){where} for {max(remaining, 0)} epoch(s) "
        f"[{trainer.epoch}/{total} done]; run directory {run_dir}",
        quiet=quiet,
    )
    trained_on = getattr(trainer, "_checkpoint_ranks", ranks)
    if resume and trained_on != ranks and not quiet:
        print(
            f"note: the checkpoint was written by a run on {trained_on} rank(s), this one has {ranks}: the same "
            f"mini-batches, so it continues that run up to float rounding (bitwise only with the same ranks "
            f"and threads)", file=sys.stderr,
        )

    note = None if comm is not None else _busy_machine_note(trainer._n_threads())
    if note and not quiet:
        print(note, file=sys.stderr)

    best = _read_best(run_dir) if resume else None

    def after_epoch(trainer: eqprop.Trainer, record: eqprop.EpochRecord) -> None:
        nonlocal best
        if root:
            atomic_write_text(run_dir / METRICS_NAME, trainer.history.to_csv())
            if record.val_error is not None and (best is None or record.val_error < best["val_error"]):
                trainer.save_checkpoint(run_dir / BEST_DIR)
                best = {"epoch": record.epoch, "val_error": record.val_error}
                atomic_write_json(run_dir / BEST_NAME, best)
        _print(
            f"epoch {record.epoch:>3}/{total}  train {_format_error(record.train_error):>7}  "
            f"val {_format_error(record.val_error):>7}  cost {record.mean_cost:.4f}  "
            f"{record.wall_time:6.1f} s  {record.examples_per_second:,.0f} ex/s",
            quiet=quiet,
        )

    if remaining > 0:  # Ctrl-C here or anywhere else: main() says what can be done next
        trainer.fit(
            x_train, y_train, epochs=remaining,
            validation=(dataset.x_val, dataset.y_val) if len(dataset.y_val) else None,
            checkpoint_dir=run_dir, callbacks=[after_epoch], progress=False if quiet else None,
        )

    started = time.perf_counter()
    results = {split: trainer.evaluate(x, y) for split, (x, y) in {
        "train": (x_train, y_train), "val": (dataset.x_val, dataset.y_val), "test": (dataset.x_test, dataset.y_test),
    }.items() if len(y)}
    best = _read_best(run_dir) if root else None
    best_summary = {"best_epoch": None, "best_val_error": None, "best_test_error": None}
    if best is not None:  # the model selected on validation, evaluated once on the test set
        if best["epoch"] == trainer.epoch:
            best_test = results["test"].error
        else:
            selected = eqprop.Trainer.resume(run_dir / BEST_DIR, threads=trainer.threads)
            best_test = selected.evaluate(dataset.x_test, dataset.y_test).error
        best_summary = {"best_epoch": best["epoch"], "best_val_error": best["val_error"], "best_test_error": best_test}
    history = trainer.history
    summary = {
        "epochs": trainer.epoch,
        **{f"{split}_error": results[split].error if split in results else None for split in SPLITS},
        **{f"{split}_cost": results[split].mean_cost if split in results else None for split in SPLITS},
        "last_epoch_train_error": history[-1].train_error if len(history) else None,
        "eval_steps": trainer.eval_steps,
        "training_seconds": sum(record.wall_time for record in history),
        "evaluation_seconds": time.perf_counter() - started,
        "threads": trainer._n_threads(),
        "ranks": ranks,
        **best_summary,
    }
    if not root:
        return 0
    atomic_write_json(run_dir / SUMMARY_NAME, summary)
    if len(history):
        atomic_write_text(run_dir / METRICS_NAME, history.to_csv())
        plot_learning_curves(run_dir)
    _print(
        f"final error after {trainer.epoch} epochs (free relaxation from zeros, {trainer.eval_steps} steps): "
        f"train {_format_error(summary['train_error'])}, val {_format_error(summary['val_error'])}, "
        f"test {_format_error(summary['test_error'])}; {summary['training_seconds']:.1f} s of training. "
        + (f"Best on validation: epoch {summary['best_epoch']} (val {_format_error(summary['best_val_error'])}, "
           f"test {_format_error(summary['best_test_error'])}). " if summary["best_epoch"] is not None else "")
        + f"Wrote {run_dir}/{SUMMARY_NAME}",
        quiet=quiet,
    )
    return 0


# -------------------------------------------------------- other subcommands
def _read_best(run_dir: Path) -> dict[str, Any] | None:
    """best.json of a run ({"epoch", "val_error"}), or None before any validated epoch."""
    import json

    path = run_dir / BEST_NAME
    if not path.is_file():
        return None
    try:
        best = json.loads(path.read_text(encoding="utf-8"))
        return {"epoch": int(best["epoch"]), "val_error": float(best["val_error"])}
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is damaged ({exc}); delete it and {run_dir / BEST_DIR} to start the "
                         f"selection afresh") from None


def _cmd_evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import eqcore
    import eqprop

    run_dir = Path(args.run_dir)
    config = _load_config(run_dir)
    if args.checkpoint == "best":
        if _read_best(run_dir) is None:
            raise FileNotFoundError(f"{run_dir} has no best checkpoint yet ({BEST_NAME} is written after the "
                                    f"first validated epoch)")
        trainer = eqprop.Trainer.resume(run_dir / BEST_DIR, threads=args.threads)
    else:
        trainer = eqprop.Trainer.resume(run_dir, threads=args.threads)
    if args.eval_steps is not None:
        trainer.eval_steps = args.eval_steps
    dataset, x_train, y_train = _load_data(config, args.data_dir or config.get("data_dir"), quiet=True)
    x, y = {"train": (x_train, y_train), "val": (dataset.x_val, dataset.y_val),
            "test": (dataset.x_test, dataset.y_test)}[args.split]
    if not len(y):
        raise ValueError(f"{run_dir} trained with --validation-size 0: it has no validation set")
    with _run_kernels(config):  # as the run computed its errors
        result = trainer.evaluate(x, y)
    print(
        f"{args.split} error {_format_error(result.error)} ({round(result.error * len(y))}/{len(y)} misclassified), "
        f"mean cost {result.mean_cost:.4f}; {dataset.name}, {args.checkpoint} checkpoint (epoch {trainer.epoch}), "
        f"{trainer.eval_steps} free steps from zeros"
    )
    return 0


def _cmd_plot(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from eqprop.plotting import METRICS_NAME, plot_learning_curves

    run_dir = Path(args.run_dir)
    if not str(args.run_dir).strip():
        raise FileNotFoundError("DIR is empty; give a run directory written by 'eqprop train'")
    if not (run_dir / METRICS_NAME).is_file():
        raise FileNotFoundError(f"{run_dir / METRICS_NAME} does not exist: is {run_dir} an eqprop run directory?")
    print(f"wrote {plot_learning_curves(run_dir, args.output)}")
    return 0


def _cmd_presets(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from eqprop.presets import PRESETS

    header = (
        f"{'name':<12} {'dataset':<14} {'layers':<28} {'solver':<17} {'free/nudged':<12} {'beta':<5} "
        f"{'learning rates':<30} {'optimizer':<16} {'epochs':>6}"
    )
    print(header)
    print("-" * len(header))
    for preset in PRESETS.values():
        rates = ", ".join(f"{r:g}" for r in preset.learning_rates)
        solver = preset.solver + (", sym" if preset.symmetric else "")
        optimizer = preset.optimizer + ("" if preset.schedule == "constant" else f", {preset.schedule}")
        print(
            f"{preset.name:<12} {preset.dataset:<14} {preset.layers:<28} {solver:<17} "
            f"{f'{preset.free_steps}/{preset.nudged_steps}':<12} {preset.beta:<5g} {rates:<30} {optimizer:<16} "
            f"{preset.epochs:>6}"
        )
    print(
        "\nThe paper's presets (and digits): epsilon 0.5, mini-batch 20, random sign of beta, persistent\n"
        "particles. beta and the learning rates use C = 1/2 ||y - d||^2; the original code's values\n"
        "(C = ||y - d||^2) are half:"
    )
    for preset in PRESETS.values():
        if preset.original_learning_rates is None:
            continue
        rates = ", ".join(f"{r:g}" for r in preset.original_learning_rates)
        print(f"  {preset.name:<12} beta {preset.original_beta:g}, learning rates {rates}")
    print("The conv presets have no original code: their settings were chosen by measurement (docs/results.md).")
    for preset in PRESETS.values():
        if preset.measured and not preset.source:
            print(textwrap.fill(f"Measured here, {preset.name}: {preset.measured} (docs/results.md).", width=100,
                                break_on_hyphens=False))
    sourced = [preset for preset in PRESETS.values() if preset.source]
    if sourced:
        print(
            "\nThe DHN presets (Scellier 2024) take their source's values, which use our convention: linear\n"
            "output, centered EP, fixed-point solver, mini-batch 16, free phase from zeros, weights\n"
            "uniform in +-0.7 / sqrt(fan_in) (init gains), rates x 0.99 per epoch (eqprop.presets maps\n"
            "every setting). Their source trained on all 60,000 training images and selected on the test\n"
            "set; here they train on the first 50,000 and validate on the last 10,000. Reported there,\n"
            "and measured here (docs/results.md):"
        )
        for preset in sourced:
            error = preset.reported_test_error
            reported = "" if error is None else f"{100 * error:.2f}% test error, "
            print(f"  {preset.name:<12} {reported}{preset.source}")
            print(f"  {'':<12} here: {preset.measured or 'not yet run to the end'}")
    print("\nRun one with: eqprop train --preset NAME --out runs/NAME")
    return 0


def _cmd_info(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    import numpy
    import scipy

    import eqcore
    import eqprop

    info = eqcore.build_info()
    print(f"eqprop {eqprop.__version__}")
    print(
        f"python {platform.python_version()} ({platform.machine()}), "
        f"numpy {numpy.__version__}, scipy {scipy.__version__}"
    )
    print(f"OpenMP: {'enabled' if info['openmp'] else 'DISABLED (serial build)'}")
    print(f"max threads: {info['max_threads']}")
    print(f"built with -march=native: {'yes' if info['native'] else 'no'}")
    print(f"relaxation kernel: {info['kernel']['path']} ({info['kernel']['isa']})")
    bf16 = info["bfloat16"]
    kernels = {"amx": "AMX tiles (dense products, direct and max-pooled transposed convolutions) and AVX512_BF16 "
                      "instructions",
               "avx512bf16": "AVX512_BF16 instructions", "fallback": "fallback"}
    print(f"bfloat16 products: {kernels[bf16['kernel']]} "
          f"(the CPU {'has' if bf16['cpu'] else 'lacks'} AVX512_BF16, "
          f"{'has' if bf16['amx'] else 'lacks'} usable AMX-BF16)")
    print(f"sparse input products: for inputs with at most {info['sparse_input_density']:.0%} non-zero entries "
          f"(the update of W_0: {info['sparse_update_density']:.0%})")
    changes = info["state_change_density"]
    print("event-driven relaxation (dense chains): "
          + (f"the states' changes sent through the weights, per row when at most {changes:.0%} of its entries "
             "changed, else with the neighbouring rows'" if changes > 0 else "off"))
    algorithms = {"auto": "Winograd F(m x m, k x k) for kernels of 2 to 7 over at least 32 input channels, "
                          "else direct", "direct": "direct", "winograd": "Winograd F(m x m, k x k) for kernels of 2 to 7"}
    print(f"connections: dense; conv ({algorithms[info['kernel']['conv']]}, {info['kernel']['isa']}; "
          f"2x2 max / average / no pooling)")
    for blas in info["blas"]:
        print(f"BLAS: {blas['library']} {blas['version']} ({blas['threading']}, {blas['architecture']}) {blas['path']}")
    return 0


# ------------------------------------------------------------------ parser
_TRAIN_EPILOG = """\
examples:
  eqprop train --preset digits --out runs/digits
      the quick start: 8x8 digits bundled with scikit-learn, no download, a few seconds
  eqprop train --preset mnist-1h --out runs/mnist-1h --threads 2
      the paper's 784-500-10 network (MNIST is read from --data-dir, $EQPROP_DATA or
      ~/.cache/eqprop, or downloaded)
  eqprop train --preset mnist-1h --train-size 10000 --epochs 1 --out runs/quick
      a preset with some values overridden
  eqprop train --dataset digits --layers 64-200-10 --lr 0.2 0.1 --epochs 20 --out runs/custom
      explicit settings; the rest default to the paper's 1-hidden-layer dynamics
  eqprop train --preset digits --optimizer adam --lr 0.002 0.001 --weight-decay 1e-4 --schedule cosine --out runs/adam
      Adam with L2 weight decay and cosine-annealed rates over the run's epochs
  eqprop train --preset mnist-1h --cost cross-entropy --out runs/mnist-1h-ce
      the same network with a softmax readout trained on the cross-entropy
  eqprop train --resume runs/mnist-1h --epochs 40
      continue a run (exactly as if uninterrupted), here to 40 epochs in total
  mpiexec -n 2 eqprop train --preset mnist-1h --threads 1 --distributed --out runs/mpi
      data-parallel on 2 MPI ranks: the same training as one process, up to float rounding

A run directory holds config.json, metrics.csv (one row per epoch), checkpoint.npz
(written atomically after every epoch), learning_curves.png and summary.json (final
train/val/test error). Values given as "preset" come from --preset; without one,
--dataset, --layers and --lr are required and the rest default as shown.
"""


class _Parser(argparse.ArgumentParser):
    """argparse that reads ``-1e308`` as a number and reports a mistake in one line.

    argparse only recognises ``-5`` and ``-.5`` as negative numbers; an
    exponent made ``--beta -1e308`` fail with "expected one argument". Its
    error message comes after the whole usage block (20 lines for ``train``),
    which buries it; here it is one line that points to ``--help``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="eqprop",
        description="Train Equilibrium Propagation networks (Scellier & Bengio 2016) fast on multicore CPUs.",
        epilog="Start with: eqprop train --preset digits --out runs/digits. "
        "Run 'eqprop COMMAND --help' for the options of a command.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a network (a preset or explicit settings) and write a run directory",
        description="Train an EP network with mini-batch Equilibrium Propagation, checkpointing every epoch, "
        "then evaluate it on the training, validation and test sets.",
        epilog=_TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = train.add_argument_group("what to train")
    what.add_argument("--preset", metavar="NAME",
                      help="start from a preset's settings (list them with 'eqprop presets'); flags override them")
    what.add_argument("--dataset", choices=DATASET_NAMES, help="dataset (preset; required without --preset)")
    what.add_argument("--layers", type=_layers, metavar="LAYERS",
                      help="layers from input to output: 784-500-10 (dense), or comma-separated with an "
                           "input map and conv layers c<channels>k<kernel>[p<pad>][mp|ap], e.g. "
                           "1x28x28,c32k5mp,c64k5mp,10 (preset; required without --preset)")
    what.add_argument("--train-size", type=_positive_int, metavar="N",
                      help="train on the first N training examples only (default: all; handy for quick runs)")
    what.add_argument("--validation-size", type=_non_negative_int, metavar="N",
                      help="hold out the last N training images for validation (default: 10,000 for MNIST and "
                           "Fashion-MNIST, 300 for digits); 0 trains on every training image, with no validation "
                           "and no best checkpoint: a final fit with settings chosen on a validation run")
    what.add_argument("--data-dir", metavar="DIR",
                      help="folder with the IDX files (or mnist/ and fashion-mnist/ subfolders); "
                      "default: $EQPROP_DATA, then ~/.cache/eqprop, then a download")
    hyper = train.add_argument_group("hyperparameters (this library's convention: C = 1/2 ||y - d||^2)")
    hyper.add_argument("--beta", type=_nonzero_float, help="nudging strength (preset, else 1.0)")
    hyper.add_argument("--init-gain", type=_positive_float, nargs="+", metavar="GAIN",
                       help="multipliers of the Glorot limit of the initial weights, one per weight matrix "
                       "(or one for all) (preset, else 1)")
    hyper.add_argument("--free-steps", type=_positive_int, metavar="N",
                       help="steps of the free phase (preset, else 20)")
    hyper.add_argument("--nudged-steps", type=_positive_int, metavar="N",
                       help="steps of the nudged phase (preset, else 4)")
    hyper.add_argument("--epsilon", type=_epsilon, help="Euler step size in (0, 1] (preset, else 0.5)")
    hyper.add_argument("--lr", type=_positive_float, nargs="+", metavar="RATE",
                       help="learning rates, one per weight matrix, e.g. --lr 0.2 0.1 "
                       "(preset; required without --preset)")
    hyper.add_argument("--batch-size", type=_positive_int, metavar="N",
                       help="examples per mini-batch (preset, else 20)")
    hyper.add_argument("--epochs", type=_positive_int, metavar="N",
                       help="total number of epochs (preset, else 25); with --resume, the new total")
    hyper.add_argument("--solver", choices=("euler", "alternating", "fixed-point"),
                       help="relaxation: the paper's Euler dynamics, alternating exact layer updates, or "
                       "alternating fixed-point updates (the output nudged by beta (d - y), as Scellier's "
                       "DHN code) (default: euler)")
    hyper.add_argument("--symmetric", action="store_const", const=True, default=None,
                       help="use the symmetric (+beta/-beta) gradient estimate of Laborieux et al. 2021 (default: off)")
    hyper.add_argument("--algorithm", choices=ALGORITHMS,
                       help="the estimator of the EP family (eqprop.algorithms); replaces --symmetric and "
                       "--no-random-sign (preset, else chosen by them: random-sign)")
    hyper.add_argument("--coupling", type=_coupling, metavar="ETA",
                       help="eta of --algorithm coupled: the output is clamped to y + eta (d - y) (default 0.5)")
    hyper.add_argument("--output", choices=("clipped", "linear"),
                       help="output units clipped to [0, 1] (the paper) or linear (preset, else clipped)")
    hyper.add_argument("--cost", choices=("squared-error", "cross-entropy"),
                       help="the cost: 1/2 ||y - d||^2 on a relaxing output layer (the paper), or the cross-entropy "
                       "of a softmax readout on the last hidden layer, outside the energy (Laborieux et al. 2021; "
                       "with an EP algorithm and a clipped output) (default: squared-error)")
    hyper.add_argument("--no-persistent", dest="persistent", action="store_const", const=False, default=None,
                       help="start every free phase from zeros instead of the example's persistent particle")
    hyper.add_argument("--no-random-sign", dest="random_sign", action="store_const", const=False, default=None,
                       help="always nudge with +beta (default: a random sign per mini-batch, as in the paper)")
    hyper.add_argument("--eval-steps", type=_positive_int, metavar="N",
                       help="free steps from zeros when evaluating (default: --free-steps)")
    hyper.add_argument("--translate", type=_non_negative_int, metavar="PIXELS",
                       help="augment the training images: each epoch move every one by a random offset of up to "
                            "PIXELS per axis, zeros entering the frame (default: 0, no augmentation)")
    optim = train.add_argument_group(
        "optimizer and learning-rate schedule (PyTorch's update equations; default: the paper's plain SGD)")
    optim.add_argument("--optimizer", choices=("sgd", "momentum", "nesterov", "adam"),
                       help="how the EP gradient updates the parameters (preset, else sgd)")
    optim.add_argument("--momentum", type=_finite_float, metavar="MU",
                       help="momentum of --optimizer momentum / nesterov, in [0, 1) (default 0.9)")
    optim.add_argument("--betas", type=_finite_float, nargs=2, metavar=("BETA1", "BETA2"),
                       help="Adam's coefficients, each in [0, 1) (default 0.9 0.999)")
    optim.add_argument("--eps", type=_positive_float, help="Adam's eps (default 1e-8)")
    optim.add_argument("--weight-decay", type=_non_negative_float, nargs="+", metavar="RATE",
                       help="L2 weight decay added to the gradient (wd * W, as PyTorch's weight_decay), one per "
                       "weight matrix or one for all; biases are not decayed (default: none)")
    optim.add_argument("--bias-lr", type=_non_negative_float, nargs="+", metavar="RATE",
                       help="learning rates of the biases, one per layer (default: bias k uses --lr's rate k)")
    optim.add_argument("--schedule", choices=("constant", "cosine", "exponential", "step"),
                       help="learning-rate schedule: the rates of epoch e are --lr times f(e), f(1) = 1 "
                       "(preset, else constant)")
    optim.add_argument("--schedule-epochs", type=_positive_int, metavar="N",
                       help="cosine: epochs the cosine spans (default: --epochs, the run's total)")
    optim.add_argument("--schedule-floor", type=_finite_float, metavar="F",
                       help="cosine: the factor it decays to, in [0, 1] (default 0)")
    optim.add_argument("--schedule-gamma", type=_finite_float, metavar="G",
                       help="exponential: f(e) = G^(e-1) (required); step: factor per step (default 0.1); in (0, 1]")
    optim.add_argument("--schedule-step-size", type=_positive_int, metavar="N",
                       help="step: multiply the rates by --schedule-gamma every N epochs (required)")
    run = train.add_argument_group("run")
    run.add_argument("--out", metavar="DIR", help="run directory to create (default: runs/<preset or dataset>)")
    run.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    run.add_argument("--seed", type=_non_negative_int,
                     help="seed of the weights and of the shuffling/sign RNG "
                     "(default: random, recorded in config.json)")
    run.add_argument("--threads", type=_positive_int, metavar="N",
                     help="OpenMP threads (default: all cores); results repeat exactly for the same seed and N")
    run.add_argument("--dtype", choices=("float32", "float64"), help="floating type (default float32)")
    run.add_argument("--precision", choices=("float32", "bfloat16"),
                     help="the relaxation's matrix products: float32, or bfloat16 copies of the weights and "
                     "states with float32 sums (AVX512_BF16 where the CPU has it; --dtype float32); "
                     "parameters, states and updates stay float32 (default float32)")
    run.add_argument("--conv-algorithm", choices=("auto", "direct", "winograd"),
                     help="the bottom-up convolutions: auto (Winograd's F(m x m, k x k) from 32 input channels, "
                     "else direct), direct or winograd; changes only the rounding, and may accompany --resume "
                     "(default: auto, or what the resumed run recorded)")
    run.add_argument("--delta-threshold", type=_fraction, metavar="D",
                     help="the event-driven relaxation of dense networks: after a phase's first step each row sends "
                     "only its states' changes through the weights, alone when at most a fraction D of its entries "
                     "changed, else with its neighbours' (eqcore.set_delta_threshold); 0 recomputes the products of "
                     "the whole states at every step; changes only the rounding, and may accompany --resume "
                     f"(default {DEFAULT_DELTA_THRESHOLD}, or what the resumed run recorded; runs made before it: 0)")
    run.add_argument("--quiet", action="store_true", help="print nothing but errors; no progress bar")
    run.add_argument("--distributed", action="store_true",
                     help="data-parallel over the MPI ranks of mpiexec -n RANKS (needs mpi4py and an MPI, see "
                     "README 'Scaling out'): each mini-batch is split across the ranks and their updates (or, "
                     "with --optimizer and the like, gradients) are summed, then every rank takes the same "
                     "step; --batch-size must be a multiple of RANKS; rank 0 writes the run directory; "
                     "--threads defaults to the cores per rank of each node")
    train.set_defaults(func=_cmd_train, subparser=train)

    evaluate = commands.add_parser(
        "evaluate", help="error of a run's last checkpoint on its test, validation or training set",
        description="Load the checkpoint of a run directory and print its error rate (free relaxation from zeros).",
        epilog="example: eqprop evaluate runs/digits --split val",
    )
    evaluate.add_argument("run_dir", metavar="DIR", help="a run directory written by 'eqprop train'")
    evaluate.add_argument("--split", choices=SPLITS, default="test", help="which set to evaluate (default: test)")
    evaluate.add_argument("--checkpoint", choices=("last", "best"), default="last",
                          help="the last epoch's checkpoint, or the one with the lowest validation error "
                          "(default: last)")
    evaluate.add_argument("--eval-steps", type=_positive_int, metavar="N",
                          help="free relaxation steps (default: the run's eval steps)")
    evaluate.add_argument("--threads", type=_positive_int, metavar="N", help="OpenMP threads (default: all cores)")
    evaluate.add_argument("--data-dir", metavar="DIR", help="where the dataset files are (default: as in training)")
    evaluate.set_defaults(func=_cmd_evaluate, subparser=evaluate)

    plot = commands.add_parser(
        "plot", help="draw a run's learning curves as a PNG",
        description="Plot training/validation error and mean cost per epoch from DIR/metrics.csv.",
        epilog="example: eqprop plot runs/digits   (writes runs/digits/learning_curves.png)",
    )
    plot.add_argument("run_dir", metavar="DIR", help="a run directory written by 'eqprop train'")
    plot.add_argument("--output", metavar="FILE", help="PNG to write (default: DIR/learning_curves.png)")
    plot.set_defaults(func=_cmd_plot, subparser=plot)

    presets = commands.add_parser(
        "presets", help="list the presets (the paper's MNIST networks, conv and DHN networks, a quick digits run)",
        description="List the presets with their hyperparameters, in this library's convention "
        "and in the original code's.",
    )
    presets.set_defaults(func=_cmd_presets, subparser=presets)

    info = commands.add_parser(
        "info", help="show versions and what the compiled core was built with",
        description="Print versions, whether OpenMP is enabled, the thread count and the BLAS in use.",
    )
    info.set_defaults(func=_cmd_info, subparser=info)

    # eqprop sweep: hyperparameter sweeps on Dask; the arguments and the logic live in eqprop/sweep/
    from eqprop.sweep.command import add_sweep_parser

    add_sweep_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from eqprop.distributed import DistributedError, MPIUnavailable, launcher_rank

    argv = sys.argv[1:] if argv is None else list(argv)
    # under mpiexec, only rank 0 reports what every rank finds wrong with the arguments
    other_rank = "--distributed" in argv and (launcher_rank() or 0) > 0
    try:
        parser = build_parser()
        with contextlib.redirect_stderr(io.StringIO()) if other_rank else contextlib.nullcontext():
            args = parser.parse_args(argv)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    try:
        return args.func(args, args.subparser)
    except MPIUnavailable as exc:
        if not other_rank:
            print(f"eqprop {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except _ReportedByRankZero as exc:
        return exc.status
    except KeyboardInterrupt:
        comm = getattr(args, "comm", None)
        if comm is None or comm.Get_rank() == 0:  # mpiexec passes Ctrl-C to every rank: rank 0 speaks
            print(f"\n{_interrupted_message(args)}", file=sys.stderr)
        return 130
    except MemoryError as exc:
        detail = str(exc) or "an allocation failed"
        if not detail.startswith("this run needs"):
            detail = (f"out of memory ({detail}); use fewer or smaller layers, a smaller --batch-size or "
                      f"--train-size, or --dtype float32")
        return _report(args, exc, f"eqprop {args.command}: error: {detail}", 1)
    except (OSError, ValueError, FloatingPointError, DistributedError) as exc:
        # expected failures (missing data, bad run directory, damaged files, divergence): a message, not a traceback
        return _report(args, exc, f"eqprop {args.command}: error: {exc}", 1)
    except SystemExit:
        raise
    except BaseException:
        comm = getattr(args, "comm", None)
        if comm is None or comm.Get_size() == 1:
            raise
        import traceback

        traceback.print_exc()  # an unexpected error on one rank: stop the others, which would wait for it
        comm.Abort(1)
        raise


def _report(args: argparse.Namespace, exc: BaseException, message: str, status: int) -> int:
    """Print ``message`` and return ``status``; in a distributed run, say it once and never leave ranks waiting.

    An error every rank raised together is printed by rank 0 alone. One that a
    single rank met is printed with its rank, and the job is aborted: the
    other ranks would otherwise wait for it in their next collective call.
    """
    from eqprop.distributed import raised_on_every_rank

    comm = getattr(args, "comm", None)
    if comm is None or comm.Get_size() == 1:
        print(message, file=sys.stderr)
        return status
    rank = comm.Get_rank()
    if raised_on_every_rank(exc):
        if rank == 0:
            print(message, file=sys.stderr)
        return status
    print(f"{message} (rank {rank} of {comm.Get_size()}; stopping every rank)", file=sys.stderr, flush=True)
    comm.Abort(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
