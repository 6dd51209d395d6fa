"""Test error and time of a trained run's network under both relaxation solvers.

Usage: ``python tools/solver_inference.py RUN_DIR [--threads N] [--data-dir DIR]``.
The network of RUN_DIR (written by ``eqprop train``) classifies the test set
from zeros with the paper's Euler dynamics (the run's evaluation steps) and with
the alternating solver at a few sweep counts: the same fixed points, reached
with fewer sweeps.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from eqprop import Trainer
from eqprop.datasets import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    trainer = Trainer.resume(args.run_dir, threads=args.threads)
    run_config = json.loads((Path(args.run_dir) / "config.json").read_text())
    data = load_dataset(run_config["dataset"], data_dir=args.data_dir or run_config.get("data_dir"))
    settings = [("euler", trainer.eval_steps)] + [("alternating", n) for n in (5, 10, 20, 40)]
    print("| solver | steps or sweeps | test error | seconds for 10,000 images |")
    print("|---|---|---|---|")
    for solver, steps in settings:
        trainer.solver, trainer.eval_steps = solver, steps
        started = time.perf_counter()
        result = trainer.evaluate(data.x_test, data.y_test)
        seconds = time.perf_counter() - started
        print(f"| {solver} | {steps} | {100 * result.error:.2f}% | {seconds:.2f} |")


if __name__ == "__main__":
    main()
