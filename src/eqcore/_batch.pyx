# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The training loop's per-mini-batch bookkeeping, in one call each instead of a dozen NumPy calls.

At 784-500-10 and batch 20 a whole training step takes about 200 microseconds;
the gathers, one-hot targets, error count, cost and particle scatter around it
cost almost half as much again when written as separate NumPy operations.
``eqprop.Trainer``'s Python loop calls these two functions instead; they do the
same work. Their bodies are nogil functions over raw rows (declared in
_batch.pxd) that the compiled epoch loop (_epoch.pyx) calls too, so both loops
score and keep the particles with the same code.
"""

from cython cimport floating
from libc.float cimport DBL_MIN, FLT_MIN
from libc.math cimport log
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset

from eqcore._gemm cimport current_isa
from eqcore._kernels cimport eq_count_nonfinite_f32, eq_count_nonfinite_f64


cdef void gather_examples(const floating* x, int n_in, const int64_t* labels, const int64_t* index,
                          int m, floating* x_out, floating* target_out, int n_out) noexcept nogil:
    """x_out[i] = x[index[i]], target_out[i] = one-hot(labels[index[i]]), for i < m (rows of n_in, n_out)."""
    cdef Py_ssize_t i
    for i in range(m):
        memcpy(&x_out[i * n_in], &x[index[i] * n_in], n_in * sizeof(floating))
        memset(&target_out[i * n_out], 0, n_out * sizeof(floating))
        target_out[i * n_out + labels[index[i]]] = 1


cdef void gather_rows(const floating* source, const int64_t* index, int m, int width,
                      floating* dest, int ld) noexcept nogil:
    """dest[i] = source[index[i]] (rows of ``width``; dest's ``ld`` apart), or 0 when ``source`` is NULL
    (all of dest's m rows of ``ld``)."""
    cdef Py_ssize_t i
    if source == NULL:
        memset(dest, 0, <size_t> m * ld * sizeof(floating))
        return
    for i in range(m):
        memcpy(&dest[i * ld], &source[index[i] * width], width * sizeof(floating))


cdef void scatter_rows(const floating* rows, int ld, const int64_t* index, int m, int width,
                       floating* dest) noexcept nogil:
    """dest[index[i]] = rows[i] (rows of ``width``; ``rows``' ``ld`` apart)."""
    cdef Py_ssize_t i
    for i in range(m):
        memcpy(&dest[index[i] * width], &rows[i * ld], width * sizeof(floating))


cdef bint all_finite(const floating* values, int rows, int width, int isa) noexcept nogil:
    """Whether every value of the rows x width block is finite (sparse_rows.h, eq_count_nonfinite)."""
    if floating is float:
        return eq_count_nonfinite_f32(isa, rows, width, values, width) == 0
    return eq_count_nonfinite_f64(isa, rows, width, values, width) == 0


cdef double score_output(const floating* output, const floating* target, int m, int n_out,
                         const int64_t* labels, const int64_t* index, long* errors,
                         bint cross_entropy) noexcept nogil:
    """The cost of the m rows summed in float64; adds to ``errors`` the rows whose first argmax is not their label.

    1/2 sum (y - d)^2, or with ``cross_entropy`` (the output is the readout's
    p) -sum d log max(p, tiny), tiny the dtype's smallest normal number.
    """
    cdef Py_ssize_t i, c, best
    cdef double cost = 0.0, diff, p
    cdef double tiny = FLT_MIN if floating is float else DBL_MIN
    for i in range(m):
        best = 0
        for c in range(n_out):
            if cross_entropy:
                if target[i * n_out + c] != 0:
                    p = max(<double> output[i * n_out + c], tiny)
                    cost -= target[i * n_out + c] * log(p)
            else:
                diff = <double> (output[i * n_out + c] - target[i * n_out + c])
                cost += diff * diff
            if output[i * n_out + c] > output[i * n_out + best]:
                best = c
        if best != labels[index[i]]:
            errors[0] += 1
    return cost if cross_entropy else 0.5 * cost


def gather_batch(const floating[:, ::1] x, const int64_t[::1] labels, const int64_t[::1] index,
                 floating[:, ::1] x_out, floating[:, ::1] target_out, list particles,
                 list state_out) -> None:
    """Fill the mini-batch buffers for the examples ``index``.

    x_out[i] = x[index[i]], target_out[i] = one-hot(labels[index[i]]) and, for
    every layer j, state_out[j][i] = particles[j][index[i]], or 0 when
    ``particles`` is None. Indices and labels must be in range (the trainer
    checks them once per fit); this checks only the shapes.
    """
    cdef Py_ssize_t m = index.shape[0], i, j, n_layers = len(state_out)
    cdef Py_ssize_t n_in = x.shape[1], n_out = target_out.shape[1], width
    cdef floating[:, ::1] source, dest
    if x_out.shape[0] != m or target_out.shape[0] != m or x_out.shape[1] != n_in:
        raise ValueError("x_out and target_out must have one row per index and x's width")
    if labels.shape[0] != x.shape[0]:
        raise ValueError("labels must have one entry per row of x")
    for i in range(m):
        if not (0 <= index[i] < x.shape[0] and 0 <= labels[index[i]] < n_out):
            raise ValueError(f"index {index[i]} or its label is out of range")
    with nogil:  # (an empty view's first element is its data pointer: nothing is read)
        gather_examples(&x[0, 0], n_in, &labels[0], &index[0], m, &x_out[0, 0], &target_out[0, 0], n_out)
    for j in range(n_layers):
        dest = state_out[j]
        width = dest.shape[1]
        if dest.shape[0] != m:
            raise ValueError("state_out must have one row per index")
        if particles is None:
            with nogil:
                gather_rows(<const floating*> NULL, &index[0], m, width, &dest[0, 0], width)
            continue
        source = particles[j]
        if source.shape[0] != x.shape[0] or source.shape[1] != width:
            raise ValueError("particles must have one row per example of x and state_out's widths")
        with nogil:
            gather_rows(&source[0, 0], &index[0], m, width, &dest[0, 0], width)


def summarise_free_phase(list state, const floating[:, ::1] target, const int64_t[::1] labels,
                         const int64_t[::1] index, list particles, bint cross_entropy=False) -> tuple:
    """Check, score and keep the free fixed point of a mini-batch.

    Returns ``(finite, errors, cost)``: whether every state is finite, the
    number of examples whose output's argmax (the first, as NumPy's) is not
    their label, and 1/2 sum (y - d)^2 summed in float64; with
    ``cross_entropy`` the output is the readout's p and the cost
    -sum d log max(p, tiny) (tiny the dtype's smallest normal number, so a p
    that underflowed to 0 costs at most -log tiny, never infinity). When
    finite and ``particles`` is not None, particles[j][index[i]] = state[j][i].
    """
    cdef Py_ssize_t m = index.shape[0], i, j, c, n_layers = len(state), width
    cdef floating[:, ::1] layer, dest
    cdef const floating[:, ::1] output
    cdef bint finite = True
    cdef long errors = 0
    cdef double cost = 0.0
    for i in range(m):
        if not 0 <= index[i] < labels.shape[0]:
            raise ValueError(f"index {index[i]} is out of range for the labels")
    for j in range(n_layers):
        layer = state[j]
        if layer.shape[0] != m:
            raise ValueError("state must have one row per index")
        with nogil:
            finite = all_finite(&layer[0, 0], m, layer.shape[1], current_isa())
        if not finite:
            return False, 0, 0.0
    output = state[n_layers - 1]
    if target.shape[0] != m or target.shape[1] != output.shape[1]:
        raise ValueError("target must have the output's shape")
    with nogil:
        cost = score_output(&output[0, 0], &target[0, 0], m, output.shape[1], &labels[0], &index[0], &errors,
                            cross_entropy)
    if particles is not None:
        for j in range(n_layers):
            layer = state[j]
            dest = particles[j]
            width = layer.shape[1]
            if dest.shape[1] != width:
                raise ValueError("particles and state must have the same layer widths")
            for i in range(m):
                if not 0 <= index[i] < dest.shape[0]:
                    raise ValueError(f"index {index[i]} is out of range for the particles")
            with nogil:
                scatter_rows(&layer[0, 0], width, &index[0], m, width, &dest[0, 0])
    return True, errors, cost
