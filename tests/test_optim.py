"""Optimizers and learning-rate schedules in training: each schedule's rates, the Trainer's steps
against the reference optimizer (tests/reference.py), bad settings, and checkpoints that resume bit
for bit (the compiled step itself: test_optimizer_step.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import reference
from conftest import one_hot

import eqprop
from eqprop import checkpoint as ckpt
from eqprop.datasets import load_dataset
from eqprop.optim import OptimizerState, resolve_optimizer, resolve_schedule


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


# ---------------------------------------------------------------- schedules
COSINE = [1.0, 0.2 + 0.8 * (1 + math.sqrt(0.5)) / 2, 0.6, 0.2 + 0.8 * (1 - math.sqrt(0.5)) / 2, 0.2, 0.2, 0.2]
SCHEDULE_FACTORS = [
    (dict(schedule="constant"), [1.0] * 7),
    (dict(schedule="cosine", epochs=4, floor=0.2), COSINE),  # 4 epochs: 1 ... then the floor from epoch 5 on
    (dict(schedule="cosine", epochs=2), [1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0]),
    (dict(schedule="exponential", gamma=0.5), [1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625]),
    (dict(schedule="step", step_size=3), [1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01]),
    (dict(schedule="step", step_size=2, gamma=0.5), [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125]),
]


@pytest.mark.parametrize("settings, factors", SCHEDULE_FACTORS, ids=[str(s) for s, _ in SCHEDULE_FACTORS])
def test_schedule_factor_of_each_epoch(settings, factors):
    schedule = resolve_schedule(**settings)
    assert [schedule.factor(epoch) for epoch in range(1, 8)] == pytest.approx(factors, rel=1e-12, abs=1e-15)


def test_trainer_reports_the_rates_of_each_epoch():
    net = eqprop.EqPropNetwork((64, 12, 10), seed=0)
    trainer = eqprop.Trainer(net, beta=1.0, free_steps=2, nudged_steps=2, epsilon=0.5, learning_rates=(0.2, 0.1),
                             batch_size=20, schedule="step", schedule_step_size=1, schedule_gamma=0.5,
                             bias_learning_rates=(0.4, 0.0))
    assert trainer.epoch_learning_rates() == ((0.2, 0.1), (0.4, 0.0))
    weights, biases = trainer.epoch_learning_rates(3)
    assert weights == pytest.approx((0.05, 0.025)) and biases == pytest.approx((0.1, 0.0))


# ------------------------------------------------------- the Trainer's steps
def full_batch_trainer(dtype, seed=0, **settings):
    """Every epoch is one mini-batch (the whole set) from zeros with +beta: one EP gradient and one step."""
    net = eqprop.EqPropNetwork((64, 12, 10), dtype=dtype, seed=seed, threads=1)
    return eqprop.Trainer(net, beta=0.5, free_steps=12, nudged_steps=4, epsilon=0.5, learning_rates=(0.3, 0.1),
                          batch_size=10_000, persistent=False, random_sign=False, seed=seed, threads=1, **settings)


TRAINER_CASES = [
    ("sgd", dict(weight_decay=(0.02, 0.0)), "step"),
    ("sgd", dict(bias_learning_rates=(0.05, 0.6)), "cosine"),
    ("momentum", dict(momentum=0.8, weight_decay=(0.01, 0.05)), "exponential"),
    ("nesterov", dict(momentum=0.7), "cosine"),
    ("adam", dict(weight_decay=(0.0, 0.01)), "step"),
    ("adam", dict(betas=(0.8, 0.95), eps=1e-6, bias_learning_rates=(0.0, 0.2)), "constant"),
]
SCHEDULE_SETTINGS = {
    "constant": ({}, [1.0, 1.0, 1.0, 1.0]),
    "step": (dict(schedule="step", schedule_step_size=2, schedule_gamma=0.5), [1.0, 1.0, 0.5, 0.5]),
    "cosine": (dict(schedule="cosine", schedule_epochs=4, schedule_floor=0.1),
               [0.1 + 0.9 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]),
    "exponential": (dict(schedule="exponential", schedule_gamma=0.7), [0.7**e for e in range(4)]),
}


@pytest.mark.parametrize("name, settings, schedule", TRAINER_CASES, ids=[f"{n}-{s}-{c}" for n, s, c in TRAINER_CASES])
def test_trainer_steps_match_the_reference_optimizer(digits, dtype, name, settings, schedule):
    """Four epochs of the Trainer = the library's EP gradient fed to the NumPy reference optimizer.

    The gradients are those of the same mini-batches (the trainer's shuffle is replayed), so this checks
    what the trainer does with them: rates per epoch and per layer, decay per layer, the state over steps.
    """
    x, labels = digits.x_train[:60].astype(dtype), digits.y_train[:60]
    schedule_settings, factors = SCHEDULE_SETTINGS[schedule]
    trainer = full_batch_trainer(dtype, optimizer=name, **settings, **schedule_settings)
    start = [a.astype(np.float64) for a in (*trainer.net.weights, *trainer.net.biases)]
    trainer.fit(x, labels, epochs=4)

    shadow = eqprop.EqPropNetwork((64, 12, 10), dtype=dtype, threads=1)  # evaluates the gradients
    rng = np.random.default_rng(0)
    decay = settings.get("weight_decay", (0.0, 0.0))
    bias_rates = settings.get("bias_learning_rates", (0.3, 0.1))
    optimizer = {key: value for key, value in settings.items() if key in ("momentum", "betas", "eps")}
    rates = [0.3, 0.1, *bias_rates]
    decays = [*decay, 0.0, 0.0]  # biases are not decayed
    params = start
    history = [[] for _ in params]
    for epoch in range(4):
        order = rng.permutation(len(x))
        shadow.set_params([p.astype(dtype) for p in params[:2]], [p.astype(dtype) for p in params[2:]])
        grads_w, grads_b = shadow.ep_gradients(x[order], one_hot(labels[order], 10, dtype), beta=0.5, free_steps=12,
                                               nudged_steps=4, epsilon=0.5)
        for k, grad in enumerate((*grads_w, *grads_b)):
            history[k].append(grad)
        params = [reference.optimizer_steps(name, start[k], history[k], [r * rates[k] for r in factors[:epoch + 1]],
                                            weight_decay=decays[k], **optimizer) for k in range(len(start))]
    got = [*trainer.net.weights, *trainer.net.biases]
    for k, (value, want) in enumerate(zip(got, params)):
        assert np.abs(want - start[k]).max() > 1e-4 or rates[k] == 0.0
        np.testing.assert_allclose(value, want, rtol=0, atol=1e-10 if dtype == np.float64 else 2e-5)
    assert trainer.optimizer_state.step == 4


def test_default_sgd_stays_in_the_compiled_in_place_update(digits, monkeypatch):
    """Plain SGD without decay or bias rates never takes the gradient route, and passes the rates unchanged."""
    from eqprop.step import StepEngine

    seen = []

    def spy(name):
        original = getattr(StepEngine, name)

        def spying(self, *args, rates, **kwargs):
            seen.append(rates.copy())
            return original(self, *args, rates=rates, **kwargs)
        return spying

    def forbidden(*args, **kwargs):
        raise AssertionError("the default SGD must use the in-place update")

    for name in ("update", "train_batches"):  # the Python loop's, the compiled epoch loop's
        monkeypatch.setattr(StepEngine, name, spy(name))
    monkeypatch.setattr(StepEngine, "optimizer_update", forbidden)
    for compiled in (True, False):
        seen.clear()
        trainer = full_batch_trainer(np.float32, optimizer="sgd", schedule="constant")
        trainer._compiled_epochs = compiled
        trainer.fit(digits.x_train[:40], digits.y_train[:40], epochs=2)
        assert len(seen) == 2 and all(r.tolist() == [0.3, 0.1] for r in seen)


@pytest.mark.parametrize("schedule", ["cosine", "exponential"])
def test_sgd_schedule_is_the_train_step_with_the_epochs_rates(digits, schedule):
    """In-place SGD with a schedule: epoch e is net.train_step with rates lr * f(e), bit for bit."""
    x, labels = digits.x_train[:50], digits.y_train[:50]
    settings, factors = SCHEDULE_SETTINGS[schedule]
    trainer = full_batch_trainer(np.float32, **settings)
    reference_net = eqprop.EqPropNetwork((64, 12, 10), seed=0, threads=1)
    trainer.fit(x, labels, epochs=4)
    rng = np.random.default_rng(0)
    for factor in factors:
        order = rng.permutation(len(x))
        reference_net.train_step(x[order], one_hot(labels[order], 10, np.float32), beta=0.5, free_steps=12,
                                 nudged_steps=4, epsilon=0.5, learning_rates=np.array([0.3, 0.1]) * factor)
    for got, want in zip((*trainer.net.weights, *trainer.net.biases), (*reference_net.weights, *reference_net.biases)):
        np.testing.assert_array_equal(got, want)


def test_weight_decay_shrinks_only_the_decayed_layer(digits):
    """Decay on W_1 only: W_0 and the biases follow the undecayed run exactly, W_1 differs."""
    x, labels = digits.x_train[:40], digits.y_train[:40]
    plain = full_batch_trainer(np.float64, optimizer="momentum")
    decayed = full_batch_trainer(np.float64, optimizer="momentum", weight_decay=(0.0, 0.5))
    plain.fit(x, labels, epochs=1)  # one step: the gradient is the same for both
    decayed.fit(x, labels, epochs=1)
    np.testing.assert_array_equal(plain.net.weights[0], decayed.net.weights[0])
    for a, b in zip(plain.net.biases, decayed.net.biases):
        np.testing.assert_array_equal(a, b)
    start = full_batch_trainer(np.float64).net.weights[1]
    np.testing.assert_allclose(decayed.net.weights[1] - plain.net.weights[1], -0.1 * 0.5 * start, rtol=1e-10)


@pytest.mark.parametrize("name", ["momentum", "nesterov", "adam"])
def test_every_optimizer_trains(digits, name):
    rates = (0.01, 0.003) if name == "adam" else (0.1, 0.05)
    net = eqprop.EqPropNetwork((64, 40, 10), seed=0, threads=1)
    trainer = eqprop.Trainer(net, beta=1.0, free_steps=10, nudged_steps=3, epsilon=0.5, learning_rates=rates,
                             batch_size=20, seed=0, threads=1, optimizer=name, schedule="cosine", schedule_epochs=4)
    history = trainer.fit(digits.x_train[:400], digits.y_train[:400], epochs=4)
    assert history[-1].train_error < 0.5 * history[0].train_error


# --------------------------------------------------------------- bad settings
SMALL = dict(beta=1.0, free_steps=3, nudged_steps=2, epsilon=0.5, learning_rates=(0.2, 0.1), batch_size=16)
BAD_SETTINGS = [
    (dict(optimizer="rmsprop"), ValueError, "optimizer must be one of sgd, momentum, nesterov, adam"),
    (dict(optimizer=None), ValueError, "optimizer must be one of"),
    (dict(momentum=0.9), ValueError, "momentum applies only to the optimizers 'momentum' and 'nesterov'"),
    (dict(optimizer="adam", momentum=0.9), ValueError, "momentum applies only"),
    (dict(optimizer="momentum", momentum=1.0), ValueError, r"momentum must be in \[0, 1\)"),
    (dict(optimizer="momentum", momentum=-0.1), ValueError, "momentum must be in"),
    (dict(optimizer="nesterov", momentum=0.0), ValueError, r"momentum must be in \(0, 1\) for 'nesterov'"),
    (dict(optimizer="momentum", momentum="0.9"), TypeError, "momentum must be a real number"),
    (dict(optimizer="momentum", momentum=float("nan")), ValueError, "momentum must be finite"),
    (dict(betas=(0.9, 0.999)), ValueError, "betas applies only to the optimizer 'adam'"),
    (dict(optimizer="adam", betas=(0.9,)), TypeError, r"betas must be a pair"),
    (dict(optimizer="adam", betas=0.9), TypeError, r"betas must be a pair"),
    (dict(optimizer="adam", betas=(0.9, 1.0)), ValueError, r"betas must each be in \[0, 1\)"),
    (dict(optimizer="adam", eps=0.0), ValueError, "eps must be positive"),
    (dict(optimizer="momentum", eps=1e-8), ValueError, "eps applies only"),
    (dict(weight_decay=-1e-4), ValueError, "weight_decay must be non-negative"),
    (dict(weight_decay=(0.1, 0.1, 0.1)), ValueError, r"weight_decay needs one value per weight matrix \(2\); got 3"),
    (dict(weight_decay="0.1"), TypeError, "weight_decay must be a number or a sequence"),
    (dict(weight_decay=(0.1, float("inf"))), ValueError, r"weight_decay\[1\] must be finite"),
    (dict(bias_learning_rates=(0.1,)), ValueError, "bias_learning_rates needs one value per weight matrix"),
    (dict(bias_learning_rates=0.1), TypeError, "bias_learning_rates must be a sequence"),
    (dict(bias_learning_rates=(0.1, -0.1)), ValueError, "bias_learning_rates must be non-negative"),
    (dict(bias_learning_rates=(0.1, 1e39)), ValueError, r"bias_learning_rates\[1\] / beta"),
    (dict(schedule="linear"), ValueError, "schedule must be one of constant, cosine, exponential, step"),
    (dict(schedule="cosine"), ValueError, "schedule 'cosine' needs schedule_epochs"),
    (dict(schedule="cosine", schedule_epochs=0), ValueError, "schedule_epochs must be a positive integer"),
    (dict(schedule="cosine", schedule_epochs=2.0), TypeError, "schedule_epochs must be an integer"),
    (dict(schedule="cosine", schedule_epochs=5, schedule_floor=1.5), ValueError, r"schedule_floor must be in \[0, 1\]"),
    (dict(schedule="exponential"), ValueError, "schedule 'exponential' needs schedule_gamma"),
    (dict(schedule="exponential", schedule_gamma=0.0), ValueError, r"schedule_gamma must be in \(0, 1\]"),
    (dict(schedule="exponential", schedule_gamma=1.5), ValueError, r"schedule_gamma must be in \(0, 1\]"),
    (dict(schedule="step", schedule_gamma=0.5), ValueError, "schedule 'step' needs schedule_step_size"),
    (dict(schedule="step", schedule_step_size=True), TypeError, "schedule_step_size must be an integer"),
    (dict(schedule_gamma=0.5), ValueError, "schedule_gamma applies only to the schedules 'exponential' and 'step'"),
    (dict(schedule="step", schedule_step_size=2, schedule_epochs=3), ValueError, "schedule_epochs applies only"),
    (dict(schedule="exponential", schedule_gamma=0.5, schedule_floor=0.1), ValueError, "schedule_floor applies only"),
]


@pytest.mark.parametrize("settings, error, message", BAD_SETTINGS, ids=[str(s) for s, _, _ in BAD_SETTINGS])
def test_bad_optimizer_and_schedule_settings_name_the_argument(settings, error, message):
    net = eqprop.EqPropNetwork((64, 12, 10), seed=0)
    with pytest.raises(error, match=message):
        eqprop.Trainer(net, **SMALL, **settings)


def test_settings_changed_after_construction_fail_before_training(digits):
    net = eqprop.EqPropNetwork((64, 12, 10), seed=0, threads=1)
    trainer = eqprop.Trainer(net, **SMALL, optimizer="adam")
    before = [a.copy() for a in (*net.weights, *net.biases)]
    trainer.betas = (0.9, 2.0)
    with pytest.raises(ValueError, match="betas must each be in"):
        trainer.fit(digits.x_train[:40], digits.y_train[:40], epochs=1)
    for a, b in zip(before, (*net.weights, *net.biases)):
        np.testing.assert_array_equal(a, b)
    assert trainer.epoch == 0 and trainer.optimizer_state.step == 0


def test_changing_the_optimizer_starts_a_fresh_state(digits):
    net = eqprop.EqPropNetwork((64, 12, 10), seed=0, threads=1)
    trainer = eqprop.Trainer(net, **SMALL, optimizer="momentum", seed=0)
    trainer.fit(digits.x_train[:40], digits.y_train[:40], epochs=1)
    assert trainer.optimizer_state.step == 3 and trainer.optimizer_state.buffers["momentum_buffer"][0][0].any()
    trainer.optimizer, trainer.momentum = "adam", None
    trainer.fit(digits.x_train[:40], digits.y_train[:40], epochs=1)
    assert trainer.optimizer_state.optimizer == "adam" and trainer.optimizer_state.step == 3
    trainer.reset_optimizer()
    assert trainer.optimizer_state.step == 0 and not trainer.optimizer_state.buffers["exp_avg"][0][0].any()


def test_resolved_settings_fill_in_pytorchs_defaults():
    assert resolve_optimizer("adam", n_matrices=2).config() == {
        "optimizer": "adam", "momentum": None, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": None,
        "bias_learning_rates": None}
    settings = resolve_optimizer("nesterov", weight_decay=0.1, n_matrices=3)
    assert settings.momentum == 0.9 and settings.weight_decay == (0.1, 0.1, 0.1) and not settings.in_core
    assert resolve_optimizer("sgd", weight_decay=0.0, n_matrices=2).in_core
    assert resolve_schedule("step", step_size=4).gamma == 0.1
    assert resolve_schedule("cosine", epochs=3).floor == 0.0


# ------------------------------------------------------ checkpoints and resume
def conv_layers():
    return [(1, 8, 8), eqprop.Conv2d(4, 3, pool="max"), 10]


RESUME_CASES = [
    ("momentum", "dense", dict(momentum=0.8, weight_decay=(1e-3, 0.0)),
     dict(schedule="cosine", schedule_epochs=3, schedule_floor=0.1)),
    ("adam", "dense", dict(bias_learning_rates=(0.002, 0.001)), dict(schedule="step", schedule_step_size=1)),
    ("momentum", "conv", dict(), dict(schedule="exponential", schedule_gamma=0.8)),
    ("adam", "conv", dict(weight_decay=1e-3), dict(schedule="cosine", schedule_epochs=3)),
    ("nesterov", "dense", dict(), dict(schedule="step", schedule_step_size=2, schedule_gamma=0.5)),
]


def resume_trainer(name, kind, dtype, settings, schedule, threads=1):
    layers = conv_layers() if kind == "conv" else (64, 16, 10)
    net = eqprop.EqPropNetwork(layers, dtype=dtype, seed=3, threads=threads)
    rates = (0.003, 0.001) if name == "adam" else (0.1, 0.05)
    return eqprop.Trainer(net, beta=1.0, free_steps=6, nudged_steps=3, epsilon=0.5, learning_rates=rates,
                          batch_size=16, seed=3, threads=threads, optimizer=name, **settings, **schedule)


def state_arrays(trainer):
    return [a for w, b in trainer.optimizer_state.buffers.values() for a in (*w, *b)]


@pytest.mark.parametrize("name, kind, settings, schedule", RESUME_CASES,
                         ids=[f"{n}-{k}-{s['schedule']}" for n, k, _, s in RESUME_CASES])
def test_interrupted_run_resumes_bitwise(digits, tmp_path, dtype, name, kind, settings, schedule):
    x, labels = digits.x_train[:96], digits.y_train[:96]
    threads = 2 if kind == "dense" else 1
    straight = resume_trainer(name, kind, dtype, settings, schedule, threads)
    straight.fit(x, labels, epochs=3)

    resume_trainer(name, kind, dtype, settings, schedule, threads).fit(x, labels, epochs=1, checkpoint_dir=tmp_path)
    saved = ckpt.load_checkpoint(tmp_path)
    assert saved.meta["optimizer_state"]["step"] == 6 and saved.meta["schedule_state"]["position"] == 1
    resumed = eqprop.Trainer.resume(tmp_path)
    assert resumed.config() == straight.config()
    resumed.fit(x, labels, epochs=2, checkpoint_dir=tmp_path)

    for a, b in zip((*straight.net.weights, *straight.net.biases), (*resumed.net.weights, *resumed.net.biases)):
        np.testing.assert_array_equal(a, b)
    assert straight.optimizer_state.step == resumed.optimizer_state.step == 18
    for a, b in zip(state_arrays(straight), state_arrays(resumed)):
        assert a.any()
        np.testing.assert_array_equal(a, b)
    assert ckpt.load_checkpoint(tmp_path).meta["optimizer_state"]["step"] == 18


def test_resume_without_the_optimizer_state_would_differ(digits, tmp_path):
    """The saved momentum buffers are what makes the resume exact: zeroing them changes the continuation."""
    x, labels = digits.x_train[:96], digits.y_train[:96]
    settings = dict(momentum=0.8)
    schedule = dict(schedule="constant")
    straight = resume_trainer("momentum", "dense", np.float32, settings, schedule)
    straight.fit(x, labels, epochs=2)
    resume_trainer("momentum", "dense", np.float32, settings, schedule).fit(x, labels, epochs=1,
                                                                            checkpoint_dir=tmp_path)
    forgetful = eqprop.Trainer.resume(tmp_path)
    forgetful.reset_optimizer()
    forgetful.fit(x, labels, epochs=1)
    assert not np.array_equal(forgetful.net.weights[0], straight.net.weights[0])


def test_checkpoint_holds_the_optimizer_state(digits, tmp_path):
    x, labels = digits.x_train[:48], digits.y_train[:48]
    trainer = resume_trainer("adam", "dense", np.float64, {}, dict(schedule="exponential", schedule_gamma=0.5))
    trainer.fit(x, labels, epochs=2, checkpoint_dir=tmp_path)
    saved = ckpt.load_checkpoint(tmp_path)
    assert saved.meta["format_version"] == 2
    assert saved.meta["optimizer_state"] == {"optimizer": "adam", "step": 6, "buffers": ["exp_avg", "exp_avg_sq"]}
    assert saved.meta["schedule_state"] == {"schedule": "exponential", "position": 2, "next_factor": 0.25}
    assert saved.config["optimizer"] == "adam" and saved.config["betas"] == [0.9, 0.999]
    for name in ("exp_avg", "exp_avg_sq"):
        for got, want in zip((*saved.optimizer_buffers[name][0], *saved.optimizer_buffers[name][1]),
                             (*trainer.optimizer_state.buffers[name][0], *trainer.optimizer_state.buffers[name][1])):
            assert got.dtype == np.float64
            np.testing.assert_array_equal(got, want)


def _rewrite(path, meta=None, drop=(), change=None):
    """Rewrite a checkpoint with edited metadata or arrays (to make damaged ones)."""
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    document = json.loads(arrays["meta_json"].tobytes())
    if meta is not None:
        meta(document)
    arrays["meta_json"] = np.frombuffer(json.dumps(document).encode(), dtype=np.uint8)
    for name in drop:
        del arrays[name]
    for name, value in (change or {}).items():
        arrays[name] = value
    np.savez(path, **arrays)


DAMAGED = [
    ("missing array", dict(drop=["optimizer_momentum_buffer_weight_1"]), "lacks the array optimizer_momentum_buffer"),
    ("wrong shape", dict(change={"optimizer_momentum_buffer_bias_0": np.zeros(3, np.float32)}),
     "array optimizer_momentum_buffer_bias_0 is float32 of shape"),
    ("wrong dtype", dict(change={"optimizer_momentum_buffer_bias_0": np.zeros(16)}), "float64 of shape"),
    ("NaN", dict(change={"optimizer_momentum_buffer_bias_1": np.full(10, np.nan, np.float32)}),
     "optimizer_momentum_buffer_bias_1 contains NaN"),
    ("no state", dict(meta=lambda m: m.pop("optimizer_state")), "optimizer arrays without"),
    ("other optimizer", dict(meta=lambda m: m["optimizer_state"].update(optimizer="adam", buffers=["exp_avg",
                                                                                                    "exp_avg_sq"])),
     "lacks the array optimizer_exp_avg"),
    ("bad step", dict(meta=lambda m: m["optimizer_state"].update(step=-1)), "step count -1"),
    ("bad buffers", dict(meta=lambda m: m["optimizer_state"].update(buffers=["velocity"])), "keeps the state"),
    ("unknown optimizer", dict(meta=lambda m: m["optimizer_state"].update(optimizer="lion")), "does not name"),
    ("config mismatch", dict(meta=lambda m: m["config"].update(optimizer="nesterov")),
     "config says optimizer 'nesterov' but the optimizer state is 'momentum'"),
    ("schedule position", dict(meta=lambda m: m["schedule_state"].update(position=5)), "schedule's position 5"),
    ("schedule name", dict(meta=lambda m: m["schedule_state"].update(schedule="step")), "schedule state is of"),
]


@pytest.mark.parametrize("what, edit, message", DAMAGED, ids=[d[0] for d in DAMAGED])
def test_damaged_optimizer_state_is_refused(digits, tmp_path, what, edit, message):
    trainer = resume_trainer("momentum", "dense", np.float32, {}, dict(schedule="exponential", schedule_gamma=0.5))
    trainer.fit(digits.x_train[:32], digits.y_train[:32], epochs=1, checkpoint_dir=tmp_path)
    _rewrite(tmp_path / ckpt.CHECKPOINT_NAME, **edit)
    with pytest.raises(ckpt.CheckpointError, match=message):
        eqprop.Trainer.resume(tmp_path)


def test_a_stateful_config_without_state_is_refused(digits, tmp_path):
    trainer = resume_trainer("momentum", "dense", np.float32, {}, {})
    trainer.fit(digits.x_train[:32], digits.y_train[:32], epochs=1, checkpoint_dir=tmp_path)
    drop = [f"optimizer_momentum_buffer_{kind}_{k}" for kind in ("weight", "bias") for k in range(2)]
    _rewrite(tmp_path / ckpt.CHECKPOINT_NAME, meta=lambda m: m.pop("optimizer_state"), drop=drop)
    with pytest.raises(ckpt.CheckpointError, match="config says optimizer 'momentum' but the checkpoint holds no"):
        eqprop.Trainer.resume(tmp_path)


def test_format_1_checkpoints_resume_as_plain_sgd(digits, tmp_path):
    """A checkpoint written before the optimizers (format 1, no optimizer keys) still resumes, exactly."""
    x, labels = digits.x_train[:64], digits.y_train[:64]
    straight = resume_trainer("sgd", "dense", np.float32, {}, {})
    straight.fit(x, labels, epochs=2)
    resume_trainer("sgd", "dense", np.float32, {}, {}).fit(x, labels, epochs=1, checkpoint_dir=tmp_path)

    def as_format_1(meta):
        meta["format_version"] = 1
        for key in ckpt.OPTIONAL_CONFIG_KEYS:
            meta["config"].pop(key)
        meta.pop("optimizer_state")
        meta.pop("schedule_state")

    _rewrite(tmp_path / ckpt.CHECKPOINT_NAME, meta=as_format_1)
    resumed = eqprop.Trainer.resume(tmp_path)
    assert resumed.optimizer == "sgd" and resumed.schedule == "constant"
    resumed.fit(x, labels, epochs=1)
    for a, b in zip((*straight.net.weights, *straight.net.biases), (*resumed.net.weights, *resumed.net.biases)):
        np.testing.assert_array_equal(a, b)
    _rewrite(tmp_path / ckpt.CHECKPOINT_NAME, meta=lambda m: m.update(format_version=3))
    with pytest.raises(ckpt.CheckpointError, match="format 3; this eqprop reads formats 1, 2"):
        ckpt.load_checkpoint(tmp_path)


def test_loading_another_optimizers_checkpoint_warns_and_starts_fresh(digits, tmp_path):
    resume_trainer("adam", "dense", np.float32, {}, {}).fit(digits.x_train[:32], digits.y_train[:32], epochs=1,
                                                           checkpoint_dir=tmp_path)
    other = resume_trainer("momentum", "dense", np.float32, {}, {})
    with pytest.warns(UserWarning, match="momentum, optimizer"):
        other.load_checkpoint(tmp_path)
    assert other.optimizer_state.optimizer == "momentum" and other.optimizer_state.step == 0


def test_optimizer_state_fits_only_its_parameters():
    net = eqprop.EqPropNetwork((6, 4, 3), seed=0)
    state = OptimizerState("adam", net.weights, net.biases)
    assert state.fits("adam", net.weights, net.biases) and not state.fits("momentum", net.weights, net.biases)
    other = eqprop.EqPropNetwork((6, 5, 3), seed=0)
    assert not state.fits("adam", other.weights, other.biases)
    with pytest.raises(ValueError, match="needs"):
        state.load(3, {"momentum_buffer": (net.weights, net.biases)})
