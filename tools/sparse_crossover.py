"""Where the sparse input products stop paying: dense against sparse at several input densities.

Usage: ``python tools/sparse_crossover.py [--threads 1]``. For 784-500-10 and a
mini-batch of 20, times (median wall time, microseconds) the free phase's input
drive (one relaxation step that computes x W_0) and the EP update, with the sparse
products forced off (``eqcore.set_sparse_threshold(0)``) and on (``1``), for real
MNIST and Fashion-MNIST images and for uniform inputs with a random fraction of
zeros (random zeros are the worst case for the drive: a group of rows rarely
shares them). The default thresholds, ``eqcore.sparse_threshold()`` for the drive and
``eqcore.sparse_threshold(update=True)`` for the update, should sit below the densities
where "sparse" stops winning.
"""

from __future__ import annotations

import argparse

import numpy as np

import eqcore
import eqprop
from eqprop.datasets import load_dataset

from _timing import median_microseconds  # tools/_timing.py


def median_us(function) -> float:
    return median_microseconds(function, repeats=400, warmup=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    inputs = {name: np.ascontiguousarray(load_dataset(name).x_train[:20]) for name in ("mnist", "fashion-mnist")}
    for density in (0.1, 0.2, 0.35, 0.5, 0.75):
        x = rng.random((20, 784), dtype=np.float32)
        x[rng.random(x.shape) >= density] = 0.0
        inputs[f"random, {density:.0%} non-zero"] = x
    net = eqprop.EqPropNetwork([784, 500, 10], seed=0)
    rates = np.full(2, 1e-12)  # the weights barely move while we time
    engine = net.step_engine(20)
    before = eqcore.sparse_threshold(), eqcore.sparse_threshold(update=True)
    print(f"784-500-10, batch 20, {args.threads} thread(s); microseconds (dense / sparse); "
          f"default thresholds {before[0]:.0%} (drive) and {before[1]:.0%} (update) non-zero")
    print("| inputs | non-zero | drive, dense | drive, sparse | update, dense | update, sparse |")
    print("|---|---|---|---|---|---|")
    for name, x in inputs.items():
        state = net.relax(x, steps=5, epsilon=0.5)
        row = [name, f"{(x != 0).mean():.1%}"]
        times = {}
        for label, threshold in (("dense", 0.0), ("sparse", 1.0)):
            eqcore.set_sparse_threshold(threshold)
            times[label] = (
                median_us(lambda: engine.free_phase(x, state, steps=1, epsilon=0.5, solver="euler",
                                                    threads=args.threads)),
                median_us(lambda: engine.accumulate(x, state, state, rates, args.threads)),
            )
        eqcore.set_sparse_threshold(*before)
        row += [f"{times['dense'][0]:.0f}", f"{times['sparse'][0]:.0f}",
                f"{times['dense'][1]:.0f}", f"{times['sparse'][1]:.0f}"]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
