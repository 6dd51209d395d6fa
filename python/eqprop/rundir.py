"""Run directories: one owner at a time, checked paths, and files that agree with each other.

``eqprop train`` keeps a run in one directory (``--out``): ``config.json``,
``checkpoint.npz``, ``metrics.csv`` and the rest. This module guards it:

- :class:`RunDirectoryLock` makes the directory belong to one process: an
  exclusive ``fcntl.flock`` on ``.eqprop.lock`` inside it. The kernel drops the
  lock when its process ends, however it ends (``kill -9`` included), so a
  stale lock file never blocks a resume; a second process is refused at once.
- :func:`remove_orphaned_temporaries` deletes the ``.NAME.*.tmp`` files an
  interrupted atomic write leaves behind (run under the lock only, so a live
  writer's file is never touched).
- :func:`check_run_path` and :func:`make_directory` validate ``--out`` before
  any training: empty, a file, a file on the way, too long a name.
- :func:`check_config` and :func:`check_resume_consistency` make sure, before a
  resume writes anything, that ``config.json``, the checkpoint and
  ``metrics.csv`` describe the same run.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eqprop.algorithms import ALGORITHMS

LOCK_NAME = ".eqprop.lock"
#: Files written with :func:`eqprop.checkpoint.atomic_open` in a run directory.
ATOMIC_FILES = ("checkpoint.npz", "config.json", "metrics.csv", "summary.json", "learning_curves.png")

try:  # POSIX; elsewhere runs are not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class RunDirectoryError(OSError):
    """A run directory cannot be used: busy, not a directory, inconsistent or damaged.

    A subclass of OSError, so the command line reports it as a one-line error.
    """


class RunDirectoryBusy(RunDirectoryError):
    """Another process holds the run directory's lock."""


# ----------------------------------------------------------------------- paths
def check_run_path(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Validate a run directory path before anything is trained or written.

    Parameters
    ----------
    path : str or os.PathLike
        The directory to create or reuse.
    flag : str
        How the user gave it, for messages.

    Returns
    -------
    Path
        ``path`` as a Path.

    Raises
    ------
    RunDirectoryError
        The path is empty, is (or lies under) an existing file, or is longer
        than the file system allows.
    """
    text = os.fspath(path)
    if not str(text).strip():
        raise RunDirectoryError(f"{flag} is empty; give the run directory, e.g. {flag} runs/digits")
    path = Path(text)
    absolute = Path(os.path.abspath(path))
    try:
        max_path = os.pathconf(_existing_ancestor(absolute), "PC_PATH_MAX")
        max_name = os.pathconf(_existing_ancestor(absolute), "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        max_path, max_name = 4096, 255
    # room for the longest file written inside, a temporary name of an atomic write
    longest_inside = len(f"/.{ATOMIC_FILES[-1]}.XXXXXXXX.tmp")
    if len(os.fsencode(absolute)) + longest_inside >= max_path:
        raise RunDirectoryError(
            f"{flag} {_short(path)} is too long a path ({len(os.fsencode(absolute))} bytes; the file "
            f"system allows {max_path} including the files written inside)"
        )
    for part in absolute.parts:
        if len(os.fsencode(part)) > max_name:
            raise RunDirectoryError(f"{flag} {_short(path)} has a name longer than {max_name} bytes: {_short(part)}")
    if path.exists() and not path.is_dir():
        raise RunDirectoryError(f"{flag} {path} is a file, not a directory; give a directory for the run")
    for parent in absolute.parents:
        if parent.exists():
            if not parent.is_dir():
                raise RunDirectoryError(f"{flag} {path} cannot be created: {parent} is a file, not a directory")
            break
    return path


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            return candidate
    return Path("/")


def _short(path: object, limit: int = 80) -> str:
    text = str(path)
    return text if len(text) <= limit else f"{text[:40]}...{text[-30:]} ({len(text)} characters)"


def make_directory(path: str | os.PathLike) -> bool:
    """Create ``path`` and its missing parents, one level at a time.

    :meth:`pathlib.Path.mkdir` with ``parents=True`` recurses once per missing
    level and fails with RecursionError on very deep paths; this loop does not.

    Returns
    -------
    bool
        Whether ``path`` itself was created (False if it already existed).
    """
    path = Path(os.path.abspath(path))
    missing = []
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            break
        missing.append(candidate)
    for directory in reversed(missing):
        try:
            os.mkdir(directory)
        except FileExistsError:
            if not directory.is_dir():
                raise
    return bool(missing)


# ------------------------------------------------------------------------ lock
class RunDirectoryLock:
    """Exclusive ownership of a run directory by this process.

    Use as a context manager; the directory is created if needed. The lock is
    ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``DIR/.eqprop.lock``, which holds the
    owner's process id for the message another process prints. The kernel
    releases it when the process exits, so a lock file left by a killed run
    does not block the next run or a resume. If the directory was created
    here and nothing but the lock file is in it on release, it is removed
    again (a run refused at start-up leaves no empty directory behind).

    Parameters
    ----------
    directory : path
        The run directory.

    Raises
    ------
    RunDirectoryBusy
        On entry, when another process holds the lock.
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self._fd: int | None = None
        self._created = False

    def __enter__(self) -> RunDirectoryLock:
        self._created = make_directory(self.directory)
        path = self.directory / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                owner = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
                os.close(fd)
                who = f" (process {owner})" if owner.isdigit() else ""
                raise RunDirectoryBusy(
                    f"{self.directory} is in use by another eqprop process{who}; wait for it to finish, "
                    f"or choose another --out"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def release(self) -> None:
        """Drop the lock (idempotent); remove the directory if it was created here and is still empty."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if self._created:
            with contextlib.suppress(OSError):
                if [entry.name for entry in os.scandir(self.directory)] == [LOCK_NAME]:
                    os.unlink(self.directory / LOCK_NAME)
                    os.rmdir(self.directory)
        os.close(fd)  # closing the descriptor releases the flock


def remove_orphaned_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of interrupted atomic writes in ``directory``.

    An atomic write goes to ``.NAME.<random>.tmp`` beside ``NAME`` and is
    renamed over it; a process killed in between leaves the temporary file.
    Call this only while holding :class:`RunDirectoryLock`: then no write of
    another process can be in flight.

    Returns
    -------
    list of Path
        The files removed.
    """
    directory = Path(directory)
    removed = []
    for name in ATOMIC_FILES:
        for orphan in directory.glob(f".{name}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                orphan.unlink()
                removed.append(orphan)
    return removed


# ---------------------------------------------------------------- config.json
def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


#: What each setting of config.json must be: (test, description).
def _valid_layers(value: object) -> bool:
    """Layers as config.json records them: dense sizes, or an input map and conv layers (JSON form)."""
    from eqprop.layers import layers_from_json, resolve_layers

    if not isinstance(value, list) or len(value) < 2:
        return False
    try:
        resolve_layers(layers_from_json(value))
    except (TypeError, ValueError, KeyError):
        return False
    return True


_CONFIG_SCHEMA: dict[str, tuple[Any, str]] = {
    "dataset": (lambda v: v in ("digits", "mnist", "fashion-mnist"), "one of digits, mnist, fashion-mnist"),
    "layers": (lambda v: _valid_layers(v), "a list of layers (eqprop.layers.layers_to_json: sizes, an input "
               "shape and conv layers)"),
    "learning_rates": (lambda v: isinstance(v, list) and len(v) >= 1 and all(_is_number(r) and r > 0 for r in v),
                       "a list of positive numbers"),
    "beta": (lambda v: _is_number(v) and v != 0, "a nonzero number"),
    "free_steps": (lambda v: _is_int(v) and 1 <= v < 2**31, "a positive integer"),
    "nudged_steps": (lambda v: _is_int(v) and 1 <= v < 2**31, "a positive integer"),
    "epsilon": (lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "batch_size": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "epochs": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "random_sign": (lambda v: isinstance(v, bool), "true or false"),
    "persistent": (lambda v: isinstance(v, bool), "true or false"),
    "symmetric": (lambda v: isinstance(v, bool), "true or false"),
    "solver": (lambda v: v in ("euler", "alternating", "fixed-point"), "'euler', 'alternating' or 'fixed-point'"),
    "eval_steps": (lambda v: v is None or (_is_int(v) and 1 <= v < 2**31), "null or a positive integer"),
    "dtype": (lambda v: v in ("float32", "float64"), "'float32' or 'float64'"),
    "threads": (lambda v: v is None or (_is_int(v) and 1 <= v < 2**31), "null or a positive integer"),
    "seed": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "train_size": (lambda v: v is None or (_is_int(v) and v >= 1), "null or a positive integer"),
    "preset": (lambda v: v is None or isinstance(v, str), "null or a preset name"),
}
def _numbers(v: object, low: float, *, length: int | None = None) -> bool:
    return (isinstance(v, list) and len(v) >= 1 and (length is None or len(v) == length)
            and all(_is_number(x) and x >= low for x in v))


_OPTIONAL = {
    "data_dir": (lambda v: v is None or isinstance(v, str), "null or a folder"),
    # the event-driven relaxation (--delta-threshold); missing in runs made before it: 0 (off)
    "delta_threshold": (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    # missing in runs made before --validation-size: the dataset's standard split
    "validation_size": (lambda v: v is None or (_is_int(v) and v >= 0), "null or a non-negative integer"),
    "data_folder": (lambda v: v is None or isinstance(v, str), "null or a folder"),
    # the optimizer and the schedule (eqprop.optim); missing in runs made before them: plain SGD, constant
    "optimizer": (lambda v: v in ("sgd", "momentum", "nesterov", "adam"), "one of sgd, momentum, nesterov, adam"),
    "momentum": (lambda v: v is None or (_is_number(v) and 0 <= v < 1), "null or a number in [0, 1)"),
    "betas": (lambda v: v is None or (_numbers(v, 0, length=2) and max(v) < 1), "null or two numbers in [0, 1)"),
    "eps": (lambda v: v is None or (_is_number(v) and v > 0), "null or a positive number"),
    "weight_decay": (lambda v: v is None or _numbers(v, 0), "null or a list of non-negative numbers"),
    "bias_learning_rates": (lambda v: v is None or _numbers(v, 0), "null or a list of non-negative numbers"),
    "schedule": (lambda v: v in ("constant", "cosine", "exponential", "step"),
                 "one of constant, cosine, exponential, step"),
    "schedule_epochs": (lambda v: v is None or (_is_int(v) and 1 <= v < 2**31), "null or a positive integer"),
    "schedule_floor": (lambda v: v is None or (_is_number(v) and 0 <= v <= 1), "null or a number in [0, 1]"),
    "schedule_gamma": (lambda v: v is None or (_is_number(v) and 0 < v <= 1), "null or a number in (0, 1]"),
    "schedule_step_size": (lambda v: v is None or (_is_int(v) and 1 <= v < 2**31), "null or a positive integer"),
    "algorithm": (lambda v: v is None or v in ALGORITHMS, "null or one of " + ", ".join(ALGORITHMS)),
    "coupling": (lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "output": (lambda v: v in ("clipped", "linear"), "clipped or linear"),
    # augmentation (eqprop.augment); missing in runs made before it: none
    "translate": (lambda v: _is_int(v) and 0 <= v < 2**31, "a non-negative integer"),
    "image_shape": (lambda v: v is None or (isinstance(v, list) and len(v) == 3 and all(
        _is_int(d) and d > 0 for d in v)), "null or three positive integers"),
    "cost": (lambda v: v in ("squared-error", "cross-entropy"), "squared-error or cross-entropy"),
    # the bottom-up convolutions (--conv-algorithm); missing in runs made before it: auto
    "conv_algorithm": (lambda v: v in ("auto", "direct", "winograd"), "auto, direct or winograd"),
    "precision": (lambda v: v in ("float32", "bfloat16"), "float32 or bfloat16"),
    "init_gains": (lambda v: v is None or (isinstance(v, list) and all(
        isinstance(g, (int, float)) and not isinstance(g, bool) and g > 0 for g in v)),
        "null or a list of positive numbers"),
}


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a run's ``config.json``.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    RunDirectoryError
        It is not valid JSON, not an object, or a setting is missing or of the
        wrong kind; the message names the file and the setting.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent} is not an eqprop run directory: {path} does not exist")
    config = read_config_json(path)
    check_config(config, path)
    return config


def read_config_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, or RunDirectoryError naming the file (no check of the settings)."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise RunDirectoryError(f"{path} is damaged: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except ValueError as exc:
        raise RunDirectoryError(f"{path} is damaged: not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise RunDirectoryError(f"{path} is damaged: it holds a JSON {type(config).__name__}, not an object")
    return config


def check_config(config: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Raise RunDirectoryError naming ``path`` and the setting unless ``config`` is a valid run config."""
    for key, (test, description) in {**_CONFIG_SCHEMA, **_OPTIONAL}.items():
        if key not in config:
            if key in _OPTIONAL:
                continue
            raise RunDirectoryError(f"{path} is damaged: the setting {key!r} is missing")
        try:
            ok = bool(test(config[key]))
        except Exception:  # a comparison with an odd JSON value
            ok = False
        if not ok:
            raise RunDirectoryError(f"{path}: {key} is {config[key]!r}; it must be {description}")
    if len(config["learning_rates"]) != len(config["layers"]) - 1:
        from eqprop.layers import format_layers, layers_from_json

        raise RunDirectoryError(
            f"{path}: learning_rates has {len(config['learning_rates'])} rates; layers "
            f"{format_layers(layers_from_json(config['layers']))} needs {len(config['layers']) - 1}"
        )
    from eqprop.optim import DEFAULTS, resolve_optimizer, resolve_schedule

    settings = {key: config.get(key, DEFAULTS[key]) for key in DEFAULTS}
    try:  # the settings together: one per weight matrix, only those of the chosen optimizer and schedule
        resolve_optimizer(
            settings["optimizer"], momentum=settings["momentum"], betas=settings["betas"], eps=settings["eps"],
            weight_decay=settings["weight_decay"], bias_learning_rates=settings["bias_learning_rates"],
            n_matrices=len(config["layers"]) - 1,
        )
        resolve_schedule(
            settings["schedule"], epochs=settings["schedule_epochs"], floor=settings["schedule_floor"],
            gamma=settings["schedule_gamma"], step_size=settings["schedule_step_size"],
        )
    except (TypeError, ValueError) as exc:
        raise RunDirectoryError(f"{path}: {exc}") from None


# ----------------------------------------------------------------- consistency
#: config.json keys and the checkpoint config keys they must equal.
_TRAINER_KEYS = ("beta", "free_steps", "nudged_steps", "epsilon", "learning_rates", "batch_size",
                 "random_sign", "symmetric", "persistent", "seed", "solver", "eval_steps",
                 "optimizer", "momentum", "betas", "eps", "weight_decay", "bias_learning_rates",
                 "schedule", "schedule_epochs", "schedule_floor", "schedule_gamma", "schedule_step_size",
                 "translate", "image_shape")


def check_resume_consistency(config: Mapping[str, Any], checkpoint: Any, metrics: str | os.PathLike,
                             config_path: str | os.PathLike) -> None:
    """Refuse a resume whose config.json, checkpoint and metrics.csv are not of one run.

    A resume continues the checkpoint's run exactly; config.json must therefore
    describe that run (an edited setting is refused, not silently ignored), and
    metrics.csv must hold a prefix of the checkpoint's history (it is written
    just after each checkpoint, so it may lag by one epoch, never lead).

    Parameters
    ----------
    config : mapping
        The validated config.json.
    checkpoint : eqprop.checkpoint.Checkpoint
        The run's checkpoint (with its training metadata checked).
    metrics : path
        The run's metrics.csv (it may be missing).
    config_path : path
        config.json, for messages.

    Raises
    ------
    RunDirectoryError
        Naming the first setting or file that disagrees.
    """
    where = f"{config_path} and {checkpoint.path}"
    from eqprop.layers import format_layers, layers_from_json

    layers = format_layers(checkpoint.layers)
    configured = format_layers(layers_from_json(config["layers"]))
    if configured != layers:
        raise RunDirectoryError(
            f"{where} are of different runs: config.json says layers {configured}, "
            f"the checkpoint holds a {layers} network"
        )
    if config["dtype"] != checkpoint.dtype:
        raise RunDirectoryError(
            f"{where} are of different runs: config.json says dtype {config['dtype']}, the checkpoint {checkpoint.dtype}"
        )
    if config.get("cost", "squared-error") != checkpoint.cost:
        raise RunDirectoryError(
            f"{where} are of different runs: config.json says cost {config.get('cost', 'squared-error')}, "
            f"the checkpoint holds a {checkpoint.cost} network"
        )
    if config.get("precision", "float32") != checkpoint.precision:
        raise RunDirectoryError(
            f"{where} are of different runs: config.json says precision {config.get('precision', 'float32')}, "
            f"the checkpoint {checkpoint.precision}"
        )
    from eqprop.optim import DEFAULTS

    saved = {**DEFAULTS, **checkpoint.config}  # runs made before the optimizers: plain SGD, constant rates
    for key in _TRAINER_KEYS:
        expected = saved.get(key)
        value = config.get(key, DEFAULTS.get(key))
        if key == "eval_steps" and value is None:
            value = config["free_steps"]
        if key == "learning_rates":
            value, expected = list(value), list(expected or ())
        if value != expected:
            raise RunDirectoryError(
                f"{where} disagree: config.json says {key} = {config.get(key)!r}, the checkpoint was trained "
                f"with {expected!r}. A resume continues the checkpoint's run exactly, so settings cannot be "
                f"edited: restore config.json, or start a new run with --out"
            )
    _check_metrics(Path(metrics), checkpoint)


def _check_metrics(path: Path, checkpoint: Any) -> None:
    if not path.is_file():
        return
    from eqprop.plotting import read_metrics

    try:
        columns = read_metrics(path, allow_empty=True)
    except ValueError as exc:
        raise RunDirectoryError(str(exc)) from exc
    history = checkpoint.meta.get("history", [])
    epochs = columns.get("epoch", [])
    if len(epochs) > len(history):
        raise RunDirectoryError(
            f"{path} holds {len(epochs)} epochs but {checkpoint.path} only {len(history)}: they are of different runs"
        )
    for row, (epoch, error) in enumerate(zip(epochs, columns.get("train_error", []))):
        record = history[row]
        if epoch != record.get("epoch") or error != record.get("train_error"):
            raise RunDirectoryError(
                f"{path} and {checkpoint.path} are of different runs: epoch {row + 1} differs "
                f"(metrics.csv: training error {error!r}, checkpoint: {record.get('train_error')!r})"
            )
