# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""One engine for any chain of connections: what each kind contributes to a layer's net input.

The primitive function of the network is a sum over its connections (and the
biases); connection j joins layer j (below) to layer j + 1 (above):

* dense: rho(s_j) W_j rho(s_{j+1}), W_j of shape (n_j, n_{j+1});
* conv:  rho(s_{j+1}) . P(W_j * rho(s_j)), W_j of shape (c_out, c_in, k, k),
  ``*`` the cross-correlation with zero padding, P a 2x2 max or average pooling
  (or none).

The net input of layer j + 1 gets the connection's **bottom-up** part
dPhi/ds_{j+1} (rho(s_j) W_j, or P(W_j * rho(s_j))), and layer j its **top-down**
part dPhi/ds_j (rho(s_{j+1}) W_j^T, or the transposed convolution of the
un-pooled state above: for max pooling routed to the winners of P's windows
at the current state below). ``bottom_up`` and ``top_down`` compute these
for a block of rows (examples); the relaxation (_relax.pyx) and the update
(_update.pyx) loop over the chain and never look inside a connection.
States live in [0, 1], where rho is the identity, so rho is not applied.

Adding a connection kind: a new KIND_ value in _engine.pxd, its geometry check
in Chain, its branch in bottom_up / top_down / unpool (and in the update's
weight gradient, _update.pyx), and a reference test (docs/architecture.md).
"""

cimport numpy as cnp
from cython cimport floating
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy

from eqcore._gemm cimport small_gemm, small_gemm_with_transpose
from eqcore._kernels cimport (
    eq_col2im_f32, eq_col2im_f64, eq_im2col_f32, eq_im2col_f64, eq_pool_avg_f32,
    eq_pool_avg_f64, eq_pool_max_f32, eq_pool_max_f64, eq_unpool_avg_f32, eq_unpool_avg_f64,
    eq_unpool_max_f32, eq_unpool_max_f64,
)

import numpy as np

cnp.import_array()

KIND_CODES = {"dense": KIND_DENSE, "conv": KIND_CONV}
POOL_CODES = {None: POOL_NONE, "max": POOL_MAX, "avg": POOL_AVG}
N_GEOMETRY_FIELDS = GEOMETRY_FIELDS


cdef class Chain:
    """The network's connections described once for the core.

    Parameters
    ----------
    geometry : int32 array, shape (n_connections, 8)
        One row per connection: ``kind, c_in, h_in, w_in, c_out, kernel,
        padding, pool`` with the codes of ``KIND_CODES`` and ``POOL_CODES``. A
        dense connection is ``0, n_in, 1, 1, n_out, 0, 0, 0``.
    weights, biases : lists of ndarray
        The parameters, one per connection, all of one floating dtype,
        C-contiguous and writeable: the core reads and updates them in place,
        so they must not be reallocated while the chain lives (the chain keeps
        them alive).

    Only the structure that protects memory is checked here; ``eqprop.layers``
    validates architectures with messages for users.
    """

    def __cinit__(self, const int[:, ::1] geometry, list weights, list biases):
        cdef int n = geometry.shape[0], j
        cdef Connection* c
        self.conns = NULL
        if geometry.shape[1] != GEOMETRY_FIELDS:
            raise ValueError(f"geometry must have {GEOMETRY_FIELDS} columns")
        if n < 1 or len(weights) != n or len(biases) != n:
            raise ValueError("one geometry row, weight array and bias array per connection")
        dtype = np.asarray(weights[0]).dtype
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"parameters must be float32 or float64; got {dtype}")
        self.itemsize = dtype.itemsize
        self.conns = <Connection*> calloc(n, sizeof(Connection))
        if self.conns == NULL:
            raise MemoryError()
        self.n_connections = n
        self.conv_scratch = 0
        self.has_max_pool = False
        sizes = []
        for j in range(n):
            c = &self.conns[j]
            c.kind = geometry[j, 0]
            c.c_in, c.h_in, c.w_in = geometry[j, 1], geometry[j, 2], geometry[j, 3]
            c.c_out, c.k, c.pad, c.pool = geometry[j, 4], geometry[j, 5], geometry[j, 6], geometry[j, 7]
            if min(c.c_in, c.h_in, c.w_in, c.c_out) < 1:
                raise ValueError(f"connection {j}: sizes must be positive")
            c.n_in = c.c_in * c.h_in * c.w_in
            if c.kind == KIND_DENSE:
                if c.h_in != 1 or c.w_in != 1 or c.k or c.pad or c.pool:
                    raise ValueError(f"connection {j}: a dense row is kind, n_in, 1, 1, n_out, 0, 0, 0")
                c.n_out = c.c_out
                c.h_conv = c.w_conv = c.h_out = c.w_out = 1
                c.patch = c.n_in
                c.hw = 1
                shape, bias_shape = (c.n_in, c.n_out), (c.n_out,)
                c.flops = 2.0 * c.n_in * c.n_out
            elif c.kind == KIND_CONV:
                if c.k < 1 or c.pad < 0 or c.pool not in (POOL_NONE, POOL_MAX, POOL_AVG):
                    raise ValueError(f"connection {j}: bad kernel, padding or pool")
                c.h_conv = c.h_in + 2 * c.pad - c.k + 1
                c.w_conv = c.w_in + 2 * c.pad - c.k + 1
                if c.h_conv < 1 or c.w_conv < 1:
                    raise ValueError(f"connection {j}: kernel larger than the padded map")
                if c.pool == POOL_NONE:
                    c.h_out, c.w_out = c.h_conv, c.w_conv
                else:
                    c.h_out, c.w_out = c.h_conv // 2, c.w_conv // 2
                    if c.h_out < 1 or c.w_out < 1:
                        raise ValueError(f"connection {j}: pooling needs a map of at least 2x2")
                c.n_out = c.c_out * c.h_out * c.w_out
                c.patch = c.c_in * c.k * c.k
                c.hw = c.h_conv * c.w_conv
                shape, bias_shape = (c.c_out, c.c_in, c.k, c.k), (c.c_out,)
                c.flops = 2.0 * c.c_out * c.patch * c.hw
                self.conv_scratch = max(self.conv_scratch, <size_t> c.hw * (c.patch + c.c_out))
                self.has_max_pool = self.has_max_pool or c.pool == POOL_MAX
            else:
                raise ValueError(f"connection {j}: unknown kind {c.kind}")
            if j > 0 and c.n_in != self.conns[j - 1].n_out:
                raise ValueError(f"connection {j}: takes {c.n_in} inputs; the layer below has {self.conns[j - 1].n_out}")
            if j > 0 and c.kind == KIND_CONV and (
                    c.c_in != self.conns[j - 1].c_out or c.h_in != self.conns[j - 1].h_out
                    or c.w_in != self.conns[j - 1].w_out):
                raise ValueError(f"connection {j}: its input map differs from the layer below")
            for name, array, expected in (("weights", weights[j], shape), ("biases", biases[j], bias_shape)):
                if (not isinstance(array, np.ndarray) or array.dtype != dtype or array.shape != expected
                        or not array.flags.c_contiguous or not array.flags.writeable):
                    raise ValueError(f"{name}[{j}] must be a writeable C-contiguous {dtype} array of shape {expected}")
            c.weights = cnp.PyArray_DATA(<cnp.ndarray> weights[j])
            c.biases = cnp.PyArray_DATA(<cnp.ndarray> biases[j])
            if j == 0:
                sizes.append(c.n_in)
            sizes.append(c.n_out)
        self.layer_sizes = tuple(sizes)
        self._arrays = (list(weights), list(biases))

    def __dealloc__(self):
        free(self.conns)

    @property
    def arrays(self):
        """The (weights, biases) lists the chain points into."""
        return self._arrays

    def flops_per_example(self) -> float:
        """Floating-point operations of one relaxation step (all bottom-up and top-down products) for one example."""
        cdef int j
        cdef double total = 0.0
        for j in range(1, self.n_connections):
            total += 2.0 * self.conns[j].flops
        return total


cdef void _transpose(const floating* a, int rows, int cols, floating* out) noexcept nogil:
    """out (cols x rows) = a (rows x cols)^T."""
    cdef Py_ssize_t r, c
    for r in range(rows):
        for c in range(cols):
            out[c * rows + r] = a[r * cols + c]


cdef void _broadcast_bias(const floating* b, int channels, int positions, floating* out) noexcept nogil:
    cdef Py_ssize_t ch, p
    for ch in range(channels):
        for p in range(positions):
            out[ch * positions + p] = b[ch]


cdef Connection* derived_connections(Chain chain, bint transposes) except NULL:
    """A per-call copy of the chain with W^T (for top-down products, j >= 1) and full biases.

    The copies are made at the start of every relaxation, so that they always
    match the parameters as the caller left them. Free with ``free_derived``.
    """
    cdef int n = chain.n_connections, j, rows, cols
    cdef size_t item = chain.itemsize
    cdef Connection* conns = <Connection*> malloc(n * sizeof(Connection))
    cdef Connection* c
    if conns == NULL:
        raise MemoryError()
    memcpy(conns, chain.conns, n * sizeof(Connection))
    for j in range(n):
        conns[j].weights_t = NULL
        conns[j].bias_full = NULL
    try:
        for j in range(n):
            c = &conns[j]
            if c.kind == KIND_DENSE:
                c.bias_full = c.biases
            else:
                c.bias_full = malloc(<size_t> c.n_out * item)
                if c.bias_full == NULL:
                    raise MemoryError()
                with nogil:
                    if item == 4:
                        _broadcast_bias(<const float*> c.biases, c.c_out, c.h_out * c.w_out, <float*> c.bias_full)
                    else:
                        _broadcast_bias(<const double*> c.biases, c.c_out, c.h_out * c.w_out, <double*> c.bias_full)
            if not transposes or j == 0:  # the clamped input gets no top-down input
                continue
            # dense (n_in, n_out) -> (n_out, n_in); conv (c_out, patch) -> (patch, c_out),
            # the left operand of the transposed convolution
            rows, cols = (c.n_in, c.n_out) if c.kind == KIND_DENSE else (c.c_out, c.patch)
            c.weights_t = malloc(<size_t> rows * cols * item)
            if c.weights_t == NULL:
                raise MemoryError()
            with nogil:
                if item == 4:
                    _transpose(<const float*> c.weights, rows, cols, <float*> c.weights_t)
                else:
                    _transpose(<const double*> c.weights, rows, cols, <double*> c.weights_t)
    except MemoryError:
        free_derived(conns, n)
        raise
    return conns


cdef void free_derived(Connection* conns, int n) noexcept:
    cdef int j
    if conns == NULL:
        return
    for j in range(n):
        free(conns[j].weights_t)
        if conns[j].bias_full != conns[j].biases:
            free(conns[j].bias_full)
    free(conns)


cdef void bottom_up(const Connection* c, const floating* below, int rows, floating* out,
                    int* winners, floating* scratch, int isa) noexcept nogil:
    """out (rows x n_out) = the bottom-up input of the layer above; records max-pool winners.

    ``scratch`` holds hw (patch + c_out) values (conv only); ``winners`` rows x
    n_out ints (max pooling only). Dense uses ``weights_t`` when the output is
    narrow (derived per call; NULL is fine when it is not needed).
    """
    cdef const floating* w = <const floating*> c.weights
    cdef floating* cols
    cdef floating* conv
    cdef int r
    if c.kind == KIND_DENSE:
        small_gemm_with_transpose(rows, c.n_out, c.n_in, below, c.n_in, w, c.n_out,
                                  <const floating*> c.weights_t, False, out, c.n_out, isa)
        return
    cols = scratch
    conv = scratch + <size_t> c.patch * c.hw
    for r in range(rows):
        if floating is float:
            eq_im2col_f32(isa, below + <size_t> r * c.n_in, c.c_in, c.h_in, c.w_in, c.k, c.pad,
                          c.h_conv, c.w_conv, cols, c.hw)
        else:
            eq_im2col_f64(isa, below + <size_t> r * c.n_in, c.c_in, c.h_in, c.w_in, c.k, c.pad,
                          c.h_conv, c.w_conv, cols, c.hw)
        if c.pool == POOL_NONE:
            small_gemm(c.c_out, c.hw, c.patch, w, c.patch, cols, c.hw, False,
                       out + <size_t> r * c.n_out, c.hw, isa)
            continue
        small_gemm(c.c_out, c.hw, c.patch, w, c.patch, cols, c.hw, False, conv, c.hw, isa)
        if c.pool == POOL_MAX:
            if floating is float:
                eq_pool_max_f32(isa, conv, c.c_out, c.h_conv, c.w_conv, out + <size_t> r * c.n_out,
                                winners + <size_t> r * c.n_out)
            else:
                eq_pool_max_f64(isa, conv, c.c_out, c.h_conv, c.w_conv, out + <size_t> r * c.n_out,
                                winners + <size_t> r * c.n_out)
        else:
            if floating is float:
                eq_pool_avg_f32(isa, conv, c.c_out, c.h_conv, c.w_conv, out + <size_t> r * c.n_out)
            else:
                eq_pool_avg_f64(isa, conv, c.c_out, c.h_conv, c.w_conv, out + <size_t> r * c.n_out)


cdef void unpool(const Connection* c, const floating* above, const int* winners,
                 floating* g, int isa) noexcept nogil:
    """g (c_out x hw) = the transpose of the pooling applied to one example's state above."""
    if c.pool == POOL_MAX:
        if floating is float:
            eq_unpool_max_f32(isa, above, winners, c.c_out, c.h_conv, c.w_conv, g)
        else:
            eq_unpool_max_f64(isa, above, winners, c.c_out, c.h_conv, c.w_conv, g)
    elif c.pool == POOL_AVG:
        if floating is float:
            eq_unpool_avg_f32(isa, above, c.c_out, c.h_conv, c.w_conv, g)
        else:
            eq_unpool_avg_f64(isa, above, c.c_out, c.h_conv, c.w_conv, g)
    else:
        memcpy(g, above, <size_t> c.n_out * sizeof(floating))


cdef void top_down(const Connection* c, const floating* above, const int* winners, int rows,
                   floating* out, floating* scratch, int isa) noexcept nogil:
    """out (rows x n_in) += the top-down input the layer above sends to the layer below.

    Needs ``weights_t`` (derived per call) and, for max pooling, the winners
    that ``bottom_up`` recorded for the current state below.
    """
    cdef const floating* wt = <const floating*> c.weights_t
    cdef floating* gcols
    cdef floating* g
    cdef const floating* above_row
    cdef int r
    if c.kind == KIND_DENSE:
        small_gemm(rows, c.n_in, c.n_out, above, c.n_out, wt, c.n_in, True, out, c.n_in, isa)
        return
    gcols = scratch
    g = scratch + <size_t> c.patch * c.hw
    for r in range(rows):
        above_row = above + <size_t> r * c.n_out
        if c.pool == POOL_NONE:
            small_gemm(c.patch, c.hw, c.c_out, wt, c.c_out, above_row, c.hw, False, gcols, c.hw, isa)
        else:
            unpool(c, above_row, winners + <size_t> r * c.n_out, g, isa)
            small_gemm(c.patch, c.hw, c.c_out, wt, c.c_out, g, c.hw, False, gcols, c.hw, isa)
        if floating is float:
            eq_col2im_f32(isa, gcols, c.hw, c.c_in, c.h_in, c.w_in, c.k, c.pad, c.h_conv, c.w_conv,
                          out + <size_t> r * c.n_in)
        else:
            eq_col2im_f64(isa, gcols, c.hw, c.c_in, c.h_in, c.w_in, c.k, c.pad, c.h_conv, c.w_conv,
                          out + <size_t> r * c.n_in)
