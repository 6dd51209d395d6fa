"""Argument and array checks: one place, run before any compiled code.

Every public entry point calls these first, so the core (which releases the GIL
and trusts its inputs) only ever sees C-contiguous, finite arrays of one
floating dtype with consistent shapes.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
SOLVERS = ("euler", "alternating")


def check_dtype(dtype: object) -> np.dtype:
    """Return ``dtype`` as a NumPy dtype, or raise TypeError if unsupported."""
    try:
        resolved = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be 'float32' or 'float64'; got {dtype!r}") from exc
    if resolved not in SUPPORTED_DTYPES:
        raise TypeError(f"dtype must be 'float32' or 'float64'; got {resolved}")
    return resolved


def check_sizes(sizes: object) -> tuple[int, ...]:
    """Layer sizes including the input: at least two positive integers."""
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
        raise TypeError(f"sizes must be a sequence of layer sizes such as [784, 500, 10]; got {sizes!r}")
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least two layers (input and output); got {list(sizes)}")
    checked = []
    for position, size in enumerate(sizes):
        if isinstance(size, bool) or not isinstance(size, numbers.Integral):
            raise TypeError(f"sizes[{position}] must be an integer; got {size!r}")
        if size < 1:
            raise ValueError(f"sizes[{position}] must be at least 1; got {size}")
        checked.append(int(size))
    return tuple(checked)


def check_int(value: object, name: str, *, minimum: int = 1) -> int:
    """An integer (not a bool) no smaller than ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value}")
    return int(value)


def check_threads(threads: object) -> int | None:
    """None (all usable cores), n > 0 (exactly n) or -k (all but k - 1), as scikit-learn."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
        raise TypeError(f"threads must be None or a non-zero integer; got {threads!r}")
    if threads == 0 or not -(2**31) < threads < 2**31:
        raise ValueError(
            f"threads must be None (every core), n > 0 (exactly n) or -k (all but k - 1), "
            f"within +-2147483647; got {threads}"
        )
    return int(threads)


def check_real(value: object, name: str) -> float:
    """A finite real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}")
    return value


def check_epsilon(epsilon: object) -> float:
    """The Euler step size, in (0, 1]."""
    epsilon = check_real(epsilon, "epsilon")
    if not 0.0 < epsilon <= 1.0:
        raise ValueError(f"epsilon must be in (0, 1]; got {epsilon}")
    return epsilon


def check_solver(solver: object) -> str:
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}; got {solver!r}")
    return str(solver)


def check_beta(beta: object, solver: str = "euler") -> float:
    """The nudging strength; the exact (alternating) solver needs 1 + beta > 0."""
    beta = check_real(beta, "beta")
    if solver == "alternating" and beta <= -1.0:
        raise ValueError(
            f"beta must be greater than -1 with solver='alternating' (the output's "
            f"energy is then convex); got {beta}"
        )
    return beta


def as_batch(array: object, name: str, n_columns: int, dtype: np.dtype) -> np.ndarray:
    """A finite (batch, n_columns) C-contiguous array of ``dtype`` (copied only if needed)."""
    if isinstance(array, np.ndarray):
        candidate = array
    else:
        try:
            candidate = np.asarray(array)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be array-like of numbers: {exc}") from exc
    if candidate.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers; got dtype {candidate.dtype}")
    if candidate.ndim != 2:
        hint = f"; use {name}[None, :] for a single example" if candidate.ndim == 1 else ""
        raise ValueError(
            f"{name} must be 2-D with shape (batch, {n_columns}); got shape {candidate.shape}{hint}"
        )
    if candidate.shape[1] != n_columns:
        raise ValueError(
            f"{name} has {candidate.shape[1]} columns; the network expects {n_columns}"
        )
    converted = np.ascontiguousarray(candidate, dtype=dtype)
    if converted.size and not np.isfinite(converted).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return converted


def as_state(
    state: object, name: str, batch: int, layer_sizes: Sequence[int], dtype: np.dtype
) -> list[np.ndarray]:
    """Fresh C-contiguous copies of a state: one (batch, n_k) array per non-input layer."""
    if isinstance(state, np.ndarray) or not isinstance(state, Sequence):
        raise TypeError(f"{name} must be a list with one (batch, n) array per non-input layer")
    if len(state) != len(layer_sizes):
        raise ValueError(f"{name} has {len(state)} layers; the network has {len(layer_sizes)} non-input layers")
    copies = []
    for k, (layer, size) in enumerate(zip(state, layer_sizes)):
        layer = as_batch(layer, f"{name}[{k}]", size, dtype)
        if layer.shape[0] != batch:
            raise ValueError(f"{name}[{k}] has {layer.shape[0]} rows; x has {batch}")
        copies.append(np.array(layer, dtype=dtype, order="C", copy=True))
    return copies
