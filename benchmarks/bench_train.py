"""A full EP training step: free phase, nudged phase, in-place weight update.

Every architecture uses the 1-hidden-layer network's schedule, 20 free / 4
nudged Euler steps (the paper's 150/6 and 500/8 would make one call of the
bigger networks last seconds); the relative cost of relaxation and update
stays visible. Parameters: architecture, batch (20, 100, 256), dtype, threads
(1, 2), precision (float32, bfloat16: the relaxation's products on bfloat16
copies; dtype float32 only); the 3-hidden-layer network only at batch 20 and 256.

``time_train_step`` is the public ``EqPropNetwork.train_step`` from a persistent
state; ``track_gflops`` its achieved GFLOP/s with float32 parameters, per
precision (FLOP convention of benchmarks/compare.py); ``peakmem_train_step`` the process's peak memory.
``time_train_step_image_inputs`` is the same step on MNIST-like inputs (81% zeros,
which the core skips), and ``time_trainer_epoch`` a whole ``Trainer`` epoch at
the paper's mini-batch of 20 in each precision: the loop around the steps included (the
compiled epoch loop, the Trainer's default for plain SGD; ``TrainerEpochPythonLoop`` times the
Python loop over the same kernels, which the other optimizers take); ``TrainerEpochStages``
tracks the compiled loop's microseconds per mini-batch in each of its stages.
``TrainerEpochEventDriven`` times a ``Trainer`` epoch of 784-500-500-10 at the
paper's 150 / 6 Euler steps with the event-driven relaxation
(``eqcore.set_delta_threshold``) at its default and off.

``ConvTrainStep`` and ``ConvTrainStepGflops`` time ``train_step`` of the
convolutional network of benchmarks/compare.py (``_common.CONV_LAYERS``) on a
mini-batch of 20 MNIST-like images, with the same 20 / 4 schedule, learning
rates 0.05, float32 and float64, 1 and 2 threads, float32 and bfloat16 products
(``track_gflops``: float32 parameters, the FLOP convention of compare.py; its conv
arch runs 40 / 10).
"""

from __future__ import annotations

import numpy as np

import eqcore
import eqprop
from eqcore._epoch import STAGES

from ._common import (ARCHS, BATCHES, BETA, CONV_BATCH, CONV_LAYERS, DTYPES, EPSILON, PRECISIONS, THREADS,
                      best_seconds, image_like, make_conv_problem, make_problem, skip_combination, skip_precision,
                      train_flops)

FREE_STEPS = 20
NUDGED_STEPS = 4


def _rates(arch):
    return [0.05] * (len(ARCHS[arch]) - 1)


class TrainStep:
    params = (list(ARCHS), BATCHES, DTYPES, THREADS, PRECISIONS)
    param_names = ["arch", "batch", "dtype", "threads", "precision"]

    def setup(self, arch, batch, dtype, threads, precision):
        skip_combination(arch, batch)
        skip_precision(dtype, precision)
        self.net, self.x, self.target, self.state = make_problem(arch, batch, dtype, threads, precision=precision)
        self.rates = _rates(arch)

    def time_train_step(self, arch, batch, dtype, threads, precision):
        self.net.train_step(self.x, self.target, beta=BETA, free_steps=FREE_STEPS,
                            nudged_steps=NUDGED_STEPS, epsilon=EPSILON, learning_rates=self.rates,
                            init=self.state, threads=threads)


class TrainStepGflops:
    params = (list(ARCHS), BATCHES, THREADS, PRECISIONS)
    param_names = ["arch", "batch", "threads", "precision"]

    def setup(self, arch, batch, threads, precision):
        skip_combination(arch, batch)
        self.net, self.x, self.target, self.state = make_problem(arch, batch, "float32", threads,
                                                                 precision=precision)
        self.rates = _rates(arch)

    def track_gflops(self, arch, batch, threads, precision):
        def call():
            self.net.train_step(self.x, self.target, beta=BETA, free_steps=FREE_STEPS,
                                nudged_steps=NUDGED_STEPS, epsilon=EPSILON, learning_rates=self.rates,
                                init=self.state, threads=threads)

        seconds = best_seconds(call)
        return train_flops(ARCHS[arch], FREE_STEPS, NUDGED_STEPS) * batch / seconds / 1e9

    track_gflops.unit = "GFLOP/s"


class TrainStepMemory:
    params = (list(ARCHS), [20, 256])
    param_names = ["arch", "batch"]

    def setup(self, arch, batch):
        self.net, self.x, self.target, self.state = make_problem(arch, batch, "float32", 2)
        self.rates = _rates(arch)

    def peakmem_train_step(self, arch, batch):
        self.net.train_step(self.x, self.target, beta=BETA, free_steps=FREE_STEPS,
                            nudged_steps=NUDGED_STEPS, epsilon=EPSILON, learning_rates=self.rates,
                            init=self.state)


class TrainStepImageInputs:
    params = (list(ARCHS), [20, 256], THREADS)
    param_names = ["arch", "batch", "threads"]

    def setup(self, arch, batch, threads):
        self.net, _, self.target, self.state = make_problem(arch, batch, "float32", threads)
        self.x = image_like(batch, ARCHS[arch][0], "float32", np.random.default_rng(1))
        self.rates = _rates(arch)

    def time_train_step_image_inputs(self, arch, batch, threads):
        self.net.train_step(self.x, self.target, beta=BETA, free_steps=FREE_STEPS,
                            nudged_steps=NUDGED_STEPS, epsilon=EPSILON, learning_rates=self.rates,
                            init=self.state, threads=threads)


CONV_RATES = [0.05, 0.05, 0.05]


class ConvTrainStep:
    params = (DTYPES, THREADS, PRECISIONS)
    param_names = ["dtype", "threads", "precision"]

    def setup(self, dtype, threads, precision):
        skip_precision(dtype, precision)
        self.net, self.x, self.target, self.state = make_conv_problem(CONV_BATCH, dtype, threads,
                                                                      precision=precision)

    def time_train_step(self, dtype, threads, precision):
        self.net.train_step(self.x, self.target, beta=BETA, free_steps=FREE_STEPS,
                            nudged_steps=NUDGED_STEPS, epsilon=EPSILON, learning_rates=CONV_RATES,
                            init=self.state, threads=threads)


class ConvTrainStepGflops:
    params = (THREADS, PRECISIONS)
    param_names = ["threads", "precision"]

    def setup(self, threads, precision):
        self.net, self.x, self.target, self.state = make_conv_problem(CONV_BATCH, "float32", threads,
                                                                      precision=precision)

    def track_gflops(self, threads, precision):
        def call():
            self.net.train_step(self.x, self.target, beta=BETA, free_steps=FREE_STEPS,
                                nudged_steps=NUDGED_STEPS, epsilon=EPSILON, learning_rates=CONV_RATES,
                                init=self.state, threads=threads)

        seconds = best_seconds(call)
        return train_flops(CONV_LAYERS, FREE_STEPS, NUDGED_STEPS) * CONV_BATCH / seconds / 1e9

    track_gflops.unit = "GFLOP/s"


class TrainerEpoch:
    """One epoch of ``Trainer.fit`` over 2,000 MNIST-like examples, 784-500-10, batch 20."""

    params = (THREADS, PRECISIONS)
    param_names = ["threads", "precision"]
    number = 1
    repeat = (3, 10, 20.0)

    def setup(self, threads, precision):
        rng = np.random.default_rng(0)
        self.x = image_like(2000, 784, "float32", rng)
        self.labels = rng.integers(0, 10, size=2000)
        self.trainer = eqprop.Trainer(
            eqprop.EqPropNetwork([784, 500, 10], seed=0, threads=threads, precision=precision), beta=BETA,
            free_steps=FREE_STEPS, nudged_steps=NUDGED_STEPS, epsilon=EPSILON,
            learning_rates=[0.1, 0.05], batch_size=20, threads=threads, seed=0)
        self.trainer.fit(self.x, self.labels, epochs=1, progress=False)  # particles allocated

    def time_trainer_epoch(self, threads, precision):
        self.trainer.fit(self.x, self.labels, epochs=1, progress=False)


class TrainerEpochStages(TrainerEpoch):
    """``TrainerEpoch``'s compiled loop, stage by stage: microseconds per mini-batch in each
    of ``eqcore._epoch.STAGES`` over one epoch, so that a regression shows where it is."""

    unit = "microseconds"

    def _stage(self, name):
        self.trainer._stage_seconds = np.zeros(len(STAGES))
        self.trainer.fit(self.x, self.labels, epochs=1, progress=False)
        batches = -(-len(self.x) // self.trainer.batch_size)
        return 1e6 * self.trainer._stage_seconds[STAGES.index(name)] / batches

    def track_gather(self, threads, precision):
        return self._stage("gather")

    def track_refresh(self, threads, precision):
        return self._stage("refresh")

    def track_free_phase(self, threads, precision):
        return self._stage("free phase")

    def track_score_and_keep(self, threads, precision):
        return self._stage("score and keep")

    def track_nudged_phase(self, threads, precision):
        return self._stage("nudged phase")

    def track_update(self, threads, precision):
        return self._stage("update")


class TrainerEpochPythonLoop(TrainerEpoch):
    """``TrainerEpoch`` through the Python loop (one compiled call per phase of every mini-batch)."""

    def setup(self, threads, precision):
        super().setup(threads, precision)
        self.trainer._compiled_epochs = False


class TrainerEpochEventDriven:
    """One epoch of ``Trainer.fit`` over 1,000 MNIST-like examples, 784-500-500-10 at the paper's
    150 free / 6 nudged steps and batch 20, with the event-driven relaxation at its default
    threshold (``"default"``: only the states' changes sent through the weights, late in each
    phase) and off (``"off"``: threshold 0, the products of the whole states at every step)."""

    params = (THREADS, PRECISIONS, ["default", "off"])
    param_names = ["threads", "precision", "changes"]
    number = 1
    repeat = (3, 10, 30.0)

    def setup(self, threads, precision, changes):
        self.threshold = eqcore.delta_threshold()
        rng = np.random.default_rng(0)
        self.x = image_like(1000, 784, "float32", rng)
        self.labels = rng.integers(0, 10, size=1000)
        self.trainer = eqprop.Trainer(
            eqprop.EqPropNetwork([784, 500, 500, 10], seed=0, threads=threads, precision=precision), beta=2.0,
            free_steps=150, nudged_steps=6, epsilon=EPSILON, learning_rates=[0.4, 0.1, 0.01], batch_size=20,
            threads=threads, seed=0)
        if changes == "off":
            eqcore.set_delta_threshold(0.0)
        self.trainer.fit(self.x, self.labels, epochs=1, progress=False)  # particles allocated

    def teardown(self, threads, precision, changes):
        eqcore.set_delta_threshold(self.threshold)

    def time_trainer_epoch(self, threads, precision, changes):
        self.trainer.fit(self.x, self.labels, epochs=1, progress=False)
