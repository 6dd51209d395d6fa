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
SOLVERS = ("euler", "alternating", "fixed-point")
#: The core counts steps, rows and threads in C ``int``: larger values would wrap around.
INT_MAX = 2**31 - 1


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


def check_int(value: object, name: str, *, minimum: int = 1, maximum: int = INT_MAX) -> int:
    """An integer (not a bool) in ``minimum .. maximum``.

    The default maximum is the largest C ``int`` (2**31 - 1): step counts and
    thread counts reach the compiled core as 32-bit integers.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value}")
    if value > maximum:
        raise ValueError(f"{name} must be at most {maximum}; got {value}")
    return int(value)


def check_bool(value: object, name: str) -> bool:
    """True or False (a NumPy bool too); anything else, such as the string "no", is a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


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


def check_init_gains(gains: object, n_connections: int) -> tuple[float, ...]:
    """None (all 1), one positive gain for every connection, or one per connection."""
    if gains is None:
        return (1.0,) * n_connections
    if isinstance(gains, numbers.Real) and not isinstance(gains, bool):
        gains = [gains] * n_connections
    if isinstance(gains, (str, bytes)) or not isinstance(gains, Sequence):
        raise TypeError(f"init_gains must be None, a number or a sequence of numbers; got {gains!r}")
    if len(gains) != n_connections:
        raise ValueError(f"init_gains must have one gain per weight array ({n_connections}); got {len(gains)}")
    checked = tuple(check_real(g, f"init_gains[{k}]") for k, g in enumerate(gains))
    for k, g in enumerate(checked):
        if g <= 0:
            raise ValueError(f"init_gains[{k}] must be positive; got {g}")
    return checked


def check_output(output: object) -> str:
    if output not in ("clipped", "linear"):
        raise ValueError(f"output must be 'clipped' or 'linear'; got {output!r}")
    return str(output)


COSTS = ("squared-error", "cross-entropy")


def check_cost(cost: object) -> str:
    if cost not in COSTS:
        raise ValueError(f"cost must be 'squared-error' or 'cross-entropy'; got {cost!r}")
    return str(cost)


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


def check_in_dtype_range(value: float, name: str, dtype: np.dtype) -> float:
    """A finite ``value`` whose magnitude the network's ``dtype`` can hold."""
    limit = float(np.finfo(dtype).max)
    if abs(value) > limit:
        raise ValueError(
            f"{name} = {value:g} overflows {np.dtype(dtype).name} (largest value {limit:.4g}); "
            f"use a smaller {name} or dtype='float64'"
        )
    return value


def check_beta(beta: object, solver: str = "euler", dtype: np.dtype | None = None) -> float:
    """The nudging strength; the exact (alternating) solver needs 1 + beta > 0, the fixed-point one |beta| < 1.

    With ``dtype``, beta must also be representable there: its magnitude at most
    a quarter of the largest value (the nudge adds beta times the output error,
    at most 2 in size, to the state's net input) and, when nonzero, at least the
    smallest normal number (a subnormal beta loses its precision and the update,
    divided by beta, overflows).
    """
    beta = check_real(beta, "beta")
    if dtype is not None and beta != 0.0:
        info = np.finfo(dtype)
        if abs(beta) > float(info.max) / 4:
            raise ValueError(
                f"beta = {beta:g} is beyond the {np.dtype(dtype).name} range: the nudged phase would "
                f"overflow (|beta| must be at most {float(info.max) / 4:.4g}); use a smaller beta"
            )
        if abs(beta) < float(info.tiny):
            raise ValueError(
                f"beta = {beta:g} is too small for {np.dtype(dtype).name} (smallest normal number "
                f"{float(info.tiny):.4g}): the EP update divides by beta and would overflow; use a larger beta"
            )
    if solver == "alternating" and beta <= -1.0:
        raise ValueError(
            f"beta must be greater than -1 with solver='alternating' (the output's "
            f"energy is then convex); got {beta}"
        )
    if solver == "fixed-point" and not -1.0 < beta < 1.0:
        raise ValueError(
            f"beta must be in (-1, 1) with solver='fixed-point' (the output's update "
            f"y <- h + beta (d - y) converges only then); got {beta}"
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
    if candidate.size and candidate.dtype.kind == "f" and candidate.dtype.itemsize > np.dtype(dtype).itemsize:
        # check before the cast: a finite float64 beyond the float32 range would become inf
        if not np.isfinite(candidate).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        check_finite_array(candidate, name, dtype)
    converted = np.ascontiguousarray(candidate, dtype=dtype)
    if converted.size and not np.isfinite(converted).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return converted


def check_finite_array(array: np.ndarray, name: str, dtype: np.dtype | None = None) -> None:
    """Raise ValueError if ``array`` holds NaN or infinity, or values ``dtype`` cannot hold.

    The message tells the two apart: a finite value beyond the range of
    ``dtype`` is an overflow, not a NaN.
    """
    if not array.size:
        return
    if not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array.ravel()))[0])
        raise ValueError(f"{name} contains NaN or infinite values (first at flat index {bad}: {array.flat[bad]})")
    if dtype is not None and array.dtype.kind == "f":
        limit = float(np.finfo(dtype).max)
        largest = float(np.max(np.abs(array)))
        if largest > limit:
            raise ValueError(
                f"{name} holds values up to {largest:.4g} in magnitude, beyond the "
                f"{np.dtype(dtype).name} range (largest {limit:.4g}): they would overflow to infinity"
            )


def check_parameters(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]) -> None:
    """Refuse parameters holding NaN or infinity (written into ``net.weights`` by a user, say)."""
    for name, arrays in (("weights", weights), ("biases", biases)):
        for k, array in enumerate(arrays):
            if not np.isfinite(array).all():
                raise ValueError(
                    f"net.{name}[{k}] contains NaN or infinite values; restore finite parameters "
                    f"(e.g. from a checkpoint) before using the network"
                )


def check_update_scale(
    rates: Sequence[float] | np.ndarray, beta: float, dtype: np.dtype, *, what: str = "learning_rates"
) -> None:
    """Refuse learning rates and beta whose EP update scale lr / beta overflows ``dtype``.

    The update of eq. 13 multiplies a difference of products of states in [0, 1]
    by ``lr / beta`` (averaged over the batch), so ``lr / |beta|`` must be a
    finite number well inside the range of the parameters' dtype. ``what`` names
    the rates in the message; ``what=None`` checks ``1 / beta`` (the gradient).
    """
    limit = float(np.finfo(dtype).max) / 4
    rates = np.asarray(rates, dtype=np.float64)
    with np.errstate(over="ignore", divide="ignore"):
        scales = np.abs(rates / beta)
    for k, scale in enumerate(scales):
        if not np.isfinite(scale) or scale > limit:
            term = "1 / beta" if what is None else f"{what}[{k}] / beta = {float(rates[k]):g} / {beta:g}"
            raise ValueError(
                f"{term} = {scale:g} overflows {np.dtype(dtype).name} (the EP update is scaled by it; "
                f"at most {limit:.4g}): beta is too small"
                + ("" if what is None else " or the learning rate too large")
            )


def check_nudge(beta: float, target: np.ndarray | None, dtype: np.dtype) -> None:
    """Refuse a nudge beta * (target - output) that overflows ``dtype`` (outputs lie in [0, 1])."""
    if beta == 0.0 or target is None or not target.size:
        return
    largest = abs(beta) * (1.0 + float(np.max(np.abs(target))))
    limit = float(np.finfo(dtype).max) / 4
    if not largest <= limit:
        raise ValueError(
            f"beta * (target - output) reaches {largest:g}, which overflows {np.dtype(dtype).name} "
            f"(at most {limit:.4g}); use a smaller beta or targets of moderate size"
        )


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
