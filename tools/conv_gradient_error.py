"""How far are the conv preset's EP gradients from float64's, with the direct and the Winograd convolution?

Usage: ``python tools/conv_gradient_error.py [--preset mnist-conv] [--batch 100] [--batches 5] [--warmup 2000]``.

The preset's network (seed 0) is trained on ``--warmup`` MNIST images first, so
that its states are those of a network that has learnt something (clipped zeros,
max-pool near-ties). Then, on ``--batch`` validation images, the centered EP
estimate with the preset's solver and step counts is computed for each beta in
float64 with the direct convolution (the yardstick), and in float64 with
Winograd's, float32 with each, and bfloat16 (``eqcore.set_gemm_path(conv=...)``).
Printed: the relative error ||g - g64|| / ||g64|| over all weights and biases, its
median and its largest value over ``--batches`` disjoint batches. A rounding
difference that moves one max-pool winner of one example between the two nudged
states shows as an outlier: the contrast divides it by beta.
EP divides the difference of two fixed points by beta, so the relaxation's
rounding is amplified by 1 / beta; Winograd's transforms round more than the
direct sums (about 5x in float32 for F(4x4, 5x5), docs/performance.md).
"""

from __future__ import annotations

import argparse

import numpy as np

import eqcore
import eqprop
from eqprop.datasets import load_dataset
from eqprop.presets import PRESETS

BETAS = (0.5, 0.2, 0.1, 0.05, 0.02, 0.01)
# (name, dtype, precision, bottom-up convolution)
VARIANTS = (("float64 winograd", "float64", "float32", "winograd"), ("float32 direct", "float32", "float32", "direct"),
            ("float32 winograd", "float32", "float32", "winograd"), ("bfloat16", "float32", "bfloat16", "auto"))


def flat(gradients) -> np.ndarray:
    return np.concatenate([np.ravel(g).astype(np.float64) for group in gradients for g in group])


def gradients(net: eqprop.EqPropNetwork, conv: str, x: np.ndarray, d: np.ndarray, settings: dict) -> np.ndarray:
    eqcore.set_gemm_path("skinny", "best", conv=conv)
    try:
        return flat(net.ep_gradients(x.astype(net.dtype), d.astype(net.dtype), **settings))
    finally:
        eqcore.set_gemm_path("skinny", "best")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mnist-conv", choices=["mnist-conv", "fashion-conv"])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--batches", type=int, default=5, help="disjoint validation batches")
    parser.add_argument("--warmup", type=int, default=2000, help="training images before measuring")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    data = load_dataset(preset.dataset)
    trained = eqprop.EqPropNetwork(preset.sizes, seed=0, init_gains=preset.init_gains, threads=args.threads)
    eqprop.Trainer(trained, **preset.trainer_kwargs(), seed=0, threads=args.threads).fit(
        data.x_train[:args.warmup], data.y_train[:args.warmup], epochs=1, progress=False)
    nets = {}
    for name, dtype, precision, _ in (("float64 direct", "float64", "float32", "direct"), *VARIANTS):
        nets[name] = eqprop.EqPropNetwork(preset.sizes, dtype=dtype, precision=precision, threads=args.threads)
        nets[name].set_params(trained.weights, trained.biases)
    kwargs = preset.trainer_kwargs()
    steps = dict(free_steps=kwargs["free_steps"], nudged_steps=kwargs["nudged_steps"], epsilon=kwargs["epsilon"],
                 solver=kwargs["solver"], algorithm="centered")
    print(f"{args.preset}, {args.batches} batches of {args.batch} validation images, after {args.warmup} training "
          f"images; {steps}; median (largest) relative error against float64 with the direct convolution")
    print("| beta | " + " | ".join(name for name, *_ in VARIANTS) + " |")
    print("|---|" + "---|" * len(VARIANTS))
    for beta in BETAS:
        settings = dict(beta=beta, **steps)
        errors = np.zeros((args.batches, len(VARIANTS)))
        for b in range(args.batches):
            rows = slice(b * args.batch, (b + 1) * args.batch)
            x = data.x_val[rows]
            d = np.eye(preset.sizes[-1], dtype=np.float64)[data.y_val[rows]]
            g64 = gradients(nets["float64 direct"], "direct", x, d, settings)
            errors[b] = [np.linalg.norm(gradients(nets[name], conv, x, d, settings) - g64) / np.linalg.norm(g64)
                         for name, _, _, conv in VARIANTS]
        cells = [f"{np.median(errors[:, v]):.2e} ({errors[:, v].max():.2e})" for v in range(len(VARIANTS))]
        print(f"| {beta:g} | " + " | ".join(cells) + " |", flush=True)

if __name__ == "__main__":
    main()
