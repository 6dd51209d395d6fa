# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled epoch loop: a run of mini-batches of plain-SGD EP training in one nogil call.

At 784-500-10 and batch 20 one training step is about 200 microseconds of
compute, and the Python loop around it (gather, free phase, bookkeeping,
nudged phase, update: about ten calls) costs a large part of that again.
``train_batches`` runs the same steps for a whole epoch, or a chunk of it,
without returning to Python. For every mini-batch b of the shuffled ``order``:

1. gather its x rows, one-hot targets and the examples' particles (or zeros)
   into the mini-batch buffers (_batch.pyx), unless step 5 of the last one did;
2. refresh the derived weight layouts from the parameters as the previous
   update left them (_engine.refresh_derived);
3. the free phase (``relax_chunks``, _relax.pyx), whose threads also copy
   their rows of the free state into the nudged phases' buffers; each phase
   leaves the max-pool winners of its final states where the update reads
   them (float32 and float64 chains: the update convolves no more);
4. the free state checked: a non-finite state stops the loop
   (``FAILED_FREE_PHASE``) before anything of the batch is written; then the
   errors and cost of the free output (squared error, or the cross-entropy of
   a readout chain), the particles written back;
5. the nudged phase from a copy of the free state with ``betas[b]`` (the
   signed beta the caller drew for the batch), and with ``centered`` a second
   one with ``-betas[b]``; spread ``betas[b]`` or ``2 betas[b]``. When these
   are too small to share (``useful_threads`` gives them one thread) and
   there are two or more, step 4 runs beside them on a second thread, which
   then gathers mini-batch b + 1 into a second set of buffers, which the loop
   then uses (the two sets alternate); the nudged phases' thread waits for
   step 4's check before it writes anything;
6. the in-place EP update with scales rates_k / (spread m) (``ep_update``,
   _update.pyx; a readout learns from the free phase's cost gradient with
   scale rates_L / m, as ``StepEngine.accumulate`` sets it up); non-finite
   biases stop the loop (``FAILED_UPDATE``). For a dense chain whose update
   takes two threads it runs in step 5's region: the nudged phases' thread
   goes on to it, and the other joins once it has gathered (``ep_update``'s
   parts, the same tasks and arithmetic).

Every step calls the functions the Python loop's entry points call, with the
same arguments, in the same order and with the same row blocks over the
threads (the max-pool winners aside: the same values, found by the
relaxation instead of the update), so both loops give bitwise the same
parameters, particles and statistics (tests/test_epoch_loop.py). Scratch is
allocated once per call. A dense float chain runs on a copy with its hidden
layers padded to whole vectors by dead units (``_padded_chain``), which gives
the unpadded run's bits with rows that start on cache lines.

With ``stage_seconds``, the loop adds the wall time of each of its stages to
it (``STAGES`` names them): a profile of where a mini-batch's time goes,
without a profiler, for ``tools/epoch_speed.py --stages``.

Between mini-batches the loop takes the GIL for a moment to run Python's signal
handlers, so Ctrl-C stops it at the next mini-batch, as it stops the Python
loop (the epoch is then incomplete in either case).
"""

import numpy as np

from cpython.exc cimport PyErr_CheckSignals
from cython cimport floating
from cython.parallel cimport parallel, threadid
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from eqcore._batch cimport all_finite, gather_examples, gather_rows, scatter_rows, score_output
from eqcore._engine cimport (
    KIND_CONV, KIND_DENSE, POOL_MAX, Chain, Connection, derived_connections, free_derived, line_malloc,
    padded_rows, refresh_derived,
)
from eqcore._gemm cimport BF16_OFF, blas_products, current_bf16, current_isa
from eqcore._openmp cimport useful_threads
from eqcore._relax cimport RelaxWork, events_apply, relax_chunks, relax_work_alloc, relax_work_free
from eqcore._kernels cimport eq_signal, eq_wait
from eqcore._update cimport (
    UpdatePlan, UpdateWork, biases_finite, ep_update, keeps_transpose, pooled_winners, update_operands,
    update_plan, update_tasks, update_work_alloc, update_work_free,
)

cdef enum:
    _FAILED_NONE = 0
    _FAILED_FREE_PHASE = 1
    _FAILED_UPDATE = 2

#: ``train_batches`` ran every mini-batch it was given.
FAILED_NONE = _FAILED_NONE
#: A free phase produced NaN or infinite values (nothing of that batch was kept).
FAILED_FREE_PHASE = _FAILED_FREE_PHASE
#: The nudged phase or the update did (the batch's particles and update were written).
FAILED_UPDATE = _FAILED_UPDATE

#: The stages ``stage_seconds`` times, in its order: 1. the mini-batch's rows gathered, 2. the
#: derived weight layouts refreshed, 3. the free phase (with the drive), 4. its check, its
#: scoring and the particles written back, 5. the nudged phase(s) (with the copies of the free
#: state, and when a second thread runs alongside, step 4 and the next mini-batch's gather:
#: stage 4 is then empty), 6. the update.
STAGES = ("gather", "refresh", "free phase", "score and keep", "nudged phase", "update")


cdef inline double _seconds() noexcept nogil:
    cdef timespec now
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec + 1e-9 * now.tv_nsec


cdef inline double _lap(double* stage_seconds, int stage, double since) noexcept nogil:
    """Add the time since ``since`` to stage ``stage`` (if timing) and return the time now."""
    cdef double now
    if stage_seconds == NULL:
        return 0.0
    now = _seconds()
    stage_seconds[stage] += now - since
    return now


cdef void _gather_batch(const floating* x, int n_in, const int64_t* labels, const int64_t* index, int m,
                        floating* x_rows, floating* targets, int n_out, floating** particle_rows,
                        const int* widths, const int* live, int n_layers, floating** states) noexcept nogil:
    """Step 1: the mini-batch's x rows, one-hot targets and particles (or zeros) into its buffers
    (states of ``widths``, particles of the ``live`` units)."""
    cdef int j
    gather_examples(x, n_in, labels, index, m, x_rows, targets, n_out)
    for j in range(n_layers):
        gather_rows(particle_rows[j], index, m, live[j], states[j], widths[j])


cdef void _keep_particles(floating** S, const int64_t* index, int m, const int* widths, const int* live,
                          int n_layers, floating** particle_rows, int first=0) noexcept nogil:
    """Step 4's write-back: the free state's rows ``first`` .. m - 1 (of the live units) into the
    examples' particles."""
    cdef int j
    for j in range(n_layers):
        scatter_rows(S[j] + <size_t> first * widths[j], widths[j], index + first, m - first, live[j],
                     particle_rows[j])


cdef bint _score_free_state(floating** S, int m, const int* widths, int n_layers, const floating* targets,
                            int n_out, const int64_t* labels, const int64_t* index, bint readout, int isa,
                            long* errors, double* cost) noexcept nogil:
    """Step 4's check and scoring: whether every layer of the free state is finite, and if so its
    output's misclassified rows in ``errors`` and cost in ``cost`` (``score_output``)."""
    cdef int j
    for j in range(n_layers):
        if not all_finite(S[j], m, widths[j], isa):
            return False
    errors[0] = 0
    cost[0] = score_output(S[n_layers - 1], targets, m, n_out, labels, index, errors, readout)
    return True


cdef bint _distinct(const int64_t* order, Py_ssize_t count, Py_ssize_t n) noexcept nogil:
    """Whether the ``count`` entries of ``order`` (each in [0, n)) name distinct examples: then a
    mini-batch's particles can be written back while the next one's are gathered (False if the
    n bytes of scratch cannot be had)."""
    cdef unsigned char* seen = <unsigned char*> calloc(n, 1)
    cdef Py_ssize_t i
    cdef bint distinct = True
    if seen == NULL:
        return False
    for i in range(count):
        if seen[order[i]]:
            distinct = False
            break
        seen[order[i]] = 1
    free(seen)
    return distinct


cdef void _nudged_phases(Chain chain, const Connection* conns, const floating* x_rows, floating** S,
                         floating** P, floating** N, const floating* targets, floating* drive, int m,
                         const int* widths, int steps, double flops, double epsilon, double beta,
                         int solver, int threads, bint centered, RelaxWork* work, int** pos_winners,
                         int** neg_winners, int isa) noexcept nogil:
    """Step 5: the nudged phase from the copy of the free state S in P, and with ``centered`` a
    second one with -beta from the copy in N, both from the free phase's drive (the free phase's
    threads copied their rows there: ``relax_chunks``' copies)."""
    relax_chunks(chain, conns, x_rows, P, targets, drive, m, steps, flops, epsilon, beta, solver, threads,
                 True, False, work, pos_winners, isa)
    if centered:
        relax_chunks(chain, conns, x_rows, N, targets, drive, m, steps, flops, epsilon, -beta, solver,
                     threads, True, False, work, neg_winners, isa)


cdef void _copy_rows(const char* source, int source_ld, char* dest, int dest_ld, int rows, size_t row_bytes,
                    size_t item) noexcept nogil:
    """``rows`` rows of ``row_bytes``, ``source_ld`` and ``dest_ld`` values of ``item`` bytes apart."""
    cdef int r
    for r in range(rows):
        memcpy(dest + <size_t> r * dest_ld * item, source + <size_t> r * source_ld * item, row_bytes)


cdef char* _padded_copy(Connection* c, size_t item) except NULL:
    """Point dense connection ``c`` at a copy of its weights with padded rows (``padded_rows``); the
    caller copies it back (``_copy_rows``) and frees it."""
    cdef int ld = padded_rows(c.n_out, item)
    cdef void* copy = line_malloc(<size_t> c.n_in * ld * item)
    if copy == NULL:
        raise MemoryError()
    memset(copy, 0, <size_t> c.n_in * ld * item)  # the padding, which no kernel reads
    _copy_rows(<const char*> c.weights, c.n_out, <char*> copy, ld, c.n_in, c.n_out * item, item)
    c.weights = copy
    c.ld = ld
    return <char*> copy


def padded_sizes(sizes):
    """The layer sizes of ``_padded_chain``'s copy: hidden layers of 16 units or more rounded up to
    whole 16-unit vectors; the input, the output and narrower layers as they are."""
    sizes = list(sizes)
    last = len(sizes) - 1  # (no negative indices: this module does not wrap them)
    return [n if j == 0 or j == last or n < 16 else (n + 15) // 16 * 16 for j, n in enumerate(sizes)]


def _padded_chain(Chain chain):
    """A copy of a dense float chain whose hidden layers of 16 units or more are padded to whole
    16-unit vectors with dead units (zero weights and bias, so they stay at 0 and nothing they touch
    changes), or None where no layer needs it or padding could change a bit of the run.

    The relaxation's rows of such a layer then start on cache lines, which makes its steps about
    a fifth faster at 784-500-10 (docs/performance.md). Every kernel sums over a padded layer with
    the live units' terms in the same vector lanes and the dead units' zeros after them
    (dense_kernels.h's dot products load their last values into the first lanes), so the live
    units get the unpadded run's bits. Narrower layers (the kernels' choices change at 16 units),
    bfloat16 (rounded products), BLAS (sums blocked by size) and the event-driven relaxation (its
    choices depend on the fraction of a row that changed) are left as they are.
    """
    cdef int j
    padded = padded_sizes(chain.layer_sizes)
    if padded == list(chain.layer_sizes) or chain.bfloat16 or blas_products() or events_apply(chain):
        return None
    for j in range(chain.n_connections):
        if chain.conns[j].kind != KIND_DENSE:
            return None
    weights, biases = [], []
    for j, (w, b) in enumerate(zip(*chain.arrays)):
        weights.append(np.zeros((padded[j], padded[j + 1]), dtype=w.dtype))
        weights[j][:w.shape[0], :w.shape[1]] = w
        biases.append(np.zeros(padded[j + 1], dtype=b.dtype))
        biases[j][:b.shape[0]] = b
    geometry = np.array([[KIND_DENSE, padded[j], 1, 1, padded[j + 1], 0, 0, 0]
                         for j in range(chain.n_connections)], dtype=np.int32)
    wide = Chain(geometry, weights, biases, linear_output=chain.linear_output, readout=chain.readout)
    return None if events_apply(wide) else wide


def train_batches(Chain chain, const floating[:, ::1] x, const int64_t[::1] labels,
                  const int64_t[::1] order, int batch_size, int start, int stop,
                  floating[:, ::1] x_buffer, floating[:, ::1] target_buffer, list state_buffer,
                  floating[:, ::1] drive, list particles, const double[::1] betas, bint centered,
                  const double[::1] rates, int free_steps, int nudged_steps, double epsilon,
                  int solver, int threads, int64_t[::1] batch_errors, double[::1] batch_costs,
                  long errors=0, double cost=0.0, double[::1] stage_seconds=None):
    """Train on mini-batches ``start .. stop - 1`` of an epoch in one nogil call.

    A dense float chain is trained on a copy whose hidden layers are padded
    with dead units (``_padded_chain``; the loop then keeps its own state and
    drive buffers) and whose W_0 has padded rows (``_engine.padded_rows``);
    the copy's parameters are copied back when the call returns or raises,
    giving bitwise the values the unpadded chain would have. Until then the
    chain's arrays hold the values they had at the call's start.

    Parameters
    ----------
    chain : Chain
        The network; its parameters are updated in place.
    x : (n, n_in) array
        The training inputs (clipped to [0, 1]), of the parameters' dtype.
    labels : (n,) int64 array
        Class indices.
    order : (n,) int64 array
        The epoch's order: mini-batch b holds examples
        ``order[b * batch_size:(b + 1) * batch_size]`` (the last may be short).
    batch_size : int
        Examples per mini-batch.
    start, stop : int
        The mini-batches to run, ``0 <= start <= stop <= ceil(n / batch_size)``.
    x_buffer, target_buffer : arrays of at least ``batch_size`` rows
        The mini-batch's inputs and one-hot targets (n_in and n_out columns).
    state_buffer : list of arrays of at least ``batch_size`` rows
        The free state, one (rows, n_j) array per non-input layer.
    drive : array of at least ``batch_size`` rows and n_1 columns
        The first layer's bottom-up input (computed by each free phase).
    particles : list of (n, n_j) arrays, or None
        The persistent particles: the free phase starts from them and they
        receive its fixed point; None starts from zeros.
    betas : float64 array of at least ``stop`` entries
        The signed beta of every mini-batch of the epoch (the caller draws the signs).
    centered : bool
        Contrast s^{+beta} with s^{-beta} (spread 2 beta) instead of s^beta
        with the free state (spread beta).
    rates : (n_connections,) float64 array
        The epoch's learning rates (the schedule's factor applied).
    free_steps, nudged_steps, epsilon, solver, threads
        As for ``relax_batch``.
    batch_errors, batch_costs : int64 and float64 arrays of at least ``stop`` entries
        Receive each completed mini-batch's misclassified examples and
        cost 1/2 sum ||y - d||^2 of its free outputs.
    errors, cost : optional
        Running totals to continue (the sums of earlier chunks of the epoch).
    stage_seconds : float64 array of ``len(STAGES)`` entries, optional
        Receives, added to what it holds, the wall time spent in each stage
        (``STAGES``) over the mini-batches run.

    Returns
    -------
    (completed, failure, errors, cost) : tuple
        The mini-batches completed from ``start``; ``FAILED_NONE`` or where
        mini-batch ``start + completed`` failed (``FAILED_FREE_PHASE``,
        ``FAILED_UPDATE``); the totals with the completed mini-batches added,
        the cost summed in order as the Python loop sums it.

    Raises
    ------
    TypeError, ValueError
        Arrays of another dtype, shapes that do not fit, indices or labels out
        of range: checked before the GIL is released.
    """
    wide = _padded_chain(chain)
    if wide is None:
        return _train_batches(chain, x, labels, order, batch_size, start, stop, x_buffer, target_buffer,
                              state_buffer, drive, particles, betas, centered, rates, free_steps, nudged_steps,
                              epsilon, solver, threads, batch_errors, batch_costs, errors, cost, stage_seconds,
                              chain.layer_sizes[1:])
    _check_buffers(chain, batch_size, state_buffer, drive.shape[0], drive.shape[1])
    dtype = chain.arrays[0][0].dtype
    rows = max(batch_size, 1)
    try:
        return _train_batches(wide, x, labels, order, batch_size, start, stop, x_buffer, target_buffer,
                              [_line_zeros(rows, width, dtype) for width in wide.layer_sizes[1:]],
                              _line_zeros(rows, wide.layer_sizes[1], dtype), particles, betas, centered, rates,
                              free_steps, nudged_steps, epsilon, solver, threads, batch_errors, batch_costs,
                              errors, cost, stage_seconds, chain.layer_sizes[1:])
    finally:
        for (w, b), (wide_w, wide_b) in zip(zip(*chain.arrays), zip(*wide.arrays)):
            w[...] = wide_w[:w.shape[0], :w.shape[1]]
            b[...] = wide_b[:b.shape[0]]


def _line_zeros(Py_ssize_t rows, Py_ssize_t width, dtype):
    """A C-contiguous (rows, width) array of zeros that starts on a cache line (NumPy gives 16 or
    32 bytes past one, and every row of whole vectors would straddle two lines)."""
    cdef Py_ssize_t size = rows * width * np.dtype(dtype).itemsize
    buffer = np.zeros(size + 64, dtype=np.uint8)
    start = -buffer.ctypes.data % 64
    return buffer[start:start + size].view(dtype).reshape(rows, width)


def _check_buffers(Chain chain, int batch_size, list state_buffer, Py_ssize_t drive_rows, Py_ssize_t drive_width):
    """The ValueErrors ``_train_batches`` raises for state and drive buffers that do not fit ``chain``."""
    if drive_rows < batch_size or drive_width != chain.layer_sizes[1]:
        raise ValueError("drive must have batch_size rows and one column per unit of layer 1")
    if len(state_buffer) != chain.n_connections:
        raise ValueError("state_buffer and particles must have one array per non-input layer")
    for j, width in enumerate(chain.layer_sizes[1:]):
        shape = np.shape(state_buffer[j])
        if len(shape) != 2 or shape[0] < batch_size or shape[1] != width:
            raise ValueError(f"state_buffer[{j}] must have batch_size rows and {width} columns")


def _train_batches(Chain chain, const floating[:, ::1] x, const int64_t[::1] labels,
                   const int64_t[::1] order, int batch_size, int start, int stop,
                   floating[:, ::1] x_buffer, floating[:, ::1] target_buffer, list state_buffer,
                   floating[:, ::1] drive, list particles, const double[::1] betas, bint centered,
                   const double[::1] rates, int free_steps, int nudged_steps, double epsilon,
                   int solver, int threads, int64_t[::1] batch_errors, double[::1] batch_costs,
                   long errors, double cost, double[::1] stage_seconds, tuple live_widths):
    """``train_batches`` on ``chain`` as it is; ``live_widths``: the particles' widths, the first
    units of each layer (the others dead units of a padded chain)."""
    cdef int n_layers = chain.n_connections
    cdef int n = x.shape[0], n_in, n_out, n_batches, j, b, m, r0, failure = 0, isa = current_isa()
    cdef Py_ssize_t i, example
    cdef size_t item = chain.itemsize, rows_total = 0
    cdef double flops, spread, beta
    cdef long scored_errors[1]
    cdef double scored_cost[1]
    cdef bint free_ok[1]  # the free state is finite (step 4's check)
    cdef int checked[1]  # ... and that is known (overlap)
    cdef bint finite, use_particles = particles is not None
    cdef floating[:, ::1] view
    cdef int* widths = NULL
    cdef int* live = NULL
    cdef floating** S = NULL
    cdef floating* xb
    cdef floating* tb
    cdef floating** P = NULL
    cdef floating** N = NULL
    cdef floating** UP = NULL
    cdef floating** UN = NULL
    cdef floating** particle_rows = NULL
    cdef floating** W = NULL
    cdef floating** Bp = NULL
    cdef floating* nudged = NULL
    cdef double* scales = NULL
    cdef bint* kept_transposes = NULL
    cdef char* padded_w0 = NULL
    cdef Connection* conns = NULL
    cdef Connection* update_conns = NULL
    cdef bint reuse_winners = not chain.bfloat16
    cdef int** free_winners = NULL
    cdef int** pos_winners = NULL
    cdef int** neg_winners = NULL
    cdef RelaxWork relax_work
    cdef UpdateWork update_work
    cdef floating** negative
    cdef floating** state_sets = NULL
    cdef floating* x_sets[2]
    cdef floating* target_sets[2]
    cdef floating* second_set = NULL
    cdef int current = 0, r1, m1, kept_rows
    cdef bint next_ready = False, overlap
    cdef int gathered[1]
    cdef int ready[1]  # the update's shared operands are built (merged)
    cdef double nudged_end[1]
    cdef bint merged, dense_chain = True, distinct
    cdef UpdatePlan plan
    cdef double* stage_time = NULL
    cdef double lap = 0.0

    if chain.itemsize != sizeof(floating):
        raise TypeError("x and the buffers must have the parameters' dtype")
    n_in = chain.layer_sizes[0]
    n_out = chain.layer_sizes[n_layers]
    if x.shape[1] != n_in:
        raise ValueError("x must have one column per input unit")
    if labels.shape[0] != n or order.shape[0] != n:
        raise ValueError("labels and order must have one entry per row of x")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive; got {batch_size}")
    n_batches = (n + batch_size - 1) // batch_size
    if not 0 <= start <= stop <= n_batches:
        raise ValueError(f"need 0 <= start <= stop <= {n_batches} mini-batches; got {start}, {stop}")
    if x_buffer.shape[0] < batch_size or x_buffer.shape[1] != n_in:
        raise ValueError("x_buffer must have batch_size rows and x's width")
    if target_buffer.shape[0] < batch_size or target_buffer.shape[1] != n_out:
        raise ValueError("target_buffer must have batch_size rows and one column per output")
    if drive.shape[0] < batch_size or drive.shape[1] != chain.layer_sizes[1]:
        raise ValueError("drive must have batch_size rows and one column per unit of layer 1")
    if betas.shape[0] < stop or batch_errors.shape[0] < stop or batch_costs.shape[0] < stop:
        raise ValueError("betas, batch_errors and batch_costs need an entry per mini-batch")
    if rates.shape[0] != n_layers:
        raise ValueError("rates must have one entry per connection")
    if solver not in (0, 1, 2):
        raise ValueError(f"unknown solver {solver}")
    if threads < 1:
        raise ValueError(f"threads must be positive; got {threads}")
    if len(state_buffer) != n_layers or (use_particles and len(particles) != n_layers):
        raise ValueError("state_buffer and particles must have one array per non-input layer")
    for i in range(<Py_ssize_t> start * batch_size, min(<Py_ssize_t> stop * batch_size, n)):
        example = order[i]
        if not (0 <= example < n and 0 <= labels[example] < n_out):
            raise ValueError(f"order entry {example} or its label is out of range")
    if stage_seconds is not None:
        if stage_seconds.shape[0] != len(STAGES):
            raise ValueError(f"stage_seconds must have {len(STAGES)} entries, one per stage; "
                             f"got {stage_seconds.shape[0]}")
        stage_time = &stage_seconds[0]
    if start == stop:
        return 0, FAILED_NONE, errors, cost

    flops = chain.flops_per_example()
    memset(&relax_work, 0, sizeof(RelaxWork))
    memset(&update_work, 0, sizeof(UpdateWork))
    try:
        widths = <int*> malloc(n_layers * sizeof(int))
        live = <int*> malloc(n_layers * sizeof(int))
        state_sets = <floating**> malloc(2 * n_layers * sizeof(floating*))
        P = <floating**> malloc(2 * n_layers * sizeof(floating*))  # P, then N: the free phase's copies
        N = P + n_layers
        particle_rows = <floating**> malloc(n_layers * sizeof(floating*))
        W = <floating**> malloc(n_layers * sizeof(floating*))
        Bp = <floating**> malloc(n_layers * sizeof(floating*))
        UP = <floating**> malloc(n_layers * sizeof(floating*))
        UN = <floating**> malloc(n_layers * sizeof(floating*))
        scales = <double*> malloc(n_layers * sizeof(double))
        kept_transposes = <bint*> malloc(n_layers * sizeof(bint))
        free_winners = <int**> malloc(n_layers * sizeof(int*))
        pos_winners = <int**> malloc(n_layers * sizeof(int*))
        neg_winners = <int**> malloc(n_layers * sizeof(int*))
        if not (widths and live and state_sets and P and N and UP and UN and particle_rows and W and Bp and scales
                and kept_transposes and free_winners and pos_winners and neg_winners):
            raise MemoryError()
        for j in range(n_layers):
            widths[j] = chain.layer_sizes[j + 1]
            live[j] = live_widths[j]
            rows_total += <size_t> widths[j]
            view = state_buffer[j]
            if view.shape[0] < batch_size or view.shape[1] != widths[j]:
                raise ValueError(f"state_buffer[{j}] must have batch_size rows and {widths[j]} columns")
            state_sets[j] = &view[0, 0]
            state_sets[n_layers + j] = NULL
            particle_rows[j] = NULL
            if use_particles:
                view = particles[j]
                if view.shape[0] != n or view.shape[1] != live[j]:
                    raise ValueError(f"particles[{j}] must have shape ({n}, {live[j]})")
                particle_rows[j] = &view[0, 0]
            W[j] = <floating*> chain.conns[j].weights
            Bp[j] = <floating*> chain.conns[j].biases
        # A second set of mini-batch buffers where a nudged phase is too small to share: while it
        # runs on one thread, another gathers the next mini-batch into the other set (20 random rows
        # of x and of the particles from memory: 17-20 of the 234 us of a 784-500-10 mini-batch)
        x_sets[0], target_sets[0] = &x_buffer[0, 0], &target_buffer[0, 0]
        x_sets[1] = target_sets[1] = NULL
        if threads > 1 and useful_threads(threads, flops * nudged_steps * batch_size, batch_size) == 1:
            # zeroed: the gathers leave a padded chain's dead units (_padded_chain) as they find them
            second_set = <floating*> line_malloc(<size_t> batch_size * (n_in + n_out + rows_total) * item)
            if second_set == NULL:
                raise MemoryError()
            memset(second_set, 0, <size_t> batch_size * (n_in + n_out + rows_total) * item)
            x_sets[1] = second_set
            target_sets[1] = second_set + <size_t> batch_size * n_in
            state_sets[n_layers] = target_sets[1] + <size_t> batch_size * n_out
            for j in range(1, n_layers):
                state_sets[n_layers + j] = state_sets[n_layers + j - 1] + <size_t> batch_size * widths[j - 1]
        S = state_sets
        # the nudged states: one copy of the free state, two when centered
        nudged = <floating*> line_malloc((2 if centered else 1) * <size_t> batch_size * rows_total * item)
        if nudged == NULL:
            raise MemoryError()
        P[0] = nudged
        for j in range(1, n_layers):
            P[j] = P[j - 1] + <size_t> batch_size * widths[j - 1]
        N[0] = P[n_layers - 1] + <size_t> batch_size * widths[n_layers - 1]
        for j in range(1, n_layers):
            N[j] = N[j - 1] + <size_t> batch_size * widths[j - 1]
        conns = derived_connections(chain, True, current_bf16() if chain.bfloat16 else BF16_OFF)
        # a bfloat16 chain relaxes on bfloat16 copies, but its update finds the max-pool winners with
        # the float32 convolution, as apply_ep_update does: the rounding of the bfloat16 one switches
        # near-ties between the two nudged states, noise the contrast divides by beta. Otherwise the
        # relaxation hands the update the winners it recorded (or computes them at its end).
        update_conns = derived_connections(chain, False) if chain.bfloat16 else conns
        # the transposes the update keeps current itself, when it updates the relaxation's layouts
        for j in range(n_layers):
            kept_transposes[j] = update_conns == conns and keeps_transpose(&conns[j], j)
        # a dense W_0 is read (the drive) and written (its update) at every mini-batch: both run on a
        # copy with padded rows (_engine.padded_rows), copied back at the end
        if (update_conns == conns and conns[0].kind == KIND_DENSE
                and padded_rows(conns[0].n_out, item) != conns[0].n_out):
            padded_w0 = _padded_copy(&conns[0], item)
            W[0] = <floating*> padded_w0
        relax_work_alloc(&relax_work, chain, batch_size, threads, False)
        for j in range(n_layers):
            if chain.conns[j].kind != KIND_DENSE:
                dense_chain = False
        update_work_alloc(&update_work, chain, batch_size, threads)

        distinct = _distinct(&order[0] + <Py_ssize_t> start * batch_size,
                             min(<Py_ssize_t> stop * batch_size, n) - <Py_ssize_t> start * batch_size, n)
        with nogil:
            for b in range(start, stop):
                if b > start:
                    with gil:  # Ctrl-C (or any signal handler's exception) stops the loop between batches
                        PyErr_CheckSignals()
                r0 = b * batch_size
                m = min(batch_size, n - r0)
                if stage_time != NULL:
                    lap = _seconds()
                # 1. the mini-batch, unless the last one's nudged phase gathered it into the other set
                if next_ready:
                    current = 1 - current
                S = state_sets + current * n_layers
                xb, tb = x_sets[current], target_sets[current]
                if not next_ready:
                    _gather_batch(&x[0, 0], n_in, &labels[0], &order[r0], m, xb, tb, n_out, particle_rows,
                                  widths, live, n_layers, S)
                next_ready = False
                # the update's operands: the contrasted states, except that a readout learns from the
                # free phase's cost gradient: d in place of its positive state, p^0 (p^0 sum(d) for a
                # one-hot d) in place of its negative one, the free s_L below it (StepEngine.accumulate)
                negative = N if centered else S
                for j in range(n_layers):
                    UP[j] = P[j]
                    UN[j] = negative[j]
                if chain.readout:
                    UP[n_layers - 1] = tb
                    UN[n_layers - 1] = S[n_layers - 1]
                lap = _lap(stage_time, 0, lap)
                # 2. the weight layouts of the parameters the last update left
                refresh_derived(conns, n_layers, item, threads, kept_transposes)
                if update_conns != conns:
                    refresh_derived(update_conns, n_layers, item, threads)
                # where the phases leave the max-pool winners of the states the update contrasts
                for j in range(n_layers):
                    free_winners[j] = pos_winners[j] = neg_winners[j] = NULL
                    if conns[j].kind == KIND_CONV and conns[j].pool == POOL_MAX and reuse_winners:
                        if j == 0:  # x's drive, computed by the free phase
                            free_winners[j] = pooled_winners(conns, n_layers, &update_work, m, j, 0)
                            continue
                        pos_winners[j] = pooled_winners(conns, n_layers, &update_work, m, j, 0)
                        if centered:
                            neg_winners[j] = pooled_winners(conns, n_layers, &update_work, m, j, 1)
                        else:
                            free_winners[j] = pooled_winners(conns, n_layers, &update_work, m, j, 1)
                lap = _lap(stage_time, 1, lap)
                # 3. the free phase, which fills the drive
                relax_chunks(chain, conns, xb, S, NULL, &drive[0, 0], m, free_steps, flops,
                             epsilon, 0.0, solver, threads, False, False, &relax_work,
                             free_winners if reuse_winners else NULL, isa, P, 2 if centered else 1)
                lap = _lap(stage_time, 2, lap)
                beta = betas[b]
                spread = 2.0 * beta if centered else beta
                overlap = (second_set != NULL and b + 1 < stop
                           and useful_threads(threads, flops * nudged_steps * m, m) == 1)
                # 4. check, score and keep the free state (alongside a one-thread nudged phase: below)
                if not overlap:
                    free_ok[0] = _score_free_state(S, m, widths, n_layers, tb, n_out, &labels[0], &order[r0],
                                                   chain.readout, isa, &scored_errors[0], &scored_cost[0])
                    if not free_ok[0]:
                        failure = _FAILED_FREE_PHASE
                        break
                    if use_particles:
                        _keep_particles(S, &order[r0], m, widths, live, n_layers, particle_rows)
                lap = _lap(stage_time, 3, lap)
                # the update's scales (step 6)
                for j in range(n_layers):
                    scales[j] = rates[j] / (spread * m)
                if chain.readout:  # the cost gradient: no spread divides it
                    scales[n_layers - 1] = rates[n_layers - 1] / m
                # 5. the nudged phase(s) from copies of the free state, with the free phase's drive;
                # when they would run on one thread anyway, another checks and scores the free state,
                # keeps its particles and gathers the next mini-batch (in that order: the next one's
                # examples may repeat); for a dense chain whose update takes two threads, the nudged
                # phase's thread then goes on to the update (step 6), and the other joins it once it
                # has gathered. Nothing is written before the check has passed.
                merged = False
                if overlap and dense_chain:
                    update_plan(chain, update_conns, m, threads, &update_work, &plan)
                    merged = plan.n_threads == 2
                if overlap:
                    r1 = r0 + batch_size
                    m1 = min(batch_size, n - r1)
                    gathered[0] = 0
                    ready[0] = 0
                    checked[0] = 0
                    # each thread writes back the rows of the free state it relaxed (relax_chunks: the
                    # first half on thread 0, after its nudged phase), unless the order repeats an
                    # example: then the next mini-batch's gather must follow the whole write-back
                    kept_rows = (m + 1) // 2 if use_particles and distinct else 0
                    with parallel(num_threads=2):
                        if threadid() == 0:
                            _nudged_phases(chain, conns, xb, S, P, N, tb, &drive[0, 0], m, widths, nudged_steps,
                                           flops, epsilon, beta, solver, 1, centered, &relax_work,
                                           pos_winners if reuse_winners else NULL,
                                           neg_winners if reuse_winners else NULL, isa)
                            eq_wait(&checked[0])
                            if free_ok[0]:
                                if merged:
                                    nudged_end[0] = _seconds()
                                    update_operands(chain, update_conns, m, xb, UP, UN, scales, Bp, &update_work,
                                                    isa, reuse_winners, &plan)
                                    eq_signal(&ready[0])
                                if kept_rows:
                                    _keep_particles(S, &order[r0], kept_rows, widths, live, n_layers,
                                                    particle_rows)
                                if merged:
                                    update_tasks(0, chain, update_conns, m, xb, UP, UN, scales, W, Bp,
                                                 &update_work, isa, S[n_layers - 2] if chain.readout else NULL,
                                                 &plan)
                        else:
                            free_ok[0] = _score_free_state(S, m, widths, n_layers, tb, n_out, &labels[0],
                                                           &order[r0], chain.readout, isa, &scored_errors[0],
                                                           &scored_cost[0])
                            eq_signal(&checked[0])
                            if free_ok[0]:
                                if use_particles:
                                    _keep_particles(S, &order[r0], m, widths, live, n_layers, particle_rows,
                                                    kept_rows)
                                _gather_batch(&x[0, 0], n_in, &labels[0], &order[r1], m1, x_sets[1 - current],
                                              target_sets[1 - current], n_out, particle_rows, widths, live,
                                              n_layers, state_sets + (1 - current) * n_layers)
                                gathered[0] = 1
                                if merged:
                                    eq_wait(&ready[0])
                                    update_tasks(1, chain, update_conns, m, xb, UP, UN, scales, W, Bp,
                                                 &update_work, isa, S[n_layers - 2] if chain.readout else NULL,
                                                 &plan)
                    if not free_ok[0]:
                        failure = _FAILED_FREE_PHASE
                        break
                    next_ready = gathered[0] == 1
                else:
                    _nudged_phases(chain, conns, xb, S, P, N, tb, &drive[0, 0], m, widths, nudged_steps, flops,
                                   epsilon, beta, solver, threads, centered, &relax_work,
                                   pos_winners if reuse_winners else NULL,
                                   neg_winners if reuse_winners else NULL, isa)
                batch_errors[b] = scored_errors[0]
                batch_costs[b] = scored_cost[0]
                errors += scored_errors[0]
                cost += scored_cost[0]
                # 6. the update (already run when merged: its stage starts where the nudged phase ended)
                if merged:
                    if stage_time != NULL:
                        stage_time[4] += nudged_end[0] - lap
                        lap = nudged_end[0]
                    finite = biases_finite(update_conns, n_layers, Bp)
                else:
                    lap = _lap(stage_time, 4, lap)
                    finite = ep_update(chain, update_conns, m, xb, UP, UN, scales, W, Bp, threads, &update_work,
                                       isa, S[n_layers - 2] if chain.readout else NULL, reuse_winners)
                if not finite:
                    failure = _FAILED_UPDATE
                    break
                lap = _lap(stage_time, 5, lap)
    finally:
        if padded_w0 != NULL:
            _copy_rows(padded_w0, conns[0].ld, <char*> chain.conns[0].weights, conns[0].n_out, conns[0].n_in,
                       conns[0].n_out * item, item)
            free(padded_w0)
        if update_conns != conns:
            free_derived(update_conns, n_layers)  # NULL-safe
        free_derived(conns, n_layers)
        relax_work_free(&relax_work)
        update_work_free(&update_work)
        free(widths)
        free(live)
        free(state_sets)
        free(second_set)
        free(P)
        free(UP)
        free(UN)
        free(particle_rows)
        free(W)
        free(Bp)
        free(scales)
        free(kept_transposes)
        free(nudged)
        free(free_winners)
        free(pos_winners)
        free(neg_winners)
    if failure == _FAILED_NONE:
        b = stop
    return b - start, failure, errors, cost
