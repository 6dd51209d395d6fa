"""The compiled optimizer step (eqcore.optimizer_step) against PyTorch's update equations (tests/reference.py)."""

from __future__ import annotations

import numpy as np
import pytest
import reference

import eqcore

OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam"]
KINDS = {"sgd": eqcore.OPTIMIZER_SGD, "momentum": eqcore.OPTIMIZER_MOMENTUM,
         "nesterov": eqcore.OPTIMIZER_NESTEROV, "adam": eqcore.OPTIMIZER_ADAM}
#: The kernel computes in the parameters' dtype, the reference in float64: a few roundings per step.
STEP_TOLERANCE = {np.float64: 1e-12, np.float32: 2e-6}
#: Settings per optimizer (momentum 0.8 and Adam's betas and eps off their defaults, to see they are used).
SETTINGS = {"sgd": {}, "momentum": dict(momentum=0.8), "nesterov": dict(momentum=0.8),
            "adam": dict(betas=(0.8, 0.99), eps=1e-6)}


def run_kernel(name, params, grads_per_step, lrs, decays, threads=1, **settings):
    """Apply the compiled step once per gradient set; return the parameters and the state."""
    params = [p.copy() for p in params]
    first = [np.zeros_like(p) for p in params] if name != "sgd" else None
    second = [np.zeros_like(p) for p in params] if name == "adam" else None
    beta1, beta2 = settings.get("betas", (0.9, 0.999))
    for t, grads in enumerate(grads_per_step, start=1):
        finite = eqcore.optimizer_step(
            KINDS[name], params, grads, first, second, np.asarray(lrs, dtype=np.float64),
            np.asarray(decays, dtype=np.float64), settings.get("momentum", 0.0), beta1, beta2,
            settings.get("eps", 1e-8), t, 0, threads,
        )
        assert finite
    return params, first, second


def random_problem(dtype, n_steps=6, seed=0):
    """Arrays of several sizes: one spans two blocks of the kernel's work split (4096 elements), one is 1 long."""
    rng = np.random.default_rng(seed)
    sizes = [70 * 90, 90, 3 * 2 * 5 * 5, 1]
    params = [rng.normal(size=n).astype(dtype) for n in sizes]
    grads = [[rng.normal(size=n).astype(dtype) for n in sizes] for _ in range(n_steps)]
    lrs = [0.05, 0.2, 0.01, 0.1]
    decays = [0.01, 0.0, 0.3, 0.0]  # zero and non-zero decay: both branches of the kernel
    return params, grads, lrs, decays


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_compiled_step_matches_pytorch_equations(name, dtype, threads, every_thread_runs):
    params, grads, lrs, decays = random_problem(dtype)
    got, _, _ = run_kernel(name, params, grads, lrs, decays, threads, **SETTINGS[name])
    for k, (theta, value) in enumerate(zip(params, got)):
        assert value.dtype == dtype
        want = reference.optimizer_steps(name, theta, [g[k] for g in grads], lrs[k], weight_decay=decays[k],
                                         **SETTINGS[name])
        moved = np.abs(want - theta.astype(np.float64)).max()
        assert moved > 1e-3  # the steps did something
        np.testing.assert_allclose(value, want, rtol=STEP_TOLERANCE[dtype], atol=STEP_TOLERANCE[dtype])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_compiled_step_is_identical_for_any_thread_count(name, every_thread_runs):
    params, grads, lrs, decays = random_problem(np.float32, n_steps=3, seed=1)
    one = run_kernel(name, params, grads, lrs, decays, 1, **SETTINGS[name])
    two = run_kernel(name, params, grads, lrs, decays, 2, **SETTINGS[name])
    for a, b in zip(one[0], two[0]):
        np.testing.assert_array_equal(a, b)


def test_momentum_buffers_hold_pytorchs_values():
    """b_1 = g_1 (PyTorch initialises the buffer with the first gradient), b_2 = mu b_1 + g_2."""
    theta = [np.array([1.0, -2.0])]
    g1, g2 = [np.array([0.5, 0.25])], [np.array([-1.0, 2.0])]
    _, first, _ = run_kernel("momentum", theta, [g1, g2], [0.1], [0.0], momentum=0.9)
    np.testing.assert_allclose(first[0], 0.9 * g1[0] + g2[0], rtol=1e-15)
    _, moments, squares = run_kernel("adam", theta, [g1], [0.1], [0.0])
    np.testing.assert_allclose(moments[0], 0.1 * g1[0], rtol=1e-15)
    np.testing.assert_allclose(squares[0], 0.001 * g1[0] ** 2, rtol=1e-12)


def test_first_adam_step_moves_each_parameter_by_lr():
    """With bias correction, step 1 is -lr g / (|g| + eps); uncorrected, it would be sqrt(10) times larger."""
    g = np.array([2.0, -0.5, 1e-3])
    got, _, _ = run_kernel("adam", [np.zeros(3)], [[g]], [0.01], [0.0])
    np.testing.assert_allclose(got[0], -0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)


def test_compiled_step_reports_non_finite_checked_arrays():
    params = [np.ones(3), np.ones(2)]
    grads = [np.ones(3), np.array([np.inf, 0.0])]
    lrs, decays = np.array([0.1, 0.1]), np.zeros(2)
    assert not eqcore.optimizer_step(eqcore.OPTIMIZER_SGD, params, grads, None, None, lrs, decays, check_from=1)
    params = [np.ones(3), np.ones(2)]
    grads = [np.array([np.nan, 0, 0]), np.zeros(2)]
    assert eqcore.optimizer_step(eqcore.OPTIMIZER_SGD, params, grads, None, None, lrs, decays, check_from=1)


def _kernel_case(case):
    p, g = [np.ones(4)], [np.ones(4)]
    one = np.array([0.1])
    return {
        "sizes": ((eqcore.OPTIMIZER_SGD, p, [np.ones(3)], None, None, one, np.zeros(1)), "3 elements"),
        "lengths": ((eqcore.OPTIMIZER_SGD, p, g, None, None, np.array([0.1, 0.1]), np.zeros(1)), "one entry"),
        "no state": ((eqcore.OPTIMIZER_MOMENTUM, p, g, None, None, one, np.zeros(1)), "state array"),
        "no second": ((eqcore.OPTIMIZER_ADAM, p, g, [np.zeros(4)], None, one, np.zeros(1)), "second-moment"),
        "dtypes": ((eqcore.OPTIMIZER_SGD, p, [np.ones(4, np.float32)], None, None, one, np.zeros(1)), "dtype"),
        "2-D": ((eqcore.OPTIMIZER_SGD, [np.ones((2, 2))], g, None, None, one, np.zeros(1)), "1-D"),
        "kind": ((7, p, g, None, None, one, np.zeros(1)), "OPTIMIZER_"),
    }[case]


@pytest.mark.parametrize("case", ["sizes", "lengths", "no state", "no second", "dtypes", "2-D", "kind"])
def test_compiled_step_refuses_inconsistent_arrays(case):
    arguments, message = _kernel_case(case)
    before = [a.copy() for a in arguments[1]]
    with pytest.raises(ValueError, match=message):
        eqcore.optimizer_step(*arguments)
    for a, b in zip(arguments[1], before):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="step counts from 1"):
        eqcore.optimizer_step(eqcore.OPTIMIZER_ADAM, [np.ones(2)], [np.ones(2)], [np.zeros(2)], [np.zeros(2)],
                              np.array([0.1]), np.zeros(1), step=0)
    read_only = np.ones(2)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        eqcore.optimizer_step(eqcore.OPTIMIZER_SGD, [read_only], [np.ones(2)], None, None, np.array([0.1]),
                              np.zeros(1))
