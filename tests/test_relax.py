"""The compiled relaxation against the NumPy reference, in float64 and float32."""

import eqprop
import numpy as np
import pytest
import reference
from conftest import ROUNDING, TOLERANCE, one_hot, random_network


@pytest.fixture(autouse=True)
def every_kernel(kernel, every_thread_runs):
    """Every test here runs with each product implementation, and starts every thread asked for."""
    return kernel


def batch_inputs(sizes, dtype, batch=13, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.random((batch, sizes[0])).astype(dtype)
    target = one_hot(rng.integers(0, sizes[-1], batch), sizes[-1], dtype)
    return x, target


def assert_states_close(actual, expected, dtype):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, e, rtol=0, atol=TOLERANCE[dtype])


@pytest.mark.parametrize("solver", ["euler", "alternating", "fixed-point"])
def test_free_phase_matches_reference(sizes, dtype, solver):
    net = random_network(sizes, dtype)
    x, _ = batch_inputs(sizes, dtype)
    state = net.relax(x, steps=17, epsilon=0.4, solver=solver, threads=2)
    zeros = net.zero_state(x.shape[0])
    expected = reference.relax(net.weights, net.biases, x, zeros, 17, 0.4, solver=solver)
    assert_states_close(state, expected, dtype)
    # the check is not vacuous: the state moved away from zero
    assert max(np.abs(s).max() for s in state) > 0.1


@pytest.mark.parametrize("solver", ["euler", "alternating", "fixed-point"])
@pytest.mark.parametrize("beta", [0.5, -0.5, 2.0])
def test_nudged_phase_matches_reference(sizes, dtype, solver, beta):
    if solver == "alternating" and beta <= -1:
        pytest.skip("alternating solver needs beta > -1")
    if solver == "fixed-point" and abs(beta) >= 1:
        pytest.skip("fixed-point solver needs |beta| < 1")
    net = random_network(sizes, dtype)
    x, target = batch_inputs(sizes, dtype)
    free = net.relax(x, steps=10, epsilon=0.5, solver=solver)
    nudged = net.relax(x, steps=6, epsilon=0.5, beta=beta, target=target, init=free, solver=solver)
    expected = reference.relax(net.weights, net.biases, x, free, 6, 0.5, beta, target, solver)
    assert_states_close(nudged, expected, dtype)
    assert np.abs(nudged[-1] - free[-1]).max() > 1e-3  # nudging did something


@pytest.mark.parametrize("output", ["clipped", "linear"])
def test_fixed_point_solver_differs_from_alternating_only_in_the_nudged_output(output):
    """Free phases agree bitwise; nudged, y <- h + beta (d - y) moves differently, to the same fixed point."""
    import eqprop

    sizes = [10, 8, 6, 4]
    source = random_network(sizes, np.float64)
    net = eqprop.EqPropNetwork(sizes, dtype="float64", output=output)
    net.set_params(source.weights, source.biases)
    x, target = batch_inputs(sizes, np.float64, batch=5)
    free = {solver: net.relax(x, steps=7, epsilon=0.5, solver=solver) for solver in ("alternating", "fixed-point")}
    for a, b in zip(free["alternating"], free["fixed-point"]):
        np.testing.assert_array_equal(a, b)
    start = free["alternating"]
    for beta in (0.4, -0.4):
        short = [net.relax(x, steps=3, epsilon=0.5, beta=beta, target=target, init=start, solver=solver)
                 for solver in ("alternating", "fixed-point")]
        assert np.abs(short[0][-1] - short[1][-1]).max() > 1e-4
        converged = [net.relax(x, steps=300, epsilon=0.5, beta=beta, target=target, init=start, solver=solver)
                     for solver in ("alternating", "fixed-point")]
        for a, b in zip(*converged):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_init_is_copied_and_projected(dtype):
    sizes = [5, 4, 3]
    net = random_network(sizes, dtype)
    x, _ = batch_inputs(sizes, dtype, batch=4)
    init = [np.full((4, 4), 2.0, dtype=dtype), np.full((4, 3), -1.0, dtype=dtype)]
    before = [s.copy() for s in init]
    state = net.relax(x, steps=3, epsilon=0.5, init=init)
    for s, b in zip(init, before):
        np.testing.assert_array_equal(s, b)
    expected = reference.relax(net.weights, net.biases, x, init, 3, 0.5)
    assert_states_close(state, expected, dtype)


@pytest.mark.parametrize("batch", [1, 2, 3, 7, 64])
@pytest.mark.parametrize("solver", ["euler", "alternating", "fixed-point"])
def test_thread_count_does_not_change_results(dtype, batch, solver, every_thread_runs):
    """Results agree across thread counts to within float rounding.

    Not bitwise: each thread calls BLAS on its own block of rows, and OpenBLAS
    picks its kernel by the number of rows, which changes the last bit.
    """
    sizes = [30, 20, 20, 10]
    net = random_network(sizes, dtype)
    x, target = batch_inputs(sizes, dtype, batch=batch)
    results = []
    for threads in (1, 2, 3, 8):
        free = net.relax(x, steps=12, epsilon=0.5, solver=solver, threads=threads)
        nudged = net.relax(x, steps=4, epsilon=0.5, beta=0.5, target=target, init=free,
                           solver=solver, threads=threads)
        results.append(free + nudged)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_allclose(a, b, rtol=0, atol=ROUNDING[dtype])


def test_layout_of_inputs_does_not_matter(dtype):
    sizes = [8, 6, 4]
    net = random_network(sizes, dtype)
    x, target = batch_inputs(sizes, dtype, batch=5)
    contiguous = net.relax(x, steps=9, epsilon=0.5, beta=1.0, target=target)
    fortran = net.relax(np.asfortranarray(x), steps=9, epsilon=0.5, beta=1.0, target=np.asfortranarray(target))
    wide = np.zeros((5, 16), dtype=dtype)
    wide[:, ::2] = x
    strided = net.relax(wide[:, ::2], steps=9, epsilon=0.5, beta=1.0, target=target)
    as_list = net.relax(x.tolist(), steps=9, epsilon=0.5, beta=1.0, target=target.tolist())
    for other in (fortran, strided, as_list):
        for a, b in zip(contiguous, other):
            np.testing.assert_array_equal(a, b)


def test_empty_batch_gives_empty_state(dtype):
    net = random_network([5, 4, 3], dtype)
    state = net.relax(np.zeros((0, 5)), steps=5, epsilon=0.5)
    assert [s.shape for s in state] == [(0, 4), (0, 3)]
    assert net.predict(np.zeros((0, 5))).shape == (0,)


def test_inputs_outside_unit_interval_go_through_rho(dtype):
    net = random_network([5, 4, 3], dtype)
    x = np.linspace(-2, 3, 10).reshape(2, 5)
    a = net.relax(x, steps=5, epsilon=0.5)
    b = net.relax(np.clip(x, 0, 1), steps=5, epsilon=0.5)
    for s, t in zip(a, b):
        np.testing.assert_array_equal(s, t)


def test_energy_matches_reference(sizes, dtype):
    net = random_network(sizes, dtype)
    x, target = batch_inputs(sizes, dtype)
    state = net.relax(x, steps=5, epsilon=0.5)
    np.testing.assert_allclose(
        net.energy(x, state), reference.energy(net.weights, net.biases, x, state),
        rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype],
    )
    np.testing.assert_allclose(net.cost(state, target), reference.cost(state, target), rtol=1e-6)


def test_weights_written_by_user_are_used(dtype):
    net = random_network([5, 4, 3], dtype)
    x, _ = batch_inputs([5, 4, 3], dtype, batch=3)
    before = net.relax(x, steps=5, epsilon=0.5)
    net.weights[0][...] *= -1
    after = net.relax(x, steps=5, epsilon=0.5)
    expected = reference.relax(net.weights, net.biases, x, net.zero_state(3), 5, 0.5)
    assert_states_close(after, expected, dtype)
    assert not np.allclose(before[0], after[0])


@pytest.mark.parametrize("solver", ["euler", "alternating"])
def test_wide_connections_match_reference_on_two_threads(dtype, solver):
    """A connection big enough that its transposed copy is made by both threads, in tiles with tails."""
    sizes = [20, 300, 270, 5]  # W_1 is 300 x 270: 81,000 entries, three column blocks, the last partial
    net = random_network(sizes, dtype)
    x, target = batch_inputs(sizes, dtype)
    free = net.relax(x, steps=9, epsilon=0.5, solver=solver, threads=2)
    nudged = net.relax(x, steps=4, epsilon=0.5, beta=0.5, target=target, init=free, solver=solver, threads=2)
    expected_free = reference.relax(net.weights, net.biases, x, net.zero_state(x.shape[0]), 9, 0.5,
                                    solver=solver)
    expected = reference.relax(net.weights, net.biases, x, expected_free, 4, 0.5, 0.5, target, solver)
    assert_states_close(free, expected_free, dtype)
    assert_states_close(nudged, expected, dtype)
    assert np.abs(free[0]).max() > 0.1


@pytest.mark.parametrize("hidden", [7, 16, 37, 500])  # K below, at, past one AVX-512 vector, with tails
@pytest.mark.parametrize("n_out", [1, 3, 10])
def test_narrow_output_products_match_reference(kernel, dtype, hidden, n_out):
    """The dot-product kernel of narrow layers (row blocks of 4, 2 and 1; column blocks of 4, 2 and 1; the
    vector that ends at K) on every instruction set."""
    sizes = [12, hidden, n_out]
    net = random_network(sizes, dtype)
    net.biases[-1][...] = 0.5  # outputs inside (0, 1), where the clip hides no error of the product
    x, target = batch_inputs(sizes, dtype, batch=13)
    free = net.relax(x, steps=6, epsilon=0.5, threads=1)
    nudged = net.relax(x, steps=3, epsilon=0.5, beta=0.5, target=target, init=free, threads=1)
    expected_free = reference.relax(net.weights, net.biases, x, net.zero_state(13), 6, 0.5)
    expected = reference.relax(net.weights, net.biases, x, expected_free, 3, 0.5, 0.5, target)
    assert_states_close(free, expected_free, dtype)
    assert_states_close(nudged, expected, dtype)
    assert np.mean((free[-1] > 0) & (free[-1] < 1)) > 0.5


@pytest.mark.parametrize("hidden", [7, 37, 500])
@pytest.mark.parametrize("n_out", [3, 10, 20])
def test_units_padded_with_zeros_change_no_bit(kernel, dtype, hidden, n_out):
    """A hidden layer padded to whole vectors with dead units (zero weights and bias) relaxes its
    live units to the same bits, as the compiled epoch loop relies on (eqcore._epoch): every sum
    over the hidden layer has its terms in the same vector lanes, the padding's zeros added after
    them. BLAS's products block their sums by size, so it is left out."""
    if kernel.startswith("blas"):
        pytest.skip("BLAS's sums depend on the sizes; the compiled loop pads no layer on that path")
    padded = -(-hidden // 16) * 16 + 16  # whole vectors, and a vector of zeros past them
    sizes = [12, hidden, 9, n_out]
    net = random_network(sizes, dtype)
    wide = eqprop.EqPropNetwork([12, padded, 9, n_out], dtype=dtype, seed=0)
    for weights, source in zip(wide.weights, net.weights):
        weights[...] = 0
        weights[:source.shape[0], :source.shape[1]] = source
    for bias, source in zip(wide.biases, net.biases):
        bias[...] = 0
        bias[:source.shape[0]] = source
    x, target = batch_inputs(sizes, dtype, batch=13)
    for solver in ("euler", "alternating"):
        free = net.relax(x, steps=6, epsilon=0.5, solver=solver, threads=2)
        wide_free = wide.relax(x, steps=6, epsilon=0.5, solver=solver, threads=2)
        nudged = net.relax(x, steps=3, epsilon=0.5, beta=0.5, target=target, init=free, solver=solver)
        wide_nudged = wide.relax(x, steps=3, epsilon=0.5, beta=0.5, target=target, init=wide_free,
                                 solver=solver)
        for states, wide_states in ((free, wide_free), (nudged, wide_nudged)):
            np.testing.assert_array_equal(wide_states[0][:, :hidden], states[0])
            assert not wide_states[0][:, hidden:].any()
            for layer, wide_layer in zip(states[1:], wide_states[1:]):
                np.testing.assert_array_equal(wide_layer, layer)
        assert 0 < np.mean(free[0] > 0) < 1


def test_weights_start_on_a_cache_line(dtype):
    net = eqprop.EqPropNetwork([784, 500, 500, 10], dtype=dtype, seed=0)
    assert all(w.ctypes.data % 64 == 0 and w.flags.c_contiguous for w in net.weights)


def misaligned_copy(array):
    """``array`` copied to an address 4 bytes past a 64-byte boundary (NumPy only promises 16)."""
    buffer = np.empty(array.nbytes + 128, dtype=np.uint8)
    start = -buffer.ctypes.data % 64 + 4
    copy = buffer[start:start + array.nbytes].view(array.dtype).reshape(array.shape)
    copy[...] = array
    return copy


@pytest.mark.parametrize("solver", ["euler", "alternating"])
def test_misaligned_weights_give_the_same_states(dtype, solver):
    """The kernels read weights at any address: a user's arrays need no alignment."""
    sizes = [40, 70, 33, 5]
    net = random_network(sizes, dtype)
    x, target = batch_inputs(sizes, dtype, batch=13)
    aligned = net.relax(x, steps=6, epsilon=0.5, beta=0.5, target=target, solver=solver, threads=2)
    net.weights = [misaligned_copy(w) for w in net.weights]
    assert all(w.ctypes.data % 64 == 4 for w in net.weights)
    misaligned = net.relax(x, steps=6, epsilon=0.5, beta=0.5, target=target, solver=solver, threads=2)
    for a, b in zip(aligned, misaligned):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("threads", [1, 2])
def test_every_row_count_and_column_tail(dtype, threads, every_thread_runs):
    """Row groups of every size (1..12) and column tails of every width go through the kernels."""
    sizes = [37, 41, 19, 3]  # widths that leave vector, half-vector and scalar tails
    net = random_network(sizes, dtype)
    for batch in range(1, 27):
        x, target = batch_inputs(sizes, dtype, batch=batch, seed=batch)
        free = net.relax(x, steps=3, epsilon=0.5, threads=threads)
        nudged = net.relax(x, steps=2, epsilon=0.5, beta=0.5, target=target, init=free, threads=threads)
        expected_free = reference.relax(net.weights, net.biases, x, net.zero_state(batch), 3, 0.5)
        expected = reference.relax(net.weights, net.biases, x, expected_free, 2, 0.5, 0.5, target)
        assert_states_close(free, expected_free, dtype)
        assert_states_close(nudged, expected, dtype)
