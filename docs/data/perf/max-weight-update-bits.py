"""Bits of a small max-pooled conv network after one epoch, per instruction set (docs/data/perf/ninth-session-zen4.txt, part 14).

Usage: python max-weight-update-bits.py OUT.npz ISA; compare the arrays of two builds with np.array_equal.
"""
import sys, numpy as np, eqcore, eqprop
from eqprop.datasets import load_dataset
out, isa = sys.argv[1], sys.argv[2]
eqcore.set_gemm_path("skinny", isa)
d = load_dataset("mnist")
x, y = d.x_train[:300], d.y_train[:300]
arrays = {}
for dtype in ("float32", "float64"):
    for threads in (1, 2):
        net = eqprop.EqPropNetwork([(1, 28, 28), eqprop.Conv2d(8, 5, pool="max"), eqprop.Conv2d(16, 5, padding=1, pool="max"), 10],
                                   dtype=dtype, seed=0)
        tr = eqprop.Trainer(net, beta=0.5, epsilon=0.5, free_steps=8, nudged_steps=3, learning_rates=[0.1, 0.05, 0.02], batch_size=20,
                            seed=1, threads=threads, algorithm="centered")
        tr.fit(x, y, epochs=1, progress=False)
        for j, (w, b) in enumerate(zip(net.weights, net.biases)):
            arrays[f"{dtype}-{threads}-w{j}"] = w; arrays[f"{dtype}-{threads}-b{j}"] = b
np.savez(out, **arrays)
