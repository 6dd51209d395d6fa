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
The input's drive x W_0 is computed once per call, not once per step.
"""

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

from eqcore._blas cimport gemm_rm

SOLVER_EULER = 0
SOLVER_ALTERNATING = 1


cdef inline floating _clip01(floating v) noexcept nogil:
    # Comparisons rather than fmin/fmax so that a NaN propagates (and is caught
    # by the caller) instead of being silently replaced by a bound.
    if v < 0:
        return 0
    if v > 1:
        return 1
    return v


cdef void _net_input(int j, int n_layers, const int* sizes, floating** W,
                     floating** s, const floating* drive, int rows,
                     floating* out) noexcept nogil:
    """out = rho(s_{j-1}) W_j + rho(s_{j+1}) W_{j+1}^T (the bias is added by the caller)."""
    cdef int n_j = sizes[j + 1]
    if j == 0:
        memcpy(out, drive, rows * n_j * sizeof(floating))
    else:
        gemm_rm(False, False, rows, n_j, sizes[j], <floating> 1.0,
                s[j - 1], sizes[j], W[j], n_j, <floating> 0.0, out, n_j)
    if j + 1 < n_layers:
        gemm_rm(False, True, rows, n_j, sizes[j + 2], <floating> 1.0,
                s[j + 1], sizes[j + 2], W[j + 1], sizes[j + 2], <floating> 1.0, out, n_j)


cdef void _euler_update(floating* s, const floating* h, const floating* b,
                        const floating* target, int rows, int n,
                        floating epsilon, floating beta) noexcept nogil:
    cdef Py_ssize_t r, c, i
    cdef floating v
    for r in range(rows):
        for c in range(n):
            i = r * n + c
            v = s[i] + epsilon * (h[i] + b[c] - s[i])
            if target != NULL:
                v = v + epsilon * beta * (target[i] - s[i])
            s[i] = _clip01(v)


cdef void _exact_update(floating* s, const floating* h, const floating* b,
                        const floating* target, int rows, int n,
                        floating beta) noexcept nogil:
    cdef Py_ssize_t r, c, i
    cdef floating inv = 1 / (1 + beta)
    for r in range(rows):
        for c in range(n):
            i = r * n + c
            if target != NULL:
                s[i] = _clip01((h[i] + b[c] + beta * target[i]) * inv)
            else:
                s[i] = _clip01(h[i] + b[c])


cdef void _relax_rows(int n_layers, const int* sizes, floating** W, floating** b,
                      const floating* x, floating** s, const floating* target,
                      int rows, int steps, floating epsilon, floating beta,
                      int solver, floating* drive, floating** h) noexcept nogil:
    """Relax ``rows`` examples whose layer states start at the pointers ``s``."""
    cdef int step, j, parity, n_out = sizes[n_layers]
    cdef const floating* layer_target
    # The input is clamped: its drive on the first layer is the same every step.
    gemm_rm(False, False, rows, sizes[1], sizes[0], <floating> 1.0,
            x, sizes[0], W[0], sizes[1], <floating> 0.0, drive, sizes[1])
    for step in range(steps):
        if solver == 0:
            for j in range(n_layers):
                _net_input(j, n_layers, sizes, W, s, drive, rows, h[j])
            for j in range(n_layers):
                layer_target = target if j == n_layers - 1 else NULL
                _euler_update(s[j], h[j], b[j], layer_target, rows, sizes[j + 1],
                              epsilon, beta)
        else:
            for parity in range(2):
                for j in range(parity, n_layers, 2):
                    _net_input(j, n_layers, sizes, W, s, drive, rows, h[j])
                    layer_target = target if j == n_layers - 1 else NULL
                    _exact_update(s[j], h[j], b[j], layer_target, rows,
                                  sizes[j + 1], beta)


def relax_batch(list weights, list biases, floating[:, ::1] x, list state,
                int steps, double epsilon, double beta,
                floating[:, ::1] target=None, int solver=0, int threads=1):
    """Relax ``state`` (a list of C-contiguous (batch, n_j) arrays) in place.

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
    cdef floating** B = NULL
    cdef floating** S = NULL
    cdef floating** chunk_state = NULL
    cdef floating** chunk_h = NULL
    cdef floating* scratch = NULL
    cdef floating* chunk_scratch
    cdef const floating* target_ptr = NULL
    cdef const floating* chunk_target

    if n_layers < 1 or len(biases) != n_layers or len(state) != n_layers:
        raise ValueError("weights, biases and state must have one entry per non-input layer")
    if solver not in (0, 1):
        raise ValueError(f"unknown solver {solver}")
    if batch == 0 or steps <= 0:
        return
    threads = max(1, threads)
    n_chunks = min(threads, batch)
    chunk_rows = (batch + n_chunks - 1) // n_chunks
    n_chunks = (batch + chunk_rows - 1) // chunk_rows

    try:
        sizes = <int*> malloc((n_layers + 1) * sizeof(int))
        W = <floating**> malloc(n_layers * sizeof(floating*))
        B = <floating**> malloc(n_layers * sizeof(floating*))
        S = <floating**> malloc(n_layers * sizeof(floating*))
        chunk_state = <floating**> malloc(n_chunks * n_layers * sizeof(floating*))
        chunk_h = <floating**> malloc(n_chunks * n_layers * sizeof(floating*))
        if not (sizes and W and B and S and chunk_state and chunk_h):
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

        scratch_per_chunk = chunk_rows * sizes[1]
        for j in range(n_layers):
            scratch_per_chunk += chunk_rows * sizes[j + 1]
        scratch = <floating*> malloc(<size_t> n_chunks * scratch_per_chunk * sizeof(floating))
        if scratch == NULL:
            raise MemoryError()

        with nogil, parallel(num_threads=n_chunks):
            for c in prange(n_chunks, schedule="static", chunksize=1):
                r0 = c * chunk_rows
                rows = min(chunk_rows, batch - r0)
                chunk_scratch = scratch + <size_t> c * scratch_per_chunk
                for j in range(n_layers):
                    chunk_state[c * n_layers + j] = S[j] + <size_t> r0 * sizes[j + 1]
                # drive first, then one net-input buffer per layer
                chunk_h[c * n_layers] = chunk_scratch + chunk_rows * sizes[1]
                for j in range(1, n_layers):
                    chunk_h[c * n_layers + j] = chunk_h[c * n_layers + j - 1] + chunk_rows * sizes[j]
                chunk_target = NULL
                if target_ptr != NULL:
                    chunk_target = target_ptr + <size_t> r0 * sizes[n_layers]
                _relax_rows(n_layers, sizes, W, B, &x[r0, 0],
                            &chunk_state[c * n_layers], chunk_target, rows, steps,
                            <floating> epsilon, <floating> beta, solver,
                            chunk_scratch, &chunk_h[c * n_layers])
    finally:
        free(sizes)
        free(W)
        free(B)
        free(S)
        free(chunk_state)
        free(chunk_h)
        free(scratch)
