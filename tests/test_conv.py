"""Convolutional EP: the compiled engine against the NumPy reference, the theory, and the API.

The reference (tests/reference.py, ``chain_*``) is written from the equations
of eqprop.layers: cross-correlation with zero padding, 2x2 max / average
pooling, their transposes. Every instruction set, both bottom-up convolution
algorithms (direct and Winograd's: the ``conv_kernel`` fixture) and thread
counts 1 and 2 are compared in float64 and float32.
"""

import numpy as np
import pytest
import reference
from conftest import TOLERANCE, one_hot, random_network
from test_theory import ep_estimate, finite_difference_gradients

import eqprop
from eqprop import Conv2d

POOLS = ["max", "avg", None]
POOL_IDS = ["max", "avg", "none"]


def spec_layers(input_shape, spec):
    """The same network for the library (Conv2d objects) and for the reference (tuples)."""
    layers = [input_shape]
    for entry in spec:
        layers.append(entry[1] if entry[0] == "dense" else Conv2d(entry[1], entry[2], padding=entry[3], pool=entry[4]))
    return layers


def conv_network(input_shape, spec, dtype, seed=0, bias_scale=0.2, weight_scale=1.0):
    return random_network(spec_layers(input_shape, spec), dtype, seed=seed, bias_scale=bias_scale,
                          weight_scale=weight_scale)


def problem(pool, pad, dtype, batch=5):
    # odd map sizes: 9 -> conv 3x3 (pad 0: 7, pooled 3, the last row dropped)
    input_shape = (2, 9, 9)
    spec = [("conv", 3, 3, pad, pool), ("conv", 4, 2, pad, pool), ("dense", 5)]
    net = conv_network(input_shape, spec, dtype)
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (batch, int(np.prod(input_shape)))).astype(dtype)
    target = one_hot(rng.integers(0, 5, batch), 5, dtype)
    return net, input_shape, spec, x, target


def flat(state):
    return [s.reshape(s.shape[0], -1) for s in state]


def assert_close_lists(got, expected, dtype):
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("solver", ["euler", "alternating", "fixed-point"])
@pytest.mark.parametrize("pad", [0, 1])
@pytest.mark.parametrize("pool", POOLS, ids=POOL_IDS)
def test_relax_matches_reference(pool, pad, solver, threads, dtype, conv_kernel, every_thread_runs):
    net, input_shape, spec, x, target = problem(pool, pad, dtype)
    zeros = [np.zeros((x.shape[0], n), dtype=dtype) for n in net.layer_sizes]
    for beta, t in ((0.0, None), (0.6, target)):
        state = net.relax(x, steps=12, epsilon=0.5, beta=beta, target=t, solver=solver, threads=threads)
        expected = reference.chain_relax(input_shape, spec, net.weights, net.biases, x, zeros, 12, 0.5,
                                         beta, t, solver)
        assert [s.shape[1:] for s in state] == list(net.layer_shapes)
        assert_close_lists(flat(state), expected, dtype)


@pytest.mark.parametrize("pool, above", [(pool, (21, 3, 1)) for pool in POOLS] + [("max", (9, 8, 2))],
                         ids=[f"{name}-k3" for name in POOL_IDS] + ["max-k8"])
def test_wide_layers_match_reference(pool, above, dtype, conv_kernel):
    """Channel counts and map widths that reach every column block and row group of the products.

    123 output channels = 3 x 32 + 16 + 8 + 3: the two-vector, one-vector,
    half-vector and scalar column blocks of every instruction set, and, as the
    second layer's input channels, every path of the max-pooled transposed
    convolution: with the 3 x 3 kernel, its windowed sums over whole vectors
    and the scalar tail (112 + 11 with AVX-512); with the 8 x 8 kernel (too
    wide for the windowed sums' registers), its per-tap gather's 4-, 2- and
    1-vector blocks and the scalar tail (64 + 32 + 16 + 11). A 14-wide map
    splits into several row groups (at most 12 rows, 6 without AVX-512). The
    EP gradient covers the update's kernels.
    """
    input_shape = (3, 16, 16)
    c_above, k_above, pad_above = above
    spec = [("conv", 123, 3, 0, pool), ("conv", c_above, k_above, pad_above, pool), ("dense", 7)]
    net = conv_network(input_shape, spec, dtype, weight_scale=0.5)
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, (3, int(np.prod(input_shape)))).astype(dtype)
    target = one_hot(rng.integers(0, 7, 3), 7, dtype)
    zeros = [np.zeros((x.shape[0], n), dtype=dtype) for n in net.layer_sizes]
    for solver in ("euler", "alternating"):
        state = net.relax(x, steps=6, epsilon=0.5, beta=0.6, target=target, solver=solver)
        expected = reference.chain_relax(input_shape, spec, net.weights, net.biases, x, zeros, 6, 0.5,
                                         0.6, target, solver)
        assert_close_lists(flat(state), expected, dtype)
    gw, gb = net.ep_gradients(x, target, beta=0.5, free_steps=6, nudged_steps=3, epsilon=0.5, symmetric=True)
    ew, eb, _ = reference.chain_ep_gradients(input_shape, spec, net.weights, net.biases, x, target, 0.5,
                                             6, 3, 0.5, True)
    tolerance = 1e-9 if dtype == np.float64 else 2e-3
    for g, e in zip(gw + gb, ew + eb):
        np.testing.assert_allclose(g, e, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("pad", [0, 1])
@pytest.mark.parametrize("pool", POOLS, ids=POOL_IDS)
def test_ep_gradients_match_reference(pool, pad, symmetric, threads, dtype, conv_kernel, every_thread_runs):
    net, input_shape, spec, x, target = problem(pool, pad, dtype)
    gw, gb = net.ep_gradients(x, target, beta=0.5, free_steps=15, nudged_steps=5, epsilon=0.5,
                              symmetric=symmetric, threads=threads)
    ew, eb, _ = reference.chain_ep_gradients(input_shape, spec, net.weights, net.biases, x, target, 0.5,
                                             15, 5, 0.5, symmetric)
    assert [g.shape for g in gw] == [w.shape for w in net.weights]
    assert [g.shape for g in gb] == [b.shape for b in net.biases]
    # float32: the gradient divides state differences by beta * batch, losing digits
    tolerance = 1e-9 if dtype == np.float64 else 2e-3
    for g, e in zip(gw + gb, ew + eb):
        np.testing.assert_allclose(g, e, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("pool", POOLS, ids=POOL_IDS)
def test_train_step_applies_the_reference_update(pool, dtype, conv_kernel):
    net, input_shape, spec, x, target = problem(pool, 1, dtype)
    ew, eb, _ = reference.chain_ep_gradients(input_shape, spec, net.weights, net.biases, x, target, 0.5,
                                             10, 4, 0.5)
    before = [p.copy() for p in net.weights + net.biases]
    rates = [0.1, 0.05, 0.02]
    net.train_step(x, target, beta=0.5, free_steps=10, nudged_steps=4, epsilon=0.5, learning_rates=rates)
    tolerance = 1e-10 if dtype == np.float64 else 2e-4
    for k, (after, old, grad) in enumerate(zip(net.weights + net.biases, before, ew + eb)):
        np.testing.assert_allclose(after, old - rates[k % 3] * grad, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("algorithm", ["direct", "winograd"])
def test_all_zero_fields_keep_their_max_pool_ties(algorithm, dtype):
    """Where a state below is zero over an output's whole receptive field, the output is exactly 0.

    Those ties (common: clipped states) go to each window's first position. The
    state below starts zero on a block wider than the windows' fields, so the top-down
    input it gets after one step depends on the winners there; Winograd's transforms
    would round those zeros into noise and move the winners.
    """
    from eqcore._gemm import set_gemm_path

    input_shape = (3, 8, 8)
    spec = [("conv", 16, 3, 1, None), ("conv", 8, 5, 0, "max"), ("dense", 4)]
    net = conv_network(input_shape, spec, dtype)
    rng = np.random.default_rng(11)
    x = rng.uniform(0, 1, (2, int(np.prod(input_shape)))).astype(dtype)
    s1 = rng.uniform(0.1, 1, (2, 16, 8, 8))
    s1[:, :, :6, :6] = 0.0  # the conv map's top-left 2x2 outputs see only zeros
    init = [s1.reshape(2, -1).astype(dtype), rng.uniform(0.2, 1, (2, 8 * 2 * 2)).astype(dtype),
            rng.uniform(0, 1, (2, 4)).astype(dtype)]
    set_gemm_path("skinny", "best", conv=algorithm)
    try:
        state = net.relax(x, steps=1, epsilon=0.5, init=init, solver="euler")
    finally:
        set_gemm_path("skinny", "best")
    expected = reference.chain_relax(input_shape, spec, net.weights, net.biases, x, init, 1, 0.5, 0.0, None,
                                     "euler")
    assert_close_lists(flat(state), expected, dtype)


@pytest.mark.parametrize("seed", range(12))
def test_max_pooled_transposed_convolution_on_random_geometries(seed, dtype, conv_kernel):
    """The top-down input through max pooling on drawn geometries: every kernel of the windowed
    sums (2 to 7), padding up to k - 1, odd maps (a dropped last row and column), and channel
    counts below that cross the vector widths (whole vectors, then the scalar tail)."""
    rng = np.random.default_rng(200 + seed)
    k = 2 + seed % 6
    pad = int(rng.integers(0, k))
    c0, c1, c2 = int(rng.integers(1, 4)), int(rng.integers(5, 41)), int(rng.integers(1, 24))
    size = int(rng.integers(2 * k + 4 - 2 * pad, 2 * k + 11))
    spec = [("conv", c1, k, pad, "max"), ("conv", c2, k, pad, "max"), ("dense", 3)]
    input_shape = (c0, size, size)
    try:
        net = conv_network(input_shape, spec, dtype, seed=seed, weight_scale=0.5)
    except ValueError:  # the second layer's map came out too small for its kernel
        spec[1] = ("conv", c2, 2, 0, "max")
        net = conv_network(input_shape, spec, dtype, seed=seed, weight_scale=0.5)
    x = rng.uniform(0, 1, (3, c0 * size * size)).astype(dtype)
    target = one_hot(rng.integers(0, 3, 3), 3, dtype)
    zeros = [np.zeros((3, n), dtype=dtype) for n in net.layer_sizes]
    state = net.relax(x, steps=5, epsilon=0.5, beta=0.4, target=target)
    expected = reference.chain_relax(input_shape, spec, net.weights, net.biases, x, zeros, 5, 0.5, 0.4, target,
                                     "euler")
    assert_close_lists(flat(state), expected, dtype)


@pytest.mark.parametrize("seed", range(12))
def test_winograd_matches_the_reference_on_random_geometries(seed, dtype):
    """Winograd's convolutions (forced) on drawn geometries: every kernel it takes (2 to 7, so tiles
    of 4, 3 and 2 and alpha of 5 to 8), padding up to k - 1, maps that end in partial tiles,
    channel counts off the vector widths, each pooling; EP gradients included (the update)."""
    from eqcore._gemm import set_gemm_path

    rng = np.random.default_rng(100 + seed)
    k = 2 + seed % 6
    pad = int(rng.integers(0, k))
    pool = [None, "avg", "max", "max", "avg", None][seed // 2 % 6]
    c0, c1, c2 = (int(c) for c in rng.integers(1, 20, 3))
    size = int(rng.integers(2 * k + 2 - 2 * pad, 2 * k + 9))
    spec = [("conv", c1, k, pad, pool), ("conv", c2, k, pad, pool), ("dense", 3)]
    input_shape = (c0, size, size)
    try:
        net = conv_network(input_shape, spec, dtype, seed=seed, weight_scale=0.5)
    except ValueError:  # the second layer's map came out too small for its kernel: a smaller kernel
        spec[1] = ("conv", c2, 2, 0, None)
        net = conv_network(input_shape, spec, dtype, seed=seed, weight_scale=0.5)
    x = rng.uniform(0, 1, (3, c0 * size * size)).astype(dtype)
    x[rng.random(x.shape) < 0.3] = 0
    target = one_hot(rng.integers(0, 3, 3), 3, dtype)
    zeros = [np.zeros((3, n), dtype=dtype) for n in net.layer_sizes]
    set_gemm_path("skinny", "best", conv="winograd")
    try:
        state = net.relax(x, steps=5, epsilon=0.5, beta=0.4, target=target)
        gw, gb = net.ep_gradients(x, target, beta=0.5, free_steps=5, nudged_steps=3, epsilon=0.5, symmetric=True)
    finally:
        set_gemm_path("skinny", "best")
    expected = reference.chain_relax(input_shape, spec, net.weights, net.biases, x, zeros, 5, 0.5, 0.4, target,
                                     "euler")
    assert_close_lists(flat(state), expected, dtype)
    ew, eb, _ = reference.chain_ep_gradients(input_shape, spec, net.weights, net.biases, x, target, 0.5, 5, 3,
                                             0.5, True)
    tolerance = 1e-9 if dtype == np.float64 else 2e-3
    for g, e in zip(gw + gb, ew + eb):
        np.testing.assert_allclose(g, e, rtol=tolerance, atol=tolerance)


def test_conv_algorithm_setting_is_validated_and_reported():
    import eqcore
    from eqcore._gemm import set_gemm_path

    with pytest.raises(ValueError, match="conv must be 'auto', 'direct' or 'winograd'; got 'fft'"):
        set_gemm_path("skinny", "best", conv="fft")
    assert eqcore.gemm_path()["conv"] == "auto"
    set_gemm_path("skinny", "best", conv="direct")
    try:
        assert eqcore.gemm_path()["conv"] == "direct"
        assert eqcore.build_info()["kernel"]["conv"] == "direct"
    finally:
        set_gemm_path("skinny", "best")


def test_image_and_flat_inputs_give_identical_results():
    net, input_shape, spec, x, target = problem("max", 1, np.float64)
    images = x.reshape(-1, *input_shape)
    for a, b in zip(net.relax(x, steps=8, epsilon=0.5), net.relax(images, steps=8, epsilon=0.5)):
        np.testing.assert_array_equal(a, b)
    ga = net.ep_gradients(x, target, beta=0.5, free_steps=8, nudged_steps=3, epsilon=0.5)
    gb = net.ep_gradients(images, target, beta=0.5, free_steps=8, nudged_steps=3, epsilon=0.5)
    for a, b in zip(ga[0] + ga[1], gb[0] + gb[1]):
        np.testing.assert_array_equal(a, b)
    state = net.relax(x, steps=3, epsilon=0.5)
    for a, b in zip(net.relax(x, steps=3, epsilon=0.5, init=state),
                    net.relax(x, steps=3, epsilon=0.5, init=flat(state))):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(net.predict(x, steps=5), net.predict(images, steps=5))


def test_max_pool_ties_pick_the_first_maximum():
    """Zero weights make every window a tie: the winner must be the window's top-left position."""
    net = eqprop.EqPropNetwork([(1, 4, 4), Conv2d(1, 1, pool="max"), Conv2d(1, 1, pool=None), 2],
                               dtype="float64", seed=0)
    net.weights[0][...] = 0.0
    net.biases[0][...] = 0.5
    net.weights[1][...] = 1.0
    x = np.zeros((1, 16))
    s1 = np.full((1, 1, 2, 2), 0.5)
    s2 = np.array([[[[0.1, 0.2], [0.3, 0.4]]]])
    # the top-down input of the middle layer routes s1 (with the kernel 1x1 weight 1) ...
    h = reference.chain_net_inputs((1, 4, 4), [("conv", 1, 1, 0, "max"), ("conv", 1, 1, 0, None), ("dense", 2)],
                                   net.weights, net.biases, x, [s1.reshape(1, -1), s2.reshape(1, -1), np.zeros((1, 2))])
    assert np.allclose(h[0], 0.5 + s2.reshape(1, -1))
    # ... and the update of W_0 correlates x's window top-left pixels with s1 (x = e_0 at each window's corner)
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, ::2, ::2] = 1.0
    gw, _ = reference.chain_phi_gradients((1, 4, 4), [("conv", 1, 1, 0, "max")], [np.zeros((1, 1, 1, 1))],
                                          x.reshape(1, -1), [s1.reshape(1, -1)])
    assert np.isclose(gw[0].item(), 4 * 0.5)
    target = one_hot([1], 2, np.float64)
    got, _ = net.ep_gradients(x, target, beta=0.5, free_steps=5, nudged_steps=3, epsilon=0.5)
    expected, _, _ = reference.chain_ep_gradients(
        (1, 4, 4), [("conv", 1, 1, 0, "max"), ("conv", 1, 1, 0, None), ("dense", 2)], net.weights, net.biases,
        x.reshape(1, -1), target, 0.5, 5, 3, 0.5)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=1e-12)


# ----------------------------------------------------------------- theory


@pytest.mark.parametrize("pool", POOLS, ids=POOL_IDS)
@pytest.mark.parametrize("solver", ["euler", "alternating"])
def test_free_phase_reaches_a_fixed_point(pool, solver):
    net, input_shape, spec, x, _ = problem(pool, 1, np.float64)
    state = flat(net.relax(x, steps=2000, epsilon=0.5, solver=solver))
    h = reference.chain_net_inputs(input_shape, spec, net.weights, net.biases, x, state)
    for s, h_k in zip(state, h):
        np.testing.assert_allclose(s, np.clip(h_k, 0, 1), atol=1e-6)
    assert any(((s > 1e-3) & (s < 1 - 1e-3)).any() for s in state)


@pytest.mark.parametrize("pool", ["avg", None], ids=["avg", "none"])
def test_energy_never_increases_in_free_phase(pool):
    # max pooling makes Phi piecewise linear in the state below (winners switch), so the
    # Euler step's descent guarantee is for the smooth kinds; max is checked by the fixed point
    net, input_shape, spec, x, _ = problem(pool, 1, np.float64)
    state = net.zero_state(x.shape[0])
    energies = [net.energy(x, state)]
    for _ in range(100):
        state = net.relax(x, steps=1, epsilon=0.05, init=state)
        energies.append(net.energy(x, state))
    energies = np.array(energies)
    assert (np.diff(energies, axis=0) <= 1e-12).all()
    assert (energies[-1] < energies[0] - 1e-3).all()


def test_energy_matches_reference():
    for pool in POOLS:
        net, input_shape, spec, x, _ = problem(pool, 1, np.float64)
        state = flat(net.relax(x, steps=5, epsilon=0.5))
        np.testing.assert_allclose(net.energy(x, state),
                                   reference.chain_energy(input_shape, spec, net.weights, net.biases, x, state),
                                   rtol=1e-12)


def theorem_network(pool):
    input_shape = (1, 7, 7)
    spec = [("conv", 2, 2, 0, pool), ("conv", 2, 2, 0, None), ("dense", 3)]
    net = conv_network(input_shape, spec, np.float64, seed=7, bias_scale=0.3, weight_scale=0.5)
    rng = np.random.default_rng(8)
    x = rng.random((3, 49))
    d = one_hot(rng.integers(0, 3, 3), 3, np.float64)
    return net, x, d


@pytest.fixture(scope="module", params=["max", "avg"])
def conv_theorem(request):
    net, x, d = theorem_network(request.param)
    return net, x, d, finite_difference_gradients(net, x, d)


def test_symmetric_ep_estimate_is_the_gradient_of_a_conv_network(conv_theorem):
    net, x, d, fd = conv_theorem
    assert np.linalg.norm(fd) > 1e-2
    ep = ep_estimate(net, x, d, 1e-3, symmetric=True)
    assert np.linalg.norm(ep - fd) / np.linalg.norm(fd) < 2e-2


def test_one_sided_conv_estimate_error_is_first_order_in_beta(conv_theorem):
    net, x, d, fd = conv_theorem
    # from beta = 1e-2 down (at 1e-1 the nudge already switches max-pool winners)
    errors = [np.linalg.norm(ep_estimate(net, x, d, b, symmetric=False) - fd) for b in (1e-2, 1e-3, 1e-4)]
    for larger, smaller in zip(errors, errors[1:]):
        assert 5 < larger / smaller < 20


# ------------------------------------------------------------ API and input checks
def test_layers_grammar_round_trips():
    from eqprop.layers import format_layers, layers_from_json, layers_to_json, parse_layers

    text = "1x28x28,c32k5mp,c64k3p1ap,c8k2,10"
    layers = parse_layers(text)
    assert layers == [(1, 28, 28), Conv2d(32, 5, pool="max"), Conv2d(64, 3, padding=1, pool="avg"),
                      Conv2d(8, 2, pool=None), 10]
    assert format_layers(layers) == text
    assert layers_from_json(layers_to_json(layers)) == layers
    assert parse_layers("784-500-10") == [784, 500, 10]
    net = eqprop.EqPropNetwork(layers)
    assert net.architecture == text and net.layer_shapes == ((32, 12, 12), (64, 6, 6), (8, 5, 5), (10,))


@pytest.mark.parametrize("layers, error, match", [
    ([(1, 4, 4), Conv2d(2, 5), 3], ValueError, r"layers\[1\].*kernel 5 is larger than the padded 4x4 map"),
    ([(1, 3, 3), Conv2d(2, 3), 3], ValueError, r"layers\[1\].*pooling needs a map of at least 2x2"),
    ([(1, 8, 8), 10, Conv2d(2, 3), 3], ValueError, r"layers\[2\].*conv layer on a dense layer"),
    ([64, Conv2d(2, 3), 3], ValueError, r"layers\[1\].*conv layer on a flat input"),
    ([(1, 8, 8), "c2k3", 3], TypeError, r"layers\[1\].*must be an int"),
    ([(0, 8, 8), Conv2d(2, 3), 3], ValueError, r"input shape.*at least 1"),
    ([(1, 8), Conv2d(2, 3), 3], TypeError, r"layers\[0\] is the input"),
])
def test_bad_architectures_are_refused(layers, error, match):
    with pytest.raises(error, match=match):
        eqprop.EqPropNetwork(layers)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(out_channels=0, kernel_size=3), ValueError, "out_channels must be at least 1"),
    (dict(out_channels=2, kernel_size=-1), ValueError, "kernel_size must be at least 1"),
    (dict(out_channels=2, kernel_size=3, padding=-1), ValueError, "padding must be at least 0"),
    (dict(out_channels=2, kernel_size=3, pool="min"), ValueError, "pool must be 'max', 'avg' or None"),
    (dict(out_channels=2.0, kernel_size=3), TypeError, "out_channels must be an integer"),
])
def test_bad_conv_layers_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        Conv2d(**kwargs)


def test_bad_conv_inputs_are_refused():
    net, input_shape, spec, x, target = problem("max", 0, np.float64)
    with pytest.raises(ValueError, match=r"examples of shape \(2, 8, 9\); the network expects \(2, 9, 9\)"):
        net.relax(np.zeros((3, 2, 8, 9)), steps=2, epsilon=0.5)
    with pytest.raises(ValueError, match="x has 161 columns; the network expects 162"):
        net.relax(np.zeros((3, 161)), steps=2, epsilon=0.5)
    with pytest.raises(ValueError, match=r"init\[0\] has examples of shape \(3, 3, 4\)"):
        net.relax(x, steps=2, epsilon=0.5, init=[np.zeros((5, 3, 3, 4)), np.zeros((5, 4)), np.zeros((5, 5))])
    with pytest.raises(ValueError, match="target has 4 columns"):
        net.ep_gradients(x, target[:, :4], beta=0.5, free_steps=2, nudged_steps=2, epsilon=0.5)


def test_conv_training_resumes_exactly(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 6, 6))
    labels = rng.integers(0, 3, 40)
    layers = [(1, 6, 6), Conv2d(2, 3, pool="max"), 3]
    kwargs = dict(beta=0.5, free_steps=6, nudged_steps=3, epsilon=0.5, learning_rates=[0.1, 0.05],
                  batch_size=8, seed=3, threads=1)

    straight = eqprop.Trainer(eqprop.EqPropNetwork(layers, dtype="float64", seed=1), **kwargs)
    straight.fit(x, labels, epochs=2)
    first = eqprop.Trainer(eqprop.EqPropNetwork(layers, dtype="float64", seed=1), **kwargs)
    first.fit(x, labels, epochs=1, checkpoint_dir=tmp_path)
    resumed = eqprop.Trainer.resume(tmp_path)
    assert resumed.net.architecture == "1x6x6,c2k3mp,3"
    resumed.fit(x, labels, epochs=1, checkpoint_dir=tmp_path)
    for a, b in zip(straight.net.weights + straight.net.biases, resumed.net.weights + resumed.net.biases):
        np.testing.assert_array_equal(a, b)
    assert straight.history.column("train_error") == resumed.history.column("train_error")
    # a checkpoint of a conv network refuses a dense trainer
    dense = eqprop.Trainer(eqprop.EqPropNetwork([36, 8, 3], dtype="float64"), **kwargs)
    with pytest.raises(ValueError, match="is for a 1x6x6,c2k3mp,3 float64 network"):
        dense.load_checkpoint(tmp_path)


# ------------------------------------------------------------ initialisation
def test_glorot_limits_use_the_receptive_field_fans_and_the_gains():
    layers = [(2, 9, 9), Conv2d(8, 3, pool="max"), 10]
    plain = eqprop.EqPropNetwork(layers, dtype="float64", seed=4)
    scaled = eqprop.EqPropNetwork(layers, dtype="float64", seed=4, init_gains=[1.0, 0.25])
    conv_limit = np.sqrt(6.0 / (2 * 9 + 8 * 9))  # fan_in C_in k^2, fan_out C_out k^2
    dense_limit = np.sqrt(6.0 / (8 * 3 * 3 + 10))
    for w, limit in zip(plain.weights, (conv_limit, dense_limit)):
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.9 * limit
    # the same draws, the second connection scaled
    np.testing.assert_array_equal(scaled.weights[0], plain.weights[0])
    np.testing.assert_allclose(scaled.weights[1], 0.25 * plain.weights[1], rtol=1e-15)
    one_gain = eqprop.EqPropNetwork(layers, dtype="float64", seed=4, init_gains=0.5)
    for w, p in zip(one_gain.weights, plain.weights):
        np.testing.assert_allclose(w, 0.5 * p, rtol=1e-15)


@pytest.mark.parametrize("gains, error, match", [
    ([1.0], ValueError, r"init_gains must have one gain per weight array \(2\); got 1"),
    ([1.0, 0.0], ValueError, r"init_gains\[1\] must be positive"),
    ([1.0, float("nan")], ValueError, r"init_gains\[1\] must be finite"),
    ("1", TypeError, "init_gains must be None, a number or a sequence"),
    ([1.0, "a"], TypeError, r"init_gains\[1\] must be a real number"),
])
def test_bad_init_gains(gains, error, match):
    with pytest.raises(error, match=match):
        eqprop.EqPropNetwork([(2, 9, 9), Conv2d(8, 3), 10], init_gains=gains)
