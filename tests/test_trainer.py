"""Trainer: real training runs, determinism, resume exactness, divergence and bad input."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest
from conftest import one_hot, shared_data_dir

import eqprop
from eqprop.checkpoint import load_checkpoint
from eqprop.datasets import load_dataset
from eqprop.presets import PRESETS

SMALL = dict(beta=1.0, free_steps=10, nudged_steps=3, epsilon=0.5, learning_rates=(0.2, 0.1), batch_size=16)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def subset(digits):
    """300 digits: enough for a few real mini-batches, fast to train on."""
    return digits.x_train[:300], digits.y_train[:300]


def make_trainer(seed=0, sizes=(64, 20, 10), threads=1, **overrides):
    net = eqprop.EqPropNetwork(sizes, seed=seed, threads=threads)
    kwargs = dict(SMALL, seed=seed, threads=threads)
    kwargs.update(overrides)
    return eqprop.Trainer(net, **kwargs)


def parameters(net):
    return [a.copy() for a in (*net.weights, *net.biases)]


def assert_bitwise_equal(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ real runs
def test_digits_preset_reaches_under_10_percent_test_error(digits):
    preset = PRESETS["digits"]
    net = eqprop.EqPropNetwork(preset.sizes, seed=0, threads=1)  # batch 20 is too small to share
    trainer = eqprop.Trainer(net, **preset.trainer_kwargs(), seed=0)
    history = trainer.fit(digits.x_train, digits.y_train, epochs=preset.epochs, validation=(digits.x_val, digits.y_val))
    assert len(history) == preset.epochs
    test = trainer.evaluate(digits.x_test, digits.y_test)
    assert test.error < 0.10
    assert history[-1].val_error < 0.10
    assert history[-1].train_error < history[0].train_error
    assert history[-1].mean_cost < history[0].mean_cost


def test_mnist_1h_on_10k_examples_for_one_epoch_reaches_under_10_percent():
    data_dir = shared_data_dir()
    if data_dir is None or not (data_dir / "mnist").is_dir():
        pytest.skip("MNIST not found: set EQPROP_DATA to a folder holding mnist/")
    mnist = load_dataset("mnist", data_dir=data_dir, download=False)
    preset = PRESETS["mnist-1h"]
    net = eqprop.EqPropNetwork(preset.sizes, seed=0)
    trainer = eqprop.Trainer(net, **preset.trainer_kwargs(), seed=0)
    trainer.fit(mnist.x_train[:10_000], mnist.y_train[:10_000], epochs=1)
    assert trainer.evaluate(mnist.x_test, mnist.y_test).error < 0.10


# --------------------------------------------------------------- determinism
def test_same_seed_and_threads_give_identical_weights(subset):
    runs = []
    for _ in range(2):
        trainer = make_trainer(seed=3, threads=2)
        history = trainer.fit(*subset, epochs=2)
        runs.append((parameters(trainer.net), trainer.particles, history.column("train_error")))
    assert_bitwise_equal(runs[0][0], runs[1][0])
    assert_bitwise_equal(runs[0][1], runs[1][1])
    assert runs[0][2] == runs[1][2]


def test_the_seed_changes_the_run(subset):
    first, second = make_trainer(seed=1), make_trainer(seed=2)
    second.net.set_params(first.net.weights, first.net.biases)  # same start: only the trainer RNG differs
    first.fit(*subset, epochs=1)
    second.fit(*subset, epochs=1)
    assert not np.array_equal(first.net.weights[0], second.net.weights[0])


def test_random_sign_draws_negative_betas(subset):
    signed, fixed = make_trainer(seed=5), make_trainer(seed=5, random_sign=False)
    signed.fit(*subset, epochs=1)
    fixed.fit(*subset, epochs=1)
    assert not np.array_equal(signed.net.weights[0], fixed.net.weights[0])


# ------------------------------------------------------------ the algorithm
@pytest.mark.parametrize("persistent", [True, False])
def test_one_full_batch_epoch_is_one_train_step(subset, persistent):
    """batch_size = n: the epoch is one free phase from zeros and one update, as net.train_step does."""
    x, labels = subset
    net = eqprop.EqPropNetwork((64, 20, 10), dtype="float64", seed=0, threads=1)
    reference = eqprop.EqPropNetwork((64, 20, 10), dtype="float64", seed=0, threads=1)
    trainer = eqprop.Trainer(net, **dict(SMALL, batch_size=len(x), random_sign=False, persistent=persistent,
                                         seed=0, threads=1))
    history = trainer.fit(x, labels, epochs=1)
    free = reference.train_step(
        x, one_hot(labels, 10, np.float64), beta=SMALL["beta"], free_steps=SMALL["free_steps"],
        nudged_steps=SMALL["nudged_steps"], epsilon=SMALL["epsilon"], learning_rates=SMALL["learning_rates"],
    )
    for got, want in zip(parameters(net), parameters(reference)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)  # only the batch sum's order differs
    expected_error = np.mean(free[-1].argmax(axis=1) != labels)
    assert history[0].train_error == pytest.approx(expected_error)
    expected_cost = np.mean(0.5 * np.sum((free[-1] - one_hot(labels, 10, np.float64)) ** 2, axis=1))
    assert history[0].mean_cost == pytest.approx(expected_cost, rel=1e-10)
    if persistent:
        for got, want in zip(trainer.particles, free):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    else:
        assert trainer.particles is None


def test_persistent_particles_start_the_next_free_phase(subset):
    """Epoch 2 of a persistent run starts from epoch 1's fixed points, so it differs from a fresh start."""
    x, labels = subset
    runs = {}
    for persistent in (True, False):
        trainer = make_trainer(seed=4, persistent=persistent, free_steps=3)
        trainer.fit(x, labels, epochs=2)
        runs[persistent] = trainer
    assert runs[True].particles is not None and runs[False].particles is None
    assert len(runs[True].particles) == 2 and runs[True].particles[0].shape == (len(x), 20)
    assert np.hstack(runs[True].particles).any(axis=1).all()  # every example's particle was written
    # first epochs are identical (both start from zeros); the second differs only through persistence
    assert runs[True].history[0].train_error == runs[False].history[0].train_error
    assert not np.array_equal(runs[True].net.weights[0], runs[False].net.weights[0])


def test_symmetric_and_alternating_solver_train(subset):
    for options in (dict(symmetric=True), dict(solver="alternating", beta=0.5)):
        trainer = make_trainer(seed=0, **options)
        history = trainer.fit(*subset, epochs=2)
        assert history[-1].train_error < 0.9


def test_evaluate_is_a_free_relaxation_from_zeros(digits, subset):
    trainer = make_trainer(seed=0, eval_steps=7)
    trainer.fit(*subset, epochs=1)
    x, labels = digits.x_val, digits.y_val
    output = trainer.net.relax(x, steps=7, epsilon=SMALL["epsilon"])[-1]
    result = trainer.evaluate(x, labels)
    assert result.error == pytest.approx(np.mean(output.argmax(axis=1) != labels))
    assert result.mean_cost == pytest.approx(np.mean(trainer.net.cost([output], one_hot(labels, 10, np.float32))),
                                             rel=1e-5)
    assert make_trainer(free_steps=9).eval_steps == 9  # default: free_steps


def test_history_records_and_csv(subset, digits):
    trainer = make_trainer(seed=0)
    history = trainer.fit(*subset, epochs=2, validation=(digits.x_val, digits.y_val))
    trainer.fit(*subset, epochs=1)  # no validation: val_error None
    assert [r.epoch for r in history] == [1, 2, 3] and trainer.epoch == 3
    assert history[2].val_error is None and 0 <= history[0].val_error <= 1
    for record in history:
        assert 0 <= record.train_error <= 1 and record.mean_cost > 0
        assert record.wall_time > 0 and record.examples_per_second > 0
    rows = list(csv.DictReader(io.StringIO(history.to_csv())))
    assert list(rows[0]) == list(eqprop.History.columns)
    assert float(rows[1]["train_error"]) == history[1].train_error
    assert rows[2]["val_error"] == ""
    assert eqprop.History.from_rows(history.to_rows()).records == history.records


def test_callbacks_run_after_each_epoch_and_can_stop(subset):
    seen = []

    def stop_after_two(trainer, record):
        seen.append(record.epoch)
        trainer.stop_training = record.epoch >= 2

    history = make_trainer().fit(*subset, epochs=5, callbacks=[stop_after_two])
    assert seen == [1, 2] and len(history) == 2


def test_progress_bar_runs(subset, capsys):
    make_trainer().fit(*subset, epochs=1, progress=True)
    assert "epoch 1" in capsys.readouterr().err


# ------------------------------------------------------- checkpoints and resume
def test_resume_is_bitwise_identical(subset, digits, tmp_path):
    straight = make_trainer(seed=7, threads=2)
    straight.fit(*subset, epochs=2, validation=(digits.x_val, digits.y_val), checkpoint_dir=tmp_path / "straight")

    make_trainer(seed=7, threads=2).fit(*subset, epochs=1, validation=(digits.x_val, digits.y_val),
                                        checkpoint_dir=tmp_path / "split")
    resumed = eqprop.Trainer.resume(tmp_path / "split")
    assert resumed.epoch == 1 and resumed.config() == straight.config()
    resumed.fit(*subset, epochs=1, validation=(digits.x_val, digits.y_val), checkpoint_dir=tmp_path / "split")

    assert_bitwise_equal(parameters(straight.net), parameters(resumed.net))
    assert_bitwise_equal(straight.particles, resumed.particles)
    assert [r.train_error for r in straight.history] == [r.train_error for r in resumed.history]
    assert straight.rng.bit_generator.state == resumed.rng.bit_generator.state
    on_disk = load_checkpoint(tmp_path / "split")
    assert on_disk.epoch == 2
    assert_bitwise_equal(on_disk.weights, straight.net.weights)


def test_fit_resume_true_continues_from_the_checkpoint(subset, tmp_path):
    straight = make_trainer(seed=8, persistent=False)
    straight.fit(*subset, epochs=2)
    make_trainer(seed=8, persistent=False).fit(*subset, epochs=1, checkpoint_dir=tmp_path)
    fresh = make_trainer(seed=8, persistent=False)  # new weights and RNG: all must come from the checkpoint
    fresh.fit(*subset, epochs=1, checkpoint_dir=tmp_path, resume=True)
    assert fresh.epoch == 2
    assert_bitwise_equal(parameters(straight.net), parameters(fresh.net))


def test_resume_refuses_other_training_data(subset, digits, tmp_path):
    make_trainer(seed=0).fit(*subset, epochs=1, checkpoint_dir=tmp_path)
    trainer = eqprop.Trainer.resume(tmp_path)
    with pytest.raises(ValueError, match="particles"):
        trainer.fit(digits.x_train[:200], digits.y_train[:200], epochs=1)
    x, labels = subset
    with pytest.raises(ValueError, match="labels differ"):
        trainer.fit(x, np.roll(labels, 1), epochs=1)


def test_resume_warns_about_changed_hyperparameters(subset, tmp_path):
    make_trainer(seed=0).fit(*subset, epochs=1, checkpoint_dir=tmp_path)
    with pytest.warns(UserWarning, match="learning_rates"):
        make_trainer(seed=0, learning_rates=(0.1, 0.1)).load_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="64-30-10"):
        make_trainer(sizes=(64, 30, 10)).load_checkpoint(tmp_path)


# ---------------------------------------------------------------- divergence
def test_nan_weight_raises_training_diverged_and_keeps_the_checkpoint(subset, tmp_path):
    def poison(trainer, record):
        trainer.net.weights[0][3, 4] = np.nan  # after epoch 1's checkpoint was written

    trainer = make_trainer(seed=0)
    with pytest.raises(eqprop.TrainingDiverged, match=r"epoch 2, batch 1 of 19") as info:
        trainer.fit(*subset, epochs=3, checkpoint_dir=tmp_path, callbacks=[poison])
    assert info.value.epoch == 2 and info.value.batch == 1
    message = str(info.value)
    assert "learning rates" in message and "epsilon" in message and "epoch 1" in message
    assert isinstance(info.value, FloatingPointError)
    kept = load_checkpoint(tmp_path)
    assert kept.epoch == 1
    assert all(np.isfinite(w).all() for w in kept.weights)
    assert len(trainer.history) == 1


def test_updates_beyond_the_float_range_diverge(subset):
    """Clipped states saturate (1e38 only wrecks accuracy), but updates summing past float32's range are caught.

    (A single rate beyond the range, 1e39, is refused when the trainer is made: test_hardening.py.)
    """
    trainer = make_trainer(seed=0, learning_rates=(8e37, 8e37))
    for array in (*trainer.net.weights, *trainer.net.biases):  # finite, at the edge of the range
        array[...] = np.where(array >= 0, 3.4e38, -3.4e38)
    with pytest.raises(eqprop.TrainingDiverged, match=r"epoch 1, batch \d+") as info:
        trainer.fit(*subset, epochs=1)
    assert info.value.epoch == 1


def test_nan_before_training_is_a_value_error(subset):
    trainer = make_trainer()
    trainer.net.biases[0][0] = np.inf
    with pytest.raises(ValueError, match=r"net.biases\[0\] contains NaN or infinite"):
        trainer.fit(*subset, epochs=1)


# ---------------------------------------------------------------- bad input
BAD_CONSTRUCTOR = [
    (dict(beta=0.0), ValueError, "beta"),
    (dict(beta=float("nan")), ValueError, "beta"),
    (dict(free_steps=0), ValueError, "free_steps"),
    (dict(nudged_steps=1.5), TypeError, "nudged_steps"),
    (dict(epsilon=1.5), ValueError, "epsilon"),
    (dict(learning_rates=(0.1,)), ValueError, "learning_rates"),
    (dict(learning_rates=(0.1, -0.1)), ValueError, "learning_rates"),
    (dict(learning_rates=0.1), TypeError, "learning_rates"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(threads=0), ValueError, "threads"),
    (dict(solver="rk4"), ValueError, "solver"),
    (dict(persistent="yes"), TypeError, "persistent"),
    (dict(random_sign=1), TypeError, "random_sign"),
    (dict(eval_steps=0), ValueError, "eval_steps"),
    (dict(solver="alternating", beta=1.5), ValueError, "beta"),  # -beta <= -1 with random signs
]


@pytest.mark.parametrize("overrides, error, name", BAD_CONSTRUCTOR, ids=[str(c[0]) for c in BAD_CONSTRUCTOR])
def test_bad_constructor_arguments(overrides, error, name):
    with pytest.raises(error, match=name):
        make_trainer(**overrides)


def test_seed_must_be_a_non_negative_integer():
    net = eqprop.EqPropNetwork((64, 20, 10), seed=0)
    for seed in (-1, 1.5, "0"):
        with pytest.raises(TypeError, match="seed"):
            eqprop.Trainer(net, **SMALL, seed=seed)


def test_net_must_be_a_network():
    with pytest.raises(TypeError, match="net must be an EqPropNetwork"):
        eqprop.Trainer("net", **SMALL)


def _bad_fit_cases(x, labels):
    return [
        (dict(labels=np.where(labels == 0, 10, labels)), ValueError, r"labels must be class indices in 0\.\.9"),
        (dict(labels=np.where(labels == 0, -1, labels)), ValueError, "labels must be class indices"),
        (dict(labels=labels[:-1]), ValueError, "labels has 299 entries but x has 300"),
        (dict(labels=labels.astype(float)), TypeError, "labels must hold integer"),
        (dict(labels=labels[:, None]), ValueError, "labels must be 1-D"),
        (dict(x=x[:, :63]), ValueError, "x has 63 columns; the network expects 64"),
        (dict(x=x[0]), ValueError, "x must be 2-D"),
        (dict(x=np.where(x > 0.5, np.nan, x)), ValueError, "x contains NaN"),
        (dict(x=x[:0], labels=labels[:0]), ValueError, "x holds no examples"),
        (dict(epochs=0), ValueError, "epochs must be at least 1"),
        (dict(epochs=2.0), TypeError, "epochs must be an integer"),
        (dict(validation=x), TypeError, "validation must be a pair"),
        (dict(validation=(x[:, :10], labels)), ValueError, "validation x has 10 columns"),
        (dict(validation=(x, labels + 20)), ValueError, "validation labels must be class indices"),
        (dict(callbacks=[print, 3]), TypeError, "callbacks"),
        (dict(callbacks=print), TypeError, "callbacks"),
        (dict(progress="yes"), TypeError, "progress"),
        (dict(resume=True), ValueError, "resume=True needs checkpoint_dir"),
    ]


@pytest.mark.parametrize("case", range(18))
def test_bad_fit_arguments_fail_before_training(subset, case):
    x, labels = subset
    overrides, error, message = _bad_fit_cases(x, labels)[case]
    arguments = dict(x=x, labels=labels, epochs=1)
    arguments.update(overrides)
    trainer = make_trainer()
    before = parameters(trainer.net)
    with pytest.raises(error, match=message):
        trainer.fit(arguments.pop("x"), arguments.pop("labels"), **arguments)
    assert_bitwise_equal(before, parameters(trainer.net))
    assert trainer.epoch == 0 and trainer.particles is None


def test_resume_without_a_checkpoint(subset, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        make_trainer().fit(*subset, epochs=1, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(FileNotFoundError):
        eqprop.Trainer.resume(tmp_path / "missing")


def test_checkpoint_dir_must_not_be_a_file(subset, tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(ValueError, match="checkpoint_dir must be a directory"):
        make_trainer().fit(*subset, epochs=1, checkpoint_dir=path)


def test_inputs_outside_unit_interval_are_clipped_like_the_network_does(subset):
    x, labels = subset
    scaled = make_trainer(seed=0)
    scaled.fit(x * 3 - 1, labels, epochs=1)
    clipped = make_trainer(seed=0)
    clipped.fit(np.clip(x * 3 - 1, 0, 1), labels, epochs=1)
    assert_bitwise_equal(parameters(scaled.net), parameters(clipped.net))
    assert math.isfinite(scaled.history[0].mean_cost)
