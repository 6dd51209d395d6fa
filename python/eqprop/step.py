"""The step engine: the free phase, the nudge and the update of one mini-batch.

This is the one place where Python drives the compiled core for training.
:class:`EqPropNetwork` (``train_step``, ``ep_gradients``), :class:`Trainer`,
the benchmarks and the tools all go through it. :meth:`StepEngine.train_batches`
runs a whole sequence of mini-batches (free phase, nudge, in-place SGD update,
bookkeeping) in one compiled call: the Trainer's epochs with plain SGD. It owns the drive buffer (the
first layer's bottom-up input, computed once per mini-batch by the free phase
and reused by the nudged phases, since x and the weights do not change in
between) and takes arrays that are already validated: C-contiguous, of the
network's dtype, flat (batch, n) states.

With the cross-entropy's softmax readout (``net.readout``) the last connection
learns from the free phase's cost gradient instead of the contrast:
:meth:`accumulate` then needs the free state and the target, and its scale
(:meth:`update_scales`) is not divided by the spread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

import eqcore
from eqcore._epoch import train_batches
from eqprop.algorithms import Contrast

if TYPE_CHECKING:
    from eqprop.network import EqPropNetwork
    from eqprop.optim import OptimizerStep

SOLVER_CODES = {
    "euler": eqcore.SOLVER_EULER, "alternating": eqcore.SOLVER_ALTERNATING, "fixed-point": eqcore.SOLVER_FIXED_POINT,
}

State = list[np.ndarray]


class StepEngine:
    """Relaxations and EP updates of mini-batches of up to ``max_batch`` examples.

    Parameters
    ----------
    net : EqPropNetwork
        The network whose parameters are read and updated in place.
    max_batch : int
        The largest mini-batch the engine will see (sizes the drive buffer).

    Notes
    -----
    No argument is checked here: callers validate once (``EqPropNetwork``'s
    public methods, ``Trainer.fit``). Callers keep BLAS single-threaded around
    a sequence of calls (``eqprop._threads.single_threaded_blas``).
    """

    def __init__(self, net: EqPropNetwork, max_batch: int) -> None:
        self.net = net
        self._drive = np.empty((max(max_batch, 1), net.sizes[1]), dtype=net.dtype)

    def _drive_rows(self, batch: int) -> np.ndarray:
        if batch > self._drive.shape[0]:
            self._drive = np.empty((batch, self.net.sizes[1]), dtype=self.net.dtype)
        return self._drive[:batch]

    def relax(
        self, x: np.ndarray, state: State, *, steps: int, epsilon: float, beta: float = 0.0,
        target: np.ndarray | None = None, solver: str, threads: int, drive_ready: bool = False,
        clamp_output: bool = False,
    ) -> None:
        """Relax the flat ``state`` in place; the drive is computed unless ``drive_ready``.

        With ``clamp_output`` the output is held at ``target`` (beta is 0).
        """
        eqcore.relax_batch(
            self.net.core_chain(), x, state, steps, epsilon, beta,
            target if beta != 0.0 or clamp_output else None, SOLVER_CODES[solver], threads,
            self._drive_rows(x.shape[0]), drive_ready, clamp_output,
        )

    def free_phase(self, x: np.ndarray, state: State, *, steps: int, epsilon: float, solver: str,
                   threads: int) -> None:
        """Relax ``state`` in place with beta = 0 (and fill the drive for the nudged phases)."""
        self.relax(x, state, steps=steps, epsilon=epsilon, solver=solver, threads=threads)

    def nudged(self, x: np.ndarray, free: State, target: np.ndarray, *, beta: float, steps: int,
               epsilon: float, solver: str, threads: int) -> State:
        """A copy of the free fixed point relaxed with ``beta`` (after :meth:`free_phase` on this x)."""
        state = [s.copy() for s in free]
        self.relax(x, state, steps=steps, epsilon=epsilon, beta=beta, target=target, solver=solver,
                   threads=threads, drive_ready=True)
        return state

    def clamped(self, x: np.ndarray, free: State, target: np.ndarray, *, coupling: float, steps: int,
                epsilon: float, solver: str, threads: int) -> State:
        """A copy of the free fixed point relaxed with the output clamped to y^0 + coupling (d - y^0)."""
        state = [s.copy() for s in free]
        output = free[-1]
        clamp = np.ascontiguousarray(output + coupling * (target - output), dtype=output.dtype)
        self.relax(x, state, steps=steps, epsilon=epsilon, target=clamp, solver=solver, threads=threads,
                   drive_ready=True, clamp_output=True)
        return state

    def contrasted_states(
        self, x: np.ndarray, free: State, target: np.ndarray, *, contrast: Contrast, nudged_steps: int,
        epsilon: float, solver: str, threads: int,
    ) -> tuple[State, State, float]:
        """The two states the algorithm contrasts and the spread between them (eqprop.algorithms).

        One-sided: (s^beta, s^0, beta); centered: (s^{+beta}, s^{-beta}, 2 beta);
        clamped: (s^clamp, s^0, eta).
        """
        kwargs = dict(steps=nudged_steps, epsilon=epsilon, solver=solver, threads=threads)
        if contrast.mode == "clamped":
            return self.clamped(x, free, target, coupling=contrast.coupling, **kwargs), free, contrast.coupling
        positive = self.nudged(x, free, target, beta=contrast.beta, **kwargs)
        if contrast.mode == "centered":
            negative = self.nudged(x, free, target, beta=-contrast.beta, **kwargs)
            return positive, negative, 2.0 * contrast.beta
        return positive, free, contrast.beta

    def update_scales(self, numerators: np.ndarray, spread: float, batch: int) -> np.ndarray:
        """The per-connection scales of :meth:`accumulate`: numerators_k / (spread * batch).

        ``numerators`` holds the learning rates (the update) or -1 (the
        gradient estimate). A readout's scale is numerators_L / batch: it
        applies the free phase's cost gradient, which no spread divides.
        """
        scales = np.asarray(numerators, dtype=np.float64) / (spread * batch)
        if self.net.readout:
            scales[-1] = float(numerators[-1]) / batch
        return scales

    def accumulate(
        self, x: np.ndarray, positive: State, negative: State, scales: np.ndarray, threads: int,
        out: tuple[list[np.ndarray], list[np.ndarray]] | None = None, *, free: State | None = None,
        target: np.ndarray | None = None,
    ) -> bool:
        """theta += scales_k (dPhi/dtheta(positive) - dPhi/dtheta(negative)), batch-summed.

        Into the network's parameters, or into ``out = (weights, biases)``.
        With a readout, ``free`` (the free fixed point, its last array p^0) and
        ``target`` are required: the readout gets
        scales_L rho(s_L^0)^T (d - p^0 sum(d)), whatever ``positive[-1]`` and
        ``negative[-1]`` hold. Returns whether the updated biases are all finite.
        """
        out_weights, out_biases = out if out is not None else (None, None)
        readout_input = None
        if self.net.readout:
            if free is None or target is None:
                raise ValueError("a network with a readout (cost='cross-entropy') updates it from the free "
                                 "state and the target: pass free= and target=")
            # the readout's operands (eqcore._update): d and p^0 sum(d), below them s_L^0
            weight = target.sum(axis=1, keepdims=True, dtype=target.dtype)  # 1 for a one-hot d
            positive = [*positive[:-1], target]
            negative = [*negative[:-1], np.ascontiguousarray(free[-1] * weight)]
            readout_input = free[-2]
        return eqcore.apply_ep_update(self.net.core_chain(), x, positive, negative, scales, threads,
                                      out_weights, out_biases, readout_input)

    def update(
        self, x: np.ndarray, free: State, target: np.ndarray, *, contrast: Contrast, nudged_steps: int,
        epsilon: float, rates: np.ndarray, solver: str, threads: int,
    ) -> bool:
        """Nudged (or clamped) phase(s) from the free fixed point of :meth:`free_phase`, then the in-place update.

        W_k += rates_k / spread * mean_batch(dPhi/dW_k(positive) - dPhi/dW_k(negative)),
        biases likewise (for one-sided EP: positive s^beta, negative s^0, spread beta).
        Returns whether the updated biases are all finite.
        """
        positive, negative, spread = self.contrasted_states(
            x, free, target, contrast=contrast, nudged_steps=nudged_steps, epsilon=epsilon,
            solver=solver, threads=threads,
        )
        return self.accumulate(x, positive, negative, self.update_scales(rates, spread, x.shape[0]), threads,
                               free=free, target=target)

    def optimizer_update(
        self, x: np.ndarray, free: State, target: np.ndarray, *, contrast: Contrast, nudged_steps: int,
        epsilon: float, rates: np.ndarray, solver: str, threads: int, step: OptimizerStep,
    ) -> bool:
        """Nudged (or clamped) phase(s), the gradient estimate into ``step.grads``, then one optimizer step.

        g = -(1 / spread) mean_batch(dPhi/dtheta(positive) - dPhi/dtheta(negative))
        (the estimate :meth:`gradients` returns), then ``step.apply(rates)``:
        ``rates`` holds one rate per parameter array, weights then biases.
        Returns whether the gradient and the updated biases are all finite; a
        non-finite gradient is not applied.
        """
        positive, negative, spread = self.contrasted_states(
            x, free, target, contrast=contrast, nudged_steps=nudged_steps, epsilon=epsilon,
            solver=solver, threads=threads,
        )
        step.zero_grads()
        scales = self.update_scales(np.full(len(self.net.weights), -1.0), spread, x.shape[0])
        if not self.accumulate(x, positive, negative, scales, threads, out=step.grads, free=free, target=target):
            return False
        return step.apply(rates, threads)

    def gradients(
        self, x: np.ndarray, free: State, target: np.ndarray, *, contrast: Contrast, nudged_steps: int,
        epsilon: float, solver: str, threads: int,
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The algorithm's estimate of dJ/dtheta from the free fixed point of :meth:`free_phase`."""
        net = self.net
        grads = ([np.zeros_like(w) for w in net.weights], [np.zeros_like(b) for b in net.biases])
        positive, negative, spread = self.contrasted_states(
            x, free, target, contrast=contrast, nudged_steps=nudged_steps, epsilon=epsilon,
            solver=solver, threads=threads,
        )
        scales = self.update_scales(np.full(len(net.weights), -1.0), spread, x.shape[0])
        self.accumulate(x, positive, negative, scales, threads, out=grads, free=free, target=target)
        return grads

    def train_batches(
        self, x: np.ndarray, labels: np.ndarray, order: np.ndarray, *, batch_size: int, start: int, stop: int,
        x_buffer: np.ndarray, target_buffer: np.ndarray, state_buffer: State, particles: State | None,
        betas: np.ndarray, centered: bool, rates: np.ndarray, free_steps: int, nudged_steps: int,
        epsilon: float, solver: str, threads: int, batch_errors: np.ndarray, batch_costs: np.ndarray,
        errors: int = 0, cost: float = 0.0, stage_seconds: np.ndarray | None = None,
    ) -> tuple[int, int, int, float]:
        """Mini-batches ``start .. stop - 1`` of an epoch in one compiled call (``eqcore._epoch``).

        Mini-batch b holds the examples ``order[b * batch_size:(b + 1) *
        batch_size]``; for each: gather into the buffers, the free phase from
        ``particles`` (zeros if None), errors and cost into ``batch_errors[b]``
        and ``batch_costs[b]``, the particles written back, the nudged phase
        with ``betas[b]`` (and with ``-betas[b]`` when ``centered``), then the
        in-place update of :meth:`update` with scales rates_k / (spread m):
        bitwise what :meth:`free_phase`, :meth:`update` and the Trainer's
        per-batch bookkeeping give. ``stage_seconds``, if given (float64, one
        entry per name of ``eqcore._epoch.STAGES``), has the wall time of each
        stage added to it.

        Returns
        -------
        (completed, failure, errors, cost)
            Mini-batches completed; ``eqcore._epoch.FAILED_NONE``, or where the
            next one stopped (``FAILED_FREE_PHASE``: nothing of it kept;
            ``FAILED_UPDATE``: its particles and update were written); the
            running totals ``errors`` and ``cost`` with the completed ones added.
        """
        return train_batches(
            self.net.core_chain(), x, labels, order, batch_size, start, stop, x_buffer, target_buffer,
            state_buffer, self._drive_rows(batch_size), particles, betas, centered, rates, free_steps,
            nudged_steps, epsilon, SOLVER_CODES[solver], threads, batch_errors, batch_costs, errors, cost,
            stage_seconds,
        )
