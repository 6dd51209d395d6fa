"""Whether two builds of eqcore relax a network to bitwise the same states.

Usage::

    PYTHONPATH=/path/to/build_a/python:/path/to/build_a/src python tools/build_diff.py save a.npz
    PYTHONPATH=/path/to/build_b/python:/path/to/build_b/src python tools/build_diff.py save b.npz
    python tools/build_diff.py compare a.npz b.npz

``save`` relaxes a fixed 784-500-500-10 network (seed 0) on 40 sparse inputs,
free (20 steps) then nudged (5 steps), with both solvers, in float32 and
float64, on 2 threads, and stores every state; ``compare`` prints, per state,
"identical" or the largest absolute difference.
"""

from __future__ import annotations

import sys

import numpy as np


def save(path: str) -> None:
    import eqprop

    rng = np.random.default_rng(0)
    states = {}
    for dtype in ("float32", "float64"):
        net = eqprop.EqPropNetwork([784, 500, 500, 10], dtype=dtype, seed=0)
        x = rng.random((40, 784)).astype(dtype)
        x[x < 0.6] = 0
        target = np.eye(10, dtype=dtype)[rng.integers(0, 10, 40)]
        for solver in ("euler", "alternating"):
            free = net.relax(x, steps=20, epsilon=0.5, solver=solver, threads=2)
            nudged = net.relax(x, steps=5, epsilon=0.5, beta=0.5, target=target, init=free, solver=solver,
                               threads=2)
            for phase, state in (("free", free), ("nudged", nudged)):
                for layer, values in enumerate(state, start=1):
                    states[f"{dtype} {solver} {phase} layer {layer}"] = values
    np.savez(path, **states)


def compare(first: str, second: str) -> None:
    a, b = np.load(first), np.load(second)
    for key in a.files:
        difference = np.abs(a[key].astype(np.float64) - b[key]).max()
        print(f"{key}: {'identical' if difference == 0 else f'largest difference {difference:.3g}'}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "save":
        save(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)
