"""Summarise eqprop run directories as the Markdown tables of docs/results.md.

Usage: ``python tools/results_table.py RUN_DIR [RUN_DIR ...]``. Each RUN_DIR is
one written by ``eqprop train`` (config.json, metrics.csv, summary.json).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def load_run(directory: Path) -> tuple[dict, list[dict], dict | None]:
    config = json.loads((directory / "config.json").read_text())
    with open(directory / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    summary_path = directory / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return config, rows, summary


def percent(value: object) -> str:
    return "-" if value in (None, "") else f"{100 * float(value):.2f}%"


def describe(config: dict) -> str:
    layers = "-".join(map(str, config["layers"]))
    flags = [config["solver"], "persistent" if config["persistent"] else "no particles"]
    if config.get("symmetric"):
        flags.append("symmetric")
    return f"{config.get('preset') or config['dataset']} {layers} ({', '.join(flags)})"


def summary_table(runs: list[tuple[Path, dict, list[dict], dict | None]]) -> str:
    lines = [
        "| run | epochs | train error | validation error | test error | training time | threads |",
        "|---|---|---|---|---|---|---|",
        # errors of the final network, each example relaxed from zeros (summary.json);
        # without a summary (a run still going), the last epoch's metrics
    ]
    for directory, config, rows, summary in runs:
        seconds = sum(float(r["wall_time"]) for r in rows)
        last = rows[-1]
        train = summary["train_error"] if summary else last["train_error"]
        val = summary["val_error"] if summary else last["val_error"]
        test = summary["test_error"] if summary else None
        lines.append(
            f"| {describe(config)} (`{directory.name}`) | {last['epoch']} | {percent(train)} "
            f"| {percent(val)} | {percent(test)} | {seconds / 60:.1f} min | {config['threads']} |"
        )
    return "\n".join(lines)


def epoch_table(directory: Path, config: dict, rows: list[dict]) -> str:
    lines = [
        f"{describe(config)}, `{directory.name}`:",
        "",
        "| epoch | train error (free phases during the epoch) | validation error | s/epoch | examples/s |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['epoch']} | {percent(r['train_error'])} | {percent(r['val_error'])} "
            f"| {float(r['wall_time']):.1f} | {float(r['examples_per_second']):,.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    runs = []
    for name in argv:
        directory = Path(name)
        runs.append((directory, *load_run(directory)))
    print(summary_table(runs))
    for directory, config, rows, _ in runs:
        print()
        print(epoch_table(directory, config, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
