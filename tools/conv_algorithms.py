"""Direct against Winograd bottom-up convolutions, per conv shape: what ``conv="auto"`` should choose.

Usage: ``python tools/conv_algorithms.py [--threads 1,2] [--precision float32] [--steps 20]
[--pool max|avg|none]``. For each shape (c_in x size x size -> c_out, kernel k, padding p,
then 2x2 max pooling, or ``--pool``), relaxes a network whose second connection is that convolution (the
first is a 1x1 convolution from one input channel, so that the layer below
relaxes too; a dense 10-unit output follows) for ``--steps`` Euler steps on a
mini-batch of 20 uniform random inputs, and prints the median wall time per
example and step with each algorithm (``eqcore.set_gemm_path(conv=...)``) and
their ratio. A relaxation step runs the convolution and its transposed one (which
the choice changes too for average and no pooling; max pooling has its sparse
kernel), so the ratio is what a training step gains. Run it
on a quiet machine.
"""

from __future__ import annotations

import argparse

import numpy as np

import eqcore
import eqprop
from eqprop import Conv2d

from _timing import median_microseconds  # tools/_timing.py

# (c_in, size, c_out, kernel, padding): the conv presets' second layer first, then
# shapes of the convnets EP papers train (CIFAR-10's 3x3 layers, wider kernels).
SHAPES = [
    (32, 12, 64, 5, 0),
    (4, 28, 16, 5, 2),
    (8, 28, 16, 5, 2),
    (16, 16, 32, 3, 1),
    (64, 16, 128, 3, 1),
    (128, 8, 256, 3, 1),
    (32, 16, 32, 7, 3),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2")
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--pool", default="max", choices=["max", "avg", "none"])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'shape':>28}  threads  direct us  winograd us  direct / winograd  (per example and step, "
          f"{args.precision}, {args.pool} pooling)")
    for c_in, size, c_out, k, pad in SHAPES:
        pool = None if args.pool == "none" else args.pool
        layers = [(1, size, size), Conv2d(c_in, 1, pool=None), Conv2d(c_out, k, padding=pad, pool=pool), 10]
        net = eqprop.EqPropNetwork(layers, precision=args.precision, seed=0)
        x = rng.uniform(0, 1, (args.batch, size * size)).astype(np.float32)
        for threads in (int(t) for t in args.threads.split(",")):
            times = {}
            for algorithm in ("direct", "winograd"):
                eqcore.set_gemm_path("skinny", "best", conv=algorithm)
                micros = median_microseconds(lambda: net.relax(x, steps=args.steps, epsilon=0.5, threads=threads),
                                             repeats=7, warmup=1)
                times[algorithm] = micros / (args.batch * args.steps)
            eqcore.set_gemm_path("skinny", "best")
            shape = f"{c_in}x{size}x{size} -> {c_out} k{k} p{pad}"
            print(f"{shape:>28}  {threads:>7}  {times['direct']:>9.1f}  {times['winograd']:>11.1f}  "
                  f"{times['direct'] / times['winograd']:>17.2f}x", flush=True)


if __name__ == "__main__":
    main()
