"""How many state entries change at each relaxation step of a trained network.

Usage: ``python tools/state_changes.py RUN [--checkpoint best|last] [--examples 400]
[--steps 150] [--nudged-steps 6] [--beta 1] [--epsilon 0.5] [--solver euler|alternating]``.

Relaxes the first ``--examples`` training images of the run's dataset from zero one
step at a time (each call continues from the last state, so the steps are those
of one long relaxation), then nudges from the free fixed point, and prints, for some
steps, the fraction of each layer's entries that differ from the previous step (with
the largest change, in parentheses) and the fraction at 0 and at 1. The event-driven
relaxation (``eqcore.set_delta_threshold``) sends only the changed entries through the
weights, so these fractions say what it saves on a given network (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from eqprop.checkpoint import load_checkpoint
from eqprop.datasets import load_dataset


def changed(now: list[np.ndarray], before: list[np.ndarray]) -> str:
    return " ".join(f"{float(np.mean(a != b)):.3f} ({float(np.max(np.abs(a - b))):.1e})"
                    for a, b in zip(now, before))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run directory of eqprop train")
    parser.add_argument("--checkpoint", choices=["best", "last"], default="last")
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--nudged-steps", type=int, default=6)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--epsilon", type=float, default=0.5)
    parser.add_argument("--solver", choices=["euler", "alternating"], default="euler")
    args = parser.parse_args()
    location = args.run / "best" if args.checkpoint == "best" else args.run
    checkpoint = load_checkpoint(location)
    net = checkpoint.build_network()
    data = load_dataset(json.loads((args.run / "config.json").read_text())["dataset"], quiet=True)
    x = data.x_train[:args.examples]
    target = np.eye(net.sizes[-1], dtype=net.dtype)[data.y_train[:args.examples]]
    print(f"{net.architecture}, {args.examples} training images; per layer: fraction of entries changed since "
          "the previous step")
    state = net.relax(x, steps=1, epsilon=args.epsilon, solver=args.solver)
    shown = {1, 2, 3, 5, 10, 15, 20, 40, 80, 160, 320, 640, args.steps}
    fractions = []
    for step in range(2, args.steps + 1):
        new = net.relax(x, steps=1, epsilon=args.epsilon, solver=args.solver, init=state)
        fractions.append([float(np.mean(a != b)) for a, b in zip(new, state)])
        if step in shown:
            print(f"free step {step:4d}: {changed(new, state)}")
        state = new
    print(f"mean over free steps 2-{args.steps}: " + " ".join(f"{v:.3f}" for v in np.mean(fractions, axis=0)))
    print("at the free fixed point: at 0 " + " ".join(f"{float(np.mean(s == 0)):.3f}" for s in state)
          + ", at 1 " + " ".join(f"{float(np.mean(s == 1)):.3f}" for s in state))
    for step in range(1, args.nudged_steps + 1):
        new = net.relax(x, steps=1, epsilon=args.epsilon, beta=args.beta, target=target, init=state,
                        solver=args.solver)
        print(f"nudged step {step:2d}: {changed(new, state)}")
        state = new


if __name__ == "__main__":
    main()
