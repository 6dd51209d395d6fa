"""Equilibrium Propagation in plain NumPy, written the usual way.

A Python loop over relaxation steps; each step computes every layer's net input
with one matrix product per weight matrix and direction, then moves all layers
at once (the paper's synchronous Euler dynamics):

    h_j = s_{j-1} W_j + s_{j+1} W_{j+1}^T + b_j          (s_{-1} = x, clamped)
    s_j <- clip(s_j + epsilon (h_j - s_j) [+ epsilon beta (d - y) for the output], 0, 1)

and the update (Scellier & Bengio 2016, eq. 13):

    W_j += lr_j / (beta B) (s^b_{j-1}^T s^b_j - s^0_{j-1}^T s^0_j),
    b_j += lr_j / (beta B) sum_batch(s^b_j - s^0_j).

BLAS threads are limited to ``threads`` with threadpoolctl for each call.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence

import numpy as np

State = list[np.ndarray]


@functools.cache
def _controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


class NumpyEP:
    """A layered EP network in NumPy with the interface of :mod:`peers`.

    Parameters
    ----------
    weights : sequence of ndarray
        ``weights[j]`` of shape (n_j, n_{j+1}); copied, and the copy's dtype
        (float32 or float64) is the dtype of every computation.
    biases : sequence of ndarray
        ``biases[j]`` of shape (n_{j+1},); copied.
    threads : int, default 1
        BLAS threads used by the matrix products.
    """

    name = "numpy"

    def __init__(self, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], threads: int = 1) -> None:
        if len(weights) < 1 or len(weights) != len(biases):
            raise ValueError("weights and biases must be non-empty lists of the same length")
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive int; got {threads!r}")
        dtype = np.asarray(weights[0]).dtype
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"weights must be float32 or float64; got {dtype}")
        self.dtype = dtype
        self.threads = threads
        self.weights = [np.array(w, dtype=dtype, order="C") for w in weights]
        self.biases = [np.array(b, dtype=dtype) for b in biases]

    @contextlib.contextmanager
    def _blas_threads(self) -> Iterator[None]:
        with _controller().limit(limits=self.threads, user_api="blas"):
            yield

    def get_weights(self) -> list[np.ndarray]:
        return [w.copy() for w in self.weights]

    def get_biases(self) -> list[np.ndarray]:
        return [b.copy() for b in self.biases]

    # ------------------------------------------------------------- dynamics
    def _relax(self, drive: np.ndarray, state: State, steps: int, epsilon: float, beta: float,
               target: np.ndarray | None) -> State:
        """Euler steps from ``state``; ``drive`` is x W_0, constant while the input is clamped."""
        W, b = self.weights, self.biases
        n = len(state)
        for _ in range(steps):
            h = []
            for j in range(n):
                hj = (drive if j == 0 else state[j - 1] @ W[j]) + b[j]
                if j + 1 < n:
                    hj += state[j + 1] @ W[j + 1].T
                h.append(hj)
            new = []
            for j in range(n):
                sj = state[j] + epsilon * (h[j] - state[j])
                if j == n - 1 and beta != 0.0:
                    sj += (epsilon * beta) * (target - state[j])
                np.clip(sj, 0.0, 1.0, out=sj)
                new.append(sj)
            state = new
        return state

    def relax(self, x: np.ndarray, init: Sequence[np.ndarray], *, steps: int, epsilon: float,
              beta: float = 0.0, target: np.ndarray | None = None) -> State:
        """Relax from ``init`` (not modified) for ``steps`` Euler steps."""
        x = np.clip(np.asarray(x, dtype=self.dtype), 0.0, 1.0)
        state = [np.clip(np.asarray(s, dtype=self.dtype), 0.0, 1.0) for s in init]
        if target is not None:
            target = np.asarray(target, dtype=self.dtype)
        with self._blas_threads():
            return self._relax(x @ self.weights[0], state, steps, self.dtype.type(epsilon),
                               self.dtype.type(beta), target)

    def train_step(self, x: np.ndarray, target: np.ndarray, init: Sequence[np.ndarray], *, beta: float,
                   free_steps: int, nudged_steps: int, epsilon: float,
                   learning_rates: Sequence[float]) -> State:
        """Free phase from ``init``, nudged phase from the free state, in-place update.

        Returns the free state (its output gives the training prediction; it is
        also the next starting state for persistent particles).
        """
        x = np.clip(np.asarray(x, dtype=self.dtype), 0.0, 1.0)
        target = np.asarray(target, dtype=self.dtype)
        state = [np.clip(np.asarray(s, dtype=self.dtype), 0.0, 1.0) for s in init]
        eps, b = self.dtype.type(epsilon), self.dtype.type(beta)
        with self._blas_threads():
            drive = x @ self.weights[0]  # shared by both phases: x and W_0 do not change in between
            free = self._relax(drive, state, free_steps, eps, self.dtype.type(0.0), None)
            nudged = self._relax(drive, free, nudged_steps, eps, b, target)
            pos_prev, neg_prev = x, x
            for j, (w, bias) in enumerate(zip(self.weights, self.biases)):
                scale = self.dtype.type(learning_rates[j] / (beta * x.shape[0]))
                w += scale * (pos_prev.T @ nudged[j] - neg_prev.T @ free[j])
                bias += scale * (nudged[j].sum(axis=0) - free[j].sum(axis=0))
                pos_prev, neg_prev = nudged[j], free[j]
        return free
