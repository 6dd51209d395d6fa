"""Convolutional Equilibrium Propagation in PyTorch (CPU), written the usual way.

The conv equations of ``eqprop`` (``eqprop.layers``, ``eqcore._engine``) with
``torch.nn.functional`` at every step, as published conv-EP scripts write them
(Ernoult et al. 2019, Laborieux et al. 2021), under ``torch.no_grad()`` with
no autograd graph, on ``torch.set_num_threads(threads)`` intra-op threads.

Network: the input x (C_0, H_0, W_0) is clamped; conv layer l has the state
s_l (C_l, H_l, W_l) after pooling, weights W_l (C_l, C_{l-1}, k, k), zero
padding p, stride 1, then 2x2 stride-2 pooling P (max, average, or none) and
one bias per channel; dense layers after the conv ones see the map flattened
in C order, with weights (C H W, n_out). States stay in [0, 1], so rho(s) = s.

    Phi = sum_conv s_l . P(W_l * s_{l-1}) + sum_dense s_k^T W_k s_{k+1} + sum b . s

Net input h_l = dPhi/ds_l, one function call per term and step:

* bottom-up, conv: ``max_pool2d(conv2d(s_{l-1}, W_l, padding=p), 2,
  return_indices=True)`` (or ``avg_pool2d``, or the convolution alone) plus the
  channel biases; dense: ``addmm(b, s_{l-1}, W)``;
* top-down from a conv layer above: ``conv_transpose2d(U(s_{l+1}), W_{l+1},
  padding=p)``, where U is the transpose of that layer's pooling:
  ``max_unpool2d`` with the indices of s_{l+1}'s own bottom-up input at the
  current s_l (PyTorch keeps the first maximum of a window in row-major order,
  as eqprop does), or ``conv_transpose2d`` with a 2x2 kernel of 1/4 per channel
  (the transpose of ``avg_pool2d``); from a dense layer above, s_{l+1} W^T.

Euler dynamics, all layers from the previous state:
s <- clip(s + epsilon (h - s) [+ epsilon beta (d - y) on the output], 0, 1).
The first layer's drive P(W_1 * x) + b_1 (and its max-pool indices) is
computed once per training step and shared by both phases, as eqprop does;
:class:`TorchConvEPUsual` recomputes it at every step.

Update (one-sided, beta with its sign, as ``eqprop.Trainer`` and the dense
peer use it): theta += lr / (beta B) (dPhi/dtheta at s^beta - at s^0). For a
conv connection dPhi/dW_l is the correlation of s_{l-1} with U(s_l), the
winners taken from the phase's own state below
(``torch.nn.grad.conv2d_weight``, the weight gradient of ``conv2d``);
dPhi/db_l sums s_l over the batch and the map.

States go in and out flat, (batch, C H W) in C order, as eqprop's core keeps
them; x may be flat or (batch, C, H, W). Importing this module without
PyTorch installed succeeds; constructing :class:`TorchConvEP` then raises
ImportError.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .torch_ep import TorchEP, torch

if torch is not None:
    import torch.nn.functional as F
    from torch.nn.grad import conv2d_weight

POOLS = ("max", "avg", None)


@dataclass(frozen=True)
class _Link:
    """One connection: the layer below (``in_shape``) to the layer above (``out_shape``)."""

    kind: str  # "dense" or "conv"
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: int = 0
    padding: int = 0
    pool: str | None = None
    conv_hw: tuple[int, int] = (0, 0)  # the convolution's map, before pooling

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if self.kind == "dense":
            return (int(np.prod(self.in_shape)), self.out_shape[0])
        return (self.out_shape[0], self.in_shape[0], self.kernel, self.kernel)

    @property
    def bias_shape(self) -> tuple[int, ...]:
        return (self.out_shape[0],)


def _links(layers: Sequence[object]) -> list[_Link]:
    """Resolve ``[(C, H, W), conv, ..., n, ...]``: a conv entry has ``out_channels``,
    ``kernel_size``, ``padding`` and ``pool`` (``eqprop.Conv2d`` does), a dense one is an int."""
    if len(layers) < 2:
        raise ValueError("layers needs an input shape and at least one layer")
    shape = tuple(int(v) for v in np.atleast_1d(layers[0]))
    if len(shape) != 3:
        raise ValueError(f"layers[0] must be the input's (C, H, W); got {layers[0]!r}")
    links = []
    for position, entry in enumerate(layers[1:], start=1):
        if isinstance(entry, (int, np.integer)) and not isinstance(entry, bool):
            links.append(_Link("dense", shape, (int(entry),)))
        elif all(hasattr(entry, a) for a in ("out_channels", "kernel_size", "padding", "pool")):
            if len(shape) != 3:
                raise ValueError(f"layers[{position}] is a conv layer above a dense one")
            if entry.pool not in POOLS:
                raise ValueError(f"layers[{position}]: pool must be 'max', 'avg' or None; got {entry.pool!r}")
            k, pad = int(entry.kernel_size), int(entry.padding)
            hc, wc = shape[1] + 2 * pad - k + 1, shape[2] + 2 * pad - k + 1
            if hc < (2 if entry.pool else 1) or wc < (2 if entry.pool else 1):
                raise ValueError(f"layers[{position}]: the kernel does not fit the map below")
            out = (hc // 2, wc // 2) if entry.pool else (hc, wc)
            links.append(_Link("conv", shape, (int(entry.out_channels), *out), k, pad, entry.pool, (hc, wc)))
        else:
            raise TypeError(f"layers[{position}] must be an int (dense) or a conv layer spec; got {entry!r}")
        shape = links[-1].out_shape
    return links


class TorchConvEP(TorchEP):
    """A convolutional EP network in PyTorch with the interface of :mod:`peers`.

    Parameters
    ----------
    layers : sequence
        As ``eqprop.EqPropNetwork`` takes them: the input's (C, H, W), then
        ``eqprop.Conv2d`` entries (or anything with ``out_channels``,
        ``kernel_size``, ``padding`` and ``pool``), then ints (dense layers).
    weights : sequence of ndarray
        (C_out, C_in, k, k) for a conv connection, (n_in, n_out) for a dense
        one; copied into CPU tensors of the same dtype (float32 or float64).
    biases : sequence of ndarray
        (C_out,) per conv connection, (n_out,) per dense one; copied.
    threads : int, default 1
        Passed to ``torch.set_num_threads`` at the start of every call.
    """

    name = "torch"
    hoist_drive = True  # P(W_1 * x) + b_1 once per training step

    def __init__(self, layers: Sequence[object], weights: Sequence[np.ndarray], biases: Sequence[np.ndarray],
                 threads: int = 1) -> None:
        super().__init__(weights, biases, threads)
        self.links = _links(layers)
        if len(self.links) != len(self.weights):
            raise ValueError(f"layers has {len(self.links)} connections; got {len(self.weights)} weight arrays")
        for j, (link, w, b) in enumerate(zip(self.links, self.weights, self.biases)):
            if tuple(w.shape) != link.weight_shape or tuple(b.shape) != link.bias_shape:
                raise ValueError(f"connection {j} needs weights {link.weight_shape} and biases {link.bias_shape}; "
                                 f"got {tuple(w.shape)} and {tuple(b.shape)}")
        # avg_pool2d's transpose: every window gets 1/4 of its pooled value (one kernel per channel)
        self._avg_kernels = {j: torch.full((link.out_shape[0], 1, 2, 2), 0.25, dtype=self.dtype)
                             for j, link in enumerate(self.links) if link.pool == "avg"}

    # ------------------------------------------------------------- the terms
    def _bottom_up(self, j: int, below):
        """(P(W_j * below) + b_j or below W_j + b_j, max-pool indices or None)."""
        link, w, b = self.links[j], self.weights[j], self.biases[j]
        if link.kind == "dense":
            return torch.addmm(b, below.reshape(below.shape[0], -1), w), None
        conv = F.conv2d(below, w, padding=link.padding)
        indices = None
        if link.pool == "max":
            conv, indices = F.max_pool2d(conv, 2, return_indices=True)
        elif link.pool == "avg":
            conv = F.avg_pool2d(conv, 2)
        # the channel biases after pooling: added before, they could round two window
        # values into a tie and move a winner
        return conv + b[:, None, None], indices

    def _unpool(self, j: int, above, indices):
        """The transpose of connection j's pooling applied to the state above."""
        link = self.links[j]
        if link.pool == "max":
            return F.max_unpool2d(above, indices, 2, output_size=link.conv_hw)
        if link.pool == "avg":
            hc, wc = link.conv_hw
            return F.conv_transpose2d(above, self._avg_kernels[j], stride=2, groups=link.out_shape[0],
                                      output_padding=(hc % 2, wc % 2))
        return above

    def _top_down(self, j: int, above, indices):
        """What the layer above connection j sends to the layer below (shaped like it)."""
        link, w = self.links[j], self.weights[j]
        if link.kind == "dense":
            return torch.mm(above, w.t()).reshape(above.shape[0], *link.in_shape)
        return F.conv_transpose2d(self._unpool(j, above, indices), w, padding=link.padding)

    def _weight_gradient(self, j: int, below, above, indices):
        """dPhi/dW_j summed over the batch."""
        link = self.links[j]
        if link.kind == "dense":
            return torch.mm(below.reshape(below.shape[0], -1).t(), above)
        return conv2d_weight(below, link.weight_shape, self._unpool(j, above, indices), padding=link.padding)

    # ------------------------------------------------------------- dynamics
    def _relax(self, xt, drive, state, steps: int, epsilon: float, beta: float, target):
        """Euler steps from ``state`` (maps); ``drive`` is (P(W_1 * x) + b_1, indices) or None."""
        n = len(state)
        for _ in range(steps):
            parts = [drive if (j == 0 and drive is not None) else self._bottom_up(j, xt if j == 0 else state[j - 1])
                     for j in range(n)]
            new = []
            for j in range(n):
                h = parts[j][0]
                if j + 1 < n:
                    h = h + self._top_down(j + 1, state[j + 1], parts[j + 1][1])
                sj = state[j] + epsilon * (h - state[j])
                if j == n - 1 and beta != 0.0:
                    sj += (epsilon * beta) * (target - state[j])
                new.append(sj.clamp_(0.0, 1.0))
            state = new
        return state

    def _drive(self, xt):
        return self._bottom_up(0, xt) if self.hoist_drive else None

    def _input(self, x):
        xt = self._tensor(x).clamp(0.0, 1.0)
        return xt.reshape(xt.shape[0], *self.links[0].in_shape)

    def _maps(self, flat_state, batch: int) -> list:
        return [self._tensor(s).clamp(0.0, 1.0).reshape(batch, *link.out_shape)
                for s, link in zip(flat_state, self.links)]

    @staticmethod
    def _flat(state) -> list[np.ndarray]:
        return [s.reshape(s.shape[0], -1).numpy() for s in state]

    def relax(self, x, init, *, steps: int, epsilon: float, beta: float = 0.0, target=None) -> list[np.ndarray]:
        """Relax from ``init`` (flat states, not modified) for ``steps`` Euler steps; flat states out."""
        torch.set_num_threads(self.threads)
        with torch.no_grad():
            xt = self._input(x)
            state = self._maps(init, xt.shape[0])
            tt = self._tensor(target) if target is not None else None
            out = self._relax(xt, self._drive(xt), state, steps, epsilon, beta, tt)
        return self._flat(out)

    def train_step(self, x, target, init, *, beta: float, free_steps: int, nudged_steps: int,
                   epsilon: float, learning_rates: Sequence[float]) -> list[np.ndarray]:
        """Free phase from ``init``, nudged phase from the free state, in-place update.

        Returns the free state, flat (batch, n_k) NumPy arrays.
        """
        torch.set_num_threads(self.threads)
        with torch.no_grad():
            xt = self._input(x)
            batch = xt.shape[0]
            tt = self._tensor(target)
            drive = self._drive(xt)  # shared by both phases (None: recomputed every step)
            free = self._relax(xt, drive, self._maps(init, batch), free_steps, epsilon, 0.0, None)
            nudged = self._relax(xt, drive, free, nudged_steps, epsilon, beta, tt)
            pos_prev, neg_prev = xt, xt
            for j, (link, w, bias) in enumerate(zip(self.links, self.weights, self.biases)):
                scale = learning_rates[j] / (beta * batch)
                # max pooling: the winners of each phase's own bottom-up input (x's are the drive's)
                pos_idx = neg_idx = None
                if link.pool == "max":
                    pos_idx = drive[1] if j == 0 and drive is not None else self._bottom_up(j, pos_prev)[1]
                    neg_idx = pos_idx if j == 0 else self._bottom_up(j, neg_prev)[1]
                w.add_(self._weight_gradient(j, pos_prev, nudged[j], pos_idx), alpha=scale)
                w.sub_(self._weight_gradient(j, neg_prev, free[j], neg_idx), alpha=scale)
                dims = (0,) if link.kind == "dense" else (0, 2, 3)
                bias.add_(nudged[j].sum(dims) - free[j].sum(dims), alpha=scale)
                pos_prev, neg_prev = nudged[j], free[j]
        return self._flat(free)


class TorchConvEPUsual(TorchConvEP):
    """:class:`TorchConvEP` with P(W_1 * x) recomputed at every relaxation step, as usually written."""

    name = "torch-usual"
    hoist_drive = False
