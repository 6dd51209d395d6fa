"""How sparse a trained conv network's states are: what a zero-skipping product could skip.

Usage: ``python tools/state_density.py [--preset mnist-conv] [--train 6000] [--examples 200]``.
Trains the preset's network for one epoch on the first ``--train`` training images, relaxes
the next ``--examples`` images with the preset's free phase, and prints per layer the
fraction of units at exactly 0 and at exactly 1 (rho = clip(s, 0, 1) is then 0 or 1),
and for the first layer the fraction of 8-value row segments of a channel that are all
zero (what a block-sparse direct convolution could skip).
"""

from __future__ import annotations

import argparse

import numpy as np

import eqprop
from eqprop.datasets import load_dataset
from eqprop.presets import PRESETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mnist-conv", choices=["mnist-conv", "fashion-conv"])
    parser.add_argument("--train", type=int, default=6000, help="training images of the warm-up epoch")
    parser.add_argument("--examples", type=int, default=200, help="images whose free states are counted")
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    data = load_dataset(preset.dataset)
    net = eqprop.EqPropNetwork(preset.sizes, init_gains=preset.init_gains, seed=0)
    eqprop.Trainer(net, **preset.trainer_kwargs(), seed=0).fit(
        data.x_train[:args.train], data.y_train[:args.train], epochs=1, progress=False)
    x = data.x_train[args.train:args.train + args.examples]
    states = net.relax(x, steps=preset.free_steps, epsilon=0.5, solver=preset.solver)
    print(f"{args.preset}, one epoch on {args.train} images, free states of the next {len(x)}:")
    print("| layer | shape | exactly 0 | exactly 1 |")
    print("|---|---|---|---|")
    for j, state in enumerate(states):
        state = np.asarray(state)
        print(f"| {j + 1} | {state.shape[1:]} | {np.mean(state == 0):.1%} | {np.mean(state == 1):.1%} |")
    first = np.asarray(states[0])
    if first.ndim == 4 and first.shape[-1] >= 8:
        print(f"first layer, 8-value row segments all zero: {np.mean(np.all(first[..., :8] == 0, axis=-1)):.1%}")


if __name__ == "__main__":
    main()
