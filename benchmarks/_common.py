"""Shared set-up of the asv benchmarks: the paper's architectures, inputs, FLOP counts.

Parameter grid rule used by every module: the 3-hidden-layer network is only
benchmarked at batch 20 and 256 (``skip_combination``), so the full grid stays
within a few minutes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

import eqprop

ARCHS = {
    "784-500-10": (784, 500, 10),
    "784-500-500-10": (784, 500, 500, 10),
    "784-500-500-500-10": (784, 500, 500, 500, 10),
}
BATCHES = [20, 100, 256]
DTYPES = ["float32", "float64"]
THREADS = [1, 2]
EPSILON = 0.5
BETA = 1.0


def skip_combination(arch: str, batch: int) -> None:
    """Raise NotImplementedError (asv's "skip") for combinations left out of the grid."""
    if arch == "784-500-500-500-10" and batch not in (20, 256):
        raise NotImplementedError("the 3-hidden-layer network is benchmarked at batch 20 and 256 only")


def make_problem(arch: str, batch: int, dtype: str, threads: int, seed: int = 0):
    """A network, a batch of inputs in [0, 1], one-hot targets and a non-trivial state."""
    sizes = ARCHS[arch]
    net = eqprop.EqPropNetwork(sizes, dtype=dtype, seed=seed, threads=threads)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(batch, sizes[0])).astype(dtype)
    target = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], size=batch)]
    state = [rng.uniform(0.0, 1.0, size=(batch, n)).astype(dtype) for n in sizes[1:]]
    return net, x, target, state


IMAGE_DENSITY = 0.19  # fraction of non-zero pixels in an MNIST image


def image_like(batch: int, n_inputs: int, dtype: str, rng: np.random.Generator) -> np.ndarray:
    """Inputs shaped like MNIST's: about 19% of the entries non-zero, the rest exactly 0.

    The core skips zero inputs in the drive x W_0 and in the update of W_0; the
    uniform inputs of :func:`make_problem` have none, so both paths are tracked.
    """
    x = rng.uniform(0.0, 1.0, size=(batch, n_inputs))
    x[rng.uniform(size=x.shape) >= IMAGE_DENSITY] = 0.0
    return x.astype(dtype)


def relax_flops(sizes: Sequence[int], steps: int) -> int:
    """FLOP per example of ``steps`` relaxation steps: every matrix but W_0 both ways per step.

    The input's drive x W_0 (2 n_0 n_1) is not included: see :func:`drive_flops`.
    """
    return steps * sum(4 * a * b for a, b in zip(sizes[1:-1], sizes[2:]))


def drive_flops(sizes: Sequence[int]) -> int:
    """FLOP per example of the clamped input's drive x W_0 (computed once per phase or step)."""
    return 2 * sizes[0] * sizes[1]


def update_flops(sizes: Sequence[int]) -> int:
    """FLOP per example of the EP update: two outer-product sums per weight matrix."""
    return sum(4 * a * b for a, b in zip(sizes[:-1], sizes[1:]))


def train_flops(sizes: Sequence[int], free_steps: int, nudged_steps: int) -> int:
    """FLOP per example of a training step (the convention of benchmarks/compare.py: one drive)."""
    return relax_flops(sizes, free_steps + nudged_steps) + drive_flops(sizes) + update_flops(sizes)


def best_seconds(call: Callable[[], object], min_seconds: float = 0.1, repeats: int = 3) -> float:
    """Best time of one ``call`` over ``repeats`` samples of at least ``min_seconds`` each."""
    call()  # warm-up: first-touch allocations, thread pools
    best = float("inf")
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while True:
            call()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        best = min(best, elapsed / n)
    return best
