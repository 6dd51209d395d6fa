"""Time the EP weight update of 784-500-10 alone (``eqcore._update.apply_ep_update``).

Usage: ``python tools/update_bench.py [--threads 1] [--calls 1000] [--rounds 5]``.

Batch 20, best of ``--rounds`` rounds of ``--calls`` calls (microseconds per call, the
Python call included), for three inputs: 20 MNIST training images (the sparse update of
W_0 skips their zero pixels), zeros (only the fixed costs: building the operands, the
update of the 500 x 10 output weights, the biases) and a dense 0.5 everywhere (the dense
product for every block of W_0). The states are random; the scales are tiny, so that the
weights stay where they are over the calls.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import eqprop
from eqcore._update import apply_ep_update
from eqprop.datasets import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    net = eqprop.EqPropNetwork([784, 500, 10], dtype="float32", seed=0)
    chain = net.core_chain()
    images = load_dataset("mnist", quiet=True).x_train[:20].astype(np.float32)
    rng = np.random.default_rng(0)
    pos = [rng.random((20, n), dtype=np.float32) for n in (500, 10)]
    neg = [rng.random((20, n), dtype=np.float32) for n in (500, 10)]
    scales = np.array([1e-9, 1e-9])
    for name, x in (("MNIST images", images), ("zeros", np.zeros_like(images)),
                    ("dense 0.5", np.full_like(images, 0.5))):
        for _ in range(args.calls // 5):
            apply_ep_update(chain, x, pos, neg, scales, args.threads)
        best = float("inf")
        for _ in range(args.rounds):
            started = time.perf_counter()
            for _ in range(args.calls):
                apply_ep_update(chain, x, pos, neg, scales, args.threads)
            best = min(best, (time.perf_counter() - started) / args.calls)
        print(f"{name}, {args.threads} thread(s): {best * 1e6:.1f} us per update")


if __name__ == "__main__":
    main()
