"""Time a relaxation at several thresholds of the event-driven relaxation (``eqcore.set_delta_threshold``).

Usage: ``python tools/delta_crossover.py [--run RUN] [--thresholds 0,0.25,0.5,1]
[--threads 1] [--repeats 5]``.

Batch 20, the paper's 150 Euler steps of size 0.5 (60 for 784-500-500-500-10), best of
``--repeats`` calls, in three settings: a trained 784-500-500-10 (``--run``, a run
directory of ``eqprop train --preset mnist-2h``) from zero and from its free fixed point
(where persistent particles start); untrained networks (seed 0) on MNIST images; and
states that keep moving (uniform random inputs, steps of size 0.1), where most entries
change at every step and sending changes costs more than recomputing. Threshold 0 turns
the event-driven relaxation off.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import eqcore
import eqprop
from eqprop.checkpoint import load_checkpoint
from eqprop.datasets import load_dataset


def best_ms(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def row(label: str, relax, thresholds: list[float], repeats: int) -> None:
    cells = []
    for threshold in thresholds:
        eqcore.set_delta_threshold(threshold)
        cells.append(f"{best_ms(relax, repeats):.2f}")
    print(f"| {label} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="a trained mnist-2h run directory")
    parser.add_argument("--thresholds", default="0,0.25,0.5,1")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    thresholds = [float(t) for t in args.thresholds.split(",")]
    default = eqcore.delta_threshold()
    images = load_dataset("mnist", quiet=True).x_train[:20]
    noise = np.random.default_rng(0).random((20, 784)).astype(np.float32)
    print(f"milliseconds per relaxation of 20 examples, {args.threads} thread(s), best of {args.repeats}\n")
    print("| network, inputs, start | " + " | ".join(f"threshold {t:g}" for t in thresholds) + " |")
    print("|---|" + "---|" * len(thresholds))
    try:
        if args.run is not None:
            net = load_checkpoint(args.run).build_network()
            fixed_point = net.relax(images, steps=150, epsilon=0.5, threads=args.threads)
            row(f"{net.architecture} trained, MNIST, from zero", lambda: net.relax(
                images, steps=150, epsilon=0.5, threads=args.threads), thresholds, args.repeats)
            row(f"{net.architecture} trained, MNIST, from its fixed point", lambda: net.relax(
                images, steps=150, epsilon=0.5, init=fixed_point, threads=args.threads), thresholds, args.repeats)
        for sizes, steps in (([784, 500, 500, 10], 150), ([784, 500, 500, 500, 10], 60)):
            net = eqprop.EqPropNetwork(sizes, seed=0)
            name = "-".join(map(str, sizes))
            row(f"{name} untrained, MNIST, {steps} steps", lambda: net.relax(
                images, steps=steps, epsilon=0.5, threads=args.threads), thresholds, args.repeats)
            row(f"{name} untrained, random inputs, {steps} steps of 0.1", lambda: net.relax(
                noise, steps=steps, epsilon=0.1, threads=args.threads), thresholds, args.repeats)
    finally:
        eqcore.set_delta_threshold(default)


if __name__ == "__main__":
    main()
