"""How saturated a mnist-2h network is after its first 2,000 training examples.

Usage: ``python tools/saturation_check.py euler|alternating [--data-dir DIR]``.
Trains 784-500-500-10 for one pass over 2,000 MNIST images with the paper's
learning rates (Euler: 150 / 6 steps, beta 2; alternating: 20 / 4 sweeps, beta
0.5; both with a random sign of beta), then relaxes 500 validation images from
zeros with each solver and prints, per layer, the fraction of units at 1 and
strictly inside (0, 1).
"""

from __future__ import annotations

import argparse

import eqprop
from eqprop.datasets import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("solver", choices=["euler", "alternating"])
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    data = load_dataset("mnist", data_dir=args.data_dir)
    net = eqprop.EqPropNetwork([784, 500, 500, 10], seed=0)
    if args.solver == "euler":
        phases = dict(beta=2.0, free_steps=150, nudged_steps=6)
    else:
        phases = dict(beta=0.5, free_steps=20, nudged_steps=4)
    trainer = eqprop.Trainer(net, random_sign=True, epsilon=0.5, learning_rates=[0.8, 0.2, 0.02],
                             batch_size=20, seed=0, threads=1, solver=args.solver, **phases)
    trainer.fit(data.x_train[:2000], data.y_train[:2000], epochs=1, progress=False)
    for solver, steps in (("euler", 150), ("alternating", 20)):
        state = net.relax(data.x_val[:500], steps=steps, epsilon=0.5, solver=solver)
        fractions = [f"{(s >= 1).mean():.2f} / {((s > 0) & (s < 1)).mean():.2f}" for s in state]
        print(f"trained with {args.solver}, relaxed with {solver}: at 1 / inside (0, 1) per layer: {fractions}")


if __name__ == "__main__":
    main()
