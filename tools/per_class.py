"""Per-class errors of a run's network: finds output units stuck at 0 (a plateau's usual cause).

Usage: ``python tools/per_class.py RUN_DIR [--split val|test] [--threads N]``.
Loads RUN_DIR's latest checkpoint (written after every epoch, so it works on a
run still going), relaxes the split's images from zeros with the run's
evaluation steps and solver, and prints for each class its error, how often it
is predicted and for what fraction of all images its output unit sits exactly
at 0. A class that is never predicted, whose unit is 0 for every image, is a
"dead" output: with rho = clip(., 0, 1) its state gets no gradient while its
net input stays below 0, and the error plateaus near 10% per dead class.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import eqprop
from eqprop.checkpoint import load_checkpoint
from eqprop.datasets import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, metavar="RUN_DIR")
    parser.add_argument("--split", choices=["val", "test"], default="val")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    config = json.loads((args.run / "config.json").read_text())
    checkpoint = load_checkpoint(args.run)
    stored = checkpoint.meta["network"]
    net = eqprop.EqPropNetwork(stored["sizes"], dtype=config["dtype"], output=stored.get("output", "clipped"),
                               precision=stored.get("precision", "float32"))
    net.set_params(checkpoint.weights, checkpoint.biases)
    data = load_dataset(config["dataset"])
    x, labels = (data.x_val, data.y_val) if args.split == "val" else (data.x_test, data.y_test)
    state = net.relax(x, steps=config["eval_steps"], epsilon=config["epsilon"], solver=config["solver"],
                      threads=args.threads)
    output = state[-1]
    predicted = output.argmax(axis=1)
    print(f"{args.run} after epoch {checkpoint.epoch}: {args.split} error {np.mean(predicted != labels):.2%}")
    print("| class | error | predicted (images) | output unit at 0 (fraction of all images) |")
    print("|---|---|---|---|")
    for c in range(output.shape[1]):
        mine = labels == c
        print(f"| {c} | {np.mean(predicted[mine] != c):.1%} | {np.sum(predicted == c)} | "
              f"{np.mean(output[:, c] == 0):.2f} |")


if __name__ == "__main__":
    main()
