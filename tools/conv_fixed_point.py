"""How fast the conv network's relaxation reaches its fixed point, by initialisation gain.

Relaxes 100 MNIST training images from zeros with the alternating solver
(float64) for T sweeps and prints, per layer, the largest difference from a
300-sweep reference, and the share of units at 0 and at 1::

    EQPROP_DATA=... python tools/conv_fixed_point.py

At plain Glorot (gains 1) the two conv layers feed each other strongly through
the symmetric weights and 80 sweeps are still far from the fixed point; with
gains 0.5 above the first layer it is reached in about 15 (docs/results.md).
"""

import os

import numpy as np

from eqprop import Conv2d, EqPropNetwork
from eqprop.datasets import load_dataset

data = load_dataset("mnist", data_dir=os.path.join(os.environ["EQPROP_DATA"], "mnist"))
x = data.x_train[:100]
for gains in ((1.0, 1.0, 1.0), (1.0, 0.5, 0.5), (0.7, 0.7, 0.7), (0.5, 0.5, 0.5)):
    net = EqPropNetwork([(1, 28, 28), Conv2d(32, 5, pool="max"), Conv2d(64, 5, pool="max"), 10],
                        dtype="float64", seed=0, init_gains=gains)
    reference = net.relax(x, steps=300, epsilon=0.5, solver="alternating", threads=1)
    cells = []
    for sweeps in (5, 10, 15, 20, 40, 80):
        state = net.relax(x, steps=sweeps, epsilon=0.5, solver="alternating", threads=1)
        cells.append(f"{sweeps}: " + "/".join(f"{np.abs(a - b).max():.3f}" for a, b in zip(state, reference)))
    print(f"gains {gains}: " + ", ".join(cells))
    print("    at 1: " + "/".join(f"{(r == 1).mean():.2f}" for r in reference)
          + "; at 0: " + "/".join(f"{(r == 0).mean():.2f}" for r in reference))
