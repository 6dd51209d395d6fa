"""Presets: the paper's values, and the factor 2 between the original code's convention and ours."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import one_hot

import eqprop
from eqprop.layers import layers_from_json, parse_layers
from eqprop.presets import PRESETS, anchor_init_gains, get_preset

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
    """The optimizer and schedule fields default to today's training: every preset builds the same trainer.

    (The DHN presets, which take another code's exponential decay, are checked below; the conv
    presets' cosine schedule in test_conv_presets_decay_their_rates_on_a_cosine.)
    """
    for preset in (p for p in PRESETS.values() if not p.source and not p.name.endswith("-conv")):
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
    with pytest.raises(ValueError, match="fraction in \\[0, 1\\] and needs its source"):
        dataclasses.replace(PRESETS["mnist-1h"], reported_test_error=0.02)
    with pytest.raises(ValueError, match="fraction in \\[0, 1\\]"):
        dataclasses.replace(PRESETS["mnist-dhn-1h"], reported_test_error=1.79)


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


# ------------------------------------------------------------------ the DHN presets
# Scellier (2024)'s deep Hopfield networks, from rain-neuromorphics/energy-based-learning,
# papers/fast-drn/dhn.py: the settings of its 'dhn-1h' and 'dhn-2h' branches.
DHN = {
    # name: (sizes, inference iterations, training iterations, learning rates, reported test error)
    "mnist-dhn-1h": ((784, 1024, 10), 15, 15, (0.05, 0.05), 0.0179),
    "mnist-dhn-2h": ((784, 1024, 1024, 10), 50, 20, (0.2, 0.05, 0.01), 0.0165),
}
ANCHOR_MIRROR = "/work/.mirror/rain-neuromorphics+energy-based-learning/repo"  # where this project's machine keeps it


@pytest.mark.parametrize("name", list(DHN))
def test_dhn_presets_carry_the_codes_settings(name):
    preset = get_preset(name)
    sizes, inference, training, rates, reported = DHN[name]
    assert preset.dataset == "mnist" and preset.sizes == sizes
    assert (preset.free_steps, preset.nudged_steps, preset.eval_steps) == (inference, training, inference)
    assert preset.beta == 0.2 and preset.learning_rates == rates and preset.bias_learning_rates is None
    assert (preset.original_beta, preset.original_learning_rates) == (None, None)  # the code's values are ours
    assert (preset.batch_size, preset.epochs) == (16, 100)
    assert (preset.solver, preset.algorithm, preset.symmetric, preset.random_sign) == ("fixed-point", "centered",
                                                                                     True, False)
    assert (preset.persistent, preset.output) == (False, "linear")
    assert (preset.optimizer, preset.momentum, preset.weight_decay) == ("sgd", None, None)
    assert (preset.schedule, preset.schedule_gamma) == ("exponential", 0.99)
    assert preset.reported_test_error == reported and "papers/fast-drn/dhn.py" in preset.source
    trainer = eqprop.Trainer(eqprop.EqPropNetwork(sizes, output=preset.output, init_gains=preset.init_gains, seed=0),
                             **preset.trainer_kwargs())
    assert trainer.optimizer_settings.in_core  # plain SGD, biases at their layer's rate: the compiled update
    assert trainer.epoch_learning_rates(3)[0] == pytest.approx(tuple(r * 0.99**2 for r in rates))
    assert trainer.epoch_learning_rates(3)[1] == trainer.epoch_learning_rates(3)[0]


def code_limits(sizes, weight_gain=0.7):
    """DenseWeight.init_state, mode 'kaiming_uniform': uniform in +-gain * sqrt(1 / size_pre)."""
    return [weight_gain * np.sqrt(1.0 / n_in) for n_in in sizes[:-1]]


@pytest.mark.parametrize("name", list(DHN))
def test_dhn_initial_weights_have_the_codes_distribution(name):
    preset = get_preset(name)
    net = eqprop.EqPropNetwork(preset.sizes, output=preset.output, init_gains=preset.init_gains, seed=3)
    for w, limit, (n_in, n_out), gain in zip(net.weights, code_limits(preset.sizes),
                                             zip(preset.sizes[:-1], preset.sizes[1:]), preset.init_gains):
        assert gain * np.sqrt(6.0 / (n_in + n_out)) == pytest.approx(limit, rel=1e-15)  # the same bound
        assert np.abs(w).max() <= limit * (1 + 1e-7)  # float32 rounding of the draws
        assert np.abs(w).max() > limit * (1 - 1e-3)  # and it is reached: uniform over the whole interval
        assert float(np.std(w)) == pytest.approx(limit / np.sqrt(3), rel=0.02)
        assert abs(float(np.mean(w))) < 0.02 * limit
    assert all(not b.any() for b in net.biases)  # Bias(gain=0.): uniform in +-0
    assert preset.init_gains[0] == pytest.approx(0.4339738855, rel=1e-9)
    assert preset.init_gains[-1] == pytest.approx(0.2871657931, rel=1e-9)


def dhn_code_step(weights, biases, x, labels, nudging, rates_w, rates_b, inference, training):
    """One mini-batch of ``training.epoch.Trainer.run`` with dhn.py's objects, in NumPy.

    Written from the code: ``DeepHopfieldEnergy`` (hard-sigmoid hidden layers,
    a linear output layer; E = -sum s_pre W s_post - sum b s, over the states
    themselves), ``SquaredError`` (1/2 ||y - d||^2), ``FixedPointMinimizer`` in
    mode 'asynchronous' (per iteration the free layers 0, 2, ... then 1, 3, ...,
    counting from the first hidden layer; within a group every pre-activation
    -dF/ds is computed before any layer is set, then each layer is set to its
    activation of it), ``EquilibriumProp`` 'centered' (the first phase with
    -nudging, the second with +nudging, both from the free state; gradient
    (dE/dtheta(second) - dE/dtheta(first)) / (2 nudging) with the batch-mean
    dE/dW = -pre^T post / batch and dE/db = -mean(state)) and ``torch.optim.SGD``
    without momentum or weight decay (theta -= lr grad). The free phase runs the
    inference minimiser (of E alone), the nudged phases the training one (of
    E + nudging C); the layers start at zero (a new network, or a new batch size).
    """
    weights = [w.copy() for w in weights]
    biases = [b.copy() for b in biases]
    n = len(weights)
    target = np.eye(weights[-1].shape[1])[labels]

    def pre_activation(state, k, nudging):
        below = x if k == 0 else state[k - 1]
        value = below @ weights[k] + biases[k]  # -dE/ds_k: DenseHopfield._grad_post, BiasInteraction
        if k + 1 < n:
            value = value + state[k + 1] @ weights[k + 1].T  # DenseHopfield._grad_pre
        if k == n - 1:
            value = value - nudging * (state[k] - target)  # Nudging(SquaredError): autograd at the current y
        return value

    def activate(k, value):
        return value if k == n - 1 else np.clip(value, 0.0, 1.0)  # LinearLayer / HardSigmoidLayer

    def minimise(state, iterations, nudging):
        state = list(state)
        for group in [list(range(0, n, 2)), list(range(1, n, 2))] * iterations:
            values = [pre_activation(state, k, nudging) for k in group]
            for k, value in zip(group, values):
                state[k] = activate(k, value)
        return state

    free = minimise([np.zeros((x.shape[0], w.shape[1])) for w in weights], inference, 0.0)
    first = minimise(free, training, -nudging)
    second = minimise(free, training, +nudging)
    batch = x.shape[0]

    def energy_grads(state):
        layers = [x] + state
        return ([-(layers[k].T @ layers[k + 1]) / batch for k in range(n)],
                [-layers[k + 1].mean(axis=0) for k in range(n)])

    (first_w, first_b), (second_w, second_b) = energy_grads(first), energy_grads(second)
    for k in range(n):
        weights[k] -= rates_w[k] * (second_w[k] - first_w[k]) / (2 * nudging)
        biases[k] -= rates_b[k] * (second_b[k] - first_b[k]) / (2 * nudging)
    return weights, biases


def dhn_problem(name, sizes, scale=2.0, batch=16, seed=0):
    """Small weights and data for one step; ``scale`` times the preset's limits, so 15 sweeps fall short."""
    rng = np.random.default_rng(seed)
    weights = [rng.uniform(-scale * limit, scale * limit, size=(n_in, n_out))
               for limit, n_in, n_out in zip(code_limits(sizes), sizes[:-1], sizes[1:])]
    biases = [rng.uniform(-0.2, 0.2, size=n_out) for n_out in sizes[1:]]
    x = rng.uniform(0, 1, size=(batch, sizes[0]))
    x[x < 0.5] = 0.0  # mostly-zero inputs, like images
    labels = rng.integers(0, sizes[-1], size=batch)
    return weights, biases, x, labels


def eqprop_dhn_step(name, sizes, weights, biases, x, labels, **changes):
    """One Trainer step with the preset's settings on a small network of ``sizes``."""
    preset = dataclasses.replace(get_preset(name), sizes=sizes, **changes)
    net = eqprop.EqPropNetwork(sizes, dtype="float64", output=preset.output, seed=0)
    net.set_params(weights, biases)
    trainer = eqprop.Trainer(net, **preset.trainer_kwargs(), seed=0)
    assert x.shape[0] == preset.batch_size  # one mini-batch: fit runs exactly one step
    trainer.fit(x, labels, epochs=1, progress=False)
    return net.weights, net.biases


SMALL = {"mnist-dhn-1h": (12, 9, 4), "mnist-dhn-2h": (12, 9, 7, 4)}


@pytest.mark.parametrize("name", list(DHN))
def test_one_dhn_code_step_equals_one_trainer_step_with_the_preset(name):
    sizes = SMALL[name]
    preset = get_preset(name)
    weights, biases, x, labels = dhn_problem(name, sizes)
    rates = preset.learning_rates
    want_w, want_b = dhn_code_step(weights, biases, x, labels, 0.2, rates, rates, preset.free_steps,
                                   preset.nudged_steps)
    changed = max(np.abs(w - v).max() for w, v in zip(want_w, weights))
    assert changed > 1e-3  # the step does something

    got_w, got_b = eqprop_dhn_step(name, sizes, weights, biases, x, labels, learning_rates=rates)
    for got, want in zip(got_w + got_b, want_w + want_b):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)

    # the settings that had to be converted matter: the exact output update of 'alternating', a
    # clipped output, or one-sided EP would each give another step
    for changes in (dict(solver="alternating"), dict(output="clipped"),
                    dict(algorithm="positive", symmetric=False)):
        other_w, _ = eqprop_dhn_step(name, sizes, weights, biases, x, labels, learning_rates=rates, **changes)
        assert max(np.abs(a - b).max() for a, b in zip(other_w, want_w)) > 1e-3 * changed, changes


# -------------------------------------------------- the DHN code itself, when at hand
def anchor_checkout(tmp_path_factory):
    """A checkout of rain-neuromorphics/energy-based-learning, or skip.

    EQPROP_ANCHOR_REPO names a checkout or a git directory (a bare mirror); by
    default the mirror this project's machine keeps. Its code is extracted into
    a temporary folder, never into eqprop.
    """
    import importlib.util
    import os
    import subprocess
    from pathlib import Path

    if importlib.util.find_spec("torch") is None:
        pytest.skip("PyTorch is not installed (the DHN code runs on it)")
    source = Path(os.environ.get("EQPROP_ANCHOR_REPO", ANCHOR_MIRROR))
    if (source / "papers" / "fast-drn" / "dhn.py").is_file():
        return source
    if not (source / "HEAD").is_file():
        pytest.skip(f"no checkout or git mirror of rain-neuromorphics/energy-based-learning at {source} "
                    f"(set EQPROP_ANCHOR_REPO)")
    target = tmp_path_factory.mktemp("energy-based-learning")
    archive = subprocess.run(["git", f"--git-dir={source}", "archive", "HEAD", "model", "training", "papers"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


@pytest.fixture(scope="module")
def anchor(tmp_path_factory):
    return anchor_checkout(tmp_path_factory)


def run_anchor(anchor_dir, *args):
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("anchor_dhn.py")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(script), str(anchor_dir), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_dhn_code_settings_are_the_presets(anchor):
    """The literal values of dhn.py's branches, its variant, mode and decay, against DHN above."""
    import ast

    text = (anchor / "papers" / "fast-drn" / "dhn.py").read_text()
    branches = {}
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and \
                isinstance(node.test.left, ast.Name) and node.test.left.id == "model":  # if model == 'dhn-1h':
            values = {}
            for statement in node.body:
                if isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Name):
                    values[statement.targets[0].id] = ast.literal_eval(statement.value)
            branches[node.test.comparators[0].value] = values
    for name, (sizes, inference, training, rates, _) in DHN.items():
        code = branches[name.replace("mnist-", "")]
        preset = get_preset(name)
        assert code["layer_shapes"][0] == (1, 28, 28) and [s[0] for s in code["layer_shapes"][1:]] == list(sizes[1:])
        assert (code["num_iterations_inference"], code["num_iterations_training"]) == (inference, training)
        assert code["nudging"] == preset.beta and code["batch_size"] == preset.batch_size
        assert tuple(code["learning_rates_weights"]) == tuple(code["learning_rates_biases"]) == preset.learning_rates
        assert code["num_epochs"] == preset.epochs
        assert preset.init_gains == anchor_init_gains(sizes, code["weight_gains"][0])
        assert set(code["weight_gains"]) == {0.7}
    for fragment in ("estimator.variant = 'centered'", "mode = 'asynchronous'", "ExponentialLR(optimizer, gamma=0.99)",
                     "momentum = 0.", "weight_decay = 0. * 1e-4", "SquaredError(output_layer)"):
        assert fragment in text


@pytest.mark.parametrize("name", list(DHN))
def test_dhn_code_initialisation_has_the_presets_bounds(anchor, tmp_path, name):
    import json

    sizes = DHN[name][0]
    out = tmp_path / "init.npz"
    run_anchor(anchor, "init", json.dumps([[1, 28, 28]] + [[n] for n in sizes[1:]]),
               json.dumps([0.7] * (len(sizes) - 1)), out)
    theirs = np.load(out)
    preset = get_preset(name)
    ours = eqprop.EqPropNetwork(sizes, output="linear", init_gains=preset.init_gains, seed=0)
    for k, (limit, w) in enumerate(zip(code_limits(sizes), ours.weights)):
        code_w = theirs[f"W{k}"]
        assert code_w.shape == w.shape and code_w.dtype == w.dtype == np.float32
        for draws in (code_w, w):
            assert limit * (1 - 1e-3) < np.abs(draws).max() <= limit * (1 + 1e-7)
            assert float(np.std(draws)) == pytest.approx(limit / np.sqrt(3), rel=0.02)
        assert not theirs[f"b{k}"].any()


@pytest.mark.parametrize("name", list(DHN))
def test_one_step_of_the_dhn_code_itself_equals_one_trainer_step(anchor, tmp_path, name):
    """dhn.py's objects (PyTorch, float64) and eqprop on the same weights and mini-batch."""
    sizes = SMALL[name]
    preset = get_preset(name)
    weights, biases, x, labels = dhn_problem(name, sizes)
    rates = preset.learning_rates
    arrays = {f"W{k}": w for k, w in enumerate(weights)} | {f"b{k}": b for k, b in enumerate(biases)}
    np.savez(tmp_path / "in.npz", input_shape=(1, 4, 3), sizes=sizes, weight_gains=[0.7] * (len(sizes) - 1),
             inference=preset.free_steps, training=preset.nudged_steps, nudging=0.2, rates_w=rates, rates_b=rates,
             x=x, labels=labels, **arrays)
    run_anchor(anchor, "step", tmp_path / "in.npz", tmp_path / "out.npz")
    theirs = np.load(tmp_path / "out.npz")
    code_w = [theirs[f"W{k}"] for k in range(len(weights))]
    code_b = [theirs[f"b{k}"] for k in range(len(weights))]
    assert max(np.abs(w - v).max() for w, v in zip(code_w, weights)) > 1e-3
    got_w, got_b = eqprop_dhn_step(name, sizes, weights, biases, x, labels, learning_rates=rates)
    for got, want in zip(got_w + got_b, code_w + code_b):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    # and the NumPy rewrite above is the code's step
    want_w, want_b = dhn_code_step(weights, biases, x, labels, 0.2, rates, rates, preset.free_steps,
                                   preset.nudged_steps)
    for code, want in zip(code_w + code_b, want_w + want_b):
        np.testing.assert_allclose(code, want, rtol=0, atol=1e-12)


def test_conv_presets_decay_their_rates_on_a_cosine():
    for name in ("mnist-conv", "fashion-conv"):
        preset = PRESETS[name]
        assert (preset.schedule, preset.schedule_floor, preset.epochs) == ("cosine", 0.05, 12)
        trainer = eqprop.Trainer(eqprop.EqPropNetwork(preset.sizes, seed=0, init_gains=preset.init_gains),
                                 **preset.trainer_kwargs())
        first, _ = trainer.epoch_learning_rates(1)
        last, _ = trainer.epoch_learning_rates(preset.epochs)
        assert first == pytest.approx(preset.learning_rates)
        assert last[0] < 0.1 * preset.learning_rates[0]  # spans the preset's epochs
