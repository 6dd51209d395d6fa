# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Relax a mini-batch of layered Hopfield networks to a fixed point, in place.

Layer ``j`` (0-based over the non-input layers) has state ``s_j`` of shape
(batch, n_j). Its net input is (Scellier & Bengio 2016, eq. 3 with rho(s) = s on
the clipped state space [0, 1]):

    h_j = rho(s_{j-1}) W_j + rho(s_{j+1}) W_{j+1}^T + b_j,   s_{-1} = x.

Two solvers share these net inputs:

* ``SOLVER_EULER``: the paper's dynamics, all layers updated synchronously,
  s_j <- clip(s_j + epsilon * (h_j - s_j), 0, 1), and for the output in the
  nudged phase an extra epsilon * beta * (d - y).
* ``SOLVER_ALTERNATING``: block-coordinate minimisation of the energy: layers
  1, 3, 5, ... (1-based) are set to clip(h_j, 0, 1) given their neighbours, then
  layers 2, 4, ...; the output becomes clip((h + beta d) / (1 + beta), 0, 1).

The batch is cut into one contiguous block of rows per thread; each thread
relaxes its rows through every step without synchronising with the others.
The input's drive x W_0 is the same at every step and in both phases: it is
computed once and kept in a caller-owned buffer; where x is mostly zeros
(images) that product skips them (_gemm.input_gemm). Top-down products use a
transposed copy of each weight matrix, made once per call, so that every
product streams a row-major matrix (see _gemm.pyx).
"""

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

from eqcore._gemm cimport input_gemm, small_gemm, small_gemm_with_transpose

SOLVER_EULER = 0
SOLVER_ALTERNATING = 1


cdef extern from "state_update.h" nogil:
    void eq_euler_f32(float* s, const float* h, const float* b, const float* t, int rows,
                      int n, float eps, float beta)
    void eq_euler_f64(double* s, const double* h, const double* b, const double* t,
                      int rows, int n, double eps, double beta)
    void eq_exact_f32(float* s, const float* h, const float* b, const float* t, int rows,
                      int n, float beta)
    void eq_exact_f64(double* s, const double* h, const double* b, const double* t,
                      int rows, int n, double beta)


cdef void _net_input(int j, int n_layers, const int* sizes, floating** W,
                     floating** WT, floating** s, const floating* drive, int rows,
                     floating* out) noexcept nogil:
    """out = rho(s_{j-1}) W_j + rho(s_{j+1}) W_{j+1}^T (the bias is added by the caller)."""
    cdef int n_j = sizes[j + 1]
    if j == 0:
        memcpy(out, drive, rows * n_j * sizeof(floating))
    else:
        small_gemm_with_transpose(rows, n_j, sizes[j], s[j - 1], sizes[j], W[j], n_j,
                                  WT[j], False, out, n_j)
    if j + 1 < n_layers:
        small_gemm(rows, n_j, sizes[j + 2], s[j + 1], sizes[j + 2], WT[j + 1], n_j, True, out, n_j)


cdef inline void _euler_update(floating* s, const floating* h, const floating* b,
                               const floating* target, int rows, int n,
                               floating epsilon, floating beta) noexcept nogil:
    if floating is float:
        eq_euler_f32(s, h, b, target, rows, n, epsilon, beta)
    else:
        eq_euler_f64(s, h, b, target, rows, n, epsilon, beta)


cdef inline void _exact_update(floating* s, const floating* h, const floating* b,
                               const floating* target, int rows, int n,
                               floating beta) noexcept nogil:
    if floating is float:
        eq_exact_f32(s, h, b, target, rows, n, beta)
    else:
        eq_exact_f64(s, h, b, target, rows, n, beta)


cdef void _relax_rows(int n_layers, const int* sizes, floating** W, floating** WT,
                      floating** b, const floating* x, floating** s,
                      const floating* target, int rows, int steps, floating epsilon,
                      floating beta, int solver, floating* drive, bint compute_drive,
                      floating** h, int* input_index) noexcept nogil:
    """Relax ``rows`` examples whose layer states start at the pointers ``s``.

    ``input_index`` is scratch for sizes[0] column indices (the sparse drive product).
    """
    cdef int step, j, parity
    cdef const floating* layer_target
    if compute_drive:
        input_gemm(rows, sizes[1], sizes[0], x, sizes[0], W[0], sizes[1], False, drive,
                   sizes[1], input_index, NULL, True)
    for step in range(steps):
        if solver == 0:
            for j in range(n_layers):
                _net_input(j, n_layers, sizes, W, WT, s, drive, rows, h[j])
            for j in range(n_layers):
                layer_target = target if j == n_layers - 1 else NULL
                _euler_update(s[j], h[j], b[j], layer_target, rows, sizes[j + 1],
                              epsilon, beta)
        else:
            for parity in range(2):
                for j in range(parity, n_layers, 2):
                    _net_input(j, n_layers, sizes, W, WT, s, drive, rows, h[j])
                    layer_target = target if j == n_layers - 1 else NULL
                    _exact_update(s[j], h[j], b[j], layer_target, rows,
                                  sizes[j + 1], beta)


# A thread is only worth starting for this much work (about 10 microseconds);
# below it the start-up and the final barrier cost more than they save, and on
# a busy machine a waiting thread can take a core from the one still working.
cdef double _min_flops_per_thread = 1e6


def set_parallel_threshold(double flops) -> None:
    """Set the work (in floating-point operations) a thread must get to be started.

    Default 1e6. Tests set 0 to force every thread to run even on tiny problems.
    """
    global _min_flops_per_thread
    if not flops >= 0:
        raise ValueError(f"flops must be >= 0; got {flops}")
    _min_flops_per_thread = flops


def parallel_threshold() -> float:
    """The work a thread must get to be started (see ``set_parallel_threshold``)."""
    return _min_flops_per_thread


cdef int _useful_threads(int threads, int batch, int steps, list weights, int n_in):
    cdef double flops = 0.0
    cdef int j
    for j in range(1, len(weights)):
        flops += 4.0 * weights[j].shape[0] * weights[j].shape[1]  # bottom-up and top-down
    flops = (flops * steps + 2.0 * n_in * weights[0].shape[1]) * batch
    return max(1, min(threads, batch, <int> min(flops / max(_min_flops_per_thread, 1.0), 1e9)))


def relax_batch(list weights, list biases, floating[:, ::1] x, list state,
                int steps, double epsilon, double beta,
                floating[:, ::1] target=None, int solver=0, int threads=1,
                floating[:, ::1] drive=None, bint drive_ready=False):
    """Relax ``state`` (a list of C-contiguous (batch, n_j) arrays) in place.

    ``drive`` (batch, n_1), if given, holds x W_0: it is filled here unless
    ``drive_ready`` says it already holds the product for this ``x`` and these
    weights (the nudged phase reuses the free phase's drive).

    This is the unchecked core entry point: ``eqprop.EqPropNetwork`` validates
    every argument first. Only the cheap structural checks that protect memory
    are repeated here.
    """
    cdef int n_layers = len(weights)
    cdef int batch = x.shape[0]
    cdef int j, c, n_chunks, chunk_rows, r0, rows, scratch_per_chunk
    cdef floating[:, ::1] w_view, s_view
    cdef floating[::1] b_view
    cdef int* sizes = NULL
    cdef floating** W = NULL
    cdef floating** WT = NULL
    cdef floating* transposed = NULL
    cdef floating* drive_ptr = NULL
    cdef size_t transposed_size, offset
    cdef int row, col
    cdef floating** B = NULL
    cdef floating** S = NULL
    cdef floating** chunk_state = NULL
    cdef floating** chunk_h = NULL
    cdef floating* scratch = NULL
    cdef int* input_index = NULL
    cdef floating* chunk_scratch
    cdef const floating* target_ptr = NULL
    cdef const floating* chunk_target
    cdef floating* chunk_drive

    if n_layers < 1 or len(biases) != n_layers or len(state) != n_layers:
        raise ValueError("weights, biases and state must have one entry per non-input layer")
    if solver not in (0, 1):
        raise ValueError(f"unknown solver {solver}")
    if batch == 0 or steps <= 0:
        return
    n_chunks = _useful_threads(threads, batch, steps, weights, x.shape[1])
    chunk_rows = (batch + n_chunks - 1) // n_chunks
    n_chunks = (batch + chunk_rows - 1) // chunk_rows

    try:
        sizes = <int*> malloc((n_layers + 1) * sizeof(int))
        W = <floating**> malloc(n_layers * sizeof(floating*))
        WT = <floating**> malloc(n_layers * sizeof(floating*))
        B = <floating**> malloc(n_layers * sizeof(floating*))
        S = <floating**> malloc(n_layers * sizeof(floating*))
        chunk_state = <floating**> malloc(n_chunks * n_layers * sizeof(floating*))
        chunk_h = <floating**> malloc(n_chunks * n_layers * sizeof(floating*))
        if not (sizes and W and WT and B and S and chunk_state and chunk_h):
            raise MemoryError()
        sizes[0] = x.shape[1]
        for j in range(n_layers):
            w_view = weights[j]
            b_view = biases[j]
            s_view = state[j]
            if (w_view.shape[0] != sizes[j] or b_view.shape[0] != w_view.shape[1]
                    or s_view.shape[0] != batch or s_view.shape[1] != w_view.shape[1]):
                raise ValueError(f"inconsistent shapes at layer {j + 1}")
            sizes[j + 1] = w_view.shape[1]
            W[j] = &w_view[0, 0]
            B[j] = &b_view[0]
            S[j] = &s_view[0, 0]
        if target is not None:
            if target.shape[0] != batch or target.shape[1] != sizes[n_layers]:
                raise ValueError("target must have shape (batch, n_output)")
            target_ptr = &target[0, 0]

        if drive is not None:
            if drive.shape[0] != batch or drive.shape[1] != sizes[1]:
                raise ValueError("drive must have shape (batch, n_1)")
            drive_ptr = &drive[0, 0]
        elif drive_ready:
            raise ValueError("drive_ready needs a drive buffer")

        # W_j^T for the top-down products, j >= 1 (the input is never driven)
        transposed_size = 0
        for j in range(1, n_layers):
            transposed_size += <size_t> sizes[j] * sizes[j + 1]
        transposed = <floating*> malloc(max(transposed_size, 1) * sizeof(floating))
        if transposed == NULL:
            raise MemoryError()
        offset = 0
        WT[0] = NULL
        for j in range(1, n_layers):
            WT[j] = transposed + offset
            offset += <size_t> sizes[j] * sizes[j + 1]
            with nogil:
                for row in range(sizes[j]):
                    for col in range(sizes[j + 1]):
                        WT[j][<size_t> col * sizes[j] + row] = W[j][<size_t> row * sizes[j + 1] + col]

        # per chunk: one net-input buffer per layer, and the drive if the caller gave
        # no buffer (last); plus the sparse drive's column indices
        scratch_per_chunk = 0 if drive_ptr != NULL else chunk_rows * sizes[1]
        for j in range(n_layers):
            scratch_per_chunk += chunk_rows * sizes[j + 1]
        scratch = <floating*> malloc(<size_t> n_chunks * scratch_per_chunk * sizeof(floating))
        input_index = <int*> malloc(<size_t> n_chunks * sizes[0] * sizeof(int))
        if scratch == NULL or input_index == NULL:
            raise MemoryError()

        with nogil, parallel(num_threads=n_chunks):
            for c in prange(n_chunks, schedule="static", chunksize=1):
                r0 = c * chunk_rows
                rows = min(chunk_rows, batch - r0)
                chunk_scratch = scratch + <size_t> c * scratch_per_chunk
                for j in range(n_layers):
                    chunk_state[c * n_layers + j] = S[j] + <size_t> r0 * sizes[j + 1]
                chunk_h[c * n_layers] = chunk_scratch
                for j in range(1, n_layers):
                    chunk_h[c * n_layers + j] = chunk_h[c * n_layers + j - 1] + chunk_rows * sizes[j]
                chunk_target = NULL
                if target_ptr != NULL:
                    chunk_target = target_ptr + <size_t> r0 * sizes[n_layers]
                if drive_ptr != NULL:
                    chunk_drive = drive_ptr + <size_t> r0 * sizes[1]
                else:
                    chunk_drive = chunk_scratch + scratch_per_chunk - chunk_rows * sizes[1]
                _relax_rows(n_layers, sizes, W, WT, B, &x[r0, 0],
                            &chunk_state[c * n_layers], chunk_target, rows, steps,
                            <floating> epsilon, <floating> beta, solver,
                            chunk_drive, not drive_ready, &chunk_h[c * n_layers],
                            input_index + <size_t> c * sizes[0])
    finally:
        free(sizes)
        free(W)
        free(WT)
        free(transposed)
        free(B)
        free(S)
        free(chunk_state)
        free(chunk_h)
        free(scratch)
        free(input_index)
