"""Shared set-up of the asv benchmarks: the paper's architectures, the conv network, inputs, FLOP counts.

Parameter grid rules used by every module: the 3-hidden-layer network is only
benchmarked at batch 20 and 256 (``skip_combination``), so the full grid stays
within a few minutes; ``precision`` "bfloat16" (the relaxation's products on
bfloat16 copies, float32 sums) runs with dtype float32 only (``skip_precision``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

import eqprop
from eqprop.layers import resolve_layers

ARCHS = {
    "784-500-10": (784, 500, 10),
    "784-500-500-10": (784, 500, 500, 10),
    "784-500-500-500-10": (784, 500, 500, 500, 10),
}
BATCHES = [20, 100, 256]
DTYPES = ["float32", "float64"]
THREADS = [1, 2]
PRECISIONS = ["float32", "bfloat16"]
EPSILON = 0.5
BETA = 1.0


# The convolutional network of benchmarks/compare.py's ``conv`` arch (Ernoult et al. 2019):
# 1x28x28 -> 32 channels 5x5 (24x24, max-pooled to 12x12) -> 64 channels 5x5 (8x8, pooled
# to 4x4) -> 10 dense outputs.
CONV_LAYERS = ((1, 28, 28), eqprop.Conv2d(32, 5, pool="max"), eqprop.Conv2d(64, 5, pool="max"), 10)
CONV_BATCH = 20
CONV_PRESET_SWEEPS = 15  # the conv presets' free phase (alternating solver)


def skip_combination(arch: str, batch: int) -> None:
    """Raise NotImplementedError (asv's "skip") for combinations left out of the grid."""
    if arch == "784-500-500-500-10" and batch not in (20, 256):
        raise NotImplementedError("the 3-hidden-layer network is benchmarked at batch 20 and 256 only")


def skip_precision(dtype: str, precision: str) -> None:
    """Raise NotImplementedError (asv's "skip") for bfloat16 with a float64 network (not a valid network)."""
    if precision == "bfloat16" and dtype != "float32":
        raise NotImplementedError("precision bfloat16 needs dtype float32")


def make_problem(arch: str, batch: int, dtype: str, threads: int, seed: int = 0, precision: str = "float32"):
    """A network, a batch of inputs in [0, 1], one-hot targets and a non-trivial state."""
    sizes = ARCHS[arch]
    net = eqprop.EqPropNetwork(sizes, dtype=dtype, seed=seed, threads=threads, precision=precision)
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


def make_conv_problem(batch: int, dtype: str, threads: int, seed: int = 0, precision: str = "float32"):
    """The conv network (:data:`CONV_LAYERS`), MNIST-like images, one-hot targets and a random flat state."""
    net = eqprop.EqPropNetwork(CONV_LAYERS, dtype=dtype, seed=seed, threads=threads, precision=precision)
    rng = np.random.default_rng(seed)
    x = image_like(batch, net.sizes[0], dtype, rng)
    target = np.eye(net.sizes[-1], dtype=dtype)[rng.integers(0, net.sizes[-1], size=batch)]
    state = [rng.uniform(0.0, 1.0, size=(batch, n)).astype(dtype) for n in net.layer_sizes]
    return net, x, target, state


def product_flops(layers: Sequence[object]) -> list[int]:
    """FLOP per example of each connection's bottom-up product (multiply-add = 2 FLOP).

    Dense: 2 n_in n_out. Conv: 2 C_out C_in k^2 H_conv W_conv, the convolution
    before pooling (H_conv = H_in + 2 padding - k + 1). Its transpose (the
    top-down product) and its weight correlation cost the same. ``layers`` is
    what ``EqPropNetwork`` takes: flat sizes such as (784, 500, 10), or an
    input (C, H, W) followed by ``Conv2d`` and dense entries. This is the one
    definition of useful work that benchmarks/compare.py and the asv suite share.
    """
    _, connections = resolve_layers(layers)
    flops = []
    for c in connections:
        if c.kind == "dense":
            flops.append(2 * c.n_in * c.n_out)
        else:
            c_in, h_in, w_in = c.in_shape
            h_conv, w_conv = h_in + 2 * c.padding - c.kernel_size + 1, w_in + 2 * c.padding - c.kernel_size + 1
            flops.append(2 * c.out_shape[0] * c_in * c.kernel_size**2 * h_conv * w_conv)
    return flops


def relax_flops(layers: Sequence[object], steps: int) -> int:
    """FLOP per example of ``steps`` relaxation steps: every connection but the input's both ways per step.

    The input's drive (x W_0, or P(W_0 * x)) is not included: see :func:`drive_flops`.
    """
    return steps * 2 * sum(product_flops(layers)[1:])


def drive_flops(layers: Sequence[object]) -> int:
    """FLOP per example of the clamped input's drive x W_0 or P(W_0 * x) (computed once per phase or step)."""
    return product_flops(layers)[0]


def update_flops(layers: Sequence[object]) -> int:
    """FLOP per example of the EP update: two outer-product sums (conv: correlations) per connection."""
    return 2 * sum(product_flops(layers))


def train_flops(layers: Sequence[object], free_steps: int, nudged_steps: int) -> int:
    """FLOP per example of a training step (the convention of benchmarks/compare.py: one drive)."""
    return relax_flops(layers, free_steps + nudged_steps) + drive_flops(layers) + update_flops(layers)


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
