"""The eqprop command line: train / evaluate / plot / presets / info, help texts and bad flags."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eqprop.checkpoint import load_checkpoint
from eqprop.cli import build_parser, main

QUICK = ["--preset", "digits", "--epochs", "3", "--train-size", "400", "--seed", "0", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One short digits run shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("runs") / "digits"
    assert main(["train", *QUICK, "--out", str(out)]) == 0
    return out


def test_train_writes_a_complete_run_directory(run_dir):
    for name in ("config.json", "metrics.csv", "checkpoint.npz", "learning_curves.png", "summary.json"):
        assert (run_dir / name).is_file(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["preset"] == "digits" and config["epochs"] == 3 and config["train_size"] == 400
    assert config["layers"] == [64, 100, 10] and config["learning_rates"] == [0.2, 0.1] and config["seed"] == 0
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    assert all(0 <= float(row["val_error"]) <= 1 for row in rows)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs"] == 3
    for split in ("train", "val", "test"):
        assert 0 <= summary[f"{split}_error"] < 0.5  # 3 short epochs already learn something
    assert (run_dir / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_checkpoint(run_dir).epoch == 3


def test_train_prints_progress_lines_and_the_final_errors(tmp_path, capsys):
    assert main(["train", *QUICK[:-1], "--epochs", "2", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "epoch   1/2" in out and "epoch   2/2" in out
    assert "test" in out and "summary.json" in out


def test_quiet_prints_nothing(tmp_path, capsys):
    assert main(["train", *QUICK, "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    assert capsys.readouterr().out == ""


def test_evaluate_prints_the_error_of_each_split(run_dir, capsys):
    summary = json.loads((run_dir / "summary.json").read_text())
    for split in ("test", "val", "train"):
        assert main(["evaluate", str(run_dir), "--split", split]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"{split} error {100 * summary[f'{split}_error']:.2f}%")


def test_plot_rewrites_the_png(run_dir, tmp_path, capsys):
    (run_dir / "learning_curves.png").unlink()
    assert main(["plot", str(run_dir)]) == 0
    assert (run_dir / "learning_curves.png").stat().st_size > 1000
    other = tmp_path / "curves.png"
    assert main(["plot", str(run_dir), "--output", str(other)]) == 0
    assert other.is_file() and str(other) in capsys.readouterr().out


def test_presets_and_info(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("digits", "mnist-1h", "mnist-2h", "mnist-3h", "fashion-1h", "784-500-500-500-10"):
        assert name in out
    assert "0.128, 0.032, 0.008, 0.002" in out  # the original code's rates are listed too
    assert main(["info"]) == 0
    assert "OpenMP" in capsys.readouterr().out


def test_resume_through_the_cli_matches_an_uninterrupted_run(tmp_path):
    common = ["train", "--preset", "digits", "--train-size", "200", "--seed", "1", "--threads", "1", "--quiet"]
    assert main([*common, "--epochs", "2", "--out", str(tmp_path / "straight")]) == 0
    assert main([*common, "--epochs", "1", "--out", str(tmp_path / "split")]) == 0
    assert main(["train", "--resume", str(tmp_path / "split"), "--epochs", "2", "--quiet"]) == 0
    straight, resumed = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "split")
    assert resumed.epoch == 2
    for a, b in zip(straight.weights + straight.biases, resumed.weights + resumed.biases):
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "split" / "metrics.csv").read_text().count("\n") == 3  # header + 2 epochs


def test_flags_override_the_preset(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *QUICK, "--epochs", "1", "--lr", "0.1", "0.05", "--beta", "0.5", "--no-persistent",
                 "--no-random-sign", "--free-steps", "7", "--batch-size", "10", "--dtype", "float64",
                 "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["learning_rates"] == [0.1, 0.05] and config["beta"] == 0.5 and config["free_steps"] == 7
    assert config["persistent"] is False and config["random_sign"] is False and config["batch_size"] == 10
    assert config["nudged_steps"] == 4  # from the preset
    checkpoint = load_checkpoint(out)
    assert checkpoint.dtype == "float64" and checkpoint.particles is None


def test_explicit_settings_without_a_preset(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--layers", "64-16-10", "--lr", "0.2", "0.1", "--epochs", "1",
                 "--train-size", "100", "--seed", "0", "--quiet", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] is None and config["layers"] == [64, 16, 10] and config["free_steps"] == 20


def test_train_refuses_to_overwrite_a_run(run_dir, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", *QUICK, "--out", str(run_dir)])
    assert info.value.code == 2
    assert "already holds a run" in capsys.readouterr().err


def test_help_texts(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    top = capsys.readouterr().out
    for command in ("train", "evaluate", "plot", "presets", "info"):
        assert command in top
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    flags = ["--preset", "--dataset", "--layers", "--beta", "--free-steps", "--nudged-steps", "--epsilon", "--lr",
             "--batch-size", "--epochs", "--threads", "--seed", "--data-dir", "--out", "--resume", "--quiet",
             "--solver", "--symmetric", "--no-persistent", "--no-random-sign", "--train-size", "--dtype",
             "--init-gain"]
    for flag in flags:
        assert flag in text, flag
    assert "eqprop train --preset digits --out runs/digits" in text  # an example
    for command in ("evaluate", "plot", "presets", "info"):
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0
    # every option of every subcommand has a help string
    parser = build_parser()
    for subparser in parser._subparsers._group_actions[0].choices.values():
        for action in subparser._actions:
            assert action.help, f"{subparser.prog} {action.option_strings or action.dest} has no help"


BAD_FLAGS = [
    (["train", "--layers", "784-x-10", "--dataset", "digits", "--lr", "1"], "is not a size"),
    (["train", "--preset", "digits", "--batch-size", "0"], "positive integer"),
    (["train", "--preset", "digits", "--epsilon", "2"], "epsilon must be in"),
    (["train", "--preset", "digits", "--beta", "0"], "beta must be nonzero"),
    (["train", "--preset", "digits", "--lr", "0.1"], "one rate per weight matrix"),
    (["train", "--preset", "digits", "--lr", "0.1", "-0.1"], "positive number"),
    (["train", "--preset", "nope"], "unknown preset 'nope'"),
    (["train", "--preset", "digits", "--init-gain", "1", "1", "1"], "--init-gain needs one gain, or one per weight"),
    (["train", "--preset", "digits", "--init-gain", "0"], "positive number"),
    (["train", "--dataset", "cifar"], "invalid choice"),
    (["train", "--dataset", "digits"], "--layers, --lr"),
    (["train", "--dataset", "digits", "--layers", "784-10", "--lr", "0.1", "--out", "{tmp}/x"], "needs 64 inputs"),
    (["train", "--resume", "{tmp}", "--beta", "2"], "--beta cannot be changed"),
    (["train", "--preset", "digits", "--bogus"], "unrecognized arguments"),
    (["evaluate"], "required: DIR"),
    (["evaluate", "{tmp}", "--split", "holdout"], "invalid choice"),
    ([], "required: COMMAND"),
]


@pytest.mark.parametrize("argv, message", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flags_exit_with_code_2_and_say_why(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main([arg.replace("{tmp}", str(tmp_path)) for arg in argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_runtime_errors_exit_1_with_a_message(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 1
    assert "not an eqprop run directory" in capsys.readouterr().err
    assert main(["plot", str(tmp_path)]) == 1
    assert "metrics.csv does not exist" in capsys.readouterr().err
    (tmp_path / "config.json").write_text("{}")
    assert main(["train", "--resume", str(tmp_path)]) == 1
    assert "no checkpoint.npz" in capsys.readouterr().err


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "eqprop"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "eqprop.cli"]
    result = subprocess.run([*command, "presets"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "mnist-1h" in result.stdout


@pytest.mark.parametrize("load, expect_note", [(3.0, True), (0.1, False)])
def test_train_notes_a_busy_machine_when_running_threads(tmp_path, capsys, monkeypatch, load, expect_note):
    import os

    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    args = QUICK[:-1]  # not --quiet: the note goes to stderr
    args[args.index("--threads") + 1] = "2"
    assert main(["train", *args, "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert ("note: load average 3.0 on 2 cores" in err) is expect_note
    assert (not expect_note) or "--threads 1" in err
