"""Learning curves of a run directory, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

METRICS_NAME = "metrics.csv"
PLOT_NAME = "learning_curves.png"


COLUMNS = ("epoch", "train_error", "val_error", "mean_cost")


def read_metrics(path: str | os.PathLike, *, allow_empty: bool = False) -> dict[str, list[float]]:
    """Columns of a ``metrics.csv`` as lists of floats (an empty cell becomes NaN).

    Parameters
    ----------
    path : path
        The file.
    allow_empty : bool, default False
        Return empty columns for a file with a header but no epochs, instead of
        raising.

    Raises
    ------
    ValueError
        The file is not text, lacks a column, or holds a row that is not numbers;
        the message names the file and the line.
    """
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is damaged: not UTF-8 text") from exc
    except csv.Error as exc:
        raise ValueError(f"{path} is damaged: {exc}") from exc
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        raise ValueError(f"{path} is not an eqprop metrics file: no column {', '.join(missing)}")
    if not rows and not allow_empty:
        raise ValueError(f"{path} holds no epochs yet")
    columns: dict[str, list[float]] = {name: [] for name in header}
    for line, row in enumerate(rows, start=2):
        for name in header:
            cell = row.get(name)
            if cell is None or isinstance(cell, list):
                raise ValueError(f"{path}, line {line}: expected {len(header)} cells")
            try:
                value = float(cell) if cell != "" else math.nan
            except ValueError:
                raise ValueError(f"{path}, line {line}: {name} is {cell!r}, not a number") from None
            columns[name].append(value)
        if None in row:  # more cells than the header
            raise ValueError(f"{path}, line {line}: expected {len(header)} cells")
    return columns


def plot_learning_curves(run_dir: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    """Draw training/validation error and mean cost per epoch from ``run_dir/metrics.csv``.

    Parameters
    ----------
    run_dir : path
        A run directory written by ``eqprop train``.
    output : path, optional
        Where to write the PNG; default ``run_dir/learning_curves.png``.

    Returns
    -------
    Path
        The PNG written.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    metrics = read_metrics(run_dir / METRICS_NAME)
    output = Path(output) if output is not None else run_dir / PLOT_NAME
    epochs = metrics["epoch"]
    figure, (errors, costs) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    errors.plot(epochs, [100 * e for e in metrics["train_error"]], marker="o", markersize=3,
                label="training (free phase during the epoch)")
    if not all(math.isnan(e) for e in metrics["val_error"]):
        errors.plot(epochs, [100 * e for e in metrics["val_error"]], marker="o", markersize=3, label="validation")
    errors.set_xlabel("epoch")
    errors.set_ylabel("error (%)")
    errors.set_yscale("log")
    errors.grid(True, which="both", alpha=0.3)
    errors.legend()
    costs.plot(epochs, metrics["mean_cost"], marker="o", markersize=3, color="tab:green")
    costs.set_xlabel("epoch")
    costs.set_ylabel("mean cost C (training; config.json: cost)")
    costs.set_yscale("log")
    costs.grid(True, which="both", alpha=0.3)
    figure.suptitle(f"eqprop: {run_dir.name}")
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=120)
    plt.close(figure)
    return output
