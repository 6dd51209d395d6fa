"""Inputs with many zero entries (images) take the sparse products; both paths match the reference.

The drive x W_0 and the update of W_0 skip the zeros of x when at most a fraction
``sparse_threshold()`` (the update's blocks: ``sparse_threshold(update=True)``) of its
entries are non-zero. These tests force each path
(threshold 0: always dense; 1: always sparse) and compare against the NumPy
reference in float64 and float32, with each kernel instruction set.
"""

import eqcore
import numpy as np
import pytest
import reference
from conftest import ROUNDING, TOLERANCE, one_hot, random_network

# first-layer widths that reach every tile of the sparse kernels: whole 8-vector
# tiles with and without an overlapping tail (AVX-512 float32: 128 columns),
# and the 4-, 2-, 1-vector and scalar steps of narrower rows
WIDTHS = [150, 128, 77, 37, 5]


@pytest.fixture(params=[0.0, 1.0], ids=["dense", "sparse"])
def sparse_path(request):
    before = eqcore.sparse_threshold(), eqcore.sparse_threshold(update=True)
    eqcore.set_sparse_threshold(request.param)
    yield request.param
    eqcore.set_sparse_threshold(*before)


@pytest.fixture(autouse=True)
def every_kernel(kernel, every_thread_runs):
    return kernel


def sparse_batch(n_in, n_out, dtype, batch, seed, density=0.2):
    """Inputs with about ``density`` non-zero entries, an all-zero row, a row of ones
    and a few inputs that are zero in every row (as the border pixels of MNIST)."""
    rng = np.random.default_rng(seed)
    x = rng.random((batch, n_in)) * (rng.random((batch, n_in)) < density)
    x[0] = 0.0
    if batch > 2:
        x[-1] = 1.0
    x[:, 3:6] = 0.0
    target = one_hot(rng.integers(0, n_out, batch), n_out, dtype)
    return x.astype(dtype), target


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("threads", [1, 2])
def test_relaxation_matches_reference(dtype, width, threads, sparse_path):
    sizes = [53, width, 4]
    net = random_network(sizes, dtype)
    for batch in (1, 3, 13, 26):  # row groups of 1, 3, 7 and 13 rows and two per thread
        x, target = sparse_batch(sizes[0], sizes[-1], dtype, batch, seed=batch)
        free = net.relax(x, steps=4, epsilon=0.5, threads=threads)
        nudged = net.relax(x, steps=2, epsilon=0.5, beta=0.5, target=target, init=free,
                           threads=threads)
        expected_free = reference.relax(net.weights, net.biases, x, net.zero_state(batch), 4, 0.5)
        expected = reference.relax(net.weights, net.biases, x, expected_free, 2, 0.5, 0.5, target)
        for got, want in zip(free + nudged, expected_free + expected):
            np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE[dtype])


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("symmetric", [False, True])
def test_train_step_matches_reference(dtype, width, symmetric, sparse_path):
    sizes = [150, width, 6]  # three 64-row blocks of W_0
    net = random_network(sizes, dtype)
    x, target = sparse_batch(sizes[0], sizes[-1], dtype, batch=17, seed=width)
    rates = [0.3, 0.2]
    ref_w, ref_b, _ = reference.ep_gradients(net.weights, net.biases, x, target, 0.8, 10, 4,
                                             0.5, symmetric=symmetric)
    expected = [w - lr * g for w, lr, g in zip(net.weights, rates, ref_w)]
    expected += [b - lr * g for b, lr, g in zip(net.biases, rates, ref_b)]
    net.train_step(x, target, beta=0.8, free_steps=10, nudged_steps=4, epsilon=0.5,
                   learning_rates=rates, symmetric=symmetric, threads=2)
    for got, want in zip(net.weights + net.biases, expected):
        np.testing.assert_allclose(got, want, rtol=0, atol=10 * TOLERANCE[dtype])
    # rows of W_0 whose input is zero in the whole batch are left exactly as they were
    unused = ~(x != 0).any(axis=0)
    assert unused.any()
    np.testing.assert_array_equal(net.weights[0][unused], expected[0][unused])


def test_sparse_and_dense_paths_agree_to_rounding(dtype):
    sizes = [200, 150, 10]
    x, target = sparse_batch(sizes[0], sizes[-1], dtype, batch=20, seed=7)
    results = []
    before = eqcore.sparse_threshold(), eqcore.sparse_threshold(update=True)
    for threshold in (0.0, 1.0):
        eqcore.set_sparse_threshold(threshold)
        try:
            net = random_network(sizes, dtype)
            state = net.train_step(x, target, beta=1.0, free_steps=8, nudged_steps=3,
                                   epsilon=0.5, learning_rates=[0.1, 0.05], threads=2)
        finally:
            eqcore.set_sparse_threshold(*before)
        results.append(list(state) + net.weights + net.biases)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=0, atol=50 * ROUNDING[dtype])


def test_default_threshold_picks_sparse_for_images_and_dense_for_dense_inputs(dtype):
    """The default applies the sparse path to MNIST-like inputs; both must match the reference."""
    assert 0 < eqcore.sparse_threshold() < 1
    sizes = [64, 150, 10]
    net = random_network(sizes, dtype)
    for density in (0.2, 1.0):
        x, _ = sparse_batch(sizes[0], sizes[-1], dtype, batch=12, seed=1, density=density)
        got = net.relax(x, steps=3, epsilon=0.5, threads=2)
        want = reference.relax(net.weights, net.biases, x, net.zero_state(12), 3, 0.5)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=0, atol=TOLERANCE[dtype])


def test_nan_weights_propagate_through_the_sparse_drive(sparse_path):
    """A NaN in W_0 reaches the state on either path (then the trainer stops with a message)."""
    net = random_network([20, 150, 3], np.float64)
    x, _ = sparse_batch(20, 3, np.float64, batch=4, seed=2)
    row = int(np.flatnonzero(x[1])[0])
    net.weights[0][row, 7] = np.nan
    # the public relax refuses NaN parameters up front (issue 13); the trainer's path reaches the core
    state = net.zero_state(4)
    net.step_engine(4).free_phase(net._inputs(x), state, steps=2, epsilon=0.5, solver="euler", threads=1)
    assert np.isnan(state[0][1, 7])
    with pytest.raises(ValueError, match=r"net.weights\[0\] contains NaN"):
        net.relax(x, steps=2, epsilon=0.5)


@pytest.mark.parametrize("extra", [0, 1])
def test_the_threshold_counts_every_non_zero_entry(kernel, extra):
    """At most threshold x entries non-zero takes the sparse drive, one more the dense one, on every
    instruction set: an infinite weight row whose input is zero in every example is skipped by the
    sparse drive and makes NaN (0 x inf) in the dense one (the two paths are otherwise bitwise equal).
    BLAS has no sparse path."""
    batch, n_in = 20, 100
    net = random_network([n_in, 30, 3], np.float64)
    x = np.zeros((batch, n_in))
    places = np.flatnonzero(np.arange(batch * n_in) % n_in != 7)  # input 7 stays zero everywhere
    x.reshape(-1)[np.random.default_rng(3).permutation(places)[:500 + extra]] = 0.5
    net.weights[0][7, :] = np.inf
    before = eqcore.sparse_threshold(), eqcore.sparse_threshold(update=True)
    eqcore.set_sparse_threshold(500 / (batch * n_in))
    try:
        state = net.zero_state(batch)
        net.step_engine(batch).free_phase(net._inputs(x), state, steps=1, epsilon=0.5, solver="euler",
                                          threads=2)
    finally:
        eqcore.set_sparse_threshold(*before)
    dense = bool(extra) or kernel.startswith("blas")
    assert np.isnan(state[0]).all() == dense
    assert np.isfinite(state[0]).all() == (not dense)


@pytest.mark.parametrize("drive, update", [(0.0, 1.0), (1.0, 0.0)], ids=["dense-drive", "dense-update"])
def test_the_drive_and_the_update_follow_their_own_thresholds(dtype, drive, update):
    """One path for the drive and the other for the update of W_0: still the reference's step."""
    sizes = [150, 77, 6]
    net = random_network(sizes, dtype)
    x, target = sparse_batch(sizes[0], sizes[-1], dtype, batch=17, seed=3, density=0.4)
    rates = [0.3, 0.2]
    ref_w, ref_b, _ = reference.ep_gradients(net.weights, net.biases, x, target, 0.8, 10, 4, 0.5)
    expected = [p - lr * g for p, lr, g in zip(net.weights + net.biases, rates * 2, ref_w + ref_b)]
    before = eqcore.sparse_threshold(), eqcore.sparse_threshold(update=True)
    eqcore.set_sparse_threshold(drive, update=update)
    try:
        assert (eqcore.sparse_threshold(), eqcore.sparse_threshold(update=True)) == (drive, update)
        net.train_step(x, target, beta=0.8, free_steps=10, nudged_steps=4, epsilon=0.5, learning_rates=rates,
                       threads=2)
    finally:
        eqcore.set_sparse_threshold(*before)
    for got, want in zip(net.weights + net.biases, expected):
        np.testing.assert_allclose(got, want, rtol=0, atol=10 * TOLERANCE[dtype])


def test_one_threshold_sets_both_and_a_bad_one_changes_neither():
    before = eqcore.sparse_threshold(), eqcore.sparse_threshold(update=True)
    assert 0 < before[0] <= before[1] < 1  # the defaults: the update's column tiles pay at higher densities
    try:
        eqcore.set_sparse_threshold(0.2)
        assert (eqcore.sparse_threshold(), eqcore.sparse_threshold(update=True)) == (0.2, 0.2)
        for bad in (dict(density=0.4, update=1.5), dict(density=float("nan"), update=0.4)):
            with pytest.raises(ValueError, match="density"):
                eqcore.set_sparse_threshold(**bad)
            assert (eqcore.sparse_threshold(), eqcore.sparse_threshold(update=True)) == (0.2, 0.2)
    finally:
        eqcore.set_sparse_threshold(*before)


@pytest.mark.parametrize("value", [-0.1, 1.1, float("nan")])
def test_threshold_outside_unit_interval_is_rejected(value):
    with pytest.raises(ValueError, match="density"):
        eqcore.set_sparse_threshold(value)


@pytest.mark.parametrize("n_in", [53, 300])
@pytest.mark.parametrize("width", WIDTHS)
def test_split_drive_matches_reference_and_one_thread(dtype, n_in, width, sparse_path):
    """The drive is the sum of x W_0 over two halves of W_0's rows (300 inputs: 150 + 150;
    53 inputs, below 128: one product), each half cut by columns over the
    threads that share it: with a drive buffer (the step engine's) on 1 to 4 threads, and
    through ``relax`` (each thread's rows drive themselves), the free and nudged states are
    bitwise the one-thread ones, and match the reference."""
    sizes = [n_in, width, 4]
    net = random_network(sizes, dtype)
    batch = 40  # one thread's drive: the strips' groups of 32 rows and 8 more
    x, target = sparse_batch(sizes[0], sizes[-1], dtype, batch, seed=width)
    engine = net.step_engine(batch)
    results = []
    for threads in (1, 2, 3, 4):
        free = net.zero_state(batch)
        engine.free_phase(x, free, steps=4, epsilon=0.5, solver="euler", threads=threads)
        nudged = engine.nudged(x, free, target, beta=0.5, steps=2, epsilon=0.5, solver="euler", threads=threads)
        results.append([s.copy() for s in free + nudged])
        results.append(net.relax(x, steps=4, epsilon=0.5, threads=threads))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)
    expected_free = reference.relax(net.weights, net.biases, x, net.zero_state(batch), 4, 0.5)
    expected = reference.relax(net.weights, net.biases, x, expected_free, 2, 0.5, 0.5, target)
    for got, want in zip(results[0], expected_free + expected):
        np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE[dtype])
