"""The compiled epoch loop (eqcore._epoch) against the Trainer's Python loop: bitwise the same run.

Each test trains the same trainer twice, once with the compiled loop (the
default for in-core SGD on one process) and once with the Python loop
(``trainer._compiled_epochs = False``), and compares parameters, particles,
the statistics in the history, the optimizer's step count and the RNG state
bit for bit.
"""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest

import eqcore
import eqprop
from eqcore._epoch import FAILED_FREE_PHASE, FAILED_NONE, FAILED_UPDATE, STAGES, train_batches
from eqprop import Conv2d
from eqprop import trainer as trainer_module

N_EXAMPLES = 83  # not a multiple of the batch size: the last mini-batch is short
N_INPUTS = 24
N_CLASSES = 4


def make_data(n=N_EXAMPLES, inputs=N_INPUTS, zeros=0.6, seed=0):
    """Image-like inputs: mostly zeros (zeros=0.8 takes the sparse products), the rest in (0, 1)."""
    rng = np.random.default_rng(seed)
    x = np.where(rng.random((n, inputs)) < zeros, 0.0, rng.random((n, inputs)))
    return x, rng.integers(0, N_CLASSES, n)


def make_trainer(layers=(N_INPUTS, 10, 7, N_CLASSES), *, dtype="float64", compiled=True, threads=1, seed=0,
                 output="clipped", cost="squared-error", precision="float32", **overrides):
    kwargs = dict(beta=0.5, free_steps=6, nudged_steps=3, epsilon=0.5,
                  learning_rates=[0.2, 0.1, 0.05][:len(layers) - 1], batch_size=10, seed=seed + 5, threads=threads)
    kwargs.update(overrides)
    net = eqprop.EqPropNetwork(list(layers), dtype=dtype, seed=seed, output=output, cost=cost, precision=precision)
    trainer = eqprop.Trainer(net, **kwargs)
    trainer._compiled_epochs = compiled
    return trainer


def assert_same_run(compiled, python):
    net_a, net_b = compiled.net, python.net
    for a, b in zip((*net_a.weights, *net_a.biases), (*net_b.weights, *net_b.biases)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    if compiled.particles is None or python.particles is None:
        assert compiled.particles is None and python.particles is None
    else:
        for a, b in zip(compiled.particles, python.particles):
            np.testing.assert_array_equal(a, b)
    for column in ("epoch", "train_error", "val_error", "mean_cost"):
        assert compiled.history.column(column) == python.history.column(column), column
    assert compiled.optimizer_state.step == python.optimizer_state.step
    assert compiled.rng.bit_generator.state == python.rng.bit_generator.state
    assert compiled.epoch == python.epoch


def train_both(epochs=2, data=None, validation=None, **settings):
    x, labels = make_data() if data is None else data
    runs = []
    for compiled in (True, False):
        trainer = make_trainer(compiled=compiled, **settings)
        trainer.fit(x, labels, epochs=epochs, validation=validation, progress=False)
        runs.append(trainer)
    assert_same_run(*runs)
    return runs


def test_generator_random_in_bulk_is_the_same_stream_as_one_at_a_time():
    """What the compiled path relies on to draw an epoch's signs up front."""
    one, bulk = np.random.default_rng(7), np.random.default_rng(7)
    one.permutation(50), bulk.permutation(50)
    singles = [one.random() for _ in range(37)]
    np.testing.assert_array_equal(bulk.random(37), np.array(singles))
    assert one.bit_generator.state == bulk.bit_generator.state
    assert one.random() == bulk.random()


@pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "from-zeros"])
@pytest.mark.parametrize("solver", ["euler", "alternating"])
@pytest.mark.parametrize("algorithm", ["random-sign", "positive", "centered"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_epochs_equal_the_python_loop(dtype, algorithm, solver, persistent):
    train_both(dtype=dtype, algorithm=algorithm, solver=solver, persistent=persistent)


@pytest.mark.parametrize("switches", [dict(random_sign=True, symmetric=True), dict(random_sign=False),
                                      dict(algorithm="negative")],
                         ids=["legacy-centered-random-sign", "legacy-positive", "negative"])
def test_every_contrast_of_the_older_switches_and_negative(switches):
    """The older switches draw a sign also for the centered estimate, which then nudges with -beta first."""
    train_both(dtype="float32", **switches)


def test_fixed_point_solver_schedule_validation_and_sparse_inputs():
    x, labels = make_data(zeros=0.85, seed=1)
    validation = make_data(n=30, zeros=0.85, seed=2)
    train_both(epochs=3, data=(x, labels), validation=validation, solver="fixed-point", schedule="cosine",
               schedule_epochs=3, dtype="float32")


@pytest.mark.parametrize("output", ["clipped", "linear"])
def test_one_hidden_layer_and_linear_output(output):
    train_both(layers=(N_INPUTS, 9, N_CLASSES), output=output, learning_rates=[0.1, 0.05])


@pytest.mark.parametrize("algorithm", ["random-sign", "centered"])
@pytest.mark.parametrize("solver", ["euler", "alternating"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_cross_entropy_readout(dtype, solver, algorithm):
    train_both(dtype=dtype, solver=solver, algorithm=algorithm, cost="cross-entropy")
    train_both(layers=(N_INPUTS, 9, N_CLASSES), dtype=dtype, solver=solver, algorithm=algorithm,
               cost="cross-entropy", learning_rates=[0.1, 0.05], persistent=False)


def test_every_product_path_and_instruction_set(kernel):
    train_both(dtype="float32", data=make_data(zeros=0.85))
    train_both(dtype="float64", algorithm="centered")


@pytest.mark.parametrize("mode", ["native", "fallback"])
def test_bfloat16_chains(mode, every_thread_runs):
    """bfloat16 relaxations (and the float32 update's own layouts) in the compiled loop: dense, readout, conv."""
    from eqcore._gemm import set_gemm_path

    if mode == "native" and not eqcore.cpu_has_bf16():
        pytest.skip("this CPU lacks AVX512_BF16")
    set_gemm_path("skinny", "best", bf16="best" if mode == "native" else "fallback")
    try:
        train_both(dtype="float32", precision="bfloat16", data=make_data(zeros=0.85))
        train_both(dtype="float32", precision="bfloat16", algorithm="centered", cost="cross-entropy")
        rng = np.random.default_rng(0)
        x, labels = rng.random((29, 1, 6, 6)), rng.integers(0, 3, 29)
        layers = [(1, 6, 6), Conv2d(2, 3, pool="max"), Conv2d(3, 2, padding=1, pool="avg"), 3]
        runs = []
        for compiled in (True, False):
            trainer = eqprop.Trainer(eqprop.EqPropNetwork(layers, seed=1, precision="bfloat16"), beta=0.5,
                                     free_steps=5, nudged_steps=3, epsilon=0.5, learning_rates=[0.1, 0.05, 0.05],
                                     batch_size=8, seed=3, threads=2, algorithm="centered")
            trainer._compiled_epochs = compiled
            trainer.fit(x, labels, epochs=2, progress=False)
            runs.append(trainer)
        assert_same_run(*runs)
    finally:
        set_gemm_path("skinny", "best")


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_split_drive_padded_rows_and_kept_transpose(dtype, threads, every_thread_runs):
    """An input of 150 (the drive split in halves inside the relaxation's parallel region, and
    each half's rows of W_0 updated by its own threads), a W_0 of 150 columns (the loop's copy
    in padded rows, copied back at the end; wider than one column tile of the sparse update, so
    its last tile too), a narrow output (its W^T kept by the update) and mostly-zero inputs,
    on one to three threads: the same run as the Python loop."""
    train_both(data=make_data(inputs=150, zeros=0.8), layers=(150, 150, N_CLASSES), dtype=dtype,
               threads=threads, batch_size=20, learning_rates=[0.2, 0.1])


# Hidden layers of 16 units or more that are not whole 16-unit vectors: the compiled loop trains a copy
# padded with dead units (eqcore._epoch._padded_chain), 37 -> 48 and 20 -> 32 here.
PADDED_LAYERS = (N_INPUTS, 37, 20, N_CLASSES)


def test_hidden_layers_are_padded_to_whole_vectors_where_no_bit_can_change():
    from eqcore._epoch import _padded_chain
    from eqcore._gemm import set_gemm_path

    net = eqprop.EqPropNetwork(list(PADDED_LAYERS), seed=0)
    wide = _padded_chain(net.core_chain())
    assert wide.layer_sizes == (N_INPUTS, 48, 32, N_CLASSES)
    for live, padded in zip(net.weights + net.biases, wide.arrays[0] + wide.arrays[1]):
        corner = tuple(slice(0, n) for n in live.shape)
        np.testing.assert_array_equal(padded[corner], live)
        padded[corner] = 0
        assert not padded.any()  # the dead units' weights and biases are zeros
    unpadded = [
        eqprop.EqPropNetwork([N_INPUTS, 10, 7, N_CLASSES], seed=0),  # below 16 units the kernels differ
        eqprop.EqPropNetwork([N_INPUTS, 32, N_CLASSES], seed=0),  # whole vectors already
        eqprop.EqPropNetwork(list(PADDED_LAYERS), seed=0, precision="bfloat16"),
        eqprop.EqPropNetwork([N_INPUTS, 60, 70, N_CLASSES], seed=0),  # padded, it would relax event-driven
        eqprop.EqPropNetwork([N_INPUTS, 100, 100, N_CLASSES], seed=0),  # event-driven already
        eqprop.EqPropNetwork([(1, 6, 6), Conv2d(2, 3, pool="max"), 20, N_CLASSES], seed=0),
    ]
    for other in unpadded:
        assert _padded_chain(other.core_chain()) is None, other.sizes
    set_gemm_path("blas", "best")
    try:
        assert _padded_chain(net.core_chain()) is None
    finally:
        set_gemm_path("skinny", "best")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_padded_loops_buffers_start_on_cache_lines(dtype):
    from eqcore._epoch import _line_zeros

    for rows, width in [(20, 512), (3, 48), (1, 16)]:
        buffers = [_line_zeros(rows, width, dtype) for _ in range(4)]
        for array in buffers:
            assert array.ctypes.data % 64 == 0 and array.flags.c_contiguous and array.flags.writeable
            assert array.shape == (rows, width) and array.dtype == dtype and not array.any()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("solver", ["euler", "alternating", "fixed-point"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_padded_chain_trains_bitwise_as_the_python_loop(dtype, solver, threads, every_thread_runs):
    """The compiled loop on the padded copy, the Python loop on the network as it is: the same
    parameters, particles and statistics to the bit (the narrow output's dot products sum over the
    padded layer below it), with and without particles, centered and one-sided."""
    data = make_data(zeros=0.8)
    train_both(layers=PADDED_LAYERS, dtype=dtype, solver=solver, threads=threads, data=data, algorithm="centered")
    train_both(layers=PADDED_LAYERS, dtype=dtype, solver=solver, threads=threads, data=data, persistent=False)


def test_padded_chains_on_every_instruction_set_with_a_readout_and_at_the_event_threshold(kernel):
    train_both(layers=PADDED_LAYERS, dtype="float32", data=make_data(zeros=0.85))
    train_both(layers=(N_INPUTS, 37, N_CLASSES), dtype="float64", cost="cross-entropy", learning_rates=[0.1, 0.05])
    train_both(layers=(N_INPUTS, 60, 70, N_CLASSES), dtype="float32")


def test_a_padded_chain_gathers_the_next_mini_batch_beside_a_one_thread_nudged_phase():
    """Two threads at the default parallel threshold: the second set of buffers, whose dead units
    the gathers never write, must hold zeros there."""
    train_both(layers=PADDED_LAYERS, threads=2, dtype="float32", epochs=3)


def update_only_threshold(layers, cost=None, batch=10):
    """A parallel threshold at which make_trainer's update takes two threads and its nudged phase one."""
    net = eqprop.EqPropNetwork(list(layers), seed=0, cost=cost or "squared-error")
    nudged = net.core_chain().flops_per_example() * 3 * batch  # make_trainer's nudged steps
    readout = cost == "cross-entropy"
    update = sum(2.0 * n_in * n_out * (batch if j == 0 or (readout and j == len(layers) - 2) else 2 * batch)
                 for j, (n_in, n_out) in enumerate(zip(layers[:-1], layers[1:])))
    assert nudged < update
    return update / 2


@pytest.mark.parametrize("settings", [
    dict(),
    dict(dtype="float64", algorithm="centered"),
    dict(cost="cross-entropy", learning_rates=[0.1, 0.05]),
    dict(layers=(200, 32, 16, N_CLASSES), learning_rates=[0.1, 0.05, 0.02], solver="alternating"),
], ids=["float32", "float64-centered", "readout", "two-hidden-alternating"])
def test_the_update_joins_the_region_of_a_one_thread_nudged_phase(settings):
    """With the parallel threshold between the nudged phase's work and the update's (as at
    784-500-10), the nudged phase runs on thread 0 beside the gather, and the update in the same
    region: thread 0 goes on to it, thread 1 joins after gathering. Still the Python loop's run.
    (The work is counted on the network as given: 37 units train padded to 48, whose nudged phase
    stays below the threshold; the two hidden layers are whole vectors.)"""
    import eqcore

    settings = dict(dict(layers=(200, 37, N_CLASSES), dtype="float32", learning_rates=[0.1, 0.05]), **settings)
    before = eqcore.parallel_threshold()
    eqcore.set_parallel_threshold(update_only_threshold(settings["layers"], settings.get("cost")))
    try:
        train_both(threads=2, epochs=2, data=make_data(inputs=200, zeros=0.8), **settings)
    finally:
        eqcore.set_parallel_threshold(before)


def test_a_padded_chain_with_odd_batches_a_resume_and_a_divergence(tmp_path):
    """Mini-batches of one example and one larger than the data, a resumed run, and a free phase
    that diverges (the loop's copy is copied back however the call ends): as the Python loop."""
    train_both(layers=PADDED_LAYERS, batch_size=1, data=make_data(n=13))
    train_both(layers=PADDED_LAYERS, batch_size=50, data=make_data(n=17), epochs=3)
    x, labels = make_data()
    straight = make_trainer(PADDED_LAYERS, compiled=False)
    straight.fit(x, labels, epochs=3, progress=False)
    make_trainer(PADDED_LAYERS).fit(x, labels, epochs=2, checkpoint_dir=tmp_path, progress=False)
    resumed = eqprop.Trainer.resume(tmp_path)
    resumed.fit(x, labels, epochs=1, checkpoint_dir=tmp_path, progress=False)
    assert_same_run(resumed, straight)
    x, labels = make_data(zeros=0.9, seed=3)
    x[:, 0] = 0.0
    x[40, 0] = 1.0
    error = diverge_both(dict(epochs=3, callbacks=[poison_after_first_epoch(0)]), (x, labels), layers=PADDED_LAYERS,
                         dtype="float32")
    assert error.epoch == 2 and "the free phase" in str(error)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv_chain(dtype, threads, every_thread_runs):
    rng = np.random.default_rng(0)
    x = rng.random((37, 1, 6, 6))
    labels = rng.integers(0, 3, 37)
    layers = [(1, 6, 6), Conv2d(2, 3, pool="max"), Conv2d(3, 2, padding=1, pool="avg"), 3]
    runs = []
    for compiled in (True, False):
        trainer = eqprop.Trainer(eqprop.EqPropNetwork(layers, dtype=dtype, seed=1), beta=0.5, free_steps=5,
                                 nudged_steps=3, epsilon=0.5, learning_rates=[0.1, 0.05, 0.05], batch_size=8,
                                 seed=3, threads=threads, algorithm="centered")
        trainer._compiled_epochs = compiled
        trainer.fit(x, labels, epochs=2, progress=False)
        runs.append(trainer)
    assert_same_run(*runs)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("solver", ["euler", "alternating", "fixed-point"])
@pytest.mark.parametrize("algorithm", ["positive", "centered"])
def test_max_pooled_chain_hands_its_winners_to_the_update(algorithm, solver, threads, every_thread_runs):
    """The compiled loop's update takes the max-pool winners the relaxation recorded (or computed at its
    end); the Python loop's finds them itself: both must be those of the final states, at every depth
    (the alternating solver records them for odd layers only)."""
    rng = np.random.default_rng(2)
    x = rng.random((29, 1, 12, 12))
    labels = rng.integers(0, 3, 29)
    layers = [(1, 12, 12), Conv2d(2, 3, padding=1, pool="max"), Conv2d(3, 3, padding=1, pool="max"),
              Conv2d(4, 2, pool="max"), 3]
    runs = []
    for compiled in (True, False):
        trainer = eqprop.Trainer(eqprop.EqPropNetwork(layers, seed=4), beta=0.5, free_steps=4, nudged_steps=3,
                                 epsilon=0.5, learning_rates=[0.2, 0.1, 0.1, 0.05], batch_size=8, seed=3,
                                 threads=threads, algorithm=algorithm, solver=solver)
        trainer._compiled_epochs = compiled
        trainer.fit(x, labels, epochs=2, progress=False)
        runs.append(trainer)
    assert_same_run(*runs)


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_batch_size_one_and_a_batch_larger_than_the_data(threads, every_thread_runs):
    train_both(threads=threads, dtype="float32")
    train_both(threads=threads, batch_size=1, data=make_data(n=13))
    train_both(threads=threads, batch_size=50, data=make_data(n=17), epochs=3)


@pytest.mark.parametrize("settings", [
    dict(),
    dict(dtype="float32", algorithm="centered"),
    dict(persistent=False, batch_size=7),
    dict(layers=(N_INPUTS, 9, N_CLASSES), cost="cross-entropy", dtype="float32"),
    dict(solver="alternating", batch_size=1, data=make_data(n=9)),
    dict(dtype="float32", precision="bfloat16", algorithm="centered"),
    dict(layers=((1, 6, 6), Conv2d(2, 3, pool="max"), Conv2d(3, 2, padding=1, pool="avg"), N_CLASSES),
         data=make_data(inputs=36), algorithm="centered"),
], ids=["float64", "float32-centered", "not-persistent", "readout", "alternating-batch-1", "bfloat16", "conv"])
def test_the_next_mini_batch_gathers_while_a_one_thread_nudged_phase_runs(settings):
    """With 2 threads and nudged phases below the parallel threshold (the default one, and these
    tiny networks), the loop gathers mini-batch b + 1 into a second set of buffers while b's
    nudged phase runs: still bitwise the Python loop, short last mini-batch included."""
    train_both(threads=2, epochs=2, **settings)


@pytest.mark.parametrize("seconds", [0.0, 0.1], ids=["calls-of-3", "calls-of-0.1-s"])
def test_the_progress_bar_chunks_give_the_same_run(monkeypatch, capsys, seconds):
    """Calls of PROGRESS_EVERY mini-batches (every call the same size), or as many as ran in
    about PROGRESS_SECONDS (the default): the Python loop's run either way."""
    monkeypatch.setattr(trainer_module, "PROGRESS_EVERY", 3)
    monkeypatch.setattr(trainer_module, "PROGRESS_SECONDS", seconds)
    x, labels = make_data()
    shown = make_trainer()
    shown.fit(x, labels, epochs=2, progress=True)
    assert "epoch 2" in capsys.readouterr().err
    python = make_trainer(compiled=False)
    python.fit(x, labels, epochs=2, progress=False)
    assert_same_run(shown, python)


def test_resume_continues_exactly(tmp_path):
    x, labels = make_data()
    straight = make_trainer(compiled=False)
    straight.fit(x, labels, epochs=3, progress=False)
    first = make_trainer()
    first.fit(x, labels, epochs=2, checkpoint_dir=tmp_path, progress=False)
    resumed = eqprop.Trainer.resume(tmp_path)
    assert resumed._compiled_epochs
    resumed.fit(x, labels, epochs=1, checkpoint_dir=tmp_path, progress=False)
    assert_same_run(resumed, straight)


def test_in_core_sgd_takes_the_compiled_loop_and_the_rest_the_python_loop(monkeypatch):
    calls = []
    original = eqprop.step.StepEngine.train_batches

    def counting(self, *args, **kwargs):
        calls.append(kwargs["stop"] - kwargs["start"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(eqprop.step.StepEngine, "train_batches", counting)
    x, labels = make_data()
    make_trainer().fit(x, labels, epochs=2, progress=False)
    assert calls == [9, 9]  # one call per epoch of 9 mini-batches
    calls.clear()
    make_trainer(optimizer="momentum").fit(x, labels, epochs=1, progress=False)
    make_trainer(algorithm="contrastive").fit(x, labels, epochs=1, progress=False)
    make_trainer(weight_decay=1e-4).fit(x, labels, epochs=1, progress=False)
    assert calls == []


# ---------------------------------------------------------------- divergence
def poison_after_first_epoch(row):
    def callback(trainer, record):
        if record.epoch == 1:
            trainer.net.weights[0][row, :] = np.nan
    return callback


def diverge_both(fit_kwargs, data, **settings):
    results = []
    for compiled in (True, False):
        trainer = make_trainer(compiled=compiled, **settings)
        with pytest.raises(eqprop.TrainingDiverged) as info:
            trainer.fit(*data, progress=False, **fit_kwargs)
        results.append((trainer, info.value))
    (compiled, error_a), (python, error_b) = results
    assert str(error_a) == str(error_b)
    assert (error_a.epoch, error_a.batch) == (error_b.epoch, error_b.batch)
    assert_same_run(compiled, python)
    return error_a


@pytest.mark.parametrize("threads, update_in_the_region", [(1, False), (2, False), (2, True)],
                         ids=["one-thread", "two-threads-check-beside-the-nudged-phase", "update-in-the-region"])
def test_a_nan_weight_diverges_at_the_same_batch_in_the_free_phase(threads, update_in_the_region):
    """On two threads the free state is checked beside the one-thread nudged phase (with the update
    in the same region when it takes two threads): nothing of the failing batch may be kept."""
    import eqcore

    layers = (200, 37, N_CLASSES) if update_in_the_region else (N_INPUTS, 10, 7, N_CLASSES)
    # input 0 is non-zero for one example only; with mostly-zero inputs the sparse drive skips the
    # NaN row of W_0 for every other example, so the free phase fails at that example's mini-batch
    x, labels = make_data(inputs=layers[0], zeros=0.9, seed=3)
    x[:, 0] = 0.0
    x[40, 0] = 1.0
    before = eqcore.parallel_threshold()
    if update_in_the_region:
        eqcore.set_parallel_threshold(update_only_threshold(layers))
    try:
        error = diverge_both(dict(epochs=3, callbacks=[poison_after_first_epoch(0)]), (x, labels),
                             dtype="float32", threads=threads, layers=layers,
                             learning_rates=[0.2, 0.1, 0.05][:len(layers) - 1])
    finally:
        eqcore.set_parallel_threshold(before)
    assert error.epoch == 2 and error.batch > 1 and "the free phase" in str(error)


def test_a_conv_chain_diverging_on_two_threads_stops_in_the_free_phase():
    """A max-pooled conv chain whose nudged phase runs beside the check (two threads): a NaN bias of
    its first layer makes the next free phase fail, as in the Python loop, and nothing is kept."""
    def poison_bias(trainer, record):
        if record.epoch == 1:
            trainer.net.biases[0][0] = np.nan

    layers = ((1, 6, 6), Conv2d(2, 3, pool="max"), Conv2d(3, 2, padding=1, pool="avg"), N_CLASSES)
    error = diverge_both(dict(epochs=3, callbacks=[poison_bias]), make_data(inputs=36), layers=layers,
                         threads=2, learning_rates=[0.2, 0.1, 0.05])
    assert error.epoch == 2 and error.batch == 1 and "the free phase" in str(error)  # 1-based


def test_an_update_beyond_the_float_range_diverges_the_same_way():
    """Free phase finite, the output biases pushed past float32's range by the first update of epoch 2."""
    def edge(trainer, record):
        trainer.net.biases[0][0] = 1e3  # hidden unit 0 saturates at 1 ...
        trainer.net.weights[1][0, :] = -3.4e38  # ... and cancels the output biases: h = 0 there
        trainer.net.biases[1][:] = 3.4e38

    error = diverge_both(dict(epochs=3, callbacks=[edge]), make_data(), layers=(N_INPUTS, 10, N_CLASSES),
                         dtype="float32", beta=1.0, learning_rates=[1e36, 1e36])
    assert error.epoch == 2 and "the nudged phase or the update" in str(error)


# ---------------------------------------------------------------- bad input
def core_arguments(dtype=np.float64, n=20, size=8):
    net = eqprop.EqPropNetwork([6, 5, 3], dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    n_batches = -(-n // size)
    return dict(
        chain=net.core_chain(), x=rng.random((n, 6)).astype(dtype), labels=rng.integers(0, 3, n),
        order=rng.permutation(n), batch_size=size, start=0, stop=n_batches,
        x_buffer=np.zeros((size, 6), dtype), target_buffer=np.zeros((size, 3), dtype),
        state_buffer=net.zero_state(size), drive=np.zeros((size, 5), dtype), particles=None,
        betas=np.full(n_batches, 0.5), centered=False, rates=np.array([0.1, 0.1]), free_steps=4, nudged_steps=2,
        epsilon=0.5, solver=0, threads=1, batch_errors=np.zeros(n_batches, np.int64),
        batch_costs=np.zeros(n_batches),
    )


def call(arguments):
    names = ["chain", "x", "labels", "order", "batch_size", "start", "stop", "x_buffer", "target_buffer",
             "state_buffer", "drive", "particles", "betas", "centered", "rates", "free_steps", "nudged_steps",
             "epsilon", "solver", "threads", "batch_errors", "batch_costs"]
    return train_batches(*(arguments[name] for name in names), stage_seconds=arguments.get("stage_seconds"))


def test_the_core_call_runs_and_reports():
    arguments = core_arguments()
    completed, failure, errors, cost = call(arguments)
    assert (completed, failure) == (3, FAILED_NONE)
    assert errors == arguments["batch_errors"].sum() and 0 < cost
    assert FAILED_FREE_PHASE != FAILED_UPDATE
    arguments["start"] = arguments["stop"] = 1
    assert call(arguments)[:2] == (0, FAILED_NONE)


def test_the_core_call_times_its_stages_without_changing_the_run():
    untimed, timed = core_arguments(), core_arguments()
    timed["stage_seconds"] = np.zeros(len(STAGES))
    assert call(untimed) == call(timed)
    for a, b in zip(untimed["chain"].arrays[0] + untimed["chain"].arrays[1],
                    timed["chain"].arrays[0] + timed["chain"].arrays[1]):
        np.testing.assert_array_equal(a, b)
    first = timed["stage_seconds"].copy()
    assert (first > 0).all(), dict(zip(STAGES, first))
    started = time.perf_counter()
    call(timed)  # adds to what the array holds
    elapsed = time.perf_counter() - started
    assert (timed["stage_seconds"] > first).all()
    assert (timed["stage_seconds"] - first).sum() <= elapsed


def test_the_trainer_hands_its_stage_timer_to_the_compiled_loop():
    trainer = make_trainer()
    trainer._stage_seconds = np.zeros(len(STAGES))
    trainer.fit(*make_data(), epochs=1, progress=False)
    assert (trainer._stage_seconds > 0).all()


@pytest.mark.parametrize("order", ["permutation", "repeats"])
def test_two_threads_keep_the_particles_as_one_does(order):
    """On two threads each writes back the particles of the rows it relaxed while the other
    gathers the next mini-batch, unless the order repeats an example (here in two consecutive
    mini-batches): then the next one's gather must wait for the write-back, as on one thread."""
    runs = []
    for threads in (1, 2):
        arguments = core_arguments(n=24, size=8)
        if order == "repeats":  # example 2 (row 2 of mini-batch 0) again in mini-batch 1
            arguments["order"] = np.array([0, 1, 2, 3, 4, 5, 6, 7, 2, 8, 9, 10, 11, 12, 13, 14,
                                           15, 16, 17, 18, 19, 20, 21, 22])
        arguments["particles"] = [np.zeros((24, 5)), np.zeros((24, 3))]
        arguments["threads"] = threads
        for _ in range(2):
            assert call(arguments)[:2] == (3, FAILED_NONE)
        runs.append(arguments)
    one, two = runs
    for a, b in zip(one["particles"] + list(one["chain"].arrays[0]) + list(one["chain"].arrays[1]),
                    two["particles"] + list(two["chain"].arrays[0]) + list(two["chain"].arrays[1])):
        np.testing.assert_array_equal(a, b)


BAD_CORE_CALLS = [
    (dict(x=np.zeros((20, 6), np.float32), x_buffer=np.zeros((8, 6), np.float32),
          target_buffer=np.zeros((8, 3), np.float32), drive=np.zeros((8, 5), np.float32)),
     TypeError, "the parameters' dtype"),
    (dict(x=np.zeros((20, 6), np.float32)), (TypeError, ValueError), None),
    (dict(x=np.zeros((20, 7))), ValueError, "one column per input unit"),
    (dict(labels=np.zeros(19, np.int64)), ValueError, "one entry per row"),
    (dict(order=np.full(20, 20)), ValueError, "out of range"),
    (dict(order=np.full(20, -1)), ValueError, "out of range"),
    (dict(labels=np.full(20, 3)), ValueError, "out of range"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(stop=4), ValueError, "start <= stop"),
    (dict(start=2, stop=1), ValueError, "start <= stop"),
    (dict(x_buffer=np.zeros((7, 6))), ValueError, "x_buffer"),
    (dict(target_buffer=np.zeros((8, 4))), ValueError, "target_buffer"),
    (dict(drive=np.zeros((8, 4))), ValueError, "drive"),
    (dict(state_buffer=[np.zeros((8, 5))]), ValueError, "one array per non-input layer"),
    (dict(state_buffer=[np.zeros((8, 5)), np.zeros((8, 2))]), ValueError, r"state_buffer\[1\]"),
    (dict(particles=[np.zeros((19, 5)), np.zeros((20, 3))]), ValueError, r"particles\[0\]"),
    (dict(particles=[np.zeros((20, 5), np.float32), np.zeros((20, 3))]), ValueError, "dtype"),
    (dict(betas=np.ones(2)), ValueError, "betas"),
    (dict(batch_costs=np.zeros(2)), ValueError, "batch_costs"),
    (dict(rates=np.ones(3)), ValueError, "rates"),
    (dict(solver=3), ValueError, "solver"),
    (dict(threads=0), ValueError, "threads"),
    (dict(betas=[0.5, 0.5, 0.5]), TypeError, None),
    (dict(stage_seconds=np.zeros(len(STAGES) - 1)), ValueError, "stage_seconds must have 6 entries"),
    (dict(stage_seconds=np.zeros(len(STAGES), np.float32)), ValueError, "dtype"),
]


@pytest.mark.parametrize("change, error, match", BAD_CORE_CALLS)
def test_bad_core_calls_raise_before_any_work(change, error, match):
    arguments = core_arguments()
    before = [a.copy() for a in arguments["chain"].arrays[0]]
    arguments.update(change)
    with pytest.raises(error, match=match):
        call(arguments)
    for a, b in zip(before, arguments["chain"].arrays[0]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_nan_in_the_core_call_reports_the_failing_batch(threads):
    arguments = core_arguments()
    arguments["threads"] = threads
    arguments["particles"] = particles = [np.full((20, width), 0.25) for width in (5, 3)]
    arguments["chain"].arrays[1][0][0] = np.nan  # a bias: every free phase fails
    completed, failure, errors, cost = call(arguments)
    assert (completed, failure, errors, cost) == (0, FAILED_FREE_PHASE, 0, 0.0)
    assert all((p == 0.25).all() for p in particles)  # nothing of the failing batch kept


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer (Unix)")
def test_ctrl_c_stops_the_compiled_loop_between_mini_batches():
    """A signal whose handler raises KeyboardInterrupt (as SIGINT's does) stops the loop at the next
    mini-batch. The signal comes from a timer of the kernel, not from a Python thread: such a thread
    needs the GIL to send it, which the loop takes back at every mini-batch: in one CI run no interrupt
    came within the epoch."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    x, labels = make_data(n=20000, seed=4)
    trainer = make_trainer((N_INPUTS, 128, 128, N_CLASSES), batch_size=1, free_steps=100)  # seconds of work
    previous = signal.signal(signal.SIGALRM, interrupt)
    started = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.fit(x, labels, epochs=1, progress=False)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.perf_counter() - started < 20
    assert trainer.epoch == 0 and len(trainer.history) == 0
    reached = np.any(trainer.particles[0] != 0, axis=1)
    assert 0 < reached.sum() < len(x)  # it stopped inside the epoch, at a mini-batch boundary
