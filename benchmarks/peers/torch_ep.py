"""Equilibrium Propagation in PyTorch (CPU), written the usual way.

The same equations as :mod:`peers.numpy_ep` (and ``eqprop``): a Python loop over
relaxation steps, one ``addmm`` per weight matrix and direction, all layers
updated synchronously, states clamped to [0, 1], the input's drive x W_0
computed once per training step. Runs under ``torch.no_grad()`` with no autograd
graph (the usual fast way to write EP in PyTorch), on
``torch.set_num_threads(threads)`` intra-op threads.

:class:`TorchEPUsual` is the same code as most published EP scripts write it:
the input's drive x W_0 is recomputed inside the step loop, like every other
net input. It computes the same states and updates (tested), with 20-150x more
products of the largest matrix; it is the "PyTorch written the usual way"
reference point of the performance issue.

Importing this module without PyTorch installed succeeds; constructing
:class:`TorchEP` then raises ImportError.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

try:
    import torch
except ImportError:  # PyTorch is an optional dependency of the benchmarks
    torch = None

_DTYPES = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64"}


class TorchEP:
    """A layered EP network in PyTorch with the interface of :mod:`peers`.

    Parameters
    ----------
    weights : sequence of ndarray
        ``weights[j]`` of shape (n_j, n_{j+1}); copied into CPU tensors of the
        same dtype (float32 or float64).
    biases : sequence of ndarray
        ``biases[j]`` of shape (n_{j+1},); copied.
    threads : int, default 1
        Passed to ``torch.set_num_threads`` (a process-wide setting, applied
        at the start of every call so several peers can coexist).
    """

    name = "torch"
    hoist_drive = True  # compute x W_0 once per training step

    def __init__(self, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], threads: int = 1) -> None:
        if torch is None:
            raise ImportError("TorchEP needs PyTorch: pip install torch")
        if len(weights) < 1 or len(weights) != len(biases):
            raise ValueError("weights and biases must be non-empty lists of the same length")
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive int; got {threads!r}")
        dtype = np.asarray(weights[0]).dtype
        if dtype not in _DTYPES:
            raise TypeError(f"weights must be float32 or float64; got {dtype}")
        self.np_dtype = dtype
        self.dtype = getattr(torch, _DTYPES[dtype])
        self.threads = threads
        self.weights = [torch.tensor(np.asarray(w, dtype=dtype)).contiguous() for w in weights]
        self.biases = [torch.tensor(np.asarray(b, dtype=dtype)) for b in biases]

    def _tensor(self, a) -> "torch.Tensor":
        return torch.as_tensor(np.ascontiguousarray(a, dtype=self.np_dtype))

    def get_weights(self) -> list[np.ndarray]:
        return [w.numpy().copy() for w in self.weights]

    def get_biases(self) -> list[np.ndarray]:
        return [b.numpy().copy() for b in self.biases]

    # ------------------------------------------------------------- dynamics
    def _relax(self, xt, drive, state, steps: int, epsilon: float, beta: float, target):
        """Euler steps from ``state``; ``drive`` is x W_0 + b_0, constant while x is clamped.

        ``drive=None`` recomputes it from ``xt`` at every step (``TorchEPUsual``).
        """
        W, b = self.weights, self.biases
        n = len(state)
        for _ in range(steps):
            step_drive = drive if drive is not None else torch.addmm(b[0], xt, W[0])
            h = []
            for j in range(n):
                hj = step_drive if j == 0 else torch.addmm(b[j], state[j - 1], W[j])
                if j + 1 < n:
                    hj = torch.addmm(hj, state[j + 1], W[j + 1].t())
                h.append(hj)
            new = []
            for j in range(n):
                sj = state[j] + epsilon * (h[j] - state[j])
                if j == n - 1 and beta != 0.0:
                    sj += (epsilon * beta) * (target - state[j])
                new.append(sj.clamp_(0.0, 1.0))
            state = new
        return state

    def _drive(self, xt):
        return torch.addmm(self.biases[0], xt, self.weights[0]) if self.hoist_drive else None

    def relax(self, x, init, *, steps: int, epsilon: float, beta: float = 0.0, target=None) -> list[np.ndarray]:
        """Relax from ``init`` (not modified) for ``steps`` Euler steps."""
        torch.set_num_threads(self.threads)
        with torch.no_grad():
            xt = self._tensor(x).clamp(0.0, 1.0)
            state = [self._tensor(s).clamp(0.0, 1.0) for s in init]
            tt = self._tensor(target) if target is not None else None
            out = self._relax(xt, self._drive(xt), state, steps, epsilon, beta, tt)
        return [s.numpy() for s in out]

    def train_step(self, x, target, init, *, beta: float, free_steps: int, nudged_steps: int,
                   epsilon: float, learning_rates: Sequence[float]) -> list[np.ndarray]:
        """Free phase from ``init``, nudged phase from the free state, in-place update.

        Returns the free state as NumPy arrays (views of the tensors).
        """
        torch.set_num_threads(self.threads)
        with torch.no_grad():
            xt = self._tensor(x).clamp(0.0, 1.0)
            tt = self._tensor(target)
            state = [self._tensor(s).clamp(0.0, 1.0) for s in init]
            drive = self._drive(xt)  # shared by both phases (None: recomputed every step)
            free = self._relax(xt, drive, state, free_steps, epsilon, 0.0, None)
            nudged = self._relax(xt, drive, free, nudged_steps, epsilon, beta, tt)
            pos_prev, neg_prev = xt, xt
            for j, (w, bias) in enumerate(zip(self.weights, self.biases)):
                scale = learning_rates[j] / (beta * xt.shape[0])
                w.addmm_(pos_prev.t(), nudged[j], alpha=scale)
                w.addmm_(neg_prev.t(), free[j], alpha=-scale)
                bias.add_(nudged[j].sum(0) - free[j].sum(0), alpha=scale)
                pos_prev, neg_prev = nudged[j], free[j]
        return [s.numpy() for s in free]


class TorchEPUsual(TorchEP):
    """:class:`TorchEP` with x W_0 recomputed at every relaxation step, as usually written."""

    name = "torch-usual"
    hoist_drive = False
