"""The eqprop command line: train / evaluate / plot / presets / info, help texts and bad flags."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import eqcore
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
    assert "Measured here, mnist-2h: the paper's settings stall" in out
    for text in ("mnist-dhn-1h", "mnist-dhn-2h", "784-1024-1024-10", "fixed-point, sym", "1.79% test error",
                 "1.65% test error", "here: 1.80% and 1.84% test error", "here: 1.90% test error in bfloat16 (", "first 50,000", "papers/fast-drn/dhn.py"):
        assert text in out
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "OpenMP" in out
    assert "conv (Winograd F(m x m, k x k) for kernels of 2 to 7 over at least 32 input channels" in out


def test_validation_size_moves_the_split_and_zero_trains_on_every_image(tmp_path, capsys):
    common = ["train", "--preset", "digits", "--epochs", "2", "--seed", "0", "--threads", "1", "--quiet"]
    assert main([*common, "--validation-size", "100", "--out", str(tmp_path / "v100")]) == 0
    config = json.loads((tmp_path / "v100" / "config.json").read_text())
    assert config["validation_size"] == 100
    summary = json.loads((tmp_path / "v100" / "summary.json").read_text())
    assert summary["best_epoch"] in (1, 2) and (tmp_path / "v100" / "best.json").exists()
    assert main(["evaluate", str(tmp_path / "v100"), "--split", "val"]) == 0
    assert "/100 misclassified" in capsys.readouterr().out

    assert main([*common, "--validation-size", "0", "--out", str(tmp_path / "all")]) == 0
    summary = json.loads((tmp_path / "all" / "summary.json").read_text())
    assert summary["val_error"] is None and summary["best_epoch"] is None and summary["test_error"] is not None
    assert not (tmp_path / "all" / "best.json").exists()
    assert main(["evaluate", str(tmp_path / "all"), "--split", "train"]) == 0
    assert "/1497 misclassified" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "all"), "--split", "val"]) == 1
    assert "no validation set" in capsys.readouterr().err
    # a resume keeps the split, and continues the run exactly
    assert main([*common[:4], "1", *common[5:], "--validation-size", "0", "--out", str(tmp_path / "split")]) == 0
    assert main(["train", "--resume", str(tmp_path / "split"), "--epochs", "2", "--quiet"]) == 0
    straight, resumed = load_checkpoint(tmp_path / "all"), load_checkpoint(tmp_path / "split")
    for a, b in zip(straight.weights + straight.biases, resumed.weights + resumed.biases):
        np.testing.assert_array_equal(a, b)


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


def test_the_run_records_its_kernels_and_a_resume_on_others_says_so(tmp_path, capsys):
    """config.json names the products a run started with; resuming with others prints a note and goes on."""
    out = tmp_path / "run"
    common = ["--preset", "digits", "--train-size", "100", "--seed", "0", "--threads", "1"]
    assert main(["train", *common, "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["kernels"] == eqcore.gemm_path()
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--epochs", "2"]) == 0
    assert "started with other products" not in capsys.readouterr().out
    eqcore.set_gemm_path("blas")
    try:
        assert main(["train", "--resume", str(out), "--epochs", "3"]) == 0
    finally:
        eqcore.set_gemm_path("skinny")
    printed = capsys.readouterr().out
    assert "note: this run started with other products (path skinny -> blas)" in printed
    assert load_checkpoint(out).epoch == 3
    assert json.loads((out / "config.json").read_text())["kernels"] == config["kernels"]


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
             "--solver", "--symmetric", "--no-persistent", "--no-random-sign", "--train-size", "--validation-size", "--dtype",
             "--optimizer", "--momentum", "--betas", "--eps", "--weight-decay", "--bias-lr", "--schedule",
             "--schedule-epochs", "--schedule-floor", "--schedule-gamma", "--schedule-step-size", "--init-gain"]
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
    (["train", "--preset", "digits", "--algorithm", "chl"], "invalid choice"),
    (["train", "--preset", "digits", "--coupling", "1.5"], "the coupling must be in (0, 1]"),
    (["train", "--preset", "digits", "--output", "tanh"], "invalid choice"),
    (["train", "--dataset", "cifar"], "invalid choice"),
    (["train", "--dataset", "digits"], "--layers, --lr"),
    (["train", "--dataset", "digits", "--layers", "784-10", "--lr", "0.1", "--out", "{tmp}/x"], "needs 64 inputs"),
    (["train", "--resume", "{tmp}", "--beta", "2"], "--beta cannot be changed"),
    (["train", "--preset", "digits", "--bogus"], "unrecognized arguments"),
    (["train", "--preset", "digits", "--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
    (["train", "--preset", "digits", "--momentum", "0.9"],
     "--momentum applies only to the optimizers 'momentum' and 'nesterov'"),
    (["train", "--preset", "digits", "--optimizer", "nesterov", "--momentum", "0"],
     "--momentum must be in (0, 1) for 'nesterov'"),
    (["train", "--preset", "digits", "--optimizer", "momentum", "--momentum", "1"], "--momentum must be in [0, 1)"),
    (["train", "--preset", "digits", "--optimizer", "adam", "--betas", "0.9"], "expected 2 arguments"),
    (["train", "--preset", "digits", "--optimizer", "adam", "--betas", "0.9", "1.5"], "--betas must each be in [0, 1)"),
    (["train", "--preset", "digits", "--optimizer", "adam", "--eps", "0"], "positive number"),
    (["train", "--preset", "digits", "--eps", "1e-8"], "--eps applies only to the optimizer 'adam'"),
    (["train", "--preset", "digits", "--weight-decay", "0.1", "0.1", "0.1"],
     "--weight-decay needs one value per weight matrix (2); got 3"),
    (["train", "--preset", "digits", "--weight-decay", "-1"], "non-negative number"),
    (["train", "--preset", "digits", "--bias-lr", "0.1"], "--bias-lr needs one value per weight matrix (2); got 1"),
    (["train", "--preset", "digits", "--schedule", "linear"], "invalid choice: 'linear'"),
    (["train", "--preset", "digits", "--schedule", "exponential"], "schedule 'exponential' needs --schedule-gamma"),
    (["train", "--preset", "digits", "--schedule", "step"], "schedule 'step' needs --schedule-step-size"),
    (["train", "--preset", "digits", "--schedule", "exponential", "--schedule-gamma", "1.5"],
     "--schedule-gamma must be in (0, 1]"),
    (["train", "--preset", "digits", "--schedule", "cosine", "--schedule-floor", "2"],
     "--schedule-floor must be in [0, 1]"),
    (["train", "--preset", "digits", "--schedule-gamma", "0.5"], "--schedule-gamma applies only to the schedules"),
    (["train", "--preset", "digits", "--schedule", "step", "--schedule-step-size", "0"], "positive integer"),
    (["train", "--resume", "{tmp}", "--optimizer", "adam"], "--optimizer cannot be changed"),
    (["train", "--resume", "{tmp}", "--schedule", "cosine"], "--schedule cannot be changed"),
    (["train", "--preset", "digits", "--validation-size", "1497"], "--validation-size must be below 1497"),
    (["train", "--preset", "digits", "--validation-size", "-1"], "non-negative"),
    (["train", "--preset", "digits", "--delta-threshold", "1.5"], "expected a number in [0, 1]; got 1.5"),
    (["train", "--preset", "digits", "--delta-threshold", "nan"], "expected a finite number"),
    (["evaluate"], "required: DIR"),
    (["evaluate", "{tmp}", "--split", "holdout"], "invalid choice"),
    ([], "required: COMMAND"),
]


@pytest.mark.parametrize("argv, message", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flags_exit_with_code_2_and_say_why(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main([arg.replace("{tmp}", str(tmp_path)) for arg in argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and re.match(r"eqprop( \w+)?: error: ", err.splitlines()[-1])
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------ optimizers and schedules
def test_optimizer_and_schedule_flags_reach_config_and_checkpoint(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *QUICK, "--epochs", "2", "--optimizer", "adam", "--lr", "0.01", "0.003",
                 "--weight-decay", "1e-4", "--bias-lr", "0.02", "0.0", "--schedule", "cosine",
                 "--schedule-floor", "0.1", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    expected = {"optimizer": "adam", "momentum": None, "betas": [0.9, 0.999], "eps": 1e-8,
                "weight_decay": [1e-4, 1e-4], "bias_learning_rates": [0.02, 0.0], "schedule": "cosine",
                "schedule_epochs": 2, "schedule_floor": 0.1, "schedule_gamma": None, "schedule_step_size": None}
    assert {key: config[key] for key in expected} == expected  # the cosine spans the run's --epochs
    checkpoint = load_checkpoint(out)
    assert {key: checkpoint.config[key] for key in expected} == expected
    assert checkpoint.meta["optimizer_state"]["step"] == 2 * 20  # 400 examples in mini-batches of 20
    summary = json.loads((out / "summary.json").read_text())
    assert summary["val_error"] < 0.5


def test_defaults_record_plain_sgd_and_constant_rates(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    assert config["optimizer"] == "sgd" and config["schedule"] == "constant"
    assert all(config[key] is None for key in ("momentum", "betas", "eps", "weight_decay", "bias_learning_rates",
                                               "schedule_epochs", "schedule_floor", "schedule_gamma",
                                               "schedule_step_size"))


@pytest.mark.parametrize("optimizer", [["--optimizer", "momentum", "--momentum", "0.5"], ["--optimizer", "adam"]])
def test_resume_with_an_optimizer_and_schedule_matches_an_uninterrupted_run(tmp_path, optimizer):
    lr = ["--lr", "0.01", "0.005"] if "adam" in optimizer else ["--lr", "0.1", "0.05"]
    common = ["train", "--preset", "digits", "--train-size", "200", "--seed", "1", "--threads", "1", "--quiet",
              *optimizer, *lr, "--schedule", "step", "--schedule-step-size", "1", "--schedule-gamma", "0.5"]
    assert main([*common, "--epochs", "3", "--out", str(tmp_path / "straight")]) == 0
    assert main([*common, "--epochs", "1", "--out", str(tmp_path / "split")]) == 0
    assert main(["train", "--resume", str(tmp_path / "split"), "--epochs", "3", "--quiet"]) == 0
    straight, resumed = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "split")
    assert resumed.epoch == 3 and resumed.meta["optimizer_state"] == straight.meta["optimizer_state"]
    for a, b in zip(straight.weights + straight.biases, resumed.weights + resumed.biases):
        np.testing.assert_array_equal(a, b)
    for name, (weights, biases) in straight.optimizer_buffers.items():
        for a, b in zip(weights + biases, resumed.optimizer_buffers[name][0] + resumed.optimizer_buffers[name][1]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("edit, message", [
    (dict(momentum=0.6), "config.json says momentum = 0.6, the checkpoint was trained with 0.5"),
    (dict(schedule="exponential"), "schedule_step_size applies only to schedule 'step'"),
    (dict(optimizer="rmsprop"), "optimizer is 'rmsprop'; it must be one of sgd, momentum, nesterov, adam"),
    (dict(weight_decay=[0.1]), "weight_decay needs one value per weight matrix (2); got 1"),
    (dict(schedule_gamma=2.0), "schedule_gamma is 2.0; it must be null or a number in (0, 1]"),
])
def test_resume_refuses_an_edited_optimizer_setting(tmp_path, capsys, edit, message):
    out = tmp_path / "run"
    assert main(["train", *QUICK, "--epochs", "1", "--optimizer", "momentum", "--momentum", "0.5",
                 "--schedule", "step", "--schedule-step-size", "2", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    config.update(edit)
    (out / "config.json").write_text(json.dumps(config))
    before = (out / "checkpoint.npz").read_bytes()
    assert main(["train", "--resume", str(out), "--epochs", "2", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert (out / "checkpoint.npz").read_bytes() == before


def test_flags_replace_a_presets_optimizer_and_schedule(tmp_path, monkeypatch):
    """--optimizer / --schedule other than the preset's drop the preset's parameters of its own choice."""
    import dataclasses

    import eqprop.presets

    custom = dataclasses.replace(eqprop.presets.PRESETS["digits"], name="digits-momentum", optimizer="momentum",
                                 momentum=0.5, schedule="step", schedule_step_size=2, schedule_gamma=0.5)
    monkeypatch.setattr(eqprop.presets, "PRESETS", {**eqprop.presets.PRESETS, custom.name: custom})
    common = ["train", "--preset", "digits-momentum", "--epochs", "1", "--train-size", "100", "--seed", "0",
              "--threads", "1", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "a")]) == 0
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert (config["optimizer"], config["momentum"], config["schedule_step_size"]) == ("momentum", 0.5, 2)
    assert main([*common, "--optimizer", "adam", "--schedule", "constant", "--out", str(tmp_path / "b")]) == 0
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert (config["optimizer"], config["momentum"], config["betas"]) == ("adam", None, [0.9, 0.999])
    assert (config["schedule"], config["schedule_step_size"], config["schedule_gamma"]) == ("constant", None, None)


def test_a_dhn_preset_runs_and_resumes_through_the_cli(tmp_path, monkeypatch):
    """The DHN settings (fixed-point solver, linear output, gains, exponential decay) reach config.json and resume."""
    import dataclasses

    import eqprop.presets
    from eqprop.presets import anchor_init_gains

    sizes = (64, 32, 10)
    custom = dataclasses.replace(eqprop.presets.PRESETS["mnist-dhn-1h"], name="digits-dhn", dataset="digits",
                                 sizes=sizes, init_gains=anchor_init_gains(sizes))
    monkeypatch.setattr(eqprop.presets, "PRESETS", {**eqprop.presets.PRESETS, custom.name: custom})
    common = ["--train-size", "96", "--seed", "0", "--threads", "1", "--quiet"]
    assert main(["train", "--preset", "digits-dhn", "--epochs", "2", *common, "--out", str(tmp_path / "a")]) == 0
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert (config["solver"], config["output"], config["algorithm"], config["persistent"]) == (
        "fixed-point", "linear", "centered", False)
    assert (config["schedule"], config["schedule_gamma"], config["batch_size"]) == ("exponential", 0.99, 16)
    assert config["init_gains"] == list(anchor_init_gains(sizes)) and config["eval_steps"] == 15
    assert main(["train", "--preset", "digits-dhn", "--epochs", "1", *common, "--out", str(tmp_path / "b")]) == 0
    assert main(["train", "--resume", str(tmp_path / "b"), "--epochs", "2", "--quiet"]) == 0
    straight, resumed = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    for a, b in zip(straight.weights + straight.biases, resumed.weights + resumed.biases):
        np.testing.assert_array_equal(a, b)


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


def test_python_dash_m_eqprop_runs_the_command_line_and_reports_a_mistake_in_one_line():
    result = subprocess.run([sys.executable, "-m", "eqprop", "presets"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "mnist-1h" in result.stdout
    bad = subprocess.run([sys.executable, "-m", "eqprop", "train", "--preset", "no-such-preset"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no-such-preset" in bad.stderr


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


def test_a_conv_run_resumes_through_the_cli(tmp_path):
    common = ["train", "--dataset", "digits", "--layers", "1x8x8,c4k3mp,10", "--lr", "0.1", "0.05",
              "--train-size", "100", "--seed", "2", "--threads", "1", "--quiet", "--free-steps", "6",
              "--nudged-steps", "2", "--solver", "alternating", "--symmetric", "--beta", "0.5"]
    assert main([*common, "--epochs", "2", "--out", str(tmp_path / "straight")]) == 0
    assert main([*common, "--epochs", "1", "--out", str(tmp_path / "split")]) == 0
    assert main(["train", "--resume", str(tmp_path / "split"), "--epochs", "2", "--quiet"]) == 0
    straight, resumed = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "split")
    assert resumed.epoch == 2
    for a, b in zip(straight.weights + straight.biases, resumed.weights + resumed.biases):
        np.testing.assert_array_equal(a, b)


def test_the_conv_algorithm_is_recorded_and_kept_by_a_resume(tmp_path, capsys):
    """--conv-algorithm reaches the run (its weights differ from the default's), config.json records
    it, a resume without the flag keeps it (bitwise the uninterrupted run), and the process setting
    is restored after each command."""
    common = ["train", "--dataset", "digits", "--layers", "1x8x8,c4k3mp,10", "--lr", "0.1", "0.05",
              "--train-size", "100", "--seed", "2", "--threads", "1", "--quiet", "--free-steps", "6",
              "--nudged-steps", "2", "--solver", "alternating", "--symmetric", "--beta", "0.5"]
    winograd = [*common, "--conv-algorithm", "winograd"]
    assert main([*winograd, "--epochs", "2", "--out", str(tmp_path / "straight")]) == 0
    assert eqcore.gemm_path()["conv"] == "auto"
    config = json.loads((tmp_path / "straight" / "config.json").read_text())
    assert config["conv_algorithm"] == "winograd" and config["kernels"]["conv"] == "winograd"
    assert main([*common, "--epochs", "2", "--out", str(tmp_path / "auto")]) == 0  # direct: one input channel
    assert main([*winograd, "--epochs", "1", "--out", str(tmp_path / "split")]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "split"), "--epochs", "2"]) == 0
    assert "started with other products" not in capsys.readouterr().out
    straight, resumed = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "split")
    for a, b in zip(straight.weights + straight.biases, resumed.weights + resumed.biases):
        np.testing.assert_array_equal(a, b)
    direct = load_checkpoint(tmp_path / "auto")
    assert any(not np.array_equal(a, b) for a, b in zip(straight.weights, direct.weights))
    assert main(["train", "--resume", str(tmp_path / "split"), "--epochs", "3", "--conv-algorithm", "direct"]) == 0
    assert "note: this run started with other products (conv winograd -> direct)" in capsys.readouterr().out
    assert json.loads((tmp_path / "split" / "config.json").read_text())["conv_algorithm"] == "direct"
    assert eqcore.gemm_path()["conv"] == "auto"
    assert main(["evaluate", str(tmp_path / "split"), "--split", "val"]) == 0
    assert eqcore.gemm_path()["conv"] == "auto"


def test_the_delta_threshold_is_recorded_and_kept_by_a_resume(tmp_path):
    """--delta-threshold reaches the run (0, recomputing, gives other weights than the default on a
    network with a wide hidden connection), config.json records it (new runs: the default), a
    resume without the flag keeps it (bitwise the uninterrupted run), and the process setting is
    restored after each command."""
    from eqprop.cli import DEFAULT_DELTA_THRESHOLD

    default = eqcore.delta_threshold()
    assert DEFAULT_DELTA_THRESHOLD == default
    common = ["train", "--dataset", "digits", "--layers", "64-100-80-10", "--lr", "0.1", "0.05", "0.02",
              "--train-size", "100", "--seed", "2", "--threads", "1", "--quiet", "--free-steps", "30",
              "--nudged-steps", "4"]
    assert main([*common, "--epochs", "2", "--out", str(tmp_path / "straight")]) == 0
    assert json.loads((tmp_path / "straight" / "config.json").read_text())["delta_threshold"] == default
    assert main([*common, "--epochs", "2", "--delta-threshold", "0", "--out", str(tmp_path / "off")]) == 0
    assert json.loads((tmp_path / "off" / "config.json").read_text())["delta_threshold"] == 0.0
    assert eqcore.delta_threshold() == default
    straight, off = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "off")
    assert any(not np.array_equal(a, b) for a, b in zip(straight.weights, off.weights))
    assert main([*common, "--epochs", "1", "--out", str(tmp_path / "split")]) == 0
    assert main(["train", "--resume", str(tmp_path / "split"), "--epochs", "2", "--quiet"]) == 0
    resumed = load_checkpoint(tmp_path / "split")
    for a, b in zip(straight.weights + straight.biases, resumed.weights + resumed.biases):
        np.testing.assert_array_equal(a, b)
    assert main(["train", "--resume", str(tmp_path / "split"), "--epochs", "3", "--delta-threshold", "0",
                 "--quiet"]) == 0
    assert json.loads((tmp_path / "split" / "config.json").read_text())["delta_threshold"] == 0.0
    assert main(["evaluate", str(tmp_path / "split"), "--split", "val"]) == 0
    assert eqcore.delta_threshold() == default


def test_algorithm_coupling_and_output_flags_reach_the_run(tmp_path):
    out = tmp_path / "coupled"
    assert main(["train", "--preset", "digits", "--train-size", "200", "--epochs", "1", "--seed", "1", "--threads", "1",
                 "--quiet", "--algorithm", "coupled", "--coupling", "0.3", "--output", "linear", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["algorithm"], config["coupling"], config["output"]) == ("coupled", 0.3, "linear")
    assert (config["random_sign"], config["symmetric"]) == (False, False)  # set to match the algorithm
    checkpoint = load_checkpoint(out)
    assert checkpoint.config["algorithm"] == "coupled" and checkpoint.meta["network"]["output"] == "linear"
    assert main(["train", "--resume", str(out), "--epochs", "2", "--quiet"]) == 0


def test_the_best_checkpoint_is_chosen_on_validation_and_kept_across_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["train", "--preset", "digits", "--train-size", "300", "--seed", "3", "--threads", "1", "--quiet"]
    assert main([*common, "--epochs", "2", "--out", str(out)]) == 0
    assert main(["train", "--resume", str(out), "--epochs", "4", "--quiet"]) == 0
    with open(out / "metrics.csv", newline="") as handle:
        val = [float(row["val_error"]) for row in csv.DictReader(handle)]
    best = json.loads((out / "best.json").read_text())
    assert best["epoch"] == 1 + int(np.argmin(val)) and best["val_error"] == min(val)  # the first minimum
    assert load_checkpoint(out / "best").epoch == best["epoch"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_epoch"] == best["epoch"] and summary["best_val_error"] == min(val)
    capsys.readouterr()
    assert main(["evaluate", str(out), "--checkpoint", "best", "--split", "test"]) == 0
    printed = capsys.readouterr().out
    assert f"best checkpoint (epoch {best['epoch']})" in printed
    assert f"{100 * summary['best_test_error']:.2f}%" in printed


def test_evaluate_best_before_any_validated_epoch_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--preset", "digits", "--train-size", "100", "--epochs", "1", "--seed", "3", "--threads",
                 "1", "--quiet", "--out", str(out)]) == 0
    (out / "best.json").unlink()
    assert main(["evaluate", str(out), "--checkpoint", "best"]) == 1
    assert "has no best checkpoint yet" in capsys.readouterr().err
