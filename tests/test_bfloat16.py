"""precision="bfloat16": the relaxation's products on bfloat16 operands, against the NumPy reference.

Every test that relaxes runs on each path of the bfloat16 products: AMX tiles
(skipped on a CPU or system without usable AMX-BF16), the native AVX512_BF16
kernel (skipped on a CPU without it) and the fallback (operands rounded, the
float32 kernels) on every float32 instruction set and on BLAS.
A conv connection's direct convolution follows the path too (AVX512_BF16 with
input channels in pairs, or the fallback); its transposed convolutions multiply
rounded operands with the float32 kernels on every path.

Bounds (u = 2^-24, float32's unit roundoff; M = the largest sum over a net input
of |operand products| plus |bias|, the magnitude the sums work at):

* one step against the reference with the same bfloat16 operands, summed in
  float64: 128 u max(M, 1). A float32 sum of K terms is within K u M of the exact
  one (K <= 100 here; the native instruction rounds after each product), then a
  step adds a few float32 roundings of values in [0, 1]. Measured: 0.4 u M on
  every path. One operand rounded the wrong way moves a product by up to 2^-8 of
  itself, far above this bound.
* one step against float32 products from the same state: epsilon 2^-7 M (each
  operand of a product moves by at most 2^-9 relative, so a product by at most
  2^-8 relative, plus the float32 rounding).
* whole relaxations and EP gradients against float32: empirical bounds with a
  margin (the dynamics contract, so per-step differences do not add up), stated
  at each test.
"""

import numpy as np
import pytest
import reference
from conftest import one_hot, random_network
from test_conv import conv_network

import eqcore
import eqprop
from eqcore._gemm import set_gemm_path

U = 2.0**-24
PATHS = ["amx", "native", "fallback/avx512", "fallback/avx2", "fallback/portable", "fallback/blas"]
KERNEL_NAMES = {"amx": "amx", "native": "avx512bf16", "fallback": "fallback"}


@pytest.fixture(params=PATHS)
def bf16_path(request):
    """Run a test on one path of the bfloat16 products (restored after)."""
    mode, _, isa = request.param.partition("/")
    if mode == "amx" and not eqcore.cpu_has_amx():
        pytest.skip("this CPU or system has no usable AMX-BF16")
    if mode == "native" and not eqcore.cpu_has_bf16():
        pytest.skip("this CPU lacks AVX512_BF16")
    if isa == "blas":
        set_gemm_path("blas", "best", bf16="fallback")
    else:
        set_gemm_path("skinny", isa or "best", bf16=mode)
    assert eqcore.gemm_path()["bf16"] == KERNEL_NAMES[mode]
    yield request.param
    set_gemm_path("skinny", "best")


@pytest.fixture(params=[0.0, 1.0], ids=["dense-drive", "sparse-drive"])
def sparse_threshold(request):
    before = eqcore.sparse_threshold(), eqcore.sparse_threshold(update=True)
    eqcore.set_sparse_threshold(request.param)
    yield request.param
    eqcore.set_sparse_threshold(*before)


# odd sizes (a zero pair partner), narrow outputs, widths across vector blocks and (150) across
# the transposed packing's blocks of 64 pairs; 301-301-259-10's weights are big enough for the
# pair layouts to be packed on both threads (_engine._bf16_fill), each with an odd count of rows
SIZES = {"37-33-21-10": [37, 33, 21, 10], "20-30-150-5": [20, 30, 150, 5], "301-301-259-10": [301, 301, 259, 10]}


def bf16_network(sizes, seed=0):
    """A float32 network with nonzero biases and its bfloat16 twin holding the same arrays' values."""
    source = random_network(sizes, np.float32, seed=seed)
    net = eqprop.EqPropNetwork(sizes, precision="bfloat16")
    net.set_params(source.weights, source.biases)
    return source, net


def inputs(sizes, batch=29, seed=3):
    """x in [0, 1] with about half zeros (the drive's zero-skipping has work), a one-hot target."""
    rng = np.random.default_rng(seed)
    x = rng.random((batch, sizes[0])).astype(np.float32)
    x[rng.random(x.shape) < 0.5] = 0
    return x, one_hot(rng.integers(0, sizes[-1], batch), sizes[-1], np.float32)


def scale(net, x, state):
    """M: the largest sum of |operand products| plus |bias| of any net input at this state."""
    layers = [np.abs(x)] + [np.abs(s) for s in state]
    weights = [np.abs(w.astype(np.float64)) for w in net.weights]
    largest = 0.0
    for k in range(len(state)):
        value = layers[k] @ weights[k] + np.abs(net.biases[k])
        if k + 1 < len(state):
            value = value + layers[k + 2] @ weights[k + 1].T
        largest = max(largest, float(value.max()))
    return largest


def random_state(net, batch, seed=5):
    rng = np.random.default_rng(seed)
    return [rng.random((batch, n)).astype(np.float32) for n in net.layer_sizes]


def test_rounding_helper_follows_the_definition():
    """reference.bf16_round: nearest, ties to even, overflow to infinity, NaN kept."""
    largest = 2.0**127 * (2 - 2**-7)  # the largest bfloat16; + 2^119 is halfway to 2^128, which is odd-even: inf
    values = np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, -(1 + 2**-8), 2.0**-130 * (1 + 2**-8),
                       largest + 2**118, largest + 2**119, np.inf, -np.inf, 0.0, -0.0], dtype=np.float32)
    expected = np.array([1.0, 1.0, 1 + 2**-6, 1 + 2**-7, -1.0, 2.0**-130, largest, np.inf, np.inf, -np.inf, 0.0,
                         -0.0], dtype=np.float32)
    rounded = reference.bf16_round(values)
    np.testing.assert_array_equal(rounded, expected)
    assert np.signbit(rounded[-1])
    assert np.isnan(reference.bf16_round(np.float32(np.nan)))
    # every result is a bfloat16, and no other bfloat16 is nearer
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    r = reference.bf16_round(x)
    assert not (r.view(np.uint32) & 0xFFFF).any()
    assert (np.abs(r.astype(np.float64) - x) <= np.abs(x.astype(np.float64)) * 2.0**-8).all()


def test_core_rounds_inputs_and_weights_as_the_reference(bf16_path):
    """One Euler step of size 1 from zeros gives s = clip(h): with W = I the rounded input, with x = I the rounded W."""
    n = 40
    rng = np.random.default_rng(1)
    net = eqprop.EqPropNetwork([n, n], precision="bfloat16")
    ties = (1 + np.arange(n) * 2**-7 + 2**-8) / 2  # halfway between two bfloat16 values: ties to even
    x = np.vstack([rng.random((5, n)), ties]).astype(np.float32)
    net.weights[0][...] = np.eye(n, dtype=np.float32)
    state = net.relax(x, steps=1, epsilon=1.0)
    np.testing.assert_array_equal(state[-1], reference.bf16_round(x))
    net.weights[0][...] = rng.random((n, n))
    state = net.relax(np.eye(n, dtype=np.float32), steps=1, epsilon=1.0)
    np.testing.assert_array_equal(state[-1], reference.bf16_round(net.weights[0]))


@pytest.mark.parametrize("solver", ["euler", "alternating"])
@pytest.mark.parametrize("beta", [0.0, 0.5])
@pytest.mark.parametrize("name", list(SIZES))
def test_one_step_matches_the_bf16_reference(bf16_path, sparse_threshold, every_thread_runs, name, solver, beta):
    """From the same float32 state, one step with bfloat16 products summed in float32 vs float64."""
    sizes = SIZES[name]
    _, net = bf16_network(sizes)
    x, target = inputs(sizes)
    start = random_state(net, x.shape[0])
    kwargs = dict(beta=beta, target=target if beta else None, solver=solver)
    state = net.relax(x, steps=1, epsilon=0.5, init=start, threads=2, **kwargs)
    expected = reference.relax(net.weights, net.biases, x, start, 1, 0.5, operands=reference.bf16_round,
                               store=np.float32, **kwargs)
    bound = 128 * U * max(scale(net, x, start), 1.0)
    for s, e in zip(state, expected):
        np.testing.assert_allclose(s, e, rtol=0, atol=bound)


@pytest.mark.parametrize("solver", ["euler", "alternating"])
def test_steps_compose_exactly(bf16_path, every_thread_runs, solver):
    """A relaxation of n steps is n single steps, bitwise, free and nudged (so every step meets the bound above)."""
    sizes = SIZES["37-33-21-10"]
    _, net = bf16_network(sizes)
    x, target = inputs(sizes)
    for beta in (0.0, 0.5):
        kwargs = dict(beta=beta, target=target if beta else None, solver=solver, threads=2)
        start = random_state(net, x.shape[0])
        whole = net.relax(x, steps=5, epsilon=0.5, init=start, **kwargs)
        state = start
        for _ in range(5):
            state = net.relax(x, steps=1, epsilon=0.5, init=state, **kwargs)
        for a, b in zip(whole, state):
            np.testing.assert_array_equal(a, b)


def test_one_step_is_close_to_float32(bf16_path):
    """bfloat16 products move a step by at most epsilon 2^-7 M against float32 ones (measured: a tenth of it)."""
    sizes = SIZES["20-30-150-5"]
    source, net = bf16_network(sizes)
    x, target = inputs(sizes)
    start = random_state(net, x.shape[0])
    bf16 = net.relax(x, steps=1, epsilon=0.5, beta=0.5, target=target, init=start)
    f32 = source.relax(x, steps=1, epsilon=0.5, beta=0.5, target=target, init=start)
    bound = 0.5 * 2.0**-7 * scale(net, x, start)
    differences = [np.abs(a - b).max() for a, b in zip(bf16, f32)]
    assert max(differences) <= bound
    assert max(differences) > 0  # bfloat16 did change the products


def test_relaxation_is_close_to_float32(bf16_path):
    """A 30-step free phase: within 0.02 of float32 (measured: 0.002 on every path)."""
    sizes = [64, 48, 32, 10]
    source, net = bf16_network(sizes)
    x, _ = inputs(sizes, batch=16)
    bf16 = net.relax(x, steps=30, epsilon=0.5)
    f32 = source.relax(x, steps=30, epsilon=0.5)
    for a, b in zip(bf16, f32):
        np.testing.assert_allclose(a, b, rtol=0, atol=0.02)


def test_ep_gradients_and_train_step_are_close_to_float32(bf16_path):
    """The EP estimate in bfloat16 (centered, beta 0.5): within 5% of float32's (relative Frobenius norm).

    Measured: 0.5% on every path.
    """
    sizes = [64, 48, 32, 10]
    source, net = bf16_network(sizes)
    x, target = inputs(sizes, batch=16)
    settings = dict(beta=0.5, free_steps=30, nudged_steps=8, epsilon=0.5, algorithm="centered")
    grads_bf16 = net.ep_gradients(x, target, **settings)
    grads_f32 = source.ep_gradients(x, target, **settings)
    for a, b in zip((*grads_bf16[0], *grads_bf16[1]), (*grads_f32[0], *grads_f32[1])):
        assert np.linalg.norm(a - b) <= 0.05 * np.linalg.norm(b)
    rates = [0.1, 0.05, 0.02]
    before = [w.copy() for w in net.weights]
    free_bf16 = net.train_step(x, target, learning_rates=rates, **settings)
    free_f32 = source.train_step(x, target, learning_rates=rates, **settings)
    for a, b in zip(free_bf16, free_f32):
        np.testing.assert_allclose(a, b, rtol=0, atol=0.02)
    for w, w0, w32 in zip(net.weights, before, source.weights):
        assert w.dtype == np.float32  # the master weights stay float32
        step, step32 = w - w0, w32 - w0
        assert np.linalg.norm(step - step32) <= 0.05 * np.linalg.norm(step32)


@pytest.mark.parametrize("solver", ["euler", "alternating"])
def test_cross_entropy_readout_in_bfloat16_is_close_to_float32(bf16_path, solver):
    """The softmax readout's products in bfloat16 too: EP gradients within 5% of float32's, the same p to 0.02."""
    sizes = [64, 48, 32, 10]
    rng = np.random.default_rng(5)
    net32 = eqprop.EqPropNetwork(sizes, cost="cross-entropy", seed=1)
    for b in net32.biases:
        b[:] = rng.uniform(-0.1, 0.1, b.shape)
    net = eqprop.EqPropNetwork(sizes, cost="cross-entropy", precision="bfloat16")
    net.set_params(net32.weights, net32.biases)
    x, target = inputs(sizes, batch=16)
    settings = dict(beta=0.5, free_steps=30, nudged_steps=8, epsilon=0.5, algorithm="centered", solver=solver)
    grads_bf16 = net.ep_gradients(x, target, **settings)
    grads_f32 = net32.ep_gradients(x, target, **settings)
    for a, b in zip((*grads_bf16[0], *grads_bf16[1]), (*grads_f32[0], *grads_f32[1])):
        assert np.linalg.norm(a - b) <= 0.05 * np.linalg.norm(b)
    p_bf16 = net.relax(x, steps=30, epsilon=0.5, solver=solver)[-1]
    p_f32 = net32.relax(x, steps=30, epsilon=0.5, solver=solver)[-1]
    np.testing.assert_allclose(p_bf16.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(p_bf16, p_f32, rtol=0, atol=0.02)


@pytest.mark.parametrize("algorithm", ["coupled", "contrastive"])
def test_linear_output_fixed_point_and_clamped_phases(bf16_path, algorithm):
    """A linear output and the fixed-point solver against the reference; clamped phases within 5% of float32 (1%)."""
    sizes = SIZES["37-33-21-10"]
    source = random_network(sizes, np.float32)
    net, net32 = (eqprop.EqPropNetwork(sizes, output="linear", precision=p) for p in ("bfloat16", "float32"))
    for n in (net, net32):
        n.set_params(source.weights, source.biases)
    x, target = inputs(sizes)
    start = random_state(net, x.shape[0])
    state = net.relax(x, steps=1, epsilon=0.5, beta=0.5, target=target, init=start, solver="fixed-point")
    expected = reference.relax(net.weights, net.biases, x, start, 1, 0.5, 0.5, target, "fixed-point",
                               linear_output=True, operands=reference.bf16_round, store=np.float32)
    for s, e in zip(state, expected):
        np.testing.assert_allclose(s, e, rtol=0, atol=128 * U * max(scale(net, x, start), 1.0))
    settings = dict(algorithm=algorithm, free_steps=20, nudged_steps=6, epsilon=0.5, solver="alternating")
    grads, grads32 = net.ep_gradients(x, target, **settings), net32.ep_gradients(x, target, **settings)
    for a, b in zip((*grads[0], *grads[1]), (*grads32[0], *grads32[1])):
        assert np.linalg.norm(a - b) <= 0.05 * np.linalg.norm(b)


def test_trainer_learns_and_checkpoints_the_precision(tmp_path):
    """A few epochs on the digits in bfloat16 train as float32 does; resume keeps the precision."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.data[:400] / 16).astype(np.float32), digits.target[:400]
    errors = {}
    for precision in ("float32", "bfloat16"):
        net = eqprop.EqPropNetwork([64, 60, 10], precision=precision, seed=0)
        trainer = eqprop.Trainer(net, beta=1.0, free_steps=20, nudged_steps=4, epsilon=0.5,
                                 learning_rates=[0.2, 0.05], batch_size=20, seed=1, threads=1)
        trainer.fit(x, y, epochs=6, checkpoint_dir=tmp_path / precision)
        errors[precision] = trainer.history.to_rows()[-1]["train_error"]
    assert errors["bfloat16"] < 0.3 and abs(errors["bfloat16"] - errors["float32"]) < 0.05
    resumed = eqprop.Trainer.resume(tmp_path / "bfloat16")
    assert resumed.net.precision == "bfloat16"
    assert eqprop.Trainer.resume(tmp_path / "float32").net.precision == "float32"
    # a float32 trainer can load a bfloat16 checkpoint, and says the run differs
    with pytest.warns(UserWarning, match="differ from the checkpoint's: precision"):
        eqprop.Trainer.resume(tmp_path / "float32").load_checkpoint(tmp_path / "bfloat16")


# ------------------------------------------------------------------ conv
CONV_INPUT = (2, 9, 9)


def conv_problem(pool, pad, precision="bfloat16", batch=5):
    """test_conv's chain (odd maps; two conv layers and a dense output) with zeros in x."""
    spec = [("conv", 3, 3, pad, pool), ("conv", 4, 2, pad, pool), ("dense", 5)]
    source = conv_network(CONV_INPUT, spec, np.float32)
    net = eqprop.EqPropNetwork(source.layers, precision=precision)
    net.set_params(source.weights, source.biases)
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (batch, int(np.prod(CONV_INPUT)))).astype(np.float32)
    x[rng.random(x.shape) < 0.4] = 0
    target = one_hot(rng.integers(0, 5, batch), 5, np.float32)
    return source, net, spec, x, target


@pytest.mark.parametrize("solver", ["euler", "alternating"])
@pytest.mark.parametrize("pad", [0, 1])
@pytest.mark.parametrize("pool", ["max", "avg", None], ids=["max", "avg", "none"])
def test_conv_step_matches_the_bf16_reference(bf16_path, every_thread_runs, pool, pad, solver):
    """One step of a conv chain from the same float32 state: within 128 u of the net inputs' scale.

    The reference sums the rounded operands in float64; the core in float32, over
    up to C_in k^2 = 18 terms, so float32's rounding bounds the difference
    (measured: 2 u). float32 products would miss the reference by 2^-10.
    """
    _, net, spec, x, target = conv_problem(pool, pad)
    start = random_state(net, x.shape[0])
    for beta in (0.0, 0.5):
        kwargs = dict(beta=beta, target=target if beta else None, solver=solver)
        state = net.relax(x, steps=1, epsilon=0.5, init=start, threads=2, **kwargs)
        expected = reference.chain_relax(CONV_INPUT, spec, net.weights, net.biases, x, start, 1, 0.5,
                                         operands=reference.bf16_round, store=np.float32, **kwargs)
        h = reference.chain_net_inputs(CONV_INPUT, spec, net.weights, net.biases, x, start)
        bound = 128 * U * max(1.0, max(float(np.abs(v).max()) for v in h))
        for s, e in zip(state, expected):
            np.testing.assert_allclose(s.reshape(s.shape[0], -1), e, rtol=0, atol=bound)


@pytest.mark.parametrize("conv", ["auto", "direct", "winograd"])
@pytest.mark.parametrize("pool", ["max", "avg", None], ids=["max", "avg", "none"])
def test_wide_conv_step_matches_the_bf16_reference(bf16_path, pool, conv):
    """test_conv's wide chain: 59 and 21 channels (masked column blocks), 3 input channels (a
    zero pair partner), 14-wide maps (row groups); the bound of the test above. ``auto`` takes
    Winograd's bottom-up convolution for the second layer (59 input channels) on the
    AVX512_BF16 and fallback paths, and AMX's direct one; ``direct`` forces the direct
    convolutions (AVX512_BF16's pair kernel, AMX's tiles, the fallback's float32 kernel);
    ``winograd`` forces Winograd everywhere, and for the transposed convolutions of average and no
    pooling, on the rounded operands."""
    if conv != "auto":
        current = eqcore.gemm_path()
        mode = {"amx": "amx", "avx512bf16": "native", "fallback": "fallback"}[current["bf16"]]
        set_gemm_path(current["path"], current["isa"], bf16=mode, conv=conv)
    input_shape = (3, 16, 16)
    spec = [("conv", 59, 3, 0, pool), ("conv", 21, 3, 1, pool), ("dense", 7)]
    source = conv_network(input_shape, spec, np.float32, weight_scale=0.5)
    net = eqprop.EqPropNetwork(source.layers, precision="bfloat16")
    net.set_params(source.weights, source.biases)
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (3, int(np.prod(input_shape)))).astype(np.float32)
    start = random_state(net, 3)
    state = net.relax(x, steps=1, epsilon=0.5, init=start)
    expected = reference.chain_relax(input_shape, spec, net.weights, net.biases, x, start, 1, 0.5,
                                     operands=reference.bf16_round, store=np.float32)
    h = reference.chain_net_inputs(input_shape, spec, net.weights, net.biases, x, start)
    bound = 128 * U * max(1.0, max(float(np.abs(v).max()) for v in h))
    for s, e in zip(state, expected):
        np.testing.assert_allclose(s.reshape(s.shape[0], -1), e, rtol=0, atol=bound)


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_conv_relaxation_and_gradients_are_close_to_float32(bf16_path, pool):
    """10 steps within 0.02 of float32, the EP estimate within 5% (measured: 0.005 and 1%)."""
    source, net, _, x, target = conv_problem(pool, 1)
    bf16 = net.relax(x, steps=10, epsilon=0.5)
    f32 = source.relax(x, steps=10, epsilon=0.5)
    for a, b in zip(bf16, f32):
        np.testing.assert_allclose(a, b, rtol=0, atol=0.02)
    settings = dict(beta=0.5, free_steps=10, nudged_steps=4, epsilon=0.5, algorithm="centered")
    grads_bf16 = net.ep_gradients(x, target, **settings)
    grads_f32 = source.ep_gradients(x, target, **settings)
    for a, b in zip((*grads_bf16[0], *grads_bf16[1]), (*grads_f32[0], *grads_f32[1])):
        assert np.linalg.norm(a - b) <= 0.05 * np.linalg.norm(b)


# ------------------------------------------------------------- validation
def test_precision_is_validated():
    with pytest.raises(ValueError, match="precision must be 'float32' or 'bfloat16'; got 'float16'"):
        eqprop.EqPropNetwork([4, 3, 2], precision="float16")
    with pytest.raises(ValueError, match="precision='bfloat16' needs dtype float32; got dtype float64"):
        eqprop.EqPropNetwork([4, 3, 2], dtype="float64", precision="bfloat16")
    assert eqprop.EqPropNetwork([4, 3, 2], dtype="float64").precision == "float32"
    geometry = np.array([[0, 4, 1, 1, 2, 0, 0, 0]], dtype=np.int32)
    with pytest.raises(TypeError, match="needs float32 parameters"):
        eqcore.Chain(geometry, [np.zeros((4, 2))], [np.zeros(2)], precision="bfloat16")
    with pytest.raises(ValueError, match="precision must be"):
        eqcore.Chain(geometry, [np.zeros((4, 2), np.float32)], [np.zeros(2, np.float32)], precision="half")
    with pytest.raises(ValueError, match="bf16 must be"):
        set_gemm_path("skinny", "best", bf16="maybe")
    with pytest.raises(ValueError, match="bf16 must be 'best', 'amx', 'native' or 'fallback'"):
        set_gemm_path("skinny", "best", bf16="tiles")


def test_non_finite_values_are_still_detected(bf16_path):
    """Bad input is refused before the core, and a NaN the core meets stays NaN through the bfloat16 rounding."""
    sizes = [6, 5, 3]
    _, net = bf16_network(sizes)
    x, target = inputs(sizes, batch=4)
    bad = x.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="x contains NaN or infinite values"):
        net.relax(bad, steps=2, epsilon=0.5)
    net.weights[1][0, 0] = np.inf
    with pytest.raises(ValueError, match=r"net.weights\[1\] contains NaN or infinite values"):
        net.train_step(x, target, beta=0.5, free_steps=2, nudged_steps=2, epsilon=0.5, learning_rates=[0.1, 0.1])
    # past the checks (the unchecked core): NaN in the weights reaches the states, as in float32
    net.weights[1][0, 0] = np.nan
    state = [np.zeros((4, n), np.float32) for n in net.layer_sizes]
    eqcore.relax_batch(net.core_chain(), np.ones((4, 6), np.float32), state, 3, 0.5, 0.0)
    assert np.isnan(state[0]).any() and np.isnan(state[1]).any()


def test_build_info_and_cli_report_the_bf16_path(capsys):
    from eqprop.cli import main

    info = eqcore.build_info()["bfloat16"]
    assert info["cpu"] == eqcore.cpu_has_bf16() and info["amx"] == eqcore.cpu_has_amx()
    native = info["cpu"] and eqcore.gemm_path()["isa"] == "avx512"
    assert info["kernel"] == ("fallback" if not native else "amx" if info["amx"] else "avx512bf16")
    set_gemm_path("skinny", "best", bf16="fallback")
    try:
        assert eqcore.build_info()["bfloat16"]["kernel"] == "fallback"
    finally:
        set_gemm_path("skinny", "best")
    assert main(["info"]) == 0
    assert "bfloat16 products: " in capsys.readouterr().out


def test_cli_trains_in_bfloat16_and_resume_keeps_it(tmp_path, capsys):
    import json

    from eqprop.cli import main

    out = tmp_path / "run"
    common = ["--dataset", "digits", "--layers", "64-30-10", "--lr", "0.1", "0.05", "--train-size", "200",
              "--threads", "1", "--quiet"]
    assert main(["train", *common, "--epochs", "1", "--precision", "bfloat16", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["precision"] == "bfloat16"
    assert main(["train", "--resume", str(out), "--epochs", "2", "--quiet"]) == 0
    assert eqprop.Trainer.resume(out).net.precision == "bfloat16"
    with pytest.raises(SystemExit):
        main(["train", "--resume", str(out), "--epochs", "3", "--precision", "float32"])
    assert "--precision cannot be" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", *common, "--precision", "bfloat16", "--dtype", "float64", "--out", str(tmp_path / "b")])
    assert "--precision: precision='bfloat16' needs dtype float32" in capsys.readouterr().err
