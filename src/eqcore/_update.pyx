# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The EP learning rule, accumulated in place into weight and bias arrays.

With ``pos`` and ``neg`` two states of the same mini-batch (the nudged and the
free fixed points, or the +beta and -beta ones of the symmetric estimate):

    W_j += scale_j * (rho(P_{j-1})^T rho(P_j) - rho(N_{j-1})^T rho(N_j)),   P_{-1} = N_{-1} = x
    b_j += scale_j * sum_batch(rho(P_j) - rho(N_j))

(Scellier & Bengio 2016, eq. 13; rho(s) = s on the clipped state space.)
Training passes the weights themselves and scale_j = lr_j / (beta * batch); the
gradient estimate passes zeroed arrays and scale_j = -1 / (beta * batch).

Each weight update is one product W_j += A_j @ B_j with
A_j = [P_{j-1}; N_{j-1}]^T and B_j = scale_j [P_j; -N_j] (batch stacked twice),
and for the clamped input A_0 = x^T, B_0 = scale_0 (P_0 - N_0): one product of
depth batch instead of two. The B_j are built first; then fixed blocks of
weight rows are spread over the threads, each building its rows of A_j, so
each element is computed by the same arithmetic whatever the thread count.
Where x is mostly zeros (images), the product for W_0 skips them
(sparse_rows.h), and rows of W_0 whose input is zero in the whole batch are
not touched.
"""

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport isfinite
from libc.stdlib cimport malloc, free

from eqcore._gemm cimport input_gemm, small_gemm
from eqcore._relax import parallel_threshold

DEF ROW_BLOCK = 64


cdef void _build_left_rows(int j, int batch, const int* sizes, const floating* x,
                           floating** P, floating** N, int row0, int rows,
                           floating* left) noexcept nogil:
    """Rows row0 .. row0 + rows of A_j (n_{j-1} x depth), depth = batch or 2 batch."""
    cdef int n_in = sizes[j]
    cdef int depth = batch if j == 0 else 2 * batch
    cdef Py_ssize_t r, c
    for c in range(row0, row0 + rows):
        for r in range(batch):
            if j == 0:
                left[c * depth + r] = x[r * n_in + c]
            else:
                left[c * depth + r] = P[j - 1][r * n_in + c]
                left[c * depth + batch + r] = N[j - 1][r * n_in + c]


cdef void _build_right(int j, int batch, const int* sizes, floating** P, floating** N,
                       double scale, floating* right) noexcept nogil:
    """B_j (depth x n_j)."""
    cdef int n_out = sizes[j + 1]
    cdef Py_ssize_t r, c
    cdef floating s = <floating> scale
    for r in range(batch):
        for c in range(n_out):
            if j == 0:
                right[r * n_out + c] = s * (P[j][r * n_out + c] - N[j][r * n_out + c])
            else:
                right[r * n_out + c] = s * P[j][r * n_out + c]
                right[(batch + r) * n_out + c] = -s * N[j][r * n_out + c]


cdef void _update_bias(floating* b, int n, int depth, const floating* right) noexcept nogil:
    # b += column sums of B_j, which is scale * sum_batch(P - N)
    cdef Py_ssize_t r, c
    for r in range(depth):
        for c in range(n):
            b[c] += right[r * n + c]


def apply_ep_update(list weights, list biases, floating[:, ::1] x, list pos,
                    list neg, const double[::1] scales, int threads=1) -> bool:
    """Accumulate the EP update into ``weights`` and ``biases`` in place.

    ``scales[j]`` multiplies layer j's weight and bias updates (its learning
    rate over beta and the batch size). Unchecked core entry point; ``eqprop``
    validates the arguments first.

    Returns whether every updated bias is finite: the bias update sums the
    states of both phases, so this is a cheap check that neither diverged.
    """
    cdef int n_layers = len(weights)
    cdef int batch = x.shape[0]
    cdef int j, t, n_tasks, layer, row0, depth
    cdef size_t left_size, right_size
    cdef double flops
    cdef floating[:, ::1] w_view, p_view, n_view
    cdef floating[::1] b_view
    cdef int* sizes = NULL
    cdef int* task_layer = NULL
    cdef int* task_row = NULL
    cdef size_t* left_offset = NULL
    cdef size_t* right_offset = NULL
    cdef floating** W = NULL
    cdef floating** Bp = NULL
    cdef floating** P = NULL
    cdef floating** N = NULL
    cdef floating* operands = NULL
    cdef floating* input_value = NULL
    cdef floating* task_left
    cdef floating* task_right
    cdef floating* task_w
    cdef int task_rows, n_out
    cdef int* input_index = NULL
    cdef floating* right

    if n_layers < 1 or len(biases) != n_layers or len(pos) != n_layers or len(neg) != n_layers:
        raise ValueError("weights, biases, pos and neg must have one entry per non-input layer")
    if scales.shape[0] != n_layers:
        raise ValueError("scales must have one entry per non-input layer")
    cdef bint finite = True
    cdef Py_ssize_t c
    if batch == 0:
        return True
    try:
        sizes = <int*> malloc((n_layers + 1) * sizeof(int))
        left_offset = <size_t*> malloc(n_layers * sizeof(size_t))
        right_offset = <size_t*> malloc(n_layers * sizeof(size_t))
        W = <floating**> malloc(n_layers * sizeof(floating*))
        Bp = <floating**> malloc(n_layers * sizeof(floating*))
        P = <floating**> malloc(n_layers * sizeof(floating*))
        N = <floating**> malloc(n_layers * sizeof(floating*))
        if not (sizes and left_offset and right_offset and W and Bp and P and N):
            raise MemoryError()
        sizes[0] = x.shape[1]
        n_tasks = 0
        left_size = 0
        right_size = 0
        for j in range(n_layers):
            w_view = weights[j]
            b_view = biases[j]
            p_view = pos[j]
            n_view = neg[j]
            if (w_view.shape[0] != sizes[j] or b_view.shape[0] != w_view.shape[1]
                    or p_view.shape[0] != batch or p_view.shape[1] != w_view.shape[1]
                    or n_view.shape[0] != batch or n_view.shape[1] != w_view.shape[1]):
                raise ValueError(f"inconsistent shapes at layer {j + 1}")
            sizes[j + 1] = w_view.shape[1]
            W[j] = &w_view[0, 0]
            Bp[j] = &b_view[0]
            P[j] = &p_view[0, 0]
            N[j] = &n_view[0, 0]
            depth = batch if j == 0 else 2 * batch
            left_offset[j] = left_size
            right_offset[j] = right_size
            left_size += <size_t> sizes[j] * depth
            right_size += <size_t> depth * sizes[j + 1]
            n_tasks += (sizes[j] + ROW_BLOCK - 1) // ROW_BLOCK

        operands = <floating*> malloc((left_size + right_size) * sizeof(floating))
        task_layer = <int*> malloc(n_tasks * sizeof(int))
        task_row = <int*> malloc(n_tasks * sizeof(int))
        if not (operands and task_layer and task_row):
            raise MemoryError()
        t = 0
        for j in range(n_layers):
            for row0 in range(0, sizes[j], ROW_BLOCK):
                task_layer[t] = j
                task_row[t] = row0
                t += 1

        with nogil:
            for j in range(n_layers):
                right = operands + left_size + right_offset[j]
                _build_right(j, batch, sizes, P, N, scales[j], right)
                _update_bias(Bp[j], sizes[j + 1], batch if j == 0 else 2 * batch, right)
                for c in range(sizes[j + 1]):
                    if not isfinite(Bp[j][c]):
                        finite = False

        flops = 0.0
        for j in range(n_layers):
            flops += 2.0 * sizes[j] * sizes[j + 1] * (batch if j == 0 else 2 * batch)
        threads = max(1, min(threads, n_tasks, <int> min(flops / max(parallel_threshold(), 1.0), 1e9)))
        # per thread: one row of x^T compacted, for the sparse product of layer 0
        input_value = <floating*> malloc(<size_t> threads * batch * sizeof(floating))
        input_index = <int*> malloc(<size_t> threads * batch * sizeof(int))
        if not (input_value and input_index):
            raise MemoryError()
        for t in prange(n_tasks, nogil=True, num_threads=threads,
                        schedule="dynamic", chunksize=1):
            layer = task_layer[t]
            row0 = task_row[t]
            depth = batch if layer == 0 else 2 * batch
            task_rows = min(ROW_BLOCK, sizes[layer] - row0)
            n_out = sizes[layer + 1]
            task_left = operands + left_offset[layer] + <size_t> row0 * depth
            task_right = operands + left_size + right_offset[layer]
            task_w = W[layer] + <size_t> row0 * n_out
            _build_left_rows(layer, batch, sizes, &x[0, 0], P, N, row0, task_rows,
                             operands + left_offset[layer])
            if layer == 0:  # the left operand is x^T: its zeros can be skipped
                input_gemm(task_rows, n_out, depth, task_left, depth, task_right, n_out, True,
                           task_w, n_out, input_index + <size_t> threadid() * batch,
                           input_value + <size_t> threadid() * batch, False)
            else:
                small_gemm(task_rows, n_out, depth, task_left, depth, task_right, n_out, True,
                           task_w, n_out)
    finally:
        free(sizes)
        free(left_offset)
        free(right_offset)
        free(W)
        free(Bp)
        free(P)
        free(N)
        free(operands)
        free(input_value)
        free(input_index)
        free(task_layer)
        free(task_row)
    return finite
