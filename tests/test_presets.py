"""Presets: the paper's values, and the factor 2 between the original code's convention and ours."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import one_hot

import eqprop
from eqprop.layers import layers_from_json, parse_layers
from eqprop.presets import PRESETS, get_preset

PAPER = {
    # name: (sizes, free, nudged, beta, learning rates, epochs, original beta, original rates)
    "mnist-1h": ((784, 500, 10), 20, 4, 1.0, (0.2, 0.1), 25, 0.5, (0.1, 0.05)),
    "mnist-2h": ((784, 500, 500, 10), 150, 6, 2.0, (0.8, 0.2, 0.02), 60, 1.0, (0.4, 0.1, 0.01)),
    "mnist-3h": ((784, 500, 500, 500, 10), 500, 8, 2.0, (0.256, 0.064, 0.016, 0.004), 500, 1.0,
                 (0.128, 0.032, 0.008, 0.002)),
    "fashion-1h": ((784, 500, 10), 20, 4, 1.0, (0.2, 0.1), 25, 0.5, (0.1, 0.05)),
}


@pytest.mark.parametrize("name", list(PAPER))
def test_paper_presets(name):
    preset = get_preset(name)
    sizes, free, nudged, beta, rates, epochs, original_beta, original_rates = PAPER[name]
    assert preset.sizes == sizes
    assert (preset.free_steps, preset.nudged_steps, preset.epochs) == (free, nudged, epochs)
    assert preset.beta == beta and preset.learning_rates == pytest.approx(rates)
    assert preset.original_beta == original_beta
    assert preset.original_learning_rates == pytest.approx(original_rates)
    assert (preset.epsilon, preset.batch_size, preset.random_sign, preset.persistent) == (0.5, 20, True, True)
    assert preset.dataset == ("fashion-mnist" if name.startswith("fashion") else "mnist")


def test_every_preset_builds_a_trainer():
    for preset in PRESETS.values():
        net = eqprop.EqPropNetwork(preset.sizes, seed=0)
        trainer = eqprop.Trainer(net, **preset.trainer_kwargs())
        assert trainer.learning_rates == preset.learning_rates
        assert layers_from_json(preset.to_dict()["sizes"]) == list(preset.sizes)
        assert parse_layers(preset.layers) == list(preset.sizes)
    assert PRESETS["digits"].dataset == "digits" and PRESETS["digits"].sizes[0] == 64


def test_presets_train_with_plain_sgd_and_constant_rates():
    """The optimizer and schedule fields default to today's training: every preset builds the same trainer."""
    for preset in PRESETS.values():
        kwargs = preset.trainer_kwargs()
        assert kwargs["optimizer"] == "sgd" and kwargs["schedule"] == "constant"
        assert all(kwargs[key] is None for key in ("momentum", "betas", "eps", "weight_decay", "bias_learning_rates",
                                                   "schedule_epochs", "schedule_floor", "schedule_gamma",
                                                   "schedule_step_size"))
        trainer = eqprop.Trainer(eqprop.EqPropNetwork(preset.sizes, seed=0), **kwargs)
        assert trainer.optimizer_settings.in_core


def test_presets_carry_an_optimizer_and_a_schedule():
    preset = dataclasses.replace(PRESETS["digits"], optimizer="nesterov", weight_decay=1e-4, schedule="cosine",
                                 schedule_floor=0.05)
    kwargs = preset.trainer_kwargs()
    assert kwargs["momentum"] == 0.9 and kwargs["weight_decay"] == [1e-4, 1e-4]
    assert kwargs["schedule_epochs"] == preset.epochs and kwargs["schedule_floor"] == 0.05  # cosine spans the epochs
    trainer = eqprop.Trainer(eqprop.EqPropNetwork(preset.sizes, seed=0), **kwargs)
    assert trainer.config()["optimizer"] == "nesterov" and trainer.lr_schedule.epochs == 30
    assert preset.to_dict()["optimizer"] == "nesterov"
    with pytest.raises(ValueError, match="preset digits: momentum applies only"):
        dataclasses.replace(PRESETS["digits"], momentum=0.9)
    with pytest.raises(ValueError, match="preset digits: schedule 'exponential' needs schedule_gamma"):
        dataclasses.replace(PRESETS["digits"], schedule="exponential")
    with pytest.raises(ValueError, match=r"preset digits: weight_decay needs one value per weight matrix \(2\)"):
        dataclasses.replace(PRESETS["digits"], weight_decay=(0.1, 0.1, 0.1))


def test_presets_are_frozen_and_checked():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["mnist-1h"].beta = 3.0
    with pytest.raises(TypeError):
        PRESETS["new"] = PRESETS["mnist-1h"]
    with pytest.raises(ValueError, match="twice the original"):
        dataclasses.replace(PRESETS["mnist-1h"], beta=0.5)
    with pytest.raises(ValueError, match="one learning rate per weight matrix"):
        dataclasses.replace(PRESETS["mnist-1h"], learning_rates=(0.2,), original_learning_rates=(0.1,))
    with pytest.raises(ValueError, match="unknown preset 'mnist'.*mnist-1h"):
        get_preset("mnist")


# ---------------------------------------------------- the original convention
def rho(s):
    return np.clip(s, 0.0, 1.0)


def original_code_step(weights, biases, x, d, beta_c, alphas_c, free_steps, nudged_steps, epsilon):
    """One step as the original code runs it: cost C = ||y - d||^2 (no 1/2), update alpha_c / beta_c * Delta.

    Written independently of the library: Euler steps s <- rho(s + epsilon (-dE/ds - beta_c dC/ds)),
    with -dE/ds_k = h_k - s_k (rho' = 1 on [0, 1]) and d||y - d||^2 / dy = 2 (y - d).
    """
    weights = [w.copy() for w in weights]
    biases = [b.copy() for b in biases]

    def relax(state, beta_c, steps):
        for _ in range(steps):
            layers = [x] + [rho(s) for s in state]
            new = []
            for k, s in enumerate(state):
                h = layers[k] @ weights[k] + biases[k]
                if k + 1 < len(state):
                    h = h + layers[k + 2] @ weights[k + 1].T
                force = h - s
                if k == len(state) - 1:
                    force = force - beta_c * 2.0 * (s - d)
                new.append(rho(s + epsilon * force))
            state = new
        return state

    free = relax([np.zeros((x.shape[0], w.shape[1])) for w in weights], 0.0, free_steps)
    nudged = relax(free, beta_c, nudged_steps)
    before = [x] + [rho(s) for s in free]
    after = [x] + [rho(s) for s in nudged]
    batch = x.shape[0]
    for k, alpha in enumerate(alphas_c):
        weights[k] += alpha / beta_c * (after[k].T @ after[k + 1] - before[k].T @ before[k + 1]) / batch
        biases[k] += alpha / beta_c * (after[k + 1] - before[k + 1]).sum(axis=0) / batch
    return weights, biases


@pytest.mark.parametrize("sizes", [(12, 9, 4), (12, 9, 7, 4)], ids=["1 hidden", "2 hidden"])
@pytest.mark.parametrize("beta_c", [0.5, -0.5, 1.0])
def test_one_original_step_equals_one_step_with_converted_values(sizes, beta_c):
    rng = np.random.default_rng(0)
    net = eqprop.EqPropNetwork(sizes, dtype="float64", seed=1)
    for b in net.biases:
        b[...] = rng.uniform(-0.2, 0.2, size=b.shape)
    x = rng.uniform(0, 1, size=(8, sizes[0]))
    d = one_hot(rng.integers(0, sizes[-1], size=8), sizes[-1], np.float64)
    alphas_c = tuple(0.1 / (k + 1) for k in range(len(sizes) - 1))
    steps = dict(free_steps=15, nudged_steps=4, epsilon=0.5)
    want_w, want_b = original_code_step(net.weights, net.biases, x, d, beta_c, alphas_c, **steps)
    changed = sum(np.abs(w - v).max() for w, v in zip(want_w, net.weights))
    assert changed > 1e-4  # the step does something, so the comparison below means something

    unconverted = eqprop.EqPropNetwork(sizes, dtype="float64", seed=1)
    unconverted.set_params(net.weights, net.biases)
    net.train_step(x, d, beta=2 * beta_c, learning_rates=[2 * a for a in alphas_c], **steps)
    for got, want in zip(net.weights + net.biases, want_w + want_b):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)

    # the same values without the conversion give a different step: the factor 2 matters
    unconverted.train_step(x, d, beta=beta_c, learning_rates=alphas_c, **steps)
    assert max(np.abs(a - b).max() for a, b in zip(unconverted.weights, want_w)) > 0.1 * changed
