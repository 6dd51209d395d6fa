"""Print how close EP's gradient estimate is to the true gradient, as beta shrinks.

J(theta) = mean over a batch of C = 1/2 ||y - d||^2 at the free fixed point. Its
gradient is measured by central finite differences (relaxing to convergence), and
compared with the one-sided and symmetric EP estimates (Scellier & Bengio 2016,
Theorem 1; Laborieux et al. 2021). The network is the one of
tests/test_theory.py. Usage: ``python tools/gradient_check.py``.
"""

from __future__ import annotations

import numpy as np

import eqprop

STEPS = 4000  # enough for a float64 fixed point to 1e-12 on this small network


def mean_cost(net: eqprop.EqPropNetwork, x: np.ndarray, d: np.ndarray) -> float:
    return float(np.mean(net.cost(net.relax(x, steps=STEPS, epsilon=0.5), d)))


def finite_differences(net: eqprop.EqPropNetwork, x: np.ndarray, d: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grads = []
    for param in net.weights + net.biases:
        for index in np.ndindex(param.shape):
            original = param[index]
            param[index] = original + h
            plus = mean_cost(net, x, d)
            param[index] = original - h
            minus = mean_cost(net, x, d)
            param[index] = original
            grads.append((plus - minus) / (2 * h))
    return np.array(grads)


def main() -> None:
    rng = np.random.default_rng(8)
    net = eqprop.EqPropNetwork([4, 5, 3], dtype="float64", seed=7)
    for w in net.weights:
        w *= 0.8
    bias_rng = np.random.default_rng(8)
    for b in net.biases:
        b[...] = bias_rng.uniform(-0.3, 0.3, size=b.shape)
    x = rng.random((3, 4))
    d = np.eye(3)[rng.integers(0, 3, 3)]
    true = finite_differences(net, x, d)
    print(f"network 4-5-3, float64, batch 3, |dJ/dtheta| = {np.linalg.norm(true):.4f}")
    print("| beta | one-sided relative error | symmetric relative error |")
    print("|---|---|---|")
    for beta in (1e-1, 1e-2, 1e-3, 1e-4):
        errors = []
        for symmetric in (False, True):
            gw, gb = net.ep_gradients(x, d, beta=beta, free_steps=STEPS, nudged_steps=STEPS,
                                      epsilon=0.5, symmetric=symmetric)
            estimate = np.concatenate([g.ravel() for g in gw + gb])
            errors.append(np.linalg.norm(estimate - true) / np.linalg.norm(true))
        print(f"| {beta:g} | {errors[0]:.3g} | {errors[1]:.3g} |")


if __name__ == "__main__":
    main()
