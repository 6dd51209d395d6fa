"""How sparse a dataset's inputs are: what the core's sparse input products can skip.

Usage: ``python tools/input_density.py [mnist fashion-mnist ...] [--examples 5000]``.
Prints, for the first training images, the fraction of non-zero pixels per image
(what the update of W_0 visits) and the fraction of pixels that are non-zero in
at least one image of a group of 2, 4, 10 or 20 consecutive images (what the
drive x W_0 visits for a group of rows that one thread computes together).
"""

from __future__ import annotations

import argparse

import numpy as np

from eqprop.datasets import load_dataset


def union_density(x: np.ndarray, group: int) -> float:
    """Mean fraction of columns non-zero in some row of each group of ``group`` rows."""
    n = (x.shape[0] // group) * group
    grouped = (x[:n] != 0).reshape(-1, group, x.shape[1])
    return float(grouped.any(axis=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", default=["mnist", "fashion-mnist"])
    parser.add_argument("--examples", type=int, default=5000)
    args = parser.parse_args()
    print("| dataset | non-zero pixels per image | union over 2 | over 4 | over 10 | over 20 |")
    print("|---|---|---|---|---|---|")
    for name in args.datasets:
        x = load_dataset(name).x_train[: args.examples]
        unions = " | ".join(f"{union_density(x, g):.1%}" for g in (2, 4, 10, 20))
        print(f"| {name} | {(x != 0).mean():.1%} | {unions} |")


if __name__ == "__main__":
    main()
