"""One sweep trial: an ``eqprop train`` run in its own run directory, started or resumed.

:func:`run_trial` is what a Dask worker executes. It needs nothing from the
process that submitted it: the run directory on disk says where the trial
stands, so the same call starts a new trial, resumes one from its last
checkpoint (after a killed worker, or a rerun of the sweep), or just reports a
finished one. Besides the run directory of ``eqprop train --out`` (config.json,
metrics.csv, checkpoint.npz, learning_curves.png, summary.json) a trial
directory holds

    attempts.jsonl   one line per start: time, host, process id, epoch it started from
    train.log        what ``eqprop train`` printed (its errors, for a failed trial)
    failed.json      why the trial failed (absent unless it did)
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

ATTEMPTS_NAME = "attempts.jsonl"
LOG_NAME = "train.log"
FAILED_NAME = "failed.json"
SUMMARY_NAME = "summary.json"

DONE, FAILED, STARTED, NEW = "done", "failed", "started", "new"


def trial_state(run_dir: str | os.PathLike) -> str:
    """``"done"`` (summary.json), ``"failed"`` (failed.json), ``"started"`` (a checkpoint) or ``"new"``."""
    from eqprop.checkpoint import has_checkpoint

    run_dir = Path(run_dir)
    if (run_dir / SUMMARY_NAME).is_file():
        return DONE
    if (run_dir / FAILED_NAME).is_file():
        return FAILED
    if run_dir.is_dir() and has_checkpoint(run_dir):
        return STARTED
    return NEW


def read_outcome(run_dir: str | os.PathLike) -> dict[str, Any]:
    """What a trial directory records: its state, errors (when done) or message (when failed)."""
    run_dir = Path(run_dir)
    state = trial_state(run_dir)
    outcome: dict[str, Any] = {"status": state, "attempts": _count_attempts(run_dir)}
    if state == DONE:
        summary = json.loads((run_dir / SUMMARY_NAME).read_text(encoding="utf-8"))
        outcome.update({key: summary.get(key) for key in (
            "val_error", "test_error", "train_error", "epochs", "training_seconds")})
    elif state == FAILED:
        outcome.update(json.loads((run_dir / FAILED_NAME).read_text(encoding="utf-8")))
        outcome["status"] = FAILED
    return outcome


def _count_attempts(run_dir: Path) -> int:
    path = run_dir / ATTEMPTS_NAME
    if not path.is_file():
        return 0
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def _record_attempt(run_dir: Path, start_epoch: int, threads: int) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": socket.gethostname(), "pid": os.getpid(),
             "start_epoch": start_epoch, "threads": threads}
    with open(run_dir / ATTEMPTS_NAME, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_trial(run_dir: str, argv: list[str], threads: int) -> dict[str, Any]:
    """Run (or resume, or just read) the trial in ``run_dir``; returns :func:`read_outcome`.

    Parameters
    ----------
    run_dir : str
        The trial's run directory (absolute, on a filesystem every worker sees).
    argv : list of str
        Its ``eqprop train`` flags, without ``--out``, ``--threads`` and ``--quiet``.
    threads : int
        OpenMP threads of the trial.

    Any error of the training (divergence, a bad setting, an exception) is
    written to ``failed.json`` and reported, never raised: a failed trial does
    not stop the sweep. Only the death of the worker process interrupts it,
    and then the next attempt resumes from the last checkpoint.
    """
    from eqprop.checkpoint import atomic_write_json, load_checkpoint
    from eqprop.cli import main

    path = Path(run_dir)
    state = trial_state(path)
    if state in (DONE, FAILED):
        return read_outcome(path)
    if state == STARTED:
        start_epoch = load_checkpoint(path).epoch
        command = ["train", "--resume", str(path), "--threads", str(threads), "--quiet"]
    else:
        start_epoch = 0
        command = ["train", *argv, "--out", str(path), "--threads", str(threads), "--quiet"]
    _record_attempt(path, start_epoch, threads)
    output = io.StringIO()
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            code = main(command)
        message = _last_line(output.getvalue()) if code else ""
    except SystemExit as exc:  # argparse's parser.error: a setting eqprop train refuses
        code = exc.code if isinstance(exc.code, int) else 2
        message = _last_line(output.getvalue()) or f"eqprop train exited with status {exc.code}"
    except Exception as exc:  # noqa: BLE001 - any failure of one trial is recorded, the sweep goes on
        code = 1
        message = f"{type(exc).__name__}: {exc}"
    with open(path / LOG_NAME, "a", encoding="utf-8") as handle:
        handle.write(f"$ eqprop {' '.join(command)}\n{output.getvalue()}")
        if message and message not in output.getvalue():
            handle.write(message + "\n")
    if code == 0 and trial_state(path) == DONE:
        return read_outcome(path)
    atomic_write_json(path / FAILED_NAME, {
        "message": message or f"eqprop train exited with status {code}",
        "exit_code": code,
        "seconds": time.perf_counter() - started,
    })
    return read_outcome(path)
