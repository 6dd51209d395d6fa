"""Checkpoints: atomic save and exact restore of a training run.

A checkpoint is one ``.npz`` file holding the parameters, the persistent
particles (each training example's last free fixed point), the optimizer's
state arrays (momentum buffers, Adam's moments) and, as a JSON document stored
in a ``uint8`` array (so that no pickling is ever needed), the trainer's
configuration, the RNG state, the epoch counter, the optimizer's step count,
the schedule's position and the history.
Keeping everything in one file makes the write atomic as a whole: the file is
written to a temporary name in the same directory, flushed and fsynced, then
renamed over the previous checkpoint with :func:`os.replace`. A crash or an
error at any point leaves either the old checkpoint or the new one, never a
mixture or a truncated file.

Format 2 added the optimizer state (``optimizer_<buffer>_weight_<k>`` and
``optimizer_<buffer>_bias_<k>`` arrays, ``optimizer_state`` and
``schedule_state`` in the metadata) and the optimizer and schedule settings
in ``config``; format 1 files (plain SGD, constant rates) are still read.

This module only reads and writes files; :class:`eqprop.Trainer` decides what
goes in (``Trainer.fit(checkpoint_dir=...)``, ``Trainer.resume(...)``).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

CHECKPOINT_NAME = "checkpoint.npz"
FORMAT_VERSION = 2
#: Formats this version reads: 1 has no optimizer state (plain SGD, constant rates).
READABLE_VERSIONS = (1, 2)
_META_KEY = "meta_json"


class CheckpointError(ValueError):
    """A checkpoint file is missing pieces, has the wrong format or does not fit."""


# ----------------------------------------------------------------- atomic files
@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success it atomically replaces ``path``.

    The data is flushed and fsynced before the rename, and the directory is
    fsynced after it, so the new file survives a power cut once this returns.
    If the block raises, the temporary file is removed and ``path`` is untouched.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w'; got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with open(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(path.parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike, document: Any) -> None:
    """Write ``document`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(document, indent=2, sort_keys=False) + "\n")


# ------------------------------------------------------------------ checkpoints
@dataclass
class Checkpoint:
    """The contents of a checkpoint file.

    Attributes
    ----------
    meta : dict
        JSON-compatible document: ``network`` (sizes, layers, dtype, output, cost), ``config`` (the
        trainer's hyperparameters), ``epoch``, ``rng_state``, ``history`` (one
        dict per epoch), ``data`` (size and fingerprint of the training set).
    weights, biases : list of ndarray
        The network's parameters.
    particles : list of ndarray or None
        The persistent particles, one (n_examples, n_k) array per non-input
        layer, or None when training does not keep them.
    path : Path or None
        The file the checkpoint was read from.
    optimizer_buffers : dict or None
        The optimizer's state arrays by name (``"momentum_buffer"``,
        ``"exp_avg"``, ``"exp_avg_sq"``), each a pair (per weight, per bias)
        shaped like the parameters; ``meta["optimizer_state"]`` holds the
        optimizer's name and step count. None in format 1 files.
    """

    meta: dict
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    particles: list[np.ndarray] | None
    path: Path | None = None
    optimizer_buffers: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] | None = None

    @property
    def epoch(self) -> int:
        return int(self.meta["epoch"])

    @property
    def config(self) -> dict:
        return dict(self.meta["config"])

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(self.meta["network"]["sizes"])

    @property
    def dtype(self) -> str:
        return str(self.meta["network"]["dtype"])

    @property
    def cost(self) -> str:
        """The network's cost; checkpoints written before the cost option hold squared-error networks."""
        return str(self.meta["network"].get("cost", "squared-error"))

    @property
    def precision(self) -> str:
        """The relaxation's precision ('float32' when the checkpoint predates bfloat16)."""
        return str(self.meta["network"].get("precision", "float32"))

    @property
    def layers(self) -> list:
        """The network's layers (``EqPropNetwork``'s first argument); dense checkpoints may hold sizes only."""
        from eqprop.layers import layers_from_json

        saved = self.meta["network"].get("layers")
        return layers_from_json(saved) if saved is not None else list(self.sizes)

    def build_network(self, *, threads: int | None = None):
        """A new :class:`eqprop.EqPropNetwork` holding this checkpoint's parameters."""
        from eqprop.network import EqPropNetwork

        net = EqPropNetwork(self.layers, dtype=self.dtype, output=self.meta["network"].get("output", "clipped"),
                            cost=self.cost, precision=self.precision, threads=threads)
        net.set_params(self.weights, self.biases)
        return net


def checkpoint_path(location: str | os.PathLike) -> Path:
    """The checkpoint file of a directory (or ``location`` itself if it is a file)."""
    location = Path(location)
    return location if location.suffix == ".npz" else location / CHECKPOINT_NAME


def has_checkpoint(location: str | os.PathLike) -> bool:
    return checkpoint_path(location).is_file()


def save_checkpoint(
    directory: str | os.PathLike,
    *,
    meta: Mapping[str, Any],
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    particles: list[np.ndarray] | None,
    optimizer_buffers: Mapping[str, tuple[list[np.ndarray], list[np.ndarray]]] | None = None,
) -> Path:
    """Atomically write a checkpoint into ``directory`` (created if needed).

    ``optimizer_buffers`` maps each optimizer state array's name to its
    (weights, biases) lists; ``meta["optimizer_state"]`` should name them.

    Returns
    -------
    Path
        The checkpoint file, ``directory / "checkpoint.npz"``.
    """
    path = checkpoint_path(directory)
    document = dict(meta, format_version=FORMAT_VERSION)
    arrays: dict[str, np.ndarray] = {
        _META_KEY: np.frombuffer(json.dumps(document).encode("utf-8"), dtype=np.uint8)
    }
    for k, w in enumerate(weights):
        arrays[f"weight_{k}"] = w
    for k, b in enumerate(biases):
        arrays[f"bias_{k}"] = b
    for k, p in enumerate(particles or ()):
        arrays[f"particles_{k}"] = p
    for name, (buffer_w, buffer_b) in (optimizer_buffers or {}).items():
        for k, w in enumerate(buffer_w):
            arrays[f"optimizer_{name}_weight_{k}"] = w
        for k, b in enumerate(buffer_b):
            arrays[f"optimizer_{name}_bias_{k}"] = b
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def load_checkpoint(location: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    location : path
        A run or checkpoint directory, or the ``.npz`` file itself.

    Raises
    ------
    FileNotFoundError
        No checkpoint exists there.
    CheckpointError
        The file is not a valid eqprop checkpoint: not a zip archive, truncated,
        a damaged entry (CRC error), missing arrays or metadata, or arrays whose
        shapes and dtypes do not fit the network it describes. The message
        names the file and what is wrong.
    """
    path = checkpoint_path(location)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint found: {path} does not exist")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read: {exc}") from exc
    if magic != b"PK\x03\x04":
        kind = "a single .npy array" if magic == b"\x93NUM" else "not a zip archive"
        raise CheckpointError(f"{path} is not a readable checkpoint ({kind}; a checkpoint is an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except Exception as exc:  # zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, ...
        raise CheckpointError(f"{path} is not a readable checkpoint: damaged ({type(exc).__name__}: {exc})") from exc
    if _META_KEY not in arrays:
        raise CheckpointError(f"{path} is not an eqprop checkpoint (no {_META_KEY} entry)")
    try:
        meta = json.loads(arrays.pop(_META_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path} has damaged metadata ({_META_KEY} is not valid JSON: {exc})") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} has damaged metadata ({_META_KEY} is not a JSON object)")
    version = meta.get("format_version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise CheckpointError(
            f"{path} has checkpoint format {version}; this eqprop reads formats "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    _check_network_meta(meta, path)
    sizes = meta["network"]["sizes"]
    dtype = np.dtype(meta["network"]["dtype"])
    n_weights = len(sizes) - 1
    try:
        weights = [arrays[f"weight_{k}"] for k in range(n_weights)]
        biases = [arrays[f"bias_{k}"] for k in range(n_weights)]
    except KeyError as exc:
        raise CheckpointError(f"{path} lacks the array {exc.args[0]}") from exc
    particles = None
    if "particles_0" in arrays:
        try:
            particles = [arrays[f"particles_{k}"] for k in range(n_weights)]
        except KeyError as exc:
            raise CheckpointError(f"{path} lacks the array {exc.args[0]}") from exc
    from eqprop.layers import format_layers, layers_from_json, resolve_layers

    try:
        layers = layers_from_json(meta["network"].get("layers", sizes))
        _, connections = resolve_layers(layers)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{path}: its network description is damaged ({exc})") from exc
    if [connections[0].n_in, *(c.n_out for c in connections)] != list(sizes):
        raise CheckpointError(f"{path}: its layers and sizes disagree")
    described = format_layers(layers)
    expected = [(f"weight_{k}", weights[k], connections[k].weight_shape) for k in range(n_weights)]
    expected += [(f"bias_{k}", biases[k], connections[k].bias_shape) for k in range(n_weights)]
    if particles is not None:
        rows = particles[0].shape[0] if particles[0].ndim == 2 else -1
        expected += [(f"particles_{k}", particles[k], (rows, sizes[k + 1])) for k in range(n_weights)]
    optimizer_buffers = _read_optimizer_buffers(meta, arrays, n_weights, path)
    for name, (buffer_w, buffer_b) in (optimizer_buffers or {}).items():
        expected += [(f"optimizer_{name}_weight_{k}", buffer_w[k], connections[k].weight_shape)
                     for k in range(n_weights)]
        expected += [(f"optimizer_{name}_bias_{k}", buffer_b[k], connections[k].bias_shape)
                     for k in range(n_weights)]
    for name, array, shape in expected:
        if array.shape != shape or array.dtype != dtype:
            raise CheckpointError(
                f"{path}: array {name} is {array.dtype} of shape {array.shape}; the "
                f"{described} {dtype} network it describes needs {dtype} of shape {shape}"
            )
    return Checkpoint(meta=meta, weights=weights, biases=biases, particles=particles, path=path,
                      optimizer_buffers=optimizer_buffers)


def _read_optimizer_buffers(meta: dict, arrays: dict, n_weights: int, path: Path):
    """The optimizer state arrays ``meta["optimizer_state"]`` names (None if it names none)."""
    from eqprop.optim import OPTIMIZERS, STATE_BUFFERS

    state = meta.get("optimizer_state")
    if state is None:
        if any(name.startswith("optimizer_") for name in arrays):
            raise _damaged(path, "optimizer arrays without an 'optimizer_state' entry")
        return None
    if not isinstance(state, dict) or state.get("optimizer") not in OPTIMIZERS:
        raise _damaged(path, f"optimizer_state {state!r} does not name an optimizer of {', '.join(OPTIMIZERS)}")
    step = state.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise _damaged(path, f"the optimizer's step count {step!r} is not a non-negative integer")
    names = list(STATE_BUFFERS[state["optimizer"]])
    if state.get("buffers") != names:
        raise _damaged(path, f"optimizer {state['optimizer']!r} keeps the state {names}; the file lists "
                             f"{state.get('buffers')!r}")
    buffers = {}
    try:
        for name in names:
            buffers[name] = ([arrays[f"optimizer_{name}_weight_{k}"] for k in range(n_weights)],
                             [arrays[f"optimizer_{name}_bias_{k}"] for k in range(n_weights)])
    except KeyError as exc:
        raise CheckpointError(f"{path} lacks the array {exc.args[0]}") from exc
    return buffers


#: Hyperparameters every checkpoint's ``config`` holds (the keyword arguments of ``Trainer``).
CONFIG_KEYS = (
    "beta", "free_steps", "nudged_steps", "epsilon", "learning_rates", "batch_size", "random_sign",
    "symmetric", "persistent", "threads", "seed", "solver", "eval_steps",
)
#: Keyword arguments of ``Trainer`` that format 2 adds to ``config`` (format 1: their defaults,
#: ``eqprop.optim.DEFAULTS``).
OPTIONAL_CONFIG_KEYS = (
    "optimizer", "momentum", "betas", "eps", "weight_decay", "bias_learning_rates",
    "schedule", "schedule_epochs", "schedule_floor", "schedule_gamma", "schedule_step_size",
    "algorithm", "coupling",  # missing in older checkpoints: random_sign and symmetric choose
    "translate", "image_shape",  # missing in older checkpoints: no augmentation
)


def _damaged(path: Path | None, what: str) -> CheckpointError:
    return CheckpointError(f"{path} has damaged metadata: {what}")


def _check_network_meta(meta: dict, path: Path) -> None:
    """Raise CheckpointError unless ``meta`` describes a network (what reading the arrays needs)."""

    def fail(what: str) -> CheckpointError:
        return _damaged(path, what)

    network = meta.get("network")
    if not isinstance(network, dict):
        raise fail("no 'network' entry")
    sizes = network.get("sizes")
    if (not isinstance(sizes, list) or len(sizes) < 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes)):
        raise fail(f"network sizes {sizes!r} are not a list of at least two positive integers")
    if network.get("dtype") not in ("float32", "float64"):
        raise fail(f"network dtype {network.get('dtype')!r} is not 'float32' or 'float64'")
    if network.get("output", "clipped") not in ("clipped", "linear"):
        raise fail(f"network output {network.get('output')!r} is not 'clipped' or 'linear'")
    if network.get("cost", "squared-error") not in ("squared-error", "cross-entropy"):
        raise fail(f"network cost {network.get('cost')!r} is not 'squared-error' or 'cross-entropy'")
    if network.get("precision", "float32") not in ("float32", "bfloat16"):
        raise fail(f"network precision {network.get('precision')!r} is not 'float32' or 'bfloat16'")


def check_training_meta(checkpoint: Checkpoint) -> None:
    """Raise CheckpointError unless ``checkpoint`` holds everything a trainer restores.

    That is the ``config`` with every hyperparameter, the epoch, the RNG state,
    the history and (optionally) the training-data fingerprint.
    """
    meta, path = checkpoint.meta, checkpoint.path

    def fail(what: str) -> CheckpointError:
        return _damaged(path, what)

    config = meta.get("config")
    if not isinstance(config, dict):
        raise fail("no 'config' entry")
    missing = [key for key in CONFIG_KEYS if key not in config]
    if missing:
        raise fail(f"config lacks {', '.join(missing)}")
    epoch = meta.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise fail(f"epoch {epoch!r} is not a non-negative integer")
    if not isinstance(meta.get("rng_state"), dict):
        raise fail("no RNG state")
    history = meta.get("history")
    if not isinstance(history, list) or not all(isinstance(record, dict) for record in history):
        raise fail("the history is not a list of per-epoch records")
    data = meta.get("data")
    if data is not None and not isinstance(data, dict):
        raise fail("the training-data fingerprint is not a JSON object")
    from eqprop.optim import DEFAULTS, STATE_BUFFERS

    optimizer = config.get("optimizer", DEFAULTS["optimizer"])
    state = meta.get("optimizer_state")
    if state is None:
        if STATE_BUFFERS.get(optimizer):
            raise fail(f"config says optimizer {optimizer!r} but the checkpoint holds no optimizer state")
    elif state.get("optimizer") != optimizer:
        raise fail(f"config says optimizer {optimizer!r} but the optimizer state is {state.get('optimizer')!r}")
    schedule = meta.get("schedule_state")
    if schedule is not None:
        if not isinstance(schedule, dict):
            raise fail("the schedule state is not a JSON object")
        if schedule.get("schedule") != config.get("schedule", DEFAULTS["schedule"]):
            raise fail(f"config says schedule {config.get('schedule', DEFAULTS['schedule'])!r} but the schedule "
                       f"state is of {schedule.get('schedule')!r}")
        if schedule.get("position") != epoch:
            raise fail(f"the schedule's position {schedule.get('position')!r} is not the epoch {epoch}")
