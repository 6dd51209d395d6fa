# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The EP learning rule, accumulated in place into weight and bias arrays.

With ``pos`` and ``neg`` two states of the same mini-batch (the nudged and the
free fixed points, or the +beta and -beta ones of the symmetric estimate):

    W_j += scale * (rho(P_{j-1})^T rho(P_j) - rho(N_{j-1})^T rho(N_j)),   P_{-1} = N_{-1} = x
    b_j += scale * sum_batch(rho(P_j) - rho(N_j))

(Scellier & Bengio 2016, eq. 13; rho(s) = s on the clipped state space.)
Training passes the weights themselves and scale_j = lr_j / (beta * batch); the
gradient estimate passes zeroed arrays and scale_j = -1 / (beta * batch).

Work is cut into fixed blocks of weight rows (and one task per bias), so each
output element is computed by the same arithmetic whatever the thread count.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport malloc, free

from eqcore._blas cimport gemm_rm

DEF ROW_BLOCK = 64


cdef void _update_rows(floating* w, int row0, int rows, int n_out, int batch,
                       const floating* pos_in, const floating* neg_in, int n_in,
                       const floating* pos_out, const floating* neg_out,
                       floating scale) noexcept nogil:
    # rows row0..row0+rows of W (n_in x n_out) += scale * (P_in^T P_out - N_in^T N_out)
    gemm_rm(True, False, rows, n_out, batch, scale, pos_in + row0, n_in,
            pos_out, n_out, <floating> 1.0, w + <size_t> row0 * n_out, n_out)
    gemm_rm(True, False, rows, n_out, batch, -scale, neg_in + row0, n_in,
            neg_out, n_out, <floating> 1.0, w + <size_t> row0 * n_out, n_out)


cdef void _update_bias(floating* b, int n, int batch, const floating* pos,
                       const floating* neg, floating scale) noexcept nogil:
    cdef Py_ssize_t r, c
    for r in range(batch):
        for c in range(n):
            b[c] += scale * (pos[r * n + c] - neg[r * n + c])


def apply_ep_update(list weights, list biases, floating[:, ::1] x, list pos,
                    list neg, const double[::1] scales, int threads=1):
    """Accumulate the EP update into ``weights`` and ``biases`` in place.

    ``scales[j]`` multiplies layer j's weight and bias updates (its learning
    rate over beta and the batch size). Unchecked core entry point; ``eqprop``
    validates the arguments first.
    """
    cdef int n_layers = len(weights)
    cdef int batch = x.shape[0]
    cdef int j, t, n_tasks, layer, row0
    cdef floating[:, ::1] w_view, p_view, n_view
    cdef floating[::1] b_view
    cdef int* sizes = NULL
    cdef int* task_layer = NULL
    cdef int* task_row = NULL
    cdef floating** W = NULL
    cdef floating** Bp = NULL
    cdef floating** P = NULL
    cdef floating** N = NULL
    cdef const floating* pos_in
    cdef const floating* neg_in

    if n_layers < 1 or len(biases) != n_layers or len(pos) != n_layers or len(neg) != n_layers:
        raise ValueError("weights, biases, pos and neg must have one entry per non-input layer")
    if scales.shape[0] != n_layers:
        raise ValueError("scales must have one entry per non-input layer")
    if batch == 0:
        return
    try:
        sizes = <int*> malloc((n_layers + 1) * sizeof(int))
        W = <floating**> malloc(n_layers * sizeof(floating*))
        Bp = <floating**> malloc(n_layers * sizeof(floating*))
        P = <floating**> malloc(n_layers * sizeof(floating*))
        N = <floating**> malloc(n_layers * sizeof(floating*))
        if not (sizes and W and Bp and P and N):
            raise MemoryError()
        sizes[0] = x.shape[1]
        n_tasks = 0
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
            n_tasks += (sizes[j] + ROW_BLOCK - 1) // ROW_BLOCK + 1

        # task t: a block of rows of one weight matrix, or (row -1) one bias vector
        task_layer = <int*> malloc(n_tasks * sizeof(int))
        task_row = <int*> malloc(n_tasks * sizeof(int))
        if not (task_layer and task_row):
            raise MemoryError()
        t = 0
        for j in range(n_layers):
            task_layer[t] = j
            task_row[t] = -1
            t += 1
            for row0 in range(0, sizes[j], ROW_BLOCK):
                task_layer[t] = j
                task_row[t] = row0
                t += 1

        for t in prange(n_tasks, nogil=True, num_threads=max(1, threads),
                        schedule="dynamic", chunksize=1):
            layer = task_layer[t]
            row0 = task_row[t]
            if row0 < 0:
                _update_bias(Bp[layer], sizes[layer + 1], batch, P[layer], N[layer],
                             <floating> scales[layer])
            else:
                if layer == 0:
                    pos_in = &x[0, 0]
                    neg_in = &x[0, 0]
                else:
                    pos_in = P[layer - 1]
                    neg_in = N[layer - 1]
                _update_rows(W[layer], row0, min(ROW_BLOCK, sizes[layer] - row0),
                             sizes[layer + 1], batch, pos_in, neg_in, sizes[layer],
                             P[layer], N[layer], <floating> scales[layer])
    finally:
        free(sizes)
        free(W)
        free(Bp)
        free(P)
        free(N)
        free(task_layer)
        free(task_row)
