"""Memory a training run needs, estimated before anything large is allocated.

``eqprop train --layers 64-1000000000-10`` would otherwise fail deep inside
NumPy with a MemoryError traceback; with an estimate, the command refuses the
run up front and says how much it would need and how much there is.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Sequence

import numpy as np

from eqcore._epoch import padded_sizes

#: Rows of the evaluation batches (eqprop.trainer.EVAL_BATCH_SIZE).
_EVAL_ROWS = 1000


def estimate_training_bytes(
    sizes: Sequence[int], dtype: str | np.dtype, *, n_train: int, batch_size: int, persistent: bool,
    optimizer_arrays: int = 0,
) -> dict[str, int]:
    """Bytes of the largest allocations of a training run, by what they hold.

    Parameters
    ----------
    sizes : sequence
        The layers from input to output, as ``eqprop.layers.layers_to_json``
        writes them (ints for a dense network).
    dtype : {"float32", "float64"}
        The network's floating type.
    n_train : int
        Training examples.
    batch_size : int
        Examples per mini-batch.
    persistent : bool
        Whether one state per training example (the persistent particles) is kept.
    optimizer_arrays : int, default 0
        Parameter-sized arrays the optimizer keeps: 0 for the in-place SGD
        update, else the gradient plus the optimizer's state (2 for momentum,
        3 for Adam), each also written by a checkpoint.

    Returns
    -------
    dict of str to int
        ``parameters`` (the weights and biases, the copy a checkpoint writes,
        and the larger of their float64 initialisation draw and the copies the
        compiled epoch loop trains on: a dense chain with its hidden layers
        padded to whole vectors, and W_0 in padded rows, eqcore._epoch),
        ``particles``, ``batches`` (the mini-batch and evaluation buffers and the states of both phases),
        ``data`` (the training inputs in the network's dtype) and ``optimizer``
        (its arrays, and the copies a checkpoint writes of its state).
    """
    from eqprop.layers import layers_from_json, resolve_layers

    itemsize = np.dtype(dtype).itemsize
    input_shape, connections = resolve_layers(layers_from_json(list(sizes)))
    sizes = [int(np.prod(input_shape)), *(c.n_out for c in connections)]
    weights = [int(np.prod(c.weight_shape)) for c in connections]
    n_parameters = sum(weights) + sum(int(np.prod(c.bias_shape)) for c in connections)
    largest_matrix = max(weights)
    state = sum(sizes[1:])
    rows = min(batch_size, max(n_train, 1))
    return {
        "parameters": (2 * n_parameters * itemsize
                       + max(largest_matrix * 8, _loop_copies(sizes, connections) * itemsize)),
        "particles": (n_train * state * itemsize) if persistent else 0,
        "batches": (4 * rows + min(_EVAL_ROWS, max(n_train, 1))) * (state + sizes[0]) * itemsize,
        "data": n_train * sizes[0] * itemsize,
        "optimizer": max(2 * optimizer_arrays - 1, 0) * n_parameters * itemsize,
    }


def _loop_copies(sizes: Sequence[int], connections: Sequence[object]) -> int:
    """Values in the compiled epoch loop's copies of a dense chain's parameters (an upper bound):
    the chain with hidden layers of 16 or more units padded to whole 16-unit vectors, and W_0 with
    rows padded to an odd number of cache lines (at most 32 values more)."""
    if any(len(c.weight_shape) != 2 for c in connections):
        return 0
    padded = padded_sizes(sizes)
    chain = sum(a * b for a, b in zip(padded, padded[1:])) + sum(padded[1:])
    return chain + padded[0] * (padded[1] + 32)


def available_bytes() -> int | None:
    """Memory this process can still allocate, or None when unknown.

    The smaller of the system's available memory plus free swap (Linux
    ``/proc/meminfo``; elsewhere ``sysconf``) and what the address-space limit
    (``ulimit -v``) leaves above the current size.
    """
    candidates = []
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in handle if line.count(":") == 1}
        if "MemAvailable" in info:
            candidates.append(info["MemAvailable"] + info.get("SwapFree", 0))
    except (OSError, ValueError, IndexError):
        try:
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            pass
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (OSError, ValueError):
        soft = resource.RLIM_INFINITY
    if soft != resource.RLIM_INFINITY:
        used = 0
        try:
            with open("/proc/self/status", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("VmSize:"):
                        used = int(line.split()[1]) * 1024
        except (OSError, ValueError):
            pass
        candidates.append(max(soft - used, 0))
    return min(candidates) if candidates else None


def format_bytes(count: float) -> str:
    """``1.5 GB``-style sizes (powers of 1000)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if count < 1000 or unit == "PB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def check_training_memory(
    sizes: Sequence[int], dtype: str | np.dtype, *, n_train: int, batch_size: int, persistent: bool,
    available: int | None = None, optimizer_arrays: int = 0,
) -> int:
    """Raise MemoryError with the figures if a run cannot fit; return the estimate in bytes.

    ``available`` overrides :func:`available_bytes` (for tests).
    """
    parts = estimate_training_bytes(sizes, dtype, n_train=n_train, batch_size=batch_size, persistent=persistent,
                                    optimizer_arrays=optimizer_arrays)
    needed = sum(parts.values())
    if available is None:
        available = available_bytes()
    if available is not None and needed > available:
        detail = ", ".join(f"{name} {format_bytes(value)}" for name, value in parts.items() if value)
        raise MemoryError(
            f"this run needs about {format_bytes(needed)} of memory ({detail}) but only "
            f"{format_bytes(available)} is available; use fewer or smaller layers or a smaller "
            f"--batch-size or --train-size" + (", or --dtype float32" if np.dtype(dtype).itemsize > 4 else "")
        )
    return needed
