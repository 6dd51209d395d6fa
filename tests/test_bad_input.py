"""Every bad argument is answered by a clear error, raised before any compiled code runs."""

import numpy as np
import pytest

import eqprop

SIZES = [6, 5, 3]


@pytest.fixture
def net():
    return eqprop.EqPropNetwork(SIZES, dtype="float64", seed=0)


@pytest.fixture
def x():
    return np.random.default_rng(0).random((4, SIZES[0]))


@pytest.fixture
def target():
    t = np.zeros((4, SIZES[-1]))
    t[:, 0] = 1
    return t


@pytest.mark.parametrize(
    "sizes, error, match",
    [
        ([784], ValueError, "at least an input and an output"),
        ([], ValueError, "at least an input and an output"),
        ([784, 0, 10], ValueError, r"layers\[1\].*must be at least 1"),
        ([784, -5, 10], ValueError, r"layers\[1\]"),
        ([784, 2.5, 10], TypeError, r"layers\[1\].*must be an int"),
        ("784-500-10", TypeError, "layers must be a list"),
        (784, TypeError, "layers must be a list"),
    ],
)
def test_bad_sizes(sizes, error, match):
    with pytest.raises(error, match=match):
        eqprop.EqPropNetwork(sizes)


@pytest.mark.parametrize("dtype", ["float16", "int32", "complex64", "banana", np.int64])
def test_unsupported_dtype(dtype):
    with pytest.raises(TypeError, match="dtype must be 'float32' or 'float64'"):
        eqprop.EqPropNetwork(SIZES, dtype=dtype)


@pytest.mark.parametrize("threads", [0, 2**31, -(2**31)])
def test_bad_thread_count(net, x, threads):
    with pytest.raises(ValueError, match="threads must be None"):
        net.relax(x, steps=2, epsilon=0.5, threads=threads)
    with pytest.raises(ValueError, match="threads"):
        eqprop.EqPropNetwork(SIZES, threads=threads)


def test_non_integer_threads(net, x):
    with pytest.raises(TypeError, match="threads must be None or a non-zero integer"):
        net.relax(x, steps=2, epsilon=0.5, threads=1.5)


def test_wrong_number_of_features(net):
    with pytest.raises(ValueError, match="x has 7 columns; the network expects 6"):
        net.relax(np.zeros((2, 7)), steps=2, epsilon=0.5)


@pytest.mark.parametrize("shape", [(6,), (2, 3, 6), ()])
def test_x_not_two_dimensional(net, shape):
    with pytest.raises(ValueError, match=r"x must be 2-D with shape \(batch, 6\)"):
        net.relax(np.zeros(shape), steps=2, epsilon=0.5)


def test_one_dimensional_x_gets_a_hint(net):
    with pytest.raises(ValueError, match=r"x\[None, :\]"):
        net.predict(np.zeros(6))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_x(net, x, bad):
    x[1, 2] = bad
    with pytest.raises(ValueError, match="x contains NaN or infinite values"):
        net.relax(x, steps=2, epsilon=0.5)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_target(net, x, target, bad):
    target[0, 0] = bad
    with pytest.raises(ValueError, match="target contains NaN or infinite values"):
        net.relax(x, steps=2, epsilon=0.5, beta=0.5, target=target)
    with pytest.raises(ValueError, match="target contains NaN"):
        net.ep_gradients(x, target, beta=0.5, free_steps=2, nudged_steps=2, epsilon=0.5)


def test_non_numeric_x(net):
    with pytest.raises(TypeError, match="x must hold real numbers"):
        net.relax(np.array([["a"] * 6]), steps=2, epsilon=0.5)
    with pytest.raises(TypeError, match="x must hold real numbers"):
        net.relax(np.zeros((1, 6), dtype=complex), steps=2, epsilon=0.5)


@pytest.mark.parametrize("steps, error", [(0, ValueError), (-3, ValueError), (2.0, TypeError), (True, TypeError)])
def test_bad_steps(net, x, steps, error):
    with pytest.raises(error, match="steps"):
        net.relax(x, steps=steps, epsilon=0.5)


@pytest.mark.parametrize("epsilon", [0.0, -0.1, 1.5, np.nan, np.inf])
def test_epsilon_outside_unit_interval(net, x, epsilon):
    with pytest.raises(ValueError, match="epsilon"):
        net.relax(x, steps=2, epsilon=epsilon)


def test_epsilon_not_a_number(net, x):
    with pytest.raises(TypeError, match="epsilon must be a real number"):
        net.relax(x, steps=2, epsilon="0.5")


def test_beta_without_target(net, x):
    with pytest.raises(ValueError, match="beta is nonzero, so a target is needed"):
        net.relax(x, steps=2, epsilon=0.5, beta=0.5)


def test_gradients_need_nonzero_beta_and_a_target(net, x, target):
    with pytest.raises(ValueError, match="beta must be nonzero"):
        net.ep_gradients(x, target, beta=0.0, free_steps=2, nudged_steps=2, epsilon=0.5)
    with pytest.raises(ValueError, match="target is required"):
        net.ep_gradients(x, None, beta=0.5, free_steps=2, nudged_steps=2, epsilon=0.5)


@pytest.mark.parametrize("beta", [np.nan, np.inf])
def test_non_finite_beta(net, x, target, beta):
    with pytest.raises(ValueError, match="beta must be finite"):
        net.relax(x, steps=2, epsilon=0.5, beta=beta, target=target)


def test_alternating_solver_needs_beta_above_minus_one(net, x, target):
    with pytest.raises(ValueError, match="greater than -1"):
        net.relax(x, steps=2, epsilon=0.5, beta=-1.0, target=target, solver="alternating")


@pytest.mark.parametrize("beta", [1.0, -1.0, 2.5])
def test_fixed_point_solver_needs_beta_inside_minus_one_one(net, x, target, beta):
    with pytest.raises(ValueError, match=r"in \(-1, 1\) with solver='fixed-point'"):
        net.relax(x, steps=2, epsilon=0.5, beta=beta, target=target, solver="fixed-point")
    with pytest.raises(ValueError, match=r"in \(-1, 1\) with solver='fixed-point'"):
        eqprop.Trainer(net, beta=abs(beta), free_steps=2, nudged_steps=2, epsilon=0.5, learning_rates=[0.1, 0.1],
                       batch_size=2, solver="fixed-point", algorithm="centered")


def test_unknown_solver(net, x):
    with pytest.raises(ValueError, match="solver must be one of"):
        net.relax(x, steps=2, epsilon=0.5, solver="newton")


@pytest.mark.parametrize("shape", [(4, 2), (3, 3), (4,), (4, 3, 1)])
def test_target_of_wrong_shape(net, x, shape):
    with pytest.raises(ValueError, match="target"):
        net.relax(x, steps=2, epsilon=0.5, beta=0.5, target=np.zeros(shape))


def test_init_of_wrong_shapes(net, x):
    good = net.zero_state(4)
    with pytest.raises(ValueError, match="init has 1 layers; the network has 2"):
        net.relax(x, steps=2, epsilon=0.5, init=good[:1])
    with pytest.raises(ValueError, match=r"init\[0\] has 3 rows; x has 4"):
        net.relax(x, steps=2, epsilon=0.5, init=[np.zeros((3, 5)), good[1]])
    with pytest.raises(ValueError, match=r"init\[1\] has 4 columns; the network expects 3"):
        net.relax(x, steps=2, epsilon=0.5, init=[good[0], np.zeros((4, 4))])
    with pytest.raises(TypeError, match="init must be a list"):
        net.relax(x, steps=2, epsilon=0.5, init=np.zeros((4, 8)))
    bad = [good[0].copy(), good[1].copy()]
    bad[0][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"init\[0\] contains NaN"):
        net.relax(x, steps=2, epsilon=0.5, init=bad)


def test_replaced_parameters_are_checked(net, x):
    net.weights[0] = np.zeros((6, 4))
    with pytest.raises(ValueError, match=r"net.weights\[0\] must be an array of shape \(6, 5\)"):
        net.relax(x, steps=2, epsilon=0.5)
    net.weights[0] = np.zeros((6, 5), dtype=np.float32)
    with pytest.raises(ValueError, match=r"net.weights\[0\] must be a writeable C-contiguous float64"):
        net.relax(x, steps=2, epsilon=0.5)
    net.weights[0] = np.asfortranarray(np.zeros((6, 5)))
    with pytest.raises(ValueError, match="C-contiguous"):
        net.relax(x, steps=2, epsilon=0.5)


@pytest.mark.parametrize(
    "rates, error, match",
    [
        ([0.1], ValueError, "one rate per weight matrix"),
        ([0.1, 0.0], ValueError, "positive"),
        ([0.1, -1.0], ValueError, "positive"),
        ([0.1, np.nan], ValueError, "finite"),
        (0.1, TypeError, "sequence"),
    ],
)
def test_bad_learning_rates(net, x, target, rates, error, match):
    before = [w.copy() for w in net.weights]
    with pytest.raises(error, match=match):
        net.train_step(x, target, beta=0.5, free_steps=2, nudged_steps=2, epsilon=0.5, learning_rates=rates)
    for w, b in zip(net.weights, before):
        np.testing.assert_array_equal(w, b)  # nothing happened


def test_core_rejects_inconsistent_shapes_without_crashing():
    """The unchecked core still refuses shapes that would read out of bounds."""
    import eqcore

    geometry = np.array([[0, 6, 1, 1, 5, 0, 0, 0], [0, 5, 1, 1, 3, 0, 0, 0]], dtype=np.int32)
    w = [np.zeros((6, 5)), np.zeros((5, 3))]
    b = [np.zeros(5), np.zeros(3)]
    chain = eqcore.Chain(geometry, w, b)
    with pytest.raises(ValueError, match=r"state\[1\] must have shape"):
        eqcore.relax_batch(chain, np.zeros((4, 6)), [np.zeros((4, 5)), np.zeros((4, 4))], 2, 0.5, 0.0, None, 0, 1)
    with pytest.raises(TypeError, match="dtype"):
        eqcore.relax_batch(chain, np.zeros((4, 6), dtype=np.float32),
                           [np.zeros((4, 5), np.float32), np.zeros((4, 3), np.float32)], 2, 0.5, 0.0, None, 0, 1)
    with pytest.raises(ValueError, match="one column per input"):
        eqcore.relax_batch(chain, np.zeros((4, 7)), [np.zeros((4, 5)), np.zeros((4, 3))], 2, 0.5, 0.0, None, 0, 1)
    with pytest.raises(ValueError, match="shape"):
        eqcore.Chain(geometry, [np.zeros((6, 4)), np.zeros((5, 3))], b)
    with pytest.raises(ValueError, match="takes 5 inputs; the layer below has 4"):
        eqcore.Chain(np.array([[0, 6, 1, 1, 4, 0, 0, 0], [0, 5, 1, 1, 3, 0, 0, 0]], dtype=np.int32),
                     [np.zeros((6, 4)), np.zeros((5, 3))], [np.zeros(4), np.zeros(3)])
    with pytest.raises(ValueError, match="kernel larger"):
        eqcore.Chain(np.array([[1, 1, 3, 3, 2, 5, 0, 0]], dtype=np.int32),
                     [np.zeros((2, 1, 5, 5))], [np.zeros(2)])
