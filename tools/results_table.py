"""Summarise eqprop run directories as the Markdown tables of docs/results.md.

Usage: ``python tools/results_table.py [--reach 0.035,0.03] RUN_DIR [RUN_DIR ...]``.
Each RUN_DIR is one written by ``eqprop train`` (config.json, metrics.csv,
summary.json). ``--reach`` prints instead, for each run, the median epoch time
and the first epoch whose validation error is at or below each threshold, with
the wall time (training plus validation) summed up to the end of that epoch.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
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
    from eqprop.layers import format_layers, layers_from_json

    layers = format_layers(layers_from_json(config["layers"]))
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


def reach_table(runs: list[tuple[Path, dict, list[dict], dict | None]], thresholds: list[float]) -> str:
    header = " | ".join(f"validation error <= {100 * t:g}%" for t in thresholds)
    lines = [
        f"| run | per epoch (median) | {header} | final test error |",
        "|---|---|" + "---|" * len(thresholds) + "---|",
    ]
    for directory, config, rows, summary in runs:
        cells = []
        for threshold in thresholds:
            elapsed, cell = 0.0, f"not within {len(rows)} epochs"
            for r in rows:
                elapsed += float(r["wall_time"])
                if r["val_error"] not in (None, "") and float(r["val_error"]) <= threshold:
                    cell = f"epoch {r['epoch']}, {elapsed:,.0f} s"
                    break
            cells.append(cell)
        median = statistics.median(float(r["wall_time"]) for r in rows)
        test = percent(summary["test_error"]) if summary else "-"
        lines.append(f"| `{directory.name}` | {median:.1f} s | {' | '.join(cells)} | {test} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--reach", type=lambda text: [float(v) for v in text.split(",")], default=None,
                        help="validation-error thresholds, e.g. 0.035,0.03,0.025")
    args = parser.parse_args(argv)
    runs = [(directory, *load_run(directory)) for directory in args.runs]
    if args.reach:
        print(reach_table(runs, args.reach))
        return 0
    print(summary_table(runs))
    for directory, config, rows, _ in runs:
        print()
        print(epoch_table(directory, config, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
