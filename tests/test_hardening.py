"""Issue 13 (hardening): one test, or a few, per item; each failed before its fix.

CLI cases call ``eqprop.cli.main`` in-process (as test_cli.py does) on the bundled
digits dataset with tiny runs, except the lock test, which needs a second process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import eqprop
from eqprop.checkpoint import load_checkpoint
from eqprop.cli import main

SIZES = [6, 5, 3]
TINY = ["--preset", "digits", "--train-size", "60", "--batch-size", "20", "--free-steps", "4",
        "--nudged-steps", "2", "--seed", "0", "--threads", "1", "--quiet"]


@pytest.fixture
def net32():
    return eqprop.EqPropNetwork(SIZES, dtype="float32", seed=0)


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    x = rng.random((4, SIZES[0]))
    target = np.zeros((4, SIZES[-1]))
    target[:, 0] = 1
    return x, target


STEP = dict(free_steps=3, nudged_steps=2, epsilon=0.5)


def tiny_trainer(**overrides):
    net = eqprop.EqPropNetwork([64, 8, 10], seed=0, threads=1)
    kwargs = dict(beta=1.0, free_steps=3, nudged_steps=2, epsilon=0.5, learning_rates=(0.1, 0.05),
                  batch_size=20, seed=0, threads=1)
    kwargs.update(overrides)
    return eqprop.Trainer(net, **kwargs)


@pytest.fixture(scope="module")
def digits():
    from eqprop.datasets import load_dataset

    data = load_dataset("digits")
    return data.x_train[:100], data.y_train[:100]


def run_train(argv, capsys):
    """main(["train", ...]) -> (exit status, stderr)."""
    status = main(["train", *argv])
    return status, capsys.readouterr().err


def one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------ 2. silent NaN
def test_subnormal_beta_is_refused_and_weights_stay_finite(net32, batch):
    before = [w.copy() for w in net32.weights]
    with pytest.raises(ValueError, match="beta = 4.94066e-324 is too small for float32"):
        net32.train_step(*batch, beta=5e-324, learning_rates=(0.1, 0.1), **STEP)
    net64 = eqprop.EqPropNetwork(SIZES, dtype="float64", seed=0)
    with pytest.raises(ValueError, match="too small for float64"):
        net64.train_step(*batch, beta=5e-324, learning_rates=(0.1, 0.1), **STEP)
    with pytest.raises(ValueError, match=r"learning_rates\[0\] / beta .* overflows float64"):
        net64.train_step(*batch, beta=1e-300, learning_rates=(1e10, 0.1), **STEP)
    for w, b in zip(net32.weights, before):
        np.testing.assert_array_equal(w, b)
    assert all(np.isfinite(w).all() for w in net64.weights)


@pytest.mark.parametrize("call", ["relax", "ep_gradients", "train_step"])
def test_beta_beyond_float32_range_is_refused(net32, batch, call):
    x, target = batch
    with pytest.raises(ValueError, match="beyond the float32 range"):
        if call == "relax":
            net32.relax(x, steps=3, epsilon=0.5, beta=1e39, target=target)
        elif call == "ep_gradients":
            net32.ep_gradients(x, target, beta=1e39, **STEP)
        else:
            net32.train_step(x, target, beta=1e39, learning_rates=(0.1, 0.1), **STEP)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("call", ["relax", "predict", "ep_gradients", "train_step", "energy"])
def test_non_finite_parameters_are_refused_everywhere(net32, batch, bad, call):
    x, target = batch
    net32.weights[1][0, 0] = bad
    with pytest.raises(ValueError, match=r"net.weights\[1\] contains NaN or infinite"):
        if call == "relax":
            net32.relax(x, steps=3, epsilon=0.5)
        elif call == "predict":
            net32.predict(x)
        elif call == "ep_gradients":
            net32.ep_gradients(x, target, beta=0.5, **STEP)
        elif call == "energy":
            net32.energy(x, net32.zero_state(len(x)))
        else:
            net32.train_step(x, target, beta=0.5, learning_rates=(0.1, 0.1), **STEP)


def test_train_step_restores_the_parameters_instead_of_leaving_nan(net32, batch):
    # finite parameters at the edge of float32's range: the free phase overflows to inf
    for array in (*net32.weights, *net32.biases):
        array[...] = 3.4e38
    before = [a.copy() for a in (*net32.weights, *net32.biases)]
    with pytest.raises(FloatingPointError, match="parameters were restored"):
        net32.train_step(*batch, beta=0.5, learning_rates=(1e37, 1e37), **STEP)
    for a, b in zip((*net32.weights, *net32.biases), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("algorithm", [None, "centered", "contrastive"])
def test_train_step_without_the_parameter_copy_matches_the_guarded_step(batch, algorithm, monkeypatch):
    """Bounded parameters skip the backup copy and the scan after the update; the step is the same."""
    fast, guarded = (eqprop.EqPropNetwork(SIZES, seed=3) for _ in range(2))
    assert fast._update_is_bounded()
    kwargs = dict(beta=0.5, learning_rates=(0.1, 0.05), algorithm=algorithm, **STEP)
    states = [fast.train_step(*batch, **kwargs) for _ in range(3)]
    monkeypatch.setattr(eqprop.EqPropNetwork, "_update_is_bounded", lambda self: False)
    expected = [guarded.train_step(*batch, **kwargs) for _ in range(3)]
    for a, b in zip((*fast.weights, *fast.biases), (*guarded.weights, *guarded.biases), strict=True):
        np.testing.assert_array_equal(a, b)
    for got, want in zip(states, expected, strict=True):
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("phase", ["free", "nudged"])
def test_train_step_stops_before_the_update_on_a_non_finite_state(net32, batch, phase, monkeypatch):
    from eqprop.step import StepEngine

    before = [a.copy() for a in (*net32.weights, *net32.biases)]
    name = "free_phase" if phase == "free" else "contrasted_states"
    original = getattr(StepEngine, name)

    def poisoned(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        state = args[1] if phase == "free" else result[0]
        state[0][0, 0] = np.nan
        return result

    monkeypatch.setattr(StepEngine, name, poisoned)
    assert net32._update_is_bounded()
    with pytest.raises(FloatingPointError, match="parameters were restored"):
        net32.train_step(*batch, beta=0.5, learning_rates=(0.1, 0.1), **STEP)
    for a, b in zip((*net32.weights, *net32.biases), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_only_bounded_dense_clipped_networks_skip_the_copy():
    assert eqprop.EqPropNetwork(SIZES, seed=0)._update_is_bounded()
    assert not eqprop.EqPropNetwork(SIZES, seed=0, output="linear")._update_is_bounded()
    assert not eqprop.EqPropNetwork(SIZES, seed=0, cost="cross-entropy")._update_is_bounded()
    assert not eqprop.EqPropNetwork([(1, 6, 6), eqprop.Conv2d(2, 3), 3], seed=0)._update_is_bounded()
    large = eqprop.EqPropNetwork(SIZES, seed=0, dtype="float32")
    large.weights[0][0, 0] = 1e38  # above a quarter of float32's range
    assert not large._update_is_bounded()
    large.weights[0][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"net.weights\[0\] contains NaN or infinite"):
        large._update_is_bounded()


def test_trainer_refuses_a_tiny_beta_naming_beta():
    with pytest.raises(ValueError, match="beta = 1e-300 is too small for float32"):
        tiny_trainer(beta=1e-300)
    with pytest.raises(ValueError, match=r"learning_rates\[0\] / beta"):
        tiny_trainer(learning_rates=(1e39, 0.1))


def test_cli_beta_1e_300_blames_beta(tmp_path, capsys):
    status, err = run_train([*TINY, "--epochs", "1", "--beta", "1e-300", "--out", str(tmp_path / "r")], capsys)
    line = one_line_error(err)
    assert status == 1 and "beta = 1e-300 is too small" in line and "learning rates" not in line
    assert not (tmp_path / "r").exists()  # nothing left behind


# ------------------------------------------------------- 3. read-only inputs
def test_read_only_inputs_work(net32, batch):
    x, target = (np.array(a) for a in batch)
    x.flags.writeable = False
    target.flags.writeable = False
    x32 = x.astype(np.float32)
    x32.flags.writeable = False
    net32.relax(x32, steps=2, epsilon=0.5)
    net32.predict(x32)
    net32.ep_gradients(x32, target.astype(np.float32), beta=0.5, **STEP)


def test_memory_mapped_read_only_data_trains_and_evaluates(tmp_path):
    """np.load(..., mmap_mode="r") arrays go straight to the core (its inputs are const)."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.random((30, 12)).astype(np.float32))
    np.save(tmp_path / "y.npy", rng.integers(0, 3, 30))
    x = np.load(tmp_path / "x.npy", mmap_mode="r")
    y = np.load(tmp_path / "y.npy", mmap_mode="r")
    assert not x.flags.writeable
    trainer = eqprop.Trainer(eqprop.EqPropNetwork([12, 6, 3], seed=0), beta=0.5, free_steps=4, nudged_steps=2,
                             epsilon=0.5, learning_rates=[0.1, 0.05], batch_size=10, seed=0, threads=1)
    history = trainer.fit(x, y, epochs=1, validation=(x, y))
    assert history[-1].val_error is not None
    assert 0.0 <= trainer.evaluate(x, y).error <= 1.0
    trainer.net.relax(x, steps=2, epsilon=0.5)


# ---------------------------------------------------- 5. 32-bit integer range
def test_steps_beyond_the_c_int_range_are_refused(net32, batch):
    x, target = batch
    with pytest.raises(ValueError, match="steps must be at most 2147483647; got 2147483648"):
        net32.relax(x, steps=2**31, epsilon=0.5)
    with pytest.raises(ValueError, match=r"within \+-2147483647; got 2147483648"):
        net32.relax(x, steps=2, epsilon=0.5, threads=2**31)
    with pytest.raises(ValueError, match="nudged_steps must be at most"):
        net32.ep_gradients(x, target, beta=0.5, free_steps=2, nudged_steps=2**40, epsilon=0.5)


@pytest.mark.parametrize("flag", ["--free-steps", "--nudged-steps", "--eval-steps", "--threads"])
def test_cli_integers_beyond_the_c_int_range_are_refused(flag, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--preset", "digits", flag, str(2**31)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "at most 2147483647" in err and "Traceback" not in err


# ---------------------------------------------------------------- 11. smaller
def test_finite_float64_beyond_float32_is_called_an_overflow(net32, batch):
    x, _ = batch
    x = x.copy()
    x[0, 0] = 1e39
    with pytest.raises(ValueError, match="beyond the float32 range"):
        net32.relax(x, steps=2, epsilon=0.5)
    x[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        net32.relax(x, steps=2, epsilon=0.5)


def test_symmetric_must_be_a_bool(net32, batch):
    with pytest.raises(TypeError, match="symmetric must be True or False; got 'no'"):
        net32.ep_gradients(*batch, beta=0.5, symmetric="no", **STEP)
    with pytest.raises(TypeError, match="symmetric must be True or False"):
        net32.train_step(*batch, beta=0.5, learning_rates=(0.1, 0.1), symmetric="no", **STEP)


@pytest.mark.parametrize("attribute, value, error, match", [
    ("batch_size", 0, ValueError, "batch_size must be at least 1"),
    ("solver", "rk4", ValueError, "solver must be one of"),
    ("beta", 0.0, ValueError, "beta must be nonzero"),
    ("learning_rates", (0.1,), ValueError, "one rate per weight matrix"),
    ("symmetric", "yes", TypeError, "symmetric must be True or False"),
    ("eval_steps", 2**31, ValueError, "eval_steps must be at most"),
])
def test_trainer_attributes_are_checked_again_in_fit(digits, attribute, value, error, match):
    trainer = tiny_trainer()
    setattr(trainer, attribute, value)
    with pytest.raises(error, match=match):
        trainer.fit(*digits, epochs=1)
    assert trainer.epoch == 0


def test_concurrent_fit_on_one_trainer_is_refused(digits):
    trainer = tiny_trainer()
    started, release = threading.Event(), threading.Event()

    def wait(trainer, record):
        started.set()
        release.wait(10)

    worker = threading.Thread(target=trainer.fit, args=digits, kwargs=dict(epochs=1, callbacks=[wait]))
    worker.start()
    try:
        assert started.wait(10)
        with pytest.raises(RuntimeError, match="already training"):
            trainer.fit(*digits, epochs=1)
    finally:
        release.set()
        worker.join(10)
    assert trainer.epoch == 1 and len(trainer.history) == 1
    trainer.fit(*digits, epochs=1)  # the lock is released afterwards
    assert trainer.epoch == 2


# ------------------------------------------------------- CLI: run directories
@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A one-epoch tiny digits run (64-100-10), copied by the tests that damage it."""
    out = tmp_path_factory.mktemp("base") / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    return out


@pytest.fixture
def run_copy(base_run, tmp_path):
    import shutil

    target = tmp_path / "run"
    shutil.copytree(base_run, target)
    return target


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file() and p.name != ".eqprop.lock"}


def resume_fails(run: Path, capsys, fragment: str) -> str:
    """--resume must exit 1 with one line containing ``fragment`` and write nothing."""
    before = snapshot(run)
    status, err = run_train(["--resume", str(run), "--epochs", "2", "--quiet"], capsys)
    line = one_line_error(err)
    assert status == 1, err
    assert fragment in line, line
    assert snapshot(run) == before  # nothing overwritten, config.json included
    return line


# 1. one process per run directory; config, checkpoint and metrics agree
_HOLD_LOCK = """
import sys, time
from eqprop.rundir import RunDirectoryLock
with RunDirectoryLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_second_process_is_refused_and_a_stale_lock_does_not_block(run_copy, capsys):
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(run_copy)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(run_copy)
        status, err = run_train(["--resume", str(run_copy), "--epochs", "2", "--quiet"], capsys)
        assert status == 1
        assert f"in use by another eqprop process (process {holder.pid})" in one_line_error(err)
        status, err = run_train([*TINY, "--epochs", "1", "--out", str(run_copy)], capsys)
        assert status == 1 and "in use by another eqprop process" in err
        assert snapshot(run_copy) == before
    finally:
        holder.kill()
        holder.wait(10)
    assert (run_copy / ".eqprop.lock").exists()  # the killed holder's lock file stays: it must not block
    assert main(["train", "--resume", str(run_copy), "--epochs", "2", "--quiet"]) == 0
    assert load_checkpoint(run_copy).epoch == 2


def test_a_checkpoint_of_another_architecture_is_refused(run_copy, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(["train", *TINY, "--epochs", "1", "--layers", "64-50-10", "--out", str(other)]) == 0
    (run_copy / "checkpoint.npz").write_bytes((other / "checkpoint.npz").read_bytes())
    resume_fails(run_copy, capsys, "config.json says layers 64-100-10, the checkpoint holds a 64-50-10 network")


def test_an_edited_setting_in_config_json_is_refused(run_copy, capsys):
    config = json.loads((run_copy / "config.json").read_text())
    config["learning_rates"] = [0.3, 0.1]
    (run_copy / "config.json").write_text(json.dumps(config))
    resume_fails(run_copy, capsys, "config.json says learning_rates = [0.3, 0.1]")


def test_metrics_of_another_run_are_refused(run_copy, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(["train", *TINY[:-3], "--seed", "5", "--epochs", "2", "--quiet", "--out", str(other)]) == 0
    (run_copy / "metrics.csv").write_bytes((other / "metrics.csv").read_bytes())
    resume_fails(run_copy, capsys, "metrics.csv holds 2 epochs")


def test_resume_records_the_data_folder(run_copy, capsys):
    assert main(["train", "--resume", str(run_copy), "--epochs", "2"]) == 0
    assert "data from sklearn.datasets.load_digits" in capsys.readouterr().out
    assert json.loads((run_copy / "config.json").read_text())["data_folder"] == "sklearn.datasets.load_digits"


# 4. damaged files
def _rewrite_checkpoint(path: Path, drop: str | None = None, meta_change=None) -> None:
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    if drop:
        del arrays[drop]
    if meta_change:
        meta = json.loads(arrays["meta_json"].tobytes())
        meta_change(meta)
        arrays["meta_json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _flip_a_byte_in_the_weights(path: Path) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(b"weight_0.npy") + 400  # inside the array's data
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "not a readable checkpoint"),
    "crc": (_flip_a_byte_in_the_weights, "damaged (BadZipFile"),
    "npy": (lambda p: np.save(open(p, "wb"), np.zeros(3)), "a single .npy array"),
    "empty": (lambda p: p.write_bytes(b""), "not a readable checkpoint"),
    "missing array": (lambda p: _rewrite_checkpoint(p, drop="weight_1"), "lacks the array weight_1"),
    "missing meta key": (lambda p: _rewrite_checkpoint(p, meta_change=lambda m: m.pop("rng_state")), "no RNG state"),
    "bad sizes": (lambda p: _rewrite_checkpoint(p, meta_change=lambda m: m["network"].update(sizes="64-100-10")),
                  "network sizes"),
    "bad config value": (lambda p: _rewrite_checkpoint(p, meta_change=lambda m: m["config"].update(free_steps="x")),
                         "free_steps"),
    "bad rng state": (lambda p: _rewrite_checkpoint(p, meta_change=lambda m: m.update(rng_state={"a": 1})),
                      "damaged metadata (seed, RNG state or history)"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_checkpoint_gives_one_line_and_changes_nothing(run_copy, capsys, damage):
    spoil, fragment = DAMAGE[damage]
    spoil(run_copy / "checkpoint.npz")
    line = resume_fails(run_copy, capsys, fragment)
    assert "checkpoint.npz" in line
    assert main(["evaluate", str(run_copy)]) == 1
    assert "checkpoint.npz" in one_line_error(capsys.readouterr().err)


CONFIG_DAMAGE = {
    "not json": ("{ this is not json", "not valid JSON"),
    "a list": ("[1, 2]", "JSON list, not an object"),
    "layers a string": ({"layers": "64-100-10"}, "layers is '64-100-10'"),
    "beta a string": ({"beta": "big"}, "beta is 'big'"),
    "missing dtype": ({"dtype": None}, "dtype is None"),
    "binary": (b"\xff\xfe\x00garbage", "not UTF-8 text"),
}


@pytest.mark.parametrize("damage", list(CONFIG_DAMAGE))
def test_a_damaged_config_json_gives_one_line_and_changes_nothing(run_copy, capsys, damage):
    change, fragment = CONFIG_DAMAGE[damage]
    path = run_copy / "config.json"
    if isinstance(change, dict):
        config = json.loads(path.read_text())
        config.update(change)
        path.write_text(json.dumps(config))
    elif isinstance(change, bytes):
        path.write_bytes(change)
    else:
        path.write_text(change)
    line = resume_fails(run_copy, capsys, fragment)
    assert "config.json" in line
    assert main(["evaluate", str(run_copy)]) == 1
    assert fragment in one_line_error(capsys.readouterr().err)


# 6. interrupts
def test_ctrl_c_during_start_up_says_there_is_nothing_to_resume(tmp_path, capsys, monkeypatch):
    import eqprop.datasets

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(eqprop.datasets, "load_dataset", interrupt)
    status, err = run_train([*TINY, "--epochs", "1", "--out", str(tmp_path / "r")], capsys)
    assert status == 130 and "Traceback" not in err
    assert "nothing to resume" in err and "--resume" not in err


def test_ctrl_c_before_the_first_checkpoint_does_not_suggest_resume(tmp_path, capsys, monkeypatch):
    def interrupt(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(eqprop.Trainer, "_train_epoch", interrupt)
    status, err = run_train([*TINY, "--epochs", "1", "--out", str(tmp_path / "r")], capsys)
    assert status == 130 and "Traceback" not in err
    assert "nothing to resume" in err and "--resume" not in err


def test_ctrl_c_during_the_final_evaluation_suggests_a_resume_that_works(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"

    def interrupt(self, *args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(eqprop.Trainer, "evaluate", interrupt)
        status, err = run_train([*TINY, "--epochs", "1", "--out", str(out)], capsys)
    assert status == 130 and "Traceback" not in err
    assert f"continue with: eqprop train --resume {out} (its checkpoint of epoch 1 is complete)" in err
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert (out / "summary.json").is_file()


# 7. orphaned temporary files
def test_orphaned_temporary_checkpoints_are_removed_on_the_next_start(run_copy):
    orphans = [run_copy / ".checkpoint.npz.k2j3h4.tmp", run_copy / ".metrics.csv.abc.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"half a checkpoint")
    keep = run_copy / "notes.tmp"
    keep.write_text("mine")
    assert main(["train", "--resume", str(run_copy), "--epochs", "2", "--quiet"]) == 0
    assert not any(orphan.exists() for orphan in orphans)
    assert keep.read_text() == "mine"


# 8. paths checked before training
def test_out_that_is_a_file_is_refused_before_training(tmp_path, capsys, monkeypatch):
    (tmp_path / "run.npz").write_bytes(b"x")
    monkeypatch.setattr(eqprop.Trainer, "fit", lambda *a, **k: pytest.fail("training started"))
    status, err = run_train([*TINY, "--epochs", "1", "--out", str(tmp_path / "run.npz")], capsys)
    assert status == 1 and "run.npz is a file, not a directory" in one_line_error(err)
    status, err = run_train([*TINY, "--epochs", "1", "--out", str(tmp_path / "run.npz" / "sub")], capsys)
    assert status == 1 and "is a file, not a directory" in one_line_error(err)


def test_empty_out_is_refused(capsys):
    status, err = run_train([*TINY, "--epochs", "1", "--out", ""], capsys)
    assert status == 1 and "--out is empty" in one_line_error(err)


def test_very_deep_out_gives_a_message_not_a_recursion_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, err = run_train([*TINY, "--epochs", "1", "--out", "d/" * 2100], capsys)
    assert status == 1 and "too long a path" in one_line_error(err)


def test_make_directory_creates_deep_trees_without_recursion(tmp_path, monkeypatch):
    from eqprop.rundir import make_directory

    monkeypatch.chdir(tmp_path)
    deep = Path(*["d"] * 1200)  # pathlib's mkdir(parents=True) recurses once per level
    try:
        assert make_directory(deep) and deep.is_dir()
        assert not make_directory(deep)
    finally:  # shutil.rmtree (pytest's clean-up) recurses too: remove the levels one by one
        for level in range(1200, 0, -1):
            if Path(*["d"] * level).is_dir():
                Path(*["d"] * level).rmdir()


@pytest.mark.parametrize("content", ["garbage\x00\x01\n", "epoch,train_error,val_error,mean_cost\n1,abc,,0.5\n",
                                     "epoch,train_error\n1,0.5\n", "epoch,train_error,val_error,mean_cost\n1,0.5\n"])
def test_plot_on_a_garbage_metrics_file_names_it(tmp_path, capsys, content):
    (tmp_path / "metrics.csv").write_text(content)
    assert main(["plot", str(tmp_path)]) == 1
    assert "metrics.csv" in one_line_error(capsys.readouterr().err)


# 9. memory
def test_a_network_that_cannot_fit_is_refused_with_the_figure(tmp_path, capsys):
    started = time.perf_counter()
    status, err = run_train(["--dataset", "digits", "--layers", "64-1000000000-10", "--lr", "0.1", "0.1",
                             "--epochs", "1", "--quiet", "--out", str(tmp_path / "r")], capsys)
    line = one_line_error(err)
    assert status == 1 and "this run needs about" in line and "TB" in line and "available" in line
    assert time.perf_counter() - started < 5 and not (tmp_path / "r").exists()


def test_a_late_memory_error_is_a_message(tmp_path, capsys, monkeypatch):
    def exhausted(*args, **kwargs):
        raise MemoryError("Unable to allocate 3.00 GiB for an array")

    monkeypatch.setattr(eqprop.Trainer, "fit", exhausted)
    status, err = run_train([*TINY, "--epochs", "1", "--out", str(tmp_path / "r")], capsys)
    line = one_line_error(err)
    assert status == 1 and "out of memory (Unable to allocate 3.00 GiB" in line


def test_memory_estimate_and_refusal():
    from eqprop._memory import check_training_memory, estimate_training_bytes

    parts = estimate_training_bytes([784, 500, 10], "float32", n_train=50_000, batch_size=20, persistent=True)
    assert parts["particles"] == 50_000 * 510 * 4 and parts["data"] == 50_000 * 784 * 4
    # the parameters, a checkpoint's copy, and the compiled loop's copies (hidden layer padded to 512
    # units, W_0's rows to 512 + 32 values), larger here than the float64 initialisation draw of W_0
    live = (784 * 500 + 500 * 10 + 510) * 4
    assert parts["parameters"] == 2 * live + (784 * 512 + 512 * 10 + 522 + 784 * 544) * 4 > 2 * live + 784 * 500 * 8
    with pytest.raises(MemoryError, match=r"needs about .* but only 1.0 MB is available"):
        check_training_memory([784, 500, 10], "float32", n_train=50_000, batch_size=20, persistent=True,
                              available=10**6)
    assert parts["optimizer"] == 0  # the in-place SGD update keeps nothing
    adam = estimate_training_bytes([784, 500, 10], "float32", n_train=50_000, batch_size=20, persistent=True,
                                   optimizer_arrays=3)  # gradient, two moments (and a checkpoint's copy of them)
    assert adam["optimizer"] == 5 * (784 * 500 + 500 * 10 + 510) * 4


# 11. negative numbers with an exponent
def test_beta_with_a_negative_exponent_form_parses(tmp_path, capsys):
    from eqprop.cli import build_parser

    assert build_parser().parse_args(["train", "--beta", "-1e308"]).beta == -1e308
    assert build_parser().parse_args(["train", "--beta", "-2.5E-3"]).beta == -2.5e-3
    status, err = run_train([*TINY, "--epochs", "1", "--beta", "-1e308", "--out", str(tmp_path / "r")], capsys)
    assert status == 1 and "beyond the float32 range" in one_line_error(err)


# --------------------------------------------------------------- 10. data folders
def _write_idx(path: Path, header: bytes, payload: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + payload)


def _synthetic_dataset(folder: Path, seed: int = 0) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_tds", Path(__file__).with_name("test_datasets.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.make_idx_dataset(folder, seed=seed)


def test_an_incomplete_data_dir_does_not_fall_back(tmp_path, monkeypatch):
    from eqprop.datasets import DatasetNotFoundError, load_dataset

    _synthetic_dataset(tmp_path / "env" / "mnist")  # a complete copy elsewhere must not be used
    monkeypatch.setenv("EQPROP_DATA", str(tmp_path / "env"))
    partial = tmp_path / "partial"
    _synthetic_dataset(partial)
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match="data_dir was given") as info:
        load_dataset("mnist", data_dir=partial, download=False)
    assert "missing t10k-labels-idx1-ubyte" in str(info.value) and str(tmp_path / "env") not in str(info.value)
    assert Path(load_dataset("mnist", download=False).source) == tmp_path / "env" / "mnist"  # without: env is used


def test_a_folder_holding_the_other_dataset_is_refused(tmp_path, monkeypatch):
    import hashlib
    import gzip

    from eqprop import datasets

    _synthetic_dataset(tmp_path / "data")
    content = gzip.decompress((tmp_path / "data" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    monkeypatch.setitem(datasets.LABEL_CHECKSUMS, "fashion-mnist",
                        {"t10k-labels-idx1-ubyte": hashlib.md5(content).hexdigest()})
    assert datasets.identify_dataset(tmp_path / "data") == "fashion-mnist"
    with pytest.raises(datasets.DatasetError, match="holds fashion-mnist, not mnist"):
        datasets.load_dataset("mnist", data_dir=tmp_path / "data", download=False)
    assert datasets.load_dataset("fashion-mnist", data_dir=tmp_path / "data", download=False).n_features == 6


def test_real_mnist_is_refused_as_fashion_mnist():
    from conftest import shared_data_dir

    from eqprop import datasets

    root = shared_data_dir()
    if root is None or not (root / "mnist").is_dir() or not (root / "fashion-mnist").is_dir():
        pytest.skip("no shared MNIST and Fashion-MNIST files (set EQPROP_DATA)")
    assert datasets.identify_dataset(root / "mnist") == "mnist"
    assert datasets.identify_dataset(root / "fashion-mnist") == "fashion-mnist"
    with pytest.raises(datasets.DatasetError, match="holds mnist, not fashion-mnist"):
        datasets.load_dataset("fashion-mnist", data_dir=root / "mnist", download=False)


# ------------------------------------------------------- 11. crafted IDX files
def test_idx_dimensions_whose_product_overflows_name_the_file(tmp_path):
    from eqprop.datasets import DatasetError, read_images

    path = tmp_path / "train-images-idx3-ubyte"
    # (2**32 - 1) cubed overflows int64
    _write_idx(path, bytes([0, 0, 8, 3]) + (b"\xff\xff\xff\xff" * 3), b"\x00" * 16)
    with pytest.raises(DatasetError, match=f"{path}: truncated IDX file"):
        read_images(path)
    # 2**31 * 2**31 * 4 = 2**64 wrapped round to 0 bytes of data: "cannot reshape" without a file name
    _write_idx(path, bytes([0, 0, 8, 3]) + (2**31).to_bytes(4, "big") * 2 + (4).to_bytes(4, "big"))
    with pytest.raises(DatasetError, match=f"{path}: truncated IDX file"):
        read_images(path)


def test_a_file_with_zero_images_names_the_file(tmp_path):
    from eqprop.datasets import DatasetError, load_dataset

    folder = tmp_path / "data"
    _synthetic_dataset(folder)
    images = folder / "t10k-images-idx3-ubyte.gz"
    images.unlink()
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    labels.unlink()
    _write_idx(folder / "t10k-images-idx3-ubyte", bytes([0, 0, 8, 3]) + (0).to_bytes(4, "big")
               + (2).to_bytes(4, "big") + (3).to_bytes(4, "big"))
    _write_idx(folder / "t10k-labels-idx1-ubyte", bytes([0, 0, 8, 1]) + (0).to_bytes(4, "big"))
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte holds no images"):
        load_dataset("mnist", data_dir=folder, download=False)
