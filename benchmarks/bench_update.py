"""The EP weight and bias update alone (``eqcore.apply_ep_update``).

The update a training step applies after its two phases: for every weight
matrix, W += scale (P_in^T P_out - N_in^T N_out), biases likewise; called here
the way ``EqPropNetwork`` calls it (BLAS limited to one thread, the core's own
OpenMP threads doing the parallel work). The scale is tiny but nonzero (BLAS
may skip a product scaled by zero), so the weights barely move over a run.
Parameters: architecture, batch (20, 100, 256), dtype, threads (1, 2); the
3-hidden-layer network only at batch 20 and 256. ``track_gflops`` reports the
achieved GFLOP/s in float32 (two outer-product sums per matrix).
"""

from __future__ import annotations

import numpy as np

import eqcore
from eqprop._threads import single_threaded_blas

from ._common import ARCHS, BATCHES, DTYPES, THREADS, best_seconds, make_problem, skip_combination, update_flops


class EPUpdate:
    params = (list(ARCHS), BATCHES, DTYPES, THREADS)
    param_names = ["arch", "batch", "dtype", "threads"]

    def setup(self, arch, batch, dtype, threads):
        skip_combination(arch, batch)
        self.net, self.x, _, self.positive = make_problem(arch, batch, dtype, threads)
        self.negative = [np.ascontiguousarray(s[::-1]) for s in self.positive]
        self.scales = np.full(len(self.net.weights), 1e-9)

    def time_update(self, arch, batch, dtype, threads):
        with single_threaded_blas():
            eqcore.apply_ep_update(self.net.core_chain(), self.x, self.positive, self.negative,
                                   self.scales, threads)


class EPUpdateGflops:
    params = (list(ARCHS), BATCHES, THREADS)
    param_names = ["arch", "batch", "threads"]

    def setup(self, arch, batch, threads):
        EPUpdate.setup(self, arch, batch, "float32", threads)

    def track_gflops(self, arch, batch, threads):
        def call():
            with single_threaded_blas():
                eqcore.apply_ep_update(self.net.core_chain(), self.x, self.positive, self.negative,
                                       self.scales, threads)

        seconds = best_seconds(call)
        return update_flops(ARCHS[arch]) * batch / seconds / 1e9

    track_gflops.unit = "GFLOP/s"
