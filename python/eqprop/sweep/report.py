"""The end of a sweep: a table of all trials (CSV and Markdown, best first) and a plot.

Files written into the sweep directory:

    summary.csv   one row per trial: rank, trial, status, the varied settings, errors, epochs, time, message
    summary.md    the same as a Markdown table
    sweep.png     validation error against each varied setting (finished trials)
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from eqprop.sweep.spec import SweepSpec, _show

CSV_NAME = "summary.csv"
MARKDOWN_NAME = "summary.md"
PLOT_NAME = "sweep.png"
ERROR_COLUMNS = ("val_error", "test_error", "train_error")


def _flat(key: str, value: Any) -> dict[str, Any]:
    """A varied setting as table columns: lists of numbers become ``lr[0]``, ``lr[1]``, ..."""
    if isinstance(value, list):
        return {f"{key}[{k}]": v for k, v in enumerate(value)}
    return {key: value}


def table_rows(spec: SweepSpec, outcomes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One dict per trial, sorted: finished ones by validation error, then failed, then unfinished."""
    rows = []
    for trial in spec.trials:
        outcome = outcomes.get(trial.id, {"status": "new"})
        row: dict[str, Any] = {"trial": trial.id, "status": outcome["status"]}
        for key in spec.varied:
            row.update(_flat(key, trial.varied.get(key)))
        for column in ERROR_COLUMNS:
            row[column] = outcome.get(column)
        row["epochs"] = outcome.get("epochs")
        row["seconds"] = outcome.get("training_seconds")
        row["attempts"] = outcome.get("attempts", 0)
        row["message"] = outcome.get("message", "")
        rows.append(row)
    order = {"done": 0, "failed": 1}

    def key(row: dict[str, Any]):
        error = row["val_error"]
        return (order.get(row["status"], 2), math.inf if error is None else error, row["trial"])

    rows.sort(key=key)
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank if row["status"] == "done" else ""
    return [{"rank": row.pop("rank"), **row} for row in rows]


def _cell(column: str, value: Any, *, percent: bool) -> str:
    if value is None or value == "":
        return ""
    if column in ERROR_COLUMNS and percent:
        return f"{100 * value:.2f}%"
    if column == "seconds":
        return f"{value:.1f}"
    if isinstance(value, float):
        return repr(value) if not percent else _show(value)
    return str(value)


def write_tables(out: Path, rows: list[dict[str, Any]]) -> tuple[Path, Path]:
    """Write ``summary.csv`` (errors as fractions) and ``summary.md`` (errors in %)."""
    from eqprop.checkpoint import atomic_write_text

    columns = list(rows[0]) if rows else ["rank", "trial", "status"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(c, row.get(c), percent=False) for c in columns])
    csv_path = out / CSV_NAME
    atomic_write_text(csv_path, buffer.getvalue())
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        cells = [_cell(c, row.get(c), percent=True).replace("|", "\\|") for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    md_path = out / MARKDOWN_NAME
    atomic_write_text(md_path, "\n".join(lines) + "\n")
    return csv_path, md_path


def plot_sweep(out: Path, spec: SweepSpec, rows: list[dict[str, Any]]) -> Path | None:
    """Validation error of the finished trials against each varied column; None if none finished."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    done = [row for row in rows if row["status"] == "done" and row["val_error"] is not None]
    if not done:
        return None
    skip = {"rank", "trial", "status", *ERROR_COLUMNS, "epochs", "seconds", "attempts", "message"}
    columns = [c for c in rows[0] if c not in skip][:6] or ["trial"]
    figure, axes = plt.subplots(1, len(columns), figsize=(3.6 * len(columns) + 0.6, 3.4),
                                constrained_layout=True, squeeze=False)
    errors = [100 * row["val_error"] for row in done]
    for axis, column in zip(axes[0], columns):
        values = [row[column] for row in done]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric:
            axis.scatter(values, errors, s=22)
            positive = [v for v in values if v > 0]
            if len(positive) == len(values) and max(values) / min(values) > 20:
                axis.set_xscale("log")
        else:
            labels = sorted({str(v) for v in values})
            axis.scatter([labels.index(str(v)) for v in values], errors, s=22)
            axis.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        axis.set_xlabel(column)
        axis.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("validation error (%)")
    failed = sum(row["status"] == "failed" for row in rows)
    figure.suptitle(f"{spec.name}: {len(done)} finished trials" + (f", {failed} failed (not shown)" if failed else ""))
    path = out / PLOT_NAME
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
