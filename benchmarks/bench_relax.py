"""Relaxation throughput: the Euler dynamics of a mini-batch (free phase).

Each timed call runs a fixed ``STEPS`` = 10 Euler steps (not the paper's 20 to
500) so one call stays short; examples/s for a full phase follows from
batch / (time * steps_of_the_phase / STEPS). Parameters: the paper's three
architectures, batch (20, 100, 256), dtype (float32, float64), threads (1, 2),
precision (float32, bfloat16: the products on bfloat16 copies, dtype float32
only); the 3-hidden-layer network only at batch 20 and 256.

``time_relax`` goes through the public ``EqPropNetwork.relax`` (validation,
copy of ``init``); ``time_relax_in_place`` calls the step engine (validated once, as the Trainer does): the internal
path a training loop uses, so the two differ by the Python-side overhead.
``track_gflops`` reports the achieved GFLOP/s of the internal path (float32
parameters, float32 or bfloat16 products; one call computes the input's drive
x W_0 once and runs STEPS steps).

``ConvRelax`` and ``ConvRelaxGflops`` are the same measurements for the
convolutional network of benchmarks/compare.py (1x28x28, 32 channels 5x5 max-
pooled, 64 channels 5x5 max-pooled, 10; ``_common.CONV_LAYERS``): STEPS = 10
Euler steps of the free phase of a mini-batch of 20 MNIST-like images (81%
zeros), float32 and float64, 1 and 2 threads, float32 and bfloat16 products (``track_gflops``: float32
parameters); ``ConvRelaxAlgorithms`` forces each bottom-up convolution algorithm. Their FLOP count is compare.py's
(``_common.product_flops``): the drive P(W_1 * x) once, then per step the
second convolution and its transpose and the dense layer both ways.
"""

from __future__ import annotations

import eqcore

from ._common import (ARCHS, BATCHES, CONV_BATCH, CONV_LAYERS, CONV_PRESET_SWEEPS, DTYPES, EPSILON, PRECISIONS,
                      THREADS, best_seconds, drive_flops, make_conv_problem, make_problem, relax_flops,
                      skip_combination, skip_precision)

STEPS = 10


class Relax:
    params = (list(ARCHS), BATCHES, DTYPES, THREADS, PRECISIONS)
    param_names = ["arch", "batch", "dtype", "threads", "precision"]

    def setup(self, arch, batch, dtype, threads, precision):
        skip_combination(arch, batch)
        skip_precision(dtype, precision)
        self.net, self.x, _, self.state = make_problem(arch, batch, dtype, threads, precision=precision)
        self.engine = self.net.step_engine(batch)
        self.threads = threads

    def time_relax(self, arch, batch, dtype, threads, precision):
        self.net.relax(self.x, steps=STEPS, epsilon=EPSILON, init=self.state, threads=threads)

    def time_relax_in_place(self, arch, batch, dtype, threads, precision):
        self.engine.free_phase(self.x, self.state, steps=STEPS, epsilon=EPSILON, solver="euler", threads=threads)


class RelaxGflops:
    params = (list(ARCHS), BATCHES, THREADS, PRECISIONS)
    param_names = ["arch", "batch", "threads", "precision"]

    def setup(self, arch, batch, threads, precision):
        skip_combination(arch, batch)
        self.net, self.x, _, self.state = make_problem(arch, batch, "float32", threads, precision=precision)
        self.engine = self.net.step_engine(batch)

    def track_gflops(self, arch, batch, threads, precision):
        def call():
            self.engine.free_phase(self.x, self.state, steps=STEPS, epsilon=EPSILON, solver="euler",
                                   threads=threads)

        seconds = best_seconds(call)
        return (relax_flops(ARCHS[arch], STEPS) + drive_flops(ARCHS[arch])) * batch / seconds / 1e9

    track_gflops.unit = "GFLOP/s"


class ConvRelax:
    params = (DTYPES, THREADS, PRECISIONS)
    param_names = ["dtype", "threads", "precision"]

    def setup(self, dtype, threads, precision):
        skip_precision(dtype, precision)
        self.net, self.x, _, self.state = make_conv_problem(CONV_BATCH, dtype, threads, precision=precision)
        self.engine = self.net.step_engine(CONV_BATCH)

    def time_relax(self, dtype, threads, precision):
        self.net.relax(self.x, steps=STEPS, epsilon=EPSILON, init=self.state, threads=threads)

    def time_relax_in_place(self, dtype, threads, precision):
        self.engine.free_phase(self.x, self.state, steps=STEPS, epsilon=EPSILON, solver="euler", threads=threads)

    def time_relax_alternating(self, dtype, threads, precision):
        # the conv presets' free phase: 15 sweeps, max pooling routed by the winners the other parity recorded
        self.engine.free_phase(self.x, self.state, steps=CONV_PRESET_SWEEPS, epsilon=EPSILON, solver="alternating",
                               threads=threads)


class ConvRelaxAlgorithms:
    """The internal free phase of ``ConvRelax`` (float32) with each bottom-up convolution forced:
    direct, or Winograd's F(4x4, 5x5) for the second layer (``eqcore.set_gemm_path(conv=...)``;
    the default ``auto`` takes Winograd there)."""

    params = (["direct", "winograd"], THREADS)
    param_names = ["conv", "threads"]

    def setup(self, conv, threads):
        self.net, self.x, _, self.state = make_conv_problem(CONV_BATCH, "float32", threads)
        self.engine = self.net.step_engine(CONV_BATCH)
        eqcore.set_gemm_path("skinny", "best", conv=conv)

    def teardown(self, conv, threads):
        eqcore.set_gemm_path("skinny", "best")

    def time_relax_in_place(self, conv, threads):
        self.engine.free_phase(self.x, self.state, steps=STEPS, epsilon=EPSILON, solver="euler", threads=threads)


class ConvRelaxGflops:
    params = (THREADS, PRECISIONS)
    param_names = ["threads", "precision"]

    def setup(self, threads, precision):
        self.net, self.x, _, self.state = make_conv_problem(CONV_BATCH, "float32", threads, precision=precision)
        self.engine = self.net.step_engine(CONV_BATCH)

    def track_gflops(self, threads, precision):
        def call():
            self.engine.free_phase(self.x, self.state, steps=STEPS, epsilon=EPSILON, solver="euler",
                                   threads=threads)

        seconds = best_seconds(call)
        return (relax_flops(CONV_LAYERS, STEPS) + drive_flops(CONV_LAYERS)) * CONV_BATCH / seconds / 1e9

    track_gflops.unit = "GFLOP/s"
