"""The event-driven relaxation: a dense chain's steps send only the states' changes through
the weights (eqcore.set_delta_threshold); every path and solver matches the NumPy reference.

The tests force each choice (threshold 0: every step recomputes the products of
the whole states, as before; 1: after the first step every changed row sends its
changes through the per-row sparse product; 1e-9: through the listed product of
neighbouring rows, or for bfloat16 recomputes) and the default, in float64 and
float32, with each kernel instruction set and thread count. Layers are at least 64 wide, since narrower net-input
parts are always recomputed.
"""

import eqcore
import eqprop
import numpy as np
import pytest
import reference
from conftest import TOLERANCE, one_hot, random_network

# widths that reach the sparse product's whole 8-vector tiles with an overlapping
# tail (130 float32 columns with AVX-512), and narrower steps (66, 70, 96); a narrow
# last layer's parts are recomputed. Every chain has a connection at least 64 wide on
# both sides past the input's (784-500-10 has none and relaxes as before).
SIZES = {"two hidden": [40, 96, 70, 6], "one hidden": [30, 130, 66], "wide output": [25, 70, 80]}


@pytest.fixture(params=[0.0, 1.0, 1e-9, eqcore.delta_threshold()], ids=["recompute", "changes", "listed", "default"])
def change_path(request):
    before = eqcore.delta_threshold()
    eqcore.set_delta_threshold(request.param)
    yield request.param
    eqcore.set_delta_threshold(before)


@pytest.fixture
def always_changes():
    before = eqcore.delta_threshold()
    eqcore.set_delta_threshold(1.0)
    yield
    eqcore.set_delta_threshold(before)


def batch_of(n_in, n_out, dtype, batch, seed):
    rng = np.random.default_rng(seed)
    x = rng.random((batch, n_in)) * (rng.random((batch, n_in)) < 0.6)
    return x.astype(dtype), one_hot(rng.integers(0, n_out, batch), n_out, dtype)


SOLVERS = ["euler", "alternating", "fixed-point"]


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("name", list(SIZES))
@pytest.mark.parametrize("threads", [1, 2])
def test_relaxation_matches_reference(kernel, every_thread_runs, dtype, name, threads, solver, change_path):
    sizes = SIZES[name]
    # the alternating solvers compare well in float32 on contracting weights only
    net = random_network(sizes, dtype, weight_scale=1.5 if solver == "euler" else 0.5)
    for batch in (1, 7, 26):
        x, target = batch_of(sizes[0], sizes[-1], dtype, batch, seed=batch)
        free = net.relax(x, steps=30, epsilon=0.5, threads=threads, solver=solver)
        nudged = net.relax(x, steps=8, epsilon=0.5, beta=0.5, target=target, init=free, threads=threads,
                           solver=solver)
        negative = net.relax(x, steps=8, epsilon=0.5, beta=-0.5, target=target, init=free, threads=threads,
                             solver=solver)
        expected_free = reference.relax(net.weights, net.biases, x, net.zero_state(batch), 30, 0.5, solver=solver)
        expected = reference.relax(net.weights, net.biases, x, expected_free, 8, 0.5, 0.5, target, solver=solver)
        expected_negative = reference.relax(net.weights, net.biases, x, expected_free, 8, 0.5, -0.5, target,
                                            solver=solver)
        for got, want in zip(free + nudged + negative, expected_free + expected + expected_negative):
            np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE[dtype])


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("output", ["clipped", "linear"])
def test_clamped_and_linear_outputs_match_reference(kernel, every_thread_runs, dtype, output, solver, change_path):
    sizes = [30, 90, 80, 70]
    net = random_network(sizes, dtype, weight_scale=1.5)
    if output == "linear":
        import eqprop

        linear = eqprop.EqPropNetwork(sizes, dtype=dtype, output="linear")
        linear.set_params(net.weights, net.biases)
        net = linear
    x, target = batch_of(sizes[0], sizes[-1], dtype, 9, seed=3)
    state = [np.ascontiguousarray(s) for s in net.zero_state(9)]
    code = SOLVERS.index(solver)  # eqcore.SOLVER_EULER, SOLVER_ALTERNATING, SOLVER_FIXED_POINT
    eqcore.relax_batch(net.core_chain(), x, state, 25, 0.5, 0.0, target, solver=code, threads=2, clamp_output=True)
    expected = reference.relax(net.weights, net.biases, x, net.zero_state(9), 25, 0.5, solver=solver,
                               linear_output=output == "linear", clamp=target)
    for got, want in zip(state, expected):
        np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE[dtype])
    free = net.relax(x, steps=25, epsilon=0.5, threads=2, solver=solver)
    want = reference.relax(net.weights, net.biases, x, net.zero_state(9), 25, 0.5, solver=solver,
                           linear_output=output == "linear")
    for got, w in zip(free, want):
        np.testing.assert_allclose(got, w, rtol=0, atol=TOLERANCE[dtype])


BF16_PATHS = ["native", "fallback"] if eqcore.cpu_has_bf16() else ["fallback"]


@pytest.mark.parametrize("solver", ["euler", "fixed-point"])
@pytest.mark.parametrize("bf16", BF16_PATHS)
@pytest.mark.parametrize("isa", ["best", "avx2", "portable"])
@pytest.mark.parametrize("threads", [1, 2])
def test_bfloat16_changes_equal_the_bfloat16_reference(every_thread_runs, bf16, isa, threads, solver, change_path):
    """precision="bfloat16": the changes are those of the states rounded to bfloat16, sent
    through the bfloat16 weights (pair layout natively). On a grid where every float32 sum is
    exact (weights in sixteenths, inputs in quarters, steps of size 1, beta 1/2 added as the
    fixed-point solver adds it) each path equals the
    reference exactly, bfloat16 roundings of the states included; elsewhere a float32 difference
    in a sum can flip a state's rounding, which is why one-step tests bound the rest."""
    import eqprop

    eqcore.set_gemm_path("skinny", isa, bf16=bf16)
    try:
        sizes = [40, 130, 70, 6]
        rng = np.random.default_rng(7)
        net = eqprop.EqPropNetwork(sizes, precision="bfloat16")
        for w in net.weights:
            w[...] = rng.integers(-3, 4, w.shape) / 16 * (rng.random(w.shape) < 0.3)
        for b in net.biases:
            b[...] = rng.integers(-2, 3, b.shape) / 16
        x = (rng.integers(0, 5, (13, sizes[0])) / 4).astype(np.float32)
        target = one_hot(rng.integers(0, sizes[-1], 13), sizes[-1], np.float32)
        free = net.relax(x, steps=4, epsilon=1.0, threads=threads, solver=solver)
        nudged = net.relax(x, steps=3, epsilon=1.0, beta=0.5, target=target, init=free, threads=threads,
                           solver=solver)
        start = [np.zeros((13, n)) for n in sizes[1:]]
        expected_free = reference.relax(net.weights, net.biases, x, start, 4, 1.0, solver=solver,
                                        operands=reference.bf16_round, store=np.float32)
        expected = reference.relax(net.weights, net.biases, x, expected_free, 3, 1.0, 0.5, target, solver=solver,
                                   operands=reference.bf16_round, store=np.float32)
        for got, want in zip(free + nudged, expected_free + expected):
            np.testing.assert_array_equal(got, want)
        assert any(not np.array_equal(s, reference.bf16_round(s)) for s in free + nudged)  # states did round
    finally:
        eqcore.set_gemm_path("skinny", "best")


@pytest.mark.parametrize("threshold", [1.0, 1e-9], ids=["per-row", "listed"])
def test_changes_are_what_is_sent(threshold):
    """Sending changes rounds differently from recomputing (so the path ran) and stays within
    rounding of it, in float64 over a long relaxation."""
    before = eqcore.delta_threshold()
    eqcore.set_delta_threshold(threshold)
    net = random_network([40, 96, 70, 6], np.float64, weight_scale=1.5)
    x, _ = batch_of(40, 6, np.float64, 12, seed=1)
    sent = net.relax(x, steps=200, epsilon=0.5)
    eqcore.set_delta_threshold(0.0)
    recomputed = net.relax(x, steps=200, epsilon=0.5)
    eqcore.set_delta_threshold(before)
    assert any(not np.array_equal(a, b) for a, b in zip(sent, recomputed))
    for a, b in zip(sent, recomputed):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("threads", [1, 2])
def test_rows_do_not_depend_on_their_block(every_thread_runs, dtype, threads):
    """Each row chooses between changes and recomputing by its own changes: cutting the batch
    differently (threads, sub-batches) gives bitwise the same rows."""
    before = eqcore.delta_threshold()
    try:
        for threshold in (1.0, 0.05, 1e-9):
            eqcore.set_delta_threshold(threshold)
            net = random_network([40, 96, 70, 6], dtype, weight_scale=1.5)
            x, _ = batch_of(40, 6, dtype, 26, seed=2)
            whole = net.relax(x, steps=40, epsilon=0.5, threads=threads)
            parts = [net.relax(x[a:b], steps=40, epsilon=0.5, threads=1) for a, b in ((0, 5), (5, 6), (6, 26))]
            for j, layer in enumerate(whole):
                np.testing.assert_array_equal(layer, np.concatenate([p[j] for p in parts]))
    finally:
        eqcore.set_delta_threshold(before)


def test_a_long_relaxation_reaches_the_fixed_point(dtype, always_changes):
    net = random_network([40, 96, 70, 6], dtype)  # small weights: the dynamics contract
    x, _ = batch_of(40, 6, dtype, 10, seed=4)
    state = net.relax(x, steps=300, epsilon=0.5)
    h = reference.net_inputs(net.weights, net.biases, x, state)
    for s, hk in zip(state, h):
        np.testing.assert_allclose(s, np.clip(hk, 0, 1), rtol=0, atol=10 * TOLERANCE[dtype])


def test_a_nan_weight_reaches_the_states(always_changes):
    """A NaN reaches the states (and the Trainer's divergence check) through the changes too."""
    net = random_network([40, 96, 70, 6], np.float32, weight_scale=1.5)
    x, _ = batch_of(40, 6, np.float32, 4, seed=5)
    chain = net.core_chain()  # the unchecked core, which the network's checks guard
    state = [np.zeros((4, n), np.float32) for n in net.sizes[1:]]
    eqcore.relax_batch(chain, x, state, 10, 0.5, 0.0)
    assert all(np.isfinite(s).all() for s in state)
    net.weights[2][:, :] = np.nan  # in place: the chain reads the same array
    eqcore.relax_batch(chain, x, state, 3, 0.5, 0.0)
    assert np.isnan(state[1]).all() and np.isnan(state[2]).all()


@pytest.mark.parametrize("isa", ["best", "avx2", "portable"])
def test_a_nan_weight_reaches_bfloat16_states(always_changes, isa):
    """In bfloat16 the changes are those of the rounded states (``eq_step_delta_bf16``, one per
    instruction set): a NaN state still counts as a change and reaches the layers it drives."""
    net = eqprop.EqPropNetwork([40, 96, 70, 6], dtype="float32", seed=0, precision="bfloat16")
    for w in net.weights:
        w *= 1.5
    x, _ = batch_of(40, 6, np.float32, 4, seed=5)
    eqcore.set_gemm_path("skinny", isa)
    try:
        chain = net.core_chain()
        state = [np.zeros((4, n), np.float32) for n in net.sizes[1:]]
        eqcore.relax_batch(chain, x, state, 10, 0.5, 0.0)
        assert all(np.isfinite(s).all() for s in state)
        net.weights[2][:, :] = np.nan
        eqcore.relax_batch(chain, x, state, 3, 0.5, 0.0)
        assert np.isnan(state[1]).all() and np.isnan(state[2]).all()
    finally:
        eqcore.set_gemm_path("skinny", "best")


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
@pytest.mark.parametrize("setter, getter", [(eqcore.set_delta_threshold, eqcore.delta_threshold),
                                            (eqcore.set_sparse_threshold, eqcore.sparse_threshold)],
                         ids=["delta", "sparse input"])
def test_a_threshold_outside_0_1_is_refused(bad, setter, getter):
    before = getter()
    with pytest.raises(ValueError, match="density"):
        setter(bad)
    assert getter() == before


def test_a_chain_without_a_wide_hidden_connection_relaxes_as_before(always_changes):
    """784-500-10's shape: bitwise the products of the whole states, whatever the threshold."""
    net = random_network([40, 96, 6], np.float64, weight_scale=1.5)
    x, _ = batch_of(40, 6, np.float64, 12, seed=1)
    sent = net.relax(x, steps=60, epsilon=0.5)
    eqcore.set_delta_threshold(0.0)
    for a, b in zip(sent, net.relax(x, steps=60, epsilon=0.5)):
        np.testing.assert_array_equal(a, b)


def test_build_info_reports_the_threshold():
    before = eqcore.delta_threshold()
    try:
        eqcore.set_delta_threshold(0.125)
        assert eqcore.build_info()["state_change_density"] == 0.125
    finally:
        eqcore.set_delta_threshold(before)
