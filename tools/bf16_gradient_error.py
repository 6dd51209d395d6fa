"""How far is the bfloat16 EP gradient from the float64 one, as a function of beta?

Usage: ``python tools/bf16_gradient_error.py [--layers 784-500-10] [--batch 100] [--threads 1]``.

One MNIST mini-batch, one network (seed 0, the Glorot initialisation, trained for
``--warmup`` images first so its states are those of a network that has learnt
something), the same parameters in float64, float32 and float32 with
``precision="bfloat16"``. For each beta, the EP estimate (centered and positive,
the alternating solver run to its fixed point) is computed in each precision and
compared with the float64 estimate of the same beta: the relative error
||g - g64|| / ||g64|| over all weights and biases. EP divides the difference of
two fixed points by beta, so the relaxation's rounding is amplified by 1 / beta.
"""

from __future__ import annotations

import argparse

import numpy as np

import eqprop
from eqprop.datasets import load_dataset

BETAS = (0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.001)


def flat(gradients) -> np.ndarray:
    return np.concatenate([np.ravel(g).astype(np.float64) for group in gradients for g in group])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="784-500-10")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5000, help="training images before measuring")
    parser.add_argument("--steps", type=int, default=40, help="free and nudged sweeps (alternating solver)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    sizes = [int(n) for n in args.layers.split("-")]
    data = load_dataset("mnist")
    net32 = eqprop.EqPropNetwork(sizes, seed=0, threads=args.threads)
    trainer = eqprop.Trainer(net32, beta=0.5, free_steps=args.steps, nudged_steps=args.steps, epsilon=0.5,
                             learning_rates=[0.1] * (len(sizes) - 1), solver="alternating",
                             algorithm="positive", persistent=False, batch_size=20, seed=0,
                             threads=args.threads)
    trainer.fit(data.x_train[:args.warmup], data.y_train[:args.warmup], epochs=1, progress=False)
    nets = {"float32": net32}
    for name, kwargs in (("float64", {"dtype": "float64"}), ("bfloat16", {"precision": "bfloat16"})):
        nets[name] = eqprop.EqPropNetwork(sizes, threads=args.threads, **kwargs)
        nets[name].set_params(net32.weights, net32.biases)
    x = data.x_val[:args.batch]
    d = np.eye(sizes[-1], dtype=np.float32)[data.y_val[:args.batch]]
    print(f"{args.layers}, {args.batch} validation images, after {args.warmup} training images; "
          f"alternating solver, {args.steps} free and nudged sweeps")
    print("| algorithm | beta | float32 vs float64 | bfloat16 vs float64 |")
    print("|---|---|---|---|")
    for algorithm in ("centered", "positive"):
        for beta in BETAS:
            settings = dict(beta=beta, free_steps=args.steps, nudged_steps=args.steps, epsilon=0.5,
                            solver="alternating", algorithm=algorithm)
            g64 = flat(nets["float64"].ep_gradients(x.astype(np.float64), d.astype(np.float64), **settings))
            errors = []
            for name in ("float32", "bfloat16"):
                g = flat(nets[name].ep_gradients(x, d, **settings))
                errors.append(np.linalg.norm(g - g64) / np.linalg.norm(g64))
            print(f"| {algorithm} | {beta:g} | {errors[0]:.2e} | {errors[1]:.2e} |", flush=True)


if __name__ == "__main__":
    main()
