"""Plain NumPy Equilibrium Propagation: the oracle every compiled path is checked against.

Written for clarity, not speed, straight from the equations of Scellier & Bengio
(2016) as stated in eqprop.network and eqcore._relax. It shares no code with the
library.
"""

from __future__ import annotations

import numpy as np


def rho(s):
    return np.clip(s, 0.0, 1.0)


def _activations(x, state, linear_output=False):
    """rho of every layer; a linear output layer is used as it is."""
    layers = [rho(x)] + [rho(s) for s in state]
    if linear_output:
        layers[-1] = state[-1]
    return layers


def net_inputs(weights, biases, x, state, linear_output=False):
    """h_k = rho(s_{k-1}) W_{k-1} + rho(s_{k+1}) W_k^T + b_k for every non-input layer."""
    layers = _activations(x, state, linear_output)
    h = []
    for k in range(len(state)):
        value = layers[k] @ weights[k] + biases[k]
        if k + 1 < len(state):
            value = value + layers[k + 2] @ weights[k + 1].T
        h.append(value)
    return h


def _dynamics(inputs, init, steps, epsilon, beta, target, solver, linear_output, clamp):
    """Euler or alternating sweeps given ``inputs(state)`` -> the net input of every layer."""
    n = len(init)
    state = [np.array(s, dtype=float) if (linear_output and k == n - 1) else rho(np.array(s))
             for k, s in enumerate(init)]
    if clamp is not None:
        state[-1] = np.array(clamp)
    moving = n - 1 if clamp is not None else n

    def bound(k, value):
        return value if (linear_output and k == n - 1) else rho(value)

    for _ in range(steps):
        if solver == "euler":
            h = inputs(state)
            new = list(state)
            for k in range(moving):
                ds = h[k] - state[k]  # -dE/ds_k with rho' = 1 on [0, 1] (and for a linear output)
                if k == n - 1 and beta != 0.0:
                    ds = ds + beta * (target - state[k])  # -beta dC/dy
                new[k] = bound(k, state[k] + epsilon * ds)
            state = new
        else:
            for parity in (0, 1):
                for k in range(parity, moving, 2):
                    h = inputs(state)[k]
                    if k == n - 1 and beta != 0.0 and solver == "fixed-point":
                        state[k] = bound(k, h + beta * (target - state[k]))  # -dF/dy + y at the current y
                    elif k == n - 1 and beta != 0.0:
                        state[k] = bound(k, (h + beta * target) / (1.0 + beta))
                    else:
                        state[k] = bound(k, h)
    return state


def relax(weights, biases, x, init, steps, epsilon, beta=0.0, target=None, solver="euler",
          linear_output=False, clamp=None):
    """The dynamics of eqprop.EqPropNetwork.relax; ``clamp`` holds the output at those values."""
    return _dynamics(lambda state: net_inputs(weights, biases, x, state, linear_output), init, steps, epsilon,
                     beta, target, solver, linear_output, clamp)


def energy(weights, biases, x, state, linear_output=False):
    layers = _activations(x, state, linear_output)
    e = sum(0.5 * np.sum(s * s, axis=1) for s in state)
    for k, w in enumerate(weights):
        e = e - np.sum((layers[k] @ w) * layers[k + 1], axis=1)
    for k, b in enumerate(biases):
        e = e - layers[k + 1] @ b
    return e


def cost(state, target):
    return 0.5 * np.sum((state[-1] - target) ** 2, axis=1)


def ep_terms(x, state, linear_output=False):
    """dE/dW_k and dE/db_k summed over the batch, up to sign: rho(s_k)^T rho(s_{k+1}), sum rho(s_k)."""
    layers = _activations(x, state, linear_output)
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


def family_gradients(weights, biases, x, target, algorithm, beta, free_steps, nudged_steps, epsilon,
                     coupling=0.5, solver="euler", linear_output=False, network="dense", chain=None):
    """The estimate of dJ/dtheta of every algorithm of eqprop.algorithms, from its definition.

    ``network="chain"`` with ``chain=(input_shape, layers)`` uses the conv chain's dynamics.
    """
    batch = x.shape[0]
    if network == "dense":
        zeros = [np.zeros((batch, w.shape[1]), dtype=x.dtype) for w in weights]

        def run(init, steps, beta=0.0, clamp=None):
            return relax(weights, biases, x, init, steps, epsilon, beta, target, solver, linear_output, clamp)

        def terms(state):
            return ep_terms(x, state, linear_output)
    else:
        input_shape, layers = chain
        shapes = chain_shapes(input_shape, layers)
        zeros = [np.zeros((batch, int(np.prod(s))), dtype=x.dtype) for s in shapes[1:]]

        def run(init, steps, beta=0.0, clamp=None):
            return chain_relax(input_shape, layers, weights, biases, x, init, steps, epsilon, beta, target,
                               solver, linear_output, clamp)

        def terms(state):
            return chain_phi_gradients(input_shape, layers, weights, x, state, linear_output)
    free = run(zeros, free_steps)
    if algorithm in ("contrastive", "coupled"):
        eta = 1.0 if algorithm == "contrastive" else coupling
        clamp = free[-1] + eta * (target - free[-1])
        positive, negative, spread = run(free, nudged_steps, clamp=clamp), free, eta
    elif algorithm == "centered":
        positive, negative, spread = run(free, nudged_steps, beta), run(free, nudged_steps, -beta), 2 * beta
    else:
        signed = beta if algorithm == "positive" else -beta
        positive, negative, spread = run(free, nudged_steps, signed), free, signed
    pw, pb = terms(positive)
    nw, nb = terms(negative)
    return ([-(p - q) / (spread * batch) for p, q in zip(pw, nw)],
            [-(p - q) / (spread * batch) for p, q in zip(pb, nb)], free)


# ---------------------------------------------------------------------------
# Convolutional chains. A network is an input shape and a list of layers, each
# ("dense", n) or ("conv", out_channels, kernel, padding, pool) with pool in
# {"max", "avg", None}. States are flat (batch, n) arrays; maps are (C, H, W)
# in C order. Phi = sum_conv rho(s_above) . P(W * rho(s_below)) + sum_dense
# rho(s_below)^T W rho(s_above) + sum b . rho(s) (channel biases broadcast).


def chain_shapes(input_shape, layers):
    """The state shape of every layer, input first."""
    shapes = [tuple(input_shape)]
    for layer in layers:
        if layer[0] == "dense":
            shapes.append((layer[1],))
        else:
            _, out_channels, k, pad, pool = layer
            _, h, w = shapes[-1]
            h, w = h + 2 * pad - k + 1, w + 2 * pad - k + 1
            if pool is not None:
                h, w = h // 2, w // 2
            shapes.append((out_channels, h, w))
    return shapes


def conv2d(x, w, pad):
    """Cross-correlation: out[b, o, i, j] = sum_{c, a, e} w[o, c, a, e] x_pad[b, c, i + a, j + e]."""
    batch, _, h, wd = x.shape
    out_channels, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = h + 2 * pad - k + 1, wd + 2 * pad - k + 1
    out = np.zeros((batch, out_channels, ho, wo), dtype=x.dtype)
    for a in range(k):
        for e in range(k):
            out += np.einsum("bchw,oc->bohw", xp[:, :, a:a + ho, e:e + wo], w[:, :, a, e])
    return out


def conv2d_adjoint(g, w, pad, in_hw):
    """The transpose of conv2d with respect to its input: d/dx of sum(g * conv2d(x, w, pad))."""
    batch, _, ho, wo = g.shape
    _, in_channels, k, _ = w.shape
    h, wd = in_hw
    xp = np.zeros((batch, in_channels, h + 2 * pad, wd + 2 * pad), dtype=g.dtype)
    for a in range(k):
        for e in range(k):
            xp[:, :, a:a + ho, e:e + wo] += np.einsum("bohw,oc->bchw", g, w[:, :, a, e])
    return xp[:, :, pad:pad + h, pad:pad + wd]


def conv2d_weight_adjoint(g, x, pad, k):
    """d/dw of sum(g * conv2d(x, w, pad)), summed over the batch."""
    _, _, ho, wo = g.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dw = np.zeros((g.shape[1], x.shape[1], k, k), dtype=x.dtype)
    for a in range(k):
        for e in range(k):
            dw[:, :, a, e] = np.einsum("bohw,bchw->oc", g, xp[:, :, a:a + ho, e:e + wo])
    return dw


def pool2x2(conv, kind):
    """(pooled, routing): routing(above) maps a pooled-shaped array back onto conv's shape (the transpose)."""
    if kind is None:
        return conv, (lambda above: above)
    batch, channels, hc, wc = conv.shape
    ho, wo = hc // 2, wc // 2
    offsets = [(0, 0), (0, 1), (1, 0), (1, 1)]  # row-major order within a window
    windows = [conv[:, :, u:2 * ho:2, v:2 * wo:2] for u, v in offsets]
    if kind == "avg":
        pooled = sum(windows) / 4

        def routing(above):
            out = np.zeros_like(conv)
            for u, v in offsets:
                out[:, :, u:2 * ho:2, v:2 * wo:2] = above / 4
            return out

        return pooled, routing
    best = windows[0].copy()
    winner = np.zeros(best.shape, dtype=int)
    for index in range(1, 4):
        better = windows[index] > best  # ties keep the first maximum
        best = np.where(better, windows[index], best)
        winner = np.where(better, index, winner)

    def routing(above):
        out = np.zeros_like(conv)
        for index, (u, v) in enumerate(offsets):
            out[:, :, u:2 * ho:2, v:2 * wo:2] = np.where(winner == index, above, 0)
        return out

    return best, routing


def _maps(x, state, shapes, linear_output=False):
    batch = x.shape[0]
    return [a.reshape(batch, *shape) for a, shape in zip(_activations(x, state, linear_output), shapes)]


def chain_net_inputs(input_shape, layers, weights, biases, x, state, linear_output=False):
    """h_j = dPhi/ds_j for every non-input layer, flat."""
    shapes = chain_shapes(input_shape, layers)
    maps = _maps(x, state, shapes, linear_output)
    batch = x.shape[0]
    h = [np.zeros((batch, int(np.prod(s))), dtype=x.dtype) for s in shapes[1:]]
    for j, layer in enumerate(layers):
        below, above = maps[j], maps[j + 1]
        w, b = weights[j], biases[j]
        if layer[0] == "dense":
            h[j] += below.reshape(batch, -1) @ w + b
            if j > 0:
                h[j - 1] += (above.reshape(batch, -1) @ w.T)
        else:
            _, _, k, pad, pool = layer
            pooled, routing = pool2x2(conv2d(below, w, pad), pool)
            h[j] += (pooled + b[None, :, None, None]).reshape(batch, -1)
            if j > 0:
                h[j - 1] += conv2d_adjoint(routing(above), w, pad, below.shape[2:]).reshape(batch, -1)
    return h


def chain_relax(input_shape, layers, weights, biases, x, init, steps, epsilon, beta=0.0, target=None,
                solver="euler", linear_output=False, clamp=None):
    return _dynamics(lambda state: chain_net_inputs(input_shape, layers, weights, biases, x, state, linear_output),
                     init, steps, epsilon, beta, target, solver, linear_output, clamp)


def chain_phi(input_shape, layers, weights, biases, x, state):
    """Phi of each example."""
    shapes = chain_shapes(input_shape, layers)
    maps = _maps(x, state, shapes)
    batch = x.shape[0]
    phi = np.zeros(batch)
    for j, layer in enumerate(layers):
        below, above = maps[j], maps[j + 1]
        if layer[0] == "dense":
            phi += np.sum((below.reshape(batch, -1) @ weights[j]) * above.reshape(batch, -1), axis=1)
            phi += above.reshape(batch, -1) @ biases[j]
        else:
            pooled, _ = pool2x2(conv2d(below, weights[j], layer[3]), layer[4])
            phi += np.sum(pooled * above, axis=(1, 2, 3))
            phi += np.einsum("bchw,c->b", above, biases[j])
    return phi


def chain_energy(input_shape, layers, weights, biases, x, state):
    return sum(0.5 * np.sum(s * s, axis=1) for s in state) - chain_phi(input_shape, layers, weights, biases, x, state)


def chain_phi_gradients(input_shape, layers, weights, x, state, linear_output=False):
    """dPhi/dW_j and dPhi/db_j summed over the batch."""
    shapes = chain_shapes(input_shape, layers)
    maps = _maps(x, state, shapes, linear_output)
    batch = x.shape[0]
    dw, db = [], []
    for j, layer in enumerate(layers):
        below, above = maps[j], maps[j + 1]
        if layer[0] == "dense":
            dw.append(below.reshape(batch, -1).T @ above.reshape(batch, -1))
            db.append(above.reshape(batch, -1).sum(axis=0))
        else:
            _, _, k, pad, pool = layer
            _, routing = pool2x2(conv2d(below, weights[j], pad), pool)
            dw.append(conv2d_weight_adjoint(routing(above), below, pad, k))
            db.append(above.sum(axis=(0, 2, 3)))
    return dw, db


def chain_ep_gradients(input_shape, layers, weights, biases, x, target, beta, free_steps, nudged_steps,
                       epsilon, symmetric=False, solver="euler"):
    batch = x.shape[0]
    shapes = chain_shapes(input_shape, layers)
    zeros = [np.zeros((batch, int(np.prod(s))), dtype=x.dtype) for s in shapes[1:]]
    args = (input_shape, layers, weights, biases, x)
    free = chain_relax(*args, zeros, free_steps, epsilon, solver=solver)
    pos = chain_relax(*args, free, nudged_steps, epsilon, beta, target, solver)
    if symmetric:
        neg = chain_relax(*args, free, nudged_steps, epsilon, -beta, target, solver)
        denominator = 2 * beta * batch
    else:
        neg, denominator = free, beta * batch
    pw, pb = chain_phi_gradients(input_shape, layers, weights, x, pos)
    nw, nb = chain_phi_gradients(input_shape, layers, weights, x, neg)
    return ([-(p - q) / denominator for p, q in zip(pw, nw)],
            [-(p - q) / denominator for p, q in zip(pb, nb)], free)


# ---------------------------------------------------------------------------
# Cross-entropy through a softmax readout (Laborieux et al. 2021, ``--loss cel
# --softmax``). The last connection (W_out, b_out) is outside the energy: the
# logits z = rho(s_L) W_out + b_out of the last relaxing layer s_L, p = softmax(z),
# C = -sum_c d_c log p_c, and F = E(s_1..s_L) + beta C. The nudge is
# -beta dC/ds_L = -beta (p sum(d) - d) W_out^T (dC/dz = p sum(d) - d; p - d for
# a one-hot d). W_out learns dC/dW_out at the free fixed point. A state is the
# relaxing layers followed by p.


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def readout_probabilities(weights, biases, hidden):
    """p = softmax(rho(s_L) W_out + b_out)."""
    return softmax(rho(hidden[-1]) @ weights[-1] + biases[-1])


def readout_cost(p, target):
    return -np.sum(target * np.log(p), axis=1)


def readout_relax(weights, biases, x, init, steps, epsilon, beta=0.0, target=None, solver="euler", chain=None):
    """The relaxing layers under F = E + beta C, then p; ``init`` is the hidden layers (and p, ignored).

    ``chain=(input_shape, layers)`` for conv hidden layers (``layers`` without the readout).
    """
    hidden_w, hidden_b = weights[:-1], biases[:-1]
    w_out = weights[-1]

    def inputs(state):
        if chain is None:
            h = net_inputs(hidden_w, hidden_b, x, state)
        else:
            h = chain_net_inputs(chain[0], chain[1], hidden_w, hidden_b, x, state)
        if beta != 0.0:
            p = readout_probabilities(weights, biases, state)
            h[-1] = h[-1] - beta * (p * target.sum(axis=1, keepdims=True) - target) @ w_out.T  # -beta dC/ds_L
        return h

    hidden = _dynamics(inputs, list(init[:len(weights) - 1]), steps, epsilon, 0.0, None, solver, False, None)
    return hidden + [readout_probabilities(weights, biases, hidden)]


def readout_gradients(weights, biases, x, target, algorithm, beta, free_steps, nudged_steps, epsilon,
                      solver="euler", chain=None):
    """dJ/dtheta estimates: EP's contrast for the hidden weights, the exact dC/dW_out at s^0 for the readout."""
    batch = x.shape[0]
    hidden_w = weights[:-1]
    if chain is None:
        zeros = [np.zeros((batch, w.shape[1]), dtype=x.dtype) for w in hidden_w]

        def terms(state):
            return ep_terms(x, state[:-1])
    else:
        shapes = chain_shapes(*chain)
        zeros = [np.zeros((batch, int(np.prod(s))), dtype=x.dtype) for s in shapes[1:]]

        def terms(state):
            return chain_phi_gradients(chain[0], chain[1], hidden_w, x, state[:-1])

    def run(init, steps, beta=0.0):
        return readout_relax(weights, biases, x, init, steps, epsilon, beta, target, solver, chain)

    free = run(zeros, free_steps)
    if algorithm == "centered":
        positive, negative, spread = run(free, nudged_steps, beta), run(free, nudged_steps, -beta), 2 * beta
    else:
        signed = beta if algorithm == "positive" else -beta
        positive, negative, spread = run(free, nudged_steps, signed), free, signed
    pw, pb = terms(positive)
    nw, nb = terms(negative)
    grads_w = [-(p - q) / (spread * batch) for p, q in zip(pw, nw)]
    grads_b = [-(p - q) / (spread * batch) for p, q in zip(pb, nb)]
    error = free[-1] * target.sum(axis=1, keepdims=True) - target  # dC/dz at the free fixed point
    grads_w.append(rho(free[-2]).T @ error / batch)
    grads_b.append(error.sum(axis=0) / batch)
    return grads_w, grads_b, free


def readout_predict(weights, biases, x, steps, epsilon, solver="euler"):
    zeros = [np.zeros((x.shape[0], w.shape[1]), dtype=x.dtype) for w in weights[:-1]]
    return readout_relax(weights, biases, x, zeros, steps, epsilon, solver=solver)[-1].argmax(axis=1)


# ---------------------------------------------------------------------------
# Optimizers, written from the algorithms PyTorch documents for torch.optim.SGD
# (dampening 0) and torch.optim.Adam (amsgrad off, maximize off), in float64
# whatever the input dtype. ``grads`` holds one gradient per step; ``lr`` is a
# rate or one rate per step (a schedule). They return the parameter after the
# last step.

def _rates(lr, n_steps):
    return list(lr) if np.ndim(lr) else [lr] * n_steps


def sgd_steps(theta, grads, lr, weight_decay=0.0, momentum=0.0, nesterov=False):
    """g_t += lambda theta; b_1 = g_1, b_t = mu b_{t-1} + g_t; g_t = g_t + mu b_t (Nesterov) or b_t; theta -= lr g_t."""
    theta = np.array(theta, dtype=np.float64)
    buffer = None
    for t, (grad, rate) in enumerate(zip(grads, _rates(lr, len(grads)))):
        g = np.asarray(grad, dtype=np.float64) + weight_decay * theta
        if momentum != 0:
            buffer = g if t == 0 else momentum * buffer + g
            g = g + momentum * buffer if nesterov else buffer
        theta = theta - rate * g
    return theta


def adam_steps(theta, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """g_t += lambda theta; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; theta -= lr m_hat / (sqrt(v_hat) + eps)."""
    beta1, beta2 = betas
    theta = np.array(theta, dtype=np.float64)
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for t, (grad, rate) in enumerate(zip(grads, _rates(lr, len(grads))), start=1):
        g = np.asarray(grad, dtype=np.float64) + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        theta = theta - rate * m_hat / (np.sqrt(v_hat) + eps)
    return theta


def optimizer_steps(name, theta, grads, lr, weight_decay=0.0, momentum=0.9, betas=(0.9, 0.999), eps=1e-8):
    """The steps of optimizer ``name`` (sgd, momentum, nesterov, adam) from a fresh state."""
    if name == "adam":
        return adam_steps(theta, grads, lr, betas=betas, eps=eps, weight_decay=weight_decay)
    return sgd_steps(theta, grads, lr, weight_decay=weight_decay, momentum=0.0 if name == "sgd" else momentum,
                     nesterov=name == "nesterov")
