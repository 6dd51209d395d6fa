"""The EP family (eqprop.algorithms) and the linear output layer against the NumPy reference.

Each algorithm's estimate comes from tests/reference.py's ``family_gradients``,
written from the definitions in eqprop.algorithms' table; the clamped phases
hold the output fixed and relax the hidden layers only.
"""

import numpy as np
import pytest
import reference
from conftest import TOLERANCE, one_hot, random_network

import eqprop
from eqprop import Conv2d
from eqprop.algorithms import ALGORITHMS

ESTIMATES = [name for name in ALGORITHMS if name != "random-sign"]  # one estimate draws no sign


def problem(dtype, output="clipped", sizes=(12, 9, 7, 4), batch=6, seed=0):
    net = random_network(list(sizes), dtype, seed=seed, bias_scale=0.3)
    if output == "linear":
        net = eqprop.EqPropNetwork(list(sizes), dtype=dtype, output="linear")
        source = random_network(list(sizes), dtype, seed=seed, bias_scale=0.3)
        net.set_params(source.weights, source.biases)
    rng = np.random.default_rng(seed + 1)
    x = rng.uniform(0, 1, (batch, sizes[0])).astype(dtype)
    target = one_hot(rng.integers(0, sizes[-1], batch), sizes[-1], dtype)
    return net, x, target


def assert_close(got, expected, dtype, scale=1.0):
    tolerance = 1e-9 if dtype == np.float64 else 2e-3 * scale
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("output", ["clipped", "linear"])
@pytest.mark.parametrize("solver", ["euler", "alternating", "fixed-point"])
@pytest.mark.parametrize("algorithm", ESTIMATES)
def test_every_estimate_matches_the_reference(algorithm, solver, output, dtype, kernel):
    net, x, target = problem(dtype, output)
    got_w, got_b = net.ep_gradients(x, target, beta=0.4, free_steps=20, nudged_steps=8, epsilon=0.5,
                                    algorithm=algorithm, coupling=0.3, solver=solver)
    want_w, want_b, _ = reference.family_gradients(net.weights, net.biases, x, target, algorithm, 0.4, 20, 8, 0.5,
                                                   coupling=0.3, solver=solver, linear_output=output == "linear")
    assert_close(got_w + got_b, want_w + want_b, dtype)
    assert any(np.abs(g).max() > 1e-3 for g in got_w)  # a real signal, not two zero estimates


@pytest.mark.parametrize("algorithm", ["centered", "contrastive", "coupled"])
def test_conv_chains_take_every_estimate(algorithm, dtype, kernel):
    input_shape = (2, 8, 8)
    spec = [("conv", 3, 3, 1, "max"), ("conv", 4, 2, 0, "avg"), ("dense", 5)]
    layers = [input_shape] + [entry[1] if entry[0] == "dense" else Conv2d(entry[1], entry[2], padding=entry[3],
                                                                          pool=entry[4]) for entry in spec]
    net = random_network(layers, dtype, seed=2, bias_scale=0.2)
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (4, 128)).astype(dtype)
    target = one_hot(rng.integers(0, 5, 4), 5, dtype)
    got_w, got_b = net.ep_gradients(x, target, beta=0.5, free_steps=12, nudged_steps=6, epsilon=0.5,
                                    algorithm=algorithm, coupling=0.4)
    want_w, want_b, _ = reference.family_gradients(net.weights, net.biases, x, target, algorithm, 0.5, 12, 6, 0.5,
                                                   coupling=0.4, network="chain", chain=(input_shape, spec))
    assert_close(got_w + got_b, want_w + want_b, dtype)


def test_the_clamped_phase_holds_the_output_and_relaxes_the_rest():
    net, x, target = problem(np.float64)
    free = net.relax(x, steps=30, epsilon=0.5)
    engine = net.step_engine(x.shape[0])
    state = [s.copy() for s in free]
    engine.free_phase(x, state, steps=30, epsilon=0.5, solver="euler", threads=1)
    clamped = engine.clamped(x, state, target, coupling=1.0, steps=400, epsilon=0.5, solver="euler", threads=1)
    np.testing.assert_array_equal(clamped[-1], target)
    assert not np.allclose(clamped[0], state[0])  # the hidden layers moved towards the clamp
    # a fixed point of the hidden layers given the clamped output
    h = reference.net_inputs(net.weights, net.biases, x, clamped)
    np.testing.assert_allclose(clamped[0], reference.rho(h[0]), atol=1e-6)


def test_coupled_learning_converges_as_the_coupling_shrinks():
    """(dPhi(s^clamp) - dPhi(s^0)) / eta has a limit as eta -> 0: the first-order response to the clamp.

    Once eta is small enough that no unit crosses a clip boundary, the
    differences between successive estimates shrink by the factor eta shrinks,
    as for a smooth one-sided difference quotient (here: 5.1e-4, then 5.1e-5).
    """
    net, x, target = problem(np.float64, output="linear")
    steps = dict(free_steps=400, nudged_steps=400, epsilon=0.5)
    estimates = [net.ep_gradients(x, target, algorithm="coupled", coupling=eta, **steps)[0]
                 for eta in (2e-3, 2e-4, 2e-5)]
    first = max(np.abs(a - b).max() for a, b in zip(estimates[0], estimates[1]))
    second = max(np.abs(a - b).max() for a, b in zip(estimates[1], estimates[2]))
    assert second < 0.2 * first, (first, second)


def test_the_linear_output_is_not_clipped_and_keeps_the_energy_consistent():
    net, x, target = problem(np.float64, output="linear")
    for w in net.weights:
        w *= 4.0  # drives the output outside [0, 1]
    state = net.relax(x, steps=200, epsilon=0.5)
    assert state[-1].min() < 0.0 or state[-1].max() > 1.0
    expected = reference.relax(net.weights, net.biases, x, net.zero_state(x.shape[0]), 200, 0.5,
                               linear_output=True)
    for got, want in zip(state, expected):
        np.testing.assert_allclose(got, want, atol=1e-10)
    np.testing.assert_allclose(net.energy(x, state),
                               reference.energy(net.weights, net.biases, x, state, linear_output=True), rtol=1e-12)
    # and the clipped model clips the same network
    clipped = eqprop.EqPropNetwork([12, 9, 7, 4], dtype="float64")
    clipped.set_params(net.weights, net.biases)
    assert 0.0 <= clipped.relax(x, steps=200, epsilon=0.5)[-1].min()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(algorithm="nope"), ValueError, "algorithm must be one of"),
    (dict(algorithm="random-sign", beta=0.5), ValueError, "draws a sign per mini-batch"),
    (dict(algorithm="centered", symmetric=True, beta=0.5), ValueError, "not both"),
    (dict(algorithm="coupled", coupling=0.0), ValueError, r"coupling must be in \(0, 1\]"),
    (dict(algorithm="coupled", coupling=1.5), ValueError, r"coupling must be in \(0, 1\]"),
    (dict(algorithm="coupled", coupling="a"), TypeError, "coupling must be a real number"),
    (dict(algorithm="positive"), ValueError, "beta is required"),
    (dict(algorithm="negative", beta=1.5, solver="alternating"), ValueError, "greater than -1"),
])
def test_bad_algorithm_settings(kwargs, error, match):
    net, x, target = problem(np.float64)
    with pytest.raises(error, match=match):
        net.ep_gradients(x, target, free_steps=5, nudged_steps=2, epsilon=0.5, **kwargs)


def test_bad_output():
    with pytest.raises(ValueError, match="output must be 'clipped' or 'linear'"):
        eqprop.EqPropNetwork([4, 3, 2], output="tanh")


# ------------------------------------------------------------------ Trainer
def one_batch_trainer(net, algorithm, **kwargs):
    return eqprop.Trainer(net, beta=0.4, free_steps=20, nudged_steps=8, epsilon=0.5, learning_rates=[0.1, 0.05, 0.02],
                          batch_size=64, persistent=False, threads=1, seed=3, algorithm=algorithm, coupling=0.3,
                          **kwargs)


@pytest.mark.parametrize("output", ["clipped", "linear"])
@pytest.mark.parametrize("algorithm", ESTIMATES)
def test_the_trainer_applies_each_algorithms_estimate(algorithm, output):
    net, x, target = problem(np.float64, output)
    labels = target.argmax(axis=1)
    want_w, want_b, _ = reference.family_gradients(net.weights, net.biases, x, target, algorithm, 0.4, 20, 8, 0.5,
                                                   coupling=0.3, linear_output=output == "linear")
    before = [p.copy() for p in net.weights + net.biases]
    one_batch_trainer(net, algorithm).fit(x, labels, epochs=1)  # one mini-batch: the whole (shuffled) set
    rates = [0.1, 0.05, 0.02]
    for k, (after, old, grad) in enumerate(zip(net.weights + net.biases, before, want_w + want_b)):
        np.testing.assert_allclose(after, old - rates[k % 3] * grad, rtol=1e-9, atol=1e-11)


def test_random_sign_applies_the_positive_or_the_negative_estimate():
    net, x, target = problem(np.float64)
    labels = target.argmax(axis=1)
    before = [p.copy() for p in net.weights + net.biases]
    estimates = {name: reference.family_gradients(net.weights, net.biases, x, target, name, 0.4, 20, 8, 0.5)[:2]
                 for name in ("positive", "negative")}
    trainer = one_batch_trainer(net, "random-sign")
    trainer.fit(x, labels, epochs=1)
    rates = [0.1, 0.05, 0.02]
    matches = []
    for name, (gw, gb) in estimates.items():
        matches.append(all(np.allclose(after, old - rates[k % 3] * g, rtol=1e-9, atol=1e-11) for k, (after, old, g)
                           in enumerate(zip(net.weights + net.biases, before, gw + gb))))
    assert sum(matches) == 1
    assert trainer.random_sign and not trainer.symmetric  # set to match the algorithm


def test_centered_is_the_symmetric_switch():
    runs = []
    for kwargs in (dict(algorithm="centered"), dict(symmetric=True, random_sign=False)):
        net, x, target = problem(np.float64)
        trainer = eqprop.Trainer(net, beta=0.4, free_steps=10, nudged_steps=4, epsilon=0.5,
                                 learning_rates=[0.1, 0.05, 0.02], batch_size=2, threads=1, seed=5, **kwargs)
        trainer.fit(x, target.argmax(axis=1), epochs=2)
        runs.append(net.weights + net.biases)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("algorithm", ["coupled", "random-sign"])
def test_a_resumed_run_continues_exactly(algorithm, tmp_path):
    def run(epochs, directory, resume=False):
        net, x, target = problem(np.float64, output="linear")
        if resume:
            trainer = eqprop.Trainer.resume(directory)
        else:
            trainer = eqprop.Trainer(net, beta=0.4, free_steps=10, nudged_steps=4, epsilon=0.5,
                                     learning_rates=[0.1, 0.05, 0.02], batch_size=2, threads=1, seed=5,
                                     algorithm=algorithm, coupling=0.3)
        trainer.fit(x, target.argmax(axis=1), epochs=epochs, checkpoint_dir=directory)
        return trainer

    straight = run(3, tmp_path / "straight")
    run(1, tmp_path / "split")
    resumed = run(2, tmp_path / "split", resume=True)
    assert resumed.algorithm == algorithm and resumed.net.output == "linear"
    for a, b in zip(straight.net.weights + straight.net.biases, resumed.net.weights + resumed.net.biases):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, match", [
    (dict(algorithm="chl"), "algorithm must be one of"),
    (dict(algorithm="positive", beta=None), "beta is required"),
    (dict(algorithm="coupled", coupling=2.0), r"coupling must be in \(0, 1\]"),
    (dict(algorithm="negative", beta=1.5, solver="alternating"), "greater than -1"),
])
def test_bad_trainer_algorithms(kwargs, match):
    net, _, _ = problem(np.float64)
    settings = dict(beta=0.4, free_steps=5, nudged_steps=2, epsilon=0.5, learning_rates=[0.1, 0.05, 0.02],
                    batch_size=4)
    settings.update(kwargs)
    with pytest.raises(ValueError, match=match):
        eqprop.Trainer(net, **settings)


def test_clamped_algorithms_need_a_hidden_layer():
    net = eqprop.EqPropNetwork([5, 3])
    with pytest.raises(ValueError, match="needs a hidden layer"):
        eqprop.Trainer(net, free_steps=5, nudged_steps=2, epsilon=0.5, learning_rates=[0.1], batch_size=4,
                       algorithm="contrastive")
