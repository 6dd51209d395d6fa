"""Dead output units of ``mnist-2h``: does a remedy keep every output unit alive?

Usage::

    python tools/dead_output_study.py --variant paper --seeds 0 1 2 3 4 --epochs 4 \
        --out docs/data/dead-output/paper.jsonl

Trains the ``mnist-2h`` preset (or a variant of it, below) and after every epoch
relaxes the validation images from zeros with the preset's evaluation steps, then
records one JSON line per (variant, seed, epoch): the validation error, the output
units that are *dead* (state exactly 0 for every validation image), and for each
output unit the largest net input it receives over those images. A clipped output
unit whose net input h stays below -beta for every image of its class gets no EP
signal: its nudged state clip(h + beta (d - y)) is 0, like its free state, so the
contrast of its weights is zero (``beta`` in this library's C = 1/2 ||y - d||^2).

``python tools/dead_output_study.py --table FILE [FILE ...]`` prints the Markdown
table of docs/results.md from those JSON lines.

Variants (each changes one setting of the preset):

* ``paper``: the preset itself (Euler, beta 2 with a random sign, clipped output).
* ``linear-output``: ``output="linear"``: the output is not clipped (as in the DHN models).
* ``centered``: ``algorithm="centered"``: symmetric nudging (+beta and -beta).
* ``beta-4``: beta 4 instead of 2 (random sign kept).
* ``positive``: beta +2 every mini-batch (no random sign).
* ``output-bias``: the output biases start at 0.5 instead of 0, so every output
  unit starts inside (0, 1).
* ``cross-entropy``: the softmax readout (``cost="cross-entropy"``) replaces the
  clipped output (its probabilities are never exactly 0, so no unit is "dead"; the
  validation error says whether every class is learnt).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import eqprop
from eqprop.datasets import load_dataset
from eqprop.presets import PRESETS

VARIANTS = ("paper", "linear-output", "centered", "beta-4", "positive", "output-bias", "cross-entropy")


def build(variant: str, seed: int, threads: int) -> tuple[eqprop.EqPropNetwork, eqprop.Trainer]:
    preset = PRESETS["mnist-2h"]
    network_kwargs: dict = {"seed": seed, "threads": threads}
    trainer_kwargs = preset.trainer_kwargs()
    if variant == "linear-output":
        network_kwargs["output"] = "linear"
    elif variant == "cross-entropy":
        network_kwargs["cost"] = "cross-entropy"
    elif variant == "centered":
        trainer_kwargs.update(algorithm="centered", symmetric=True, random_sign=False)
    elif variant == "beta-4":
        trainer_kwargs["beta"] = 4.0
    elif variant == "positive":
        trainer_kwargs.update(algorithm="positive", random_sign=False)
    net = eqprop.EqPropNetwork(preset.sizes, **network_kwargs)
    if variant == "output-bias":
        net.biases[-1][:] = 0.5
    return net, eqprop.Trainer(net, **trainer_kwargs, seed=seed)


def output_report(net: eqprop.EqPropNetwork, trainer: eqprop.Trainer, x: np.ndarray, labels: np.ndarray,
                  threads: int) -> dict:
    state = net.relax(x, steps=trainer.eval_steps, epsilon=trainer.epsilon, solver=trainer.solver,
                      threads=threads)
    output = state[-1]
    predicted = output.argmax(axis=1)
    below = state[-2]
    net_input = below @ net.weights[-1] + net.biases[-1]
    particles = trainer.particles[-1] if trainer.particles is not None else None
    return {
        "val_error": float(np.mean(predicted != labels)),
        "dead_units": [int(c) for c in range(output.shape[1]) if np.all(output[:, c] == 0)],
        # the same test on the training particles (the free states training used): a unit dead
        # there gets no EP signal at all; one dead only from zeros has another fixed point
        "dead_units_particles": None if particles is None else
        [int(c) for c in range(particles.shape[1]) if np.all(particles[:, c] == 0)],
        "active_top_hidden": round(float(np.mean(below > 0)), 4),
        "max_net_input": [round(float(v), 4) for v in net_input.max(axis=0)],
        "max_net_input_own_class": [round(float(net_input[labels == c, c].max()), 4)
                                    for c in range(output.shape[1])],
    }


def table(paths: list[Path]) -> str:
    """Per variant and seed: validation error after each epoch, dead units at the end."""
    records = [json.loads(line) for path in paths for line in path.read_text().splitlines() if line]
    lines = ["| variant | seed | validation error, epochs 1, 2, ... | dead output units at the end "
             "(from zeros / on the particles) | largest own-class net input of a dead unit |",
             "|---|---|---|---|---|"]
    keys = sorted({(r["variant"], r["seed"]) for r in records}, key=lambda k: (VARIANTS.index(k[0]), k[1]))
    for variant, seed in keys:
        mine = sorted((r for r in records if (r["variant"], r["seed"]) == (variant, seed)), key=lambda r: r["epoch"])
        last = mine[-1]
        errors = ", ".join(f"{100 * r['val_error']:.1f}%" for r in mine)
        dead = last["dead_units"]
        on_particles = last["dead_units_particles"]
        worst = max((last["max_net_input_own_class"][c] for c in dead), default=None)
        lines.append(f"| {variant} | {seed} | {errors} | {dead or '-'} / {on_particles or '-'} | "
                     f"{'-' if worst is None else f'{worst:.2f}'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, nargs="+", metavar="FILE", help="print the table of these results")
    parser.add_argument("--variant", choices=VARIANTS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-size", type=int, default=None, help="first N training images (smoke tests)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.table:
        print(table(args.table))
        return
    if args.variant is None or args.out is None:
        parser.error("--variant and --out are needed to train (or give --table FILE ...)")
    data = load_dataset("mnist")
    x_train, y_train = data.x_train[:args.train_size], data.y_train[:args.train_size]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        net, trainer = build(args.variant, seed, args.threads)
        for epoch in range(1, args.epochs + 1):
            start = time.perf_counter()
            trainer.fit(x_train, y_train, epochs=1, progress=False)
            seconds = time.perf_counter() - start
            record = {"variant": args.variant, "seed": seed, "epoch": epoch, "train_seconds": round(seconds, 1),
                      "train_error": trainer.history[-1].train_error,
                      **output_report(net, trainer, data.x_val, data.y_val, args.threads)}
            with open(args.out, "a") as handle:
                handle.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
