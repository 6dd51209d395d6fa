"""The paper's claims, checked on the compiled core (float64).

* The free phase reaches a fixed point s_k = clip(h_k, 0, 1).
* The energy never increases along the free phase for a small step.
* The EP estimate is the gradient of J = mean C(s^0) (Scellier & Bengio 2016,
  Theorem 1): the symmetric estimate matches finite differences, and the
  one-sided estimate's error shrinks linearly as beta -> 0.
"""

import numpy as np
import pytest
import reference
from conftest import ARCHITECTURES, one_hot, random_network

CONVERGED_STEPS = 4000


@pytest.mark.parametrize("solver", ["euler", "alternating"])
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_free_phase_reaches_fixed_point(arch, solver):
    sizes = ARCHITECTURES[arch]
    net = random_network(sizes, np.float64)
    x = np.random.default_rng(1).random((6, sizes[0]))
    state = net.relax(x, steps=400, epsilon=0.5, solver=solver)
    h = reference.net_inputs(net.weights, net.biases, x, state)
    for s, h_k in zip(state, h):
        np.testing.assert_allclose(s, np.clip(h_k, 0, 1), atol=1e-6)
    # and it is a nontrivial fixed point: some units strictly inside (0, 1)
    assert any(((s > 1e-3) & (s < 1 - 1e-3)).any() for s in state)


def test_nudged_fixed_point_equation():
    sizes = ARCHITECTURES["2 hidden"]
    net = random_network(sizes, np.float64)
    rng = np.random.default_rng(2)
    x = rng.random((5, sizes[0]))
    d = one_hot(rng.integers(0, sizes[-1], 5), sizes[-1], np.float64)
    beta = 0.7
    state = net.relax(x, steps=600, epsilon=0.5, beta=beta, target=d)
    h = reference.net_inputs(net.weights, net.biases, x, state)
    np.testing.assert_allclose(state[-1], np.clip((h[-1] + beta * d) / (1 + beta), 0, 1), atol=1e-6)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_energy_never_increases_in_free_phase(arch):
    sizes = ARCHITECTURES[arch]
    net = random_network(sizes, np.float64)
    x = np.random.default_rng(4).random((8, sizes[0]))
    state = net.zero_state(8)
    energies = [net.energy(x, state)]
    for _ in range(150):
        state = net.relax(x, steps=1, epsilon=0.05, init=state)
        energies.append(net.energy(x, state))
    energies = np.array(energies)
    assert (np.diff(energies, axis=0) <= 1e-12).all()
    assert (energies[-1] < energies[0] - 1e-3).all()  # it did descend


def mean_cost_at_free_fixed_point(net, x, d):
    state = net.relax(x, steps=CONVERGED_STEPS, epsilon=0.5)
    return float(np.mean(net.cost(state, d)))


def finite_difference_gradients(net, x, d, h=1e-6):
    grads = []
    for param in net.weights + net.biases:
        grad = np.zeros_like(param)
        for index in np.ndindex(param.shape):
            original = param[index]
            param[index] = original + h
            plus = mean_cost_at_free_fixed_point(net, x, d)
            param[index] = original - h
            minus = mean_cost_at_free_fixed_point(net, x, d)
            param[index] = original
            grad[index] = (plus - minus) / (2 * h)
        grads.append(grad)
    return np.concatenate([g.ravel() for g in grads])


@pytest.fixture(scope="module")
def theorem_problem():
    sizes = [4, 5, 3]
    net = random_network(sizes, np.float64, seed=7, bias_scale=0.3, weight_scale=0.8)
    rng = np.random.default_rng(8)
    x = rng.random((3, sizes[0]))
    d = one_hot(rng.integers(0, sizes[-1], 3), sizes[-1], np.float64)
    return net, x, d, finite_difference_gradients(net, x, d)


def ep_estimate(net, x, d, beta, symmetric):
    gw, gb = net.ep_gradients(x, d, beta=beta, free_steps=CONVERGED_STEPS,
                              nudged_steps=CONVERGED_STEPS, epsilon=0.5, symmetric=symmetric)
    return np.concatenate([g.ravel() for g in gw + gb])


def test_symmetric_ep_estimate_is_the_gradient(theorem_problem):
    net, x, d, fd = theorem_problem
    assert np.linalg.norm(fd) > 1e-2  # a real gradient, not a flat spot
    estimate = ep_estimate(net, x, d, 1e-4, symmetric=True)
    assert np.linalg.norm(estimate - fd) / np.linalg.norm(fd) < 1e-2


def test_one_sided_estimate_error_is_first_order_in_beta(theorem_problem):
    net, x, d, fd = theorem_problem
    betas = [1e-1, 1e-2, 1e-3]
    errors = [np.linalg.norm(ep_estimate(net, x, d, b, symmetric=False) - fd) for b in betas]
    # linear convergence: each tenfold smaller beta gives a roughly tenfold smaller error
    for larger, smaller in zip(errors, errors[1:]):
        assert 5 < larger / smaller < 20
    # and the symmetric estimate removes that first-order bias
    symmetric = np.linalg.norm(ep_estimate(net, x, d, 1e-1, symmetric=True) - fd)
    assert symmetric < errors[0] / 5
