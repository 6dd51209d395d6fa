"""Where one training step of a paper network spends its time, per phase and thread count.

Usage: ``python tools/profile_step.py [1h|2h|3h] [--batch 20] [--random] [--dense-products]``. Times
(wall clock, median of repeated calls, microseconds per mini-batch) the free phase,
the nudged phase and the update through the validated-once internals, and the whole
public ``train_step`` (which adds argument checks and copies), with 1 and 2 threads.
The inputs are MNIST training images (found as ``eqprop.datasets`` finds them), or
uniform random numbers with ``--random`` (dense inputs: no zero pixels to skip).
``--dense-products`` turns the sparse input products off (``eqcore.set_sparse_threshold(0)``).
"""

from __future__ import annotations

import argparse

import numpy as np

import eqcore
import eqprop
from eqprop._threads import single_threaded_blas
from eqprop.datasets import load_dataset
from eqprop.presets import get_preset

from _timing import median_microseconds  # tools/_timing.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arch", nargs="?", default="1h", choices=["1h", "2h", "3h"])
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--random", action="store_true", help="dense random inputs instead of MNIST")
    parser.add_argument("--dense-products", action="store_true",
                        help="multiply the input densely even where it is mostly zeros")
    args = parser.parse_args()
    if args.dense_products:
        eqcore.set_sparse_threshold(0.0)
    preset = get_preset(f"mnist-{args.arch}")
    net = eqprop.EqPropNetwork(preset.sizes, seed=0)
    rng = np.random.default_rng(0)
    if args.random:
        x = rng.random((args.batch, preset.sizes[0]), dtype=np.float32)
    else:
        x = np.ascontiguousarray(load_dataset("mnist").x_train[: args.batch])
    target = np.eye(preset.sizes[-1], dtype=np.float32)[rng.integers(0, preset.sizes[-1], args.batch)]
    state = net.relax(x, steps=preset.free_steps, epsilon=0.5)
    engine = net.step_engine(args.batch)
    tiny_rates = np.full(len(net.weights), 1e-12)  # the weights barely move while we time
    repeats = max(5, int(2e4 / preset.free_steps))
    inputs = "uniform random inputs" if args.random else "MNIST images"
    if args.dense_products:
        inputs += ", dense products"
    print(f"mnist-{args.arch}, batch {args.batch}, {inputs}, microseconds per mini-batch (median of {repeats}):")
    print("| threads | free phase | nudged phase | update | public train_step |")
    print("|---|---|---|---|---|")
    for threads in (1, 2):
        with single_threaded_blas():
            free = median_microseconds(lambda: engine.free_phase(
                x, state, steps=preset.free_steps, epsilon=0.5, solver="euler", threads=threads), repeats)
            nudge = dict(beta=preset.beta, steps=preset.nudged_steps, epsilon=0.5, solver="euler", threads=threads)
            nudged_state = engine.nudged(x, state, target, **nudge)
            nudged = median_microseconds(lambda: engine.nudged(x, state, target, **nudge), repeats)
            update = median_microseconds(lambda: engine.accumulate(x, nudged_state, state, tiny_rates, threads),
                                         repeats)
        public = median_microseconds(lambda: net.train_step(
            x, target, beta=preset.beta, free_steps=preset.free_steps, nudged_steps=preset.nudged_steps,
            epsilon=0.5, learning_rates=list(tiny_rates), init=state, threads=threads), repeats)
        print(f"| {threads} | {free:,.0f} | {nudged:,.0f} | {update:,.0f} | {public:,.0f} |")


if __name__ == "__main__":
    main()
