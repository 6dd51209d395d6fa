"""The compiled EP update (gradients and in-place training step) against the reference."""

import numpy as np
import pytest
import reference
from conftest import ROUNDING, TOLERANCE, one_hot, random_network


@pytest.fixture(autouse=True)
def every_kernel(kernel, every_thread_runs):
    """Every test here runs with each product implementation, and starts every thread asked for."""
    return kernel


def data(sizes, dtype, batch=11, seed=5):
    rng = np.random.default_rng(seed)
    x = rng.random((batch, sizes[0])).astype(dtype)
    return x, one_hot(rng.integers(0, sizes[-1], batch), sizes[-1], dtype)


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("solver", ["euler", "alternating", "fixed-point"])
def test_ep_gradients_match_reference(sizes, dtype, symmetric, solver):
    net = random_network(sizes, dtype)
    x, target = data(sizes, dtype)
    kwargs = dict(beta=0.5, free_steps=15, nudged_steps=5, epsilon=0.5, symmetric=symmetric, solver=solver)
    grads_w, grads_b = net.ep_gradients(x, target, **kwargs)
    ref_w, ref_b, _ = reference.ep_gradients(net.weights, net.biases, x, target, **kwargs)
    # gradients are differences of products divided by beta: scale the tolerance with them
    for got, want in zip(grads_w + grads_b, ref_w + ref_b):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=0, atol=10 * TOLERANCE[dtype])
    assert max(np.abs(g).max() for g in grads_w) > 1e-3


@pytest.mark.parametrize("symmetric", [False, True])
def test_train_step_updates_in_place_like_reference(sizes, dtype, symmetric):
    net = random_network(sizes, dtype)
    x, target = data(sizes, dtype)
    rates = [0.1 * (k + 1) for k in range(len(net.weights))]
    beta = -0.7  # a negative beta, as the random sign draws half of the time
    w_ids = [id(w) for w in net.weights]
    ref_w, ref_b, ref_free = reference.ep_gradients(
        net.weights, net.biases, x, target, beta, 12, 4, 0.5, symmetric=symmetric)
    expected_w = [w - lr * g for w, lr, g in zip(net.weights, rates, ref_w)]
    expected_b = [b - lr * g for b, lr, g in zip(net.biases, rates, ref_b)]
    free = net.train_step(x, target, beta=beta, free_steps=12, nudged_steps=4, epsilon=0.5,
                          learning_rates=rates, symmetric=symmetric)
    assert [id(w) for w in net.weights] == w_ids  # updated in place, not replaced
    for got, want in zip(net.weights + net.biases, expected_w + expected_b):
        np.testing.assert_allclose(got, want, rtol=0, atol=10 * TOLERANCE[dtype])
    for got, want in zip(free, ref_free):
        np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE[dtype])


def test_wide_layers_update_like_reference(dtype):
    """Layers of 37 and 21 units (the other tests' are narrower than one AVX-512 vector): the update's
    vector paths and their tails, biases included."""
    sizes = [12, 37, 21, 5]
    net = random_network(sizes, dtype)
    x, target = data(sizes, dtype)
    rates = [0.1, 0.2, 0.3]
    ref_w, ref_b, _ = reference.ep_gradients(net.weights, net.biases, x, target, 0.5, 12, 4, 0.5)
    expected = [p - lr * g for p, lr, g in zip(net.weights + net.biases, rates * 2, ref_w + ref_b)]
    net.train_step(x, target, beta=0.5, free_steps=12, nudged_steps=4, epsilon=0.5, learning_rates=rates)
    for got, want in zip(net.weights + net.biases, expected):
        np.testing.assert_allclose(got, want, rtol=0, atol=10 * TOLERANCE[dtype])
    assert min(np.abs(g).max() for g in ref_b) > 1e-4


@pytest.mark.parametrize("n_in", [150, 300])
@pytest.mark.parametrize("batch", [1, 5, 64])
def test_update_is_independent_of_thread_count(kernel, dtype, n_in, batch, every_thread_runs):
    """More than one 64-row block per weight matrix; W_0's blocks go to the threads that drove
    with their half of its rows (150 inputs: 1 + 2 blocks, 300: 2 + 3), the others to any
    thread: every thread count gives the same parameters, bit for bit (BLAS, whose products
    round by their shape, to rounding)."""
    sizes = [n_in, 70, 10]
    x, target = data(sizes, dtype, batch=batch)
    results = []
    for threads in (1, 2, 3, 5):
        net = random_network(sizes, dtype)
        net.train_step(x, target, beta=1.0, free_steps=8, nudged_steps=3, epsilon=0.5,
                       learning_rates=[0.1, 0.05], threads=threads)
        results.append(net.weights + net.biases)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            if kernel.startswith("blas"):
                np.testing.assert_allclose(a, b, rtol=0, atol=ROUNDING[dtype])
            else:
                np.testing.assert_array_equal(a, b)


def test_persistent_init_is_used(dtype):
    sizes = [6, 5, 3]
    net = random_network(sizes, dtype)
    x, target = data(sizes, dtype, batch=4)
    init = [np.full((4, 5), 0.5, dtype=dtype), np.full((4, 3), 0.5, dtype=dtype)]
    free = net.train_step(x, target, beta=1.0, free_steps=2, nudged_steps=2, epsilon=0.5,
                          learning_rates=[0.1, 0.1], init=init)
    net2 = random_network(sizes, dtype)
    expected = reference.relax(net2.weights, net2.biases, x, init, 2, 0.5)
    for got, want in zip(free, expected):
        np.testing.assert_allclose(got, want, atol=TOLERANCE[dtype])
