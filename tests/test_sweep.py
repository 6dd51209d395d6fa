"""eqprop sweep on a 2-worker local Dask cluster: trials, reports, reruns, resumes, failures, a killed worker."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from eqprop.checkpoint import load_checkpoint  # noqa: E402
from eqprop.cli import main  # noqa: E402
from eqprop.sweep import load_spec  # noqa: E402
from eqprop.sweep.runner import run_sweep, start_local_cluster  # noqa: E402
from eqprop.sweep.trial import ATTEMPTS_NAME, trial_state  # noqa: E402

#: Tiny trials: 64-20-10 on 300 digits, 2 epochs (a fraction of a second each).
TINY = """
[base]
preset = "digits"
layers = "64-20-10"
train_size = 300
epochs = 2
"""


@pytest.fixture(scope="module")
def client():
    from distributed import Client

    cluster = start_local_cluster(2, 1)
    with Client(cluster) as client:
        yield client
    cluster.close()


def write_spec(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def attempts(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / ATTEMPTS_NAME).read_text().splitlines()]


def test_sweep_runs_every_trial_records_failures_and_reports(tmp_path, client):
    spec = load_spec(write_spec(tmp_path / "spec.toml", TINY + """
    [grid]
    lr = [[0.4, 0.2], [1e300, 1e300]]   # the second is refused before training: lr / beta overflows
    seed = [0, 1]
    """))
    lines: list[str] = []
    rows = run_sweep(spec, tmp_path / "sweep", client=client, echo=lines.append)
    out = tmp_path / "sweep"
    assert [row["status"] for row in rows] == ["done", "done", "failed", "failed"]
    assert rows[0]["val_error"] <= rows[1]["val_error"] and rows[0]["rank"] == 1 and rows[2]["rank"] == ""
    for row in rows[2:]:
        assert "overflows float32" in row["message"]
    for trial in spec.trials:  # each trial is an ordinary eqprop train run directory
        run_dir = out / "trials" / trial.id
        if trial.settings["lr"][0] < 1:
            assert (run_dir / "config.json").is_file()
            for name in ("metrics.csv", "checkpoint.npz", "learning_curves.png", "summary.json"):
                assert (run_dir / name).is_file(), name
            config = json.loads((run_dir / "config.json").read_text())
            assert config["threads"] == 1 and config["seed"] == trial.settings["seed"]
            assert main(["evaluate", str(run_dir)]) == 0
        else:
            assert json.loads((run_dir / "failed.json").read_text())["exit_code"] == 1
    with open(out / "summary.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["trial"] for r in table] == [row["trial"] for row in rows]
    assert list(table[0])[:6] == ["rank", "trial", "status", "lr[0]", "lr[1]", "seed"]
    assert float(table[0]["val_error"]) == rows[0]["val_error"]
    markdown = (out / "summary.md").read_text()
    assert markdown.startswith("| rank | trial | status |") and f"{100 * rows[0]['val_error']:.2f}%" in markdown
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = "\n".join(lines)
    assert "4 trials" in text and "FAILED trial-003" in text and "2 done, 2 failed" in text and "best val" in text

    # a rerun skips everything, failed trials included, and starts no cluster
    lines.clear()
    rows_again = run_sweep(spec, out, client=None, echo=lines.append)
    assert "4 already finished" in lines[0] and not any("cluster" in line for line in lines)
    assert [r["trial"] for r in rows_again] == [r["trial"] for r in rows]
    assert all(len(attempts(out / "trials" / t.id)) == 1 for t in spec.trials)

    # --retry-failed runs the failed ones again (they fail again: same message)
    rows_retry = run_sweep(spec, out, client=client, retry_failed=True, echo=lines.append)
    assert [r["status"] for r in rows_retry] == ["done", "done", "failed", "failed"]
    assert len(attempts(out / "trials" / "trial-003")) == 2 and len(attempts(out / "trials" / "trial-001")) == 1


def test_a_trial_that_raises_is_recorded_and_a_changed_spec_is_refused(tmp_path, client):
    spec = load_spec(write_spec(tmp_path / "spec.toml", TINY.replace('"64-20-10"', '"64-20-11"') + """
    [grid]
    seed = [0]
    """))
    rows = run_sweep(spec, tmp_path / "sweep", client=client, echo=lambda line: None)
    assert rows[0]["status"] == "failed" and "does not fit digits" in rows[0]["message"]
    other = load_spec(write_spec(tmp_path / "other.toml", TINY + "[grid]\nseed = [5]\n"))
    with pytest.raises(ValueError, match="holds a different sweep"):
        run_sweep(other, tmp_path / "sweep", client=client)


def test_rerun_resumes_an_unfinished_trial_from_its_checkpoint(tmp_path, client):
    spec = load_spec(write_spec(tmp_path / "spec.toml", TINY.replace("epochs = 2", "epochs = 3") + """
    [grid]
    seed = [0, 1]
    """))
    out = tmp_path / "sweep"
    run_sweep(spec, out, client=client, echo=lambda line: None)
    reference = load_checkpoint(out / "trials" / "trial-001")
    # make trial-001 look like a run stopped after epoch 1 of 3 (what a killed sweep leaves)
    run_dir = out / "trials" / "trial-001"
    shutil.rmtree(run_dir)
    run_dir.mkdir()
    trial = spec.trials[0]
    assert main(["train", *trial.argv, "--epochs", "1", "--threads", "1", "--quiet", "--out", str(run_dir)]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "epochs": 3}))
    (run_dir / "summary.json").unlink()
    assert trial_state(run_dir) == "started"

    lines: list[str] = []
    rows = run_sweep(spec, out, client=client, echo=lines.append)
    assert "1 already finished, 1 to resume from their checkpoints, 0 to start" in lines[0]
    assert all(row["status"] == "done" and row["epochs"] == 3 for row in rows)
    assert [a["start_epoch"] for a in attempts(run_dir)] == [1]
    resumed = load_checkpoint(run_dir)
    for got, want in zip(resumed.weights, reference.weights):  # exactly the uninterrupted run
        np.testing.assert_array_equal(got, want)
    assert len(attempts(out / "trials" / "trial-002")) == 1


def test_a_killed_worker_has_its_trial_resumed_elsewhere(tmp_path):
    """Kill the worker process running a trial mid-way: the trial resumes from its checkpoint."""
    spec = write_spec(tmp_path / "spec.toml", """
    [base]
    dataset = "digits"
    layers = "64-500-10"
    lr = [0.1, 0.05]
    free_steps = 200
    epochs = 6
    [grid]
    seed = [0, 1]
    """)
    out = tmp_path / "sweep"
    run_dir = out / "trials" / "trial-001"
    command = [sys.executable, "-m", "eqprop.cli", "sweep", str(spec), "--out", str(out), "--workers", "2",
               "--progress-every", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        killed = None
        deadline = time.monotonic() + 60
        while killed is None and time.monotonic() < deadline and process.poll() is None:
            if (run_dir / "checkpoint.npz").is_file() and not (run_dir / "summary.json").exists():
                epoch = load_checkpoint(run_dir).epoch
                if 1 <= epoch < 4:
                    pid = attempts(run_dir)[-1]["pid"]
                    os.kill(pid, signal.SIGKILL)
                    killed = (pid, epoch)
            time.sleep(0.02)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert killed is not None, "the trial finished before it could be interrupted"
    assert process.returncode == 0, output
    tries = attempts(run_dir)
    assert len(tries) == 2 and tries[0]["pid"] == killed[0] and tries[1]["pid"] != killed[0]
    assert tries[1]["start_epoch"] >= killed[1]  # resumed from the checkpoint, not from scratch
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs"] == 6
    with open(run_dir / "metrics.csv", newline="") as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == list(range(1, 7))
    assert "2 done, 0 failed of 2 trials" in output
