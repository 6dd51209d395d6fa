"""Where one training step of the conv preset spends its time: free phase, one nudged phase, update.

Usage: ``python tools/profile_conv_step.py [--preset mnist-conv] [--precision float32|bfloat16]
[--train 4000] [--batch 20]``. Trains the preset's network for one epoch on the first
``--train`` MNIST training images (so that the states are as sparse as a training run's:
the update skips zeros), then times (wall clock, median of 30 calls, microseconds per
mini-batch) the preset's free phase, one of its nudged phases and the update
(``StepEngine.accumulate``, which allocates its scratch per call, as the public
``train_step`` does; the Trainer's compiled loop allocates it once) with 1 and 2 threads.
Run it on a quiet machine.
"""

from __future__ import annotations

import argparse

import numpy as np

import eqprop
from eqprop._threads import single_threaded_blas
from eqprop.datasets import load_dataset
from eqprop.presets import PRESETS

from _timing import median_microseconds  # tools/_timing.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mnist-conv", choices=["mnist-conv", "fashion-conv"])
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--train", type=int, default=4000, help="training images of the warm-up epoch")
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    data = load_dataset(preset.dataset)
    net = eqprop.EqPropNetwork(preset.sizes, init_gains=preset.init_gains, precision=args.precision, seed=0)
    eqprop.Trainer(net, **preset.trainer_kwargs(), seed=0).fit(
        data.x_train[:args.train], data.y_train[:args.train], epochs=1)
    rows = slice(args.train, args.train + args.batch)
    x = np.ascontiguousarray(data.x_train[rows])
    target = np.eye(10, dtype=np.float32)[data.y_train[rows]]
    relax = dict(epsilon=0.5, solver=preset.solver)
    free_state = [np.ascontiguousarray(s.reshape(args.batch, -1))
                  for s in net.relax(x, steps=preset.free_steps, **relax)]
    engine = net.step_engine(args.batch)
    tiny_rates = np.full(len(net.weights), 1e-12)  # the weights barely move while we time
    print(f"{args.preset}, {args.precision}, batch {args.batch}, after one epoch on {args.train} images; "
          "microseconds per mini-batch (median of 30):")
    print("| threads | free phase | one nudged phase | update |")
    print("|---|---|---|---|")
    for threads in (1, 2):
        with single_threaded_blas():
            free = median_microseconds(lambda: engine.free_phase(
                x, [s.copy() for s in free_state], steps=preset.free_steps, threads=threads, **relax), 30)
            nudge = dict(beta=preset.beta, steps=preset.nudged_steps, threads=threads, **relax)
            positive = engine.nudged(x, free_state, target, **nudge)
            negative = engine.nudged(x, free_state, target, **{**nudge, "beta": -preset.beta})
            nudged = median_microseconds(lambda: engine.nudged(x, free_state, target, **nudge), 30)
            update = median_microseconds(lambda: engine.accumulate(x, positive, negative, tiny_rates, threads), 30)
        print(f"| {threads} | {free:,.0f} | {nudged:,.0f} | {update:,.0f} |")


if __name__ == "__main__":
    main()
