"""Plain NumPy Equilibrium Propagation: the oracle every compiled path is checked against.

Written for clarity, not speed, straight from the equations of Scellier & Bengio
(2016) as stated in eqprop.network and eqcore._relax. It shares no code with the
library.
"""

from __future__ import annotations

import numpy as np


def rho(s):
    return np.clip(s, 0.0, 1.0)


def net_inputs(weights, biases, x, state):
    """h_k = rho(s_{k-1}) W_{k-1} + rho(s_{k+1}) W_k^T + b_k for every non-input layer."""
    layers = [rho(x)] + [rho(s) for s in state]
    h = []
    for k in range(len(state)):
        value = layers[k] @ weights[k] + biases[k]
        if k + 1 < len(state):
            value = value + layers[k + 2] @ weights[k + 1].T
        h.append(value)
    return h


def relax(weights, biases, x, init, steps, epsilon, beta=0.0, target=None, solver="euler"):
    state = [rho(np.array(s)) for s in init]
    n = len(state)
    for _ in range(steps):
        if solver == "euler":
            h = net_inputs(weights, biases, x, state)
            new = []
            for k in range(n):
                ds = h[k] - state[k]  # -dE/ds_k with rho' = 1 on [0, 1]
                if k == n - 1 and beta != 0.0:
                    ds = ds + beta * (target - state[k])  # -beta dC/dy
                new.append(rho(state[k] + epsilon * ds))
            state = new
        else:
            for parity in (0, 1):
                for k in range(parity, n, 2):
                    h = net_inputs(weights, biases, x, state)[k]
                    if k == n - 1 and beta != 0.0:
                        state[k] = rho((h + beta * target) / (1.0 + beta))
                    else:
                        state[k] = rho(h)
    return state


def energy(weights, biases, x, state):
    layers = [rho(x)] + [rho(s) for s in state]
    e = sum(0.5 * np.sum(s * s, axis=1) for s in state)
    for k, w in enumerate(weights):
        e = e - np.sum((layers[k] @ w) * layers[k + 1], axis=1)
    for k, b in enumerate(biases):
        e = e - layers[k + 1] @ b
    return e


def cost(state, target):
    return 0.5 * np.sum((state[-1] - target) ** 2, axis=1)


def ep_terms(x, state):
    """dE/dW_k and dE/db_k summed over the batch, up to sign: rho(s_k)^T rho(s_{k+1}), sum rho(s_k)."""
    layers = [rho(x)] + [rho(s) for s in state]
    dw = [layers[k].T @ layers[k + 1] for k in range(len(state))]
    db = [layers[k + 1].sum(axis=0) for k in range(len(state))]
    return dw, db


def ep_gradients(weights, biases, x, target, beta, free_steps, nudged_steps, epsilon,
                 symmetric=False, solver="euler"):
    batch = x.shape[0]
    zeros = [np.zeros((batch, w.shape[1]), dtype=x.dtype) for w in weights]
    free = relax(weights, biases, x, zeros, free_steps, epsilon, solver=solver)
    pos = relax(weights, biases, x, free, nudged_steps, epsilon, beta, target, solver)
    if symmetric:
        neg = relax(weights, biases, x, free, nudged_steps, epsilon, -beta, target, solver)
        denominator = 2 * beta * batch
    else:
        neg = free
        denominator = beta * batch
    pw, pb = ep_terms(x, pos)
    nw, nb = ep_terms(x, neg)
    grads_w = [-(p - q) / denominator for p, q in zip(pw, nw)]
    grads_b = [-(p - q) / denominator for p, q in zip(pb, nb)]
    return grads_w, grads_b, free
