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

With ``precision="bfloat16"``, the relaxation's products read bfloat16 copies
of the weights (made per call by ``derived_connections``) and of the states
(rounded per product into the thread's scratch), and sum in float32
(bf16_kernels.h); the update reads the float32 weights. Dense connections and
the direct convolution use AVX512_BF16 where the CPU has it (AMX tiles where it
has those too, amx_kernels.h); on AMX the max-pooled transposed convolution is
a tile product as well, and the other transposed convolutions multiply the
rounded values with the float32 kernels.

The bottom-up convolution is direct (one shifted product per row of the map)
or Winograd's F(m x m, k x k) (winograd.h: transformed tiles, alpha^2 small
products, and back), chosen per connection by ``_winograd_layouts`` when the
derived layouts are made.

Adding a connection kind: a new KIND_ value in _engine.pxd, its geometry check
in Chain, its branch in bottom_up / top_down / unpool (and in the update's
weight gradient, _update.pyx), and a reference test (docs/architecture.md).
"""

cimport numpy as cnp
from cython cimport floating
from libc.stdint cimport uint32_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memmove, memset
from cython.parallel cimport prange

from eqcore._gemm cimport (
    BF16_FALLBACK, BF16_NATIVE, CONV_DIRECT, CONV_WINOGRAD, amx_active, bf16_gemm, conv_algorithm,
    current_isa, small_gemm, small_gemm_with_transpose,
)
from eqcore._kernels cimport (
    eq_bf16_bits, eq_bf16_columns, eq_bf16_pack_channel_pairs_last_native, eq_bf16_pack_pairs_native,
    eq_bf16_pack_pairs_t_native, eq_bf16_pairs,
    eq_bf16_conv_amx, eq_bf16_max_transposed_amx, eq_bf16_round_f32, eq_bf16_shifted,
    eq_max_transposed_f32, eq_max_transposed_f64, eq_pad_map_f32, eq_pad_map_f64,
    eq_pool_avg_cl_f32, eq_pool_avg_cl_f64, eq_pool_max_cl_f32, eq_pool_max_cl_f64,
    eq_shifted_f32, eq_shifted_f64, eq_transpose_f32, eq_transpose_f64, eq_unpool_avg_cl_f32,
    eq_unpool_avg_cl_f64, eq_unpool_avg_f32, eq_unpool_avg_f64, eq_unpool_max_f32,
    eq_unpool_max_f64, eq_wino_input_f32, eq_wino_input_f64, eq_wino_matrices, eq_wino_output_f32,
    eq_wino_output_f64, eq_wino_paired_double, eq_wino_paired_float, eq_wino_scratch, eq_wino_tile,
    eq_wino_weights_f32, eq_wino_weights_f64,
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
    linear_output : bool, default False
        The output layer's state is not clipped to [0, 1] (rho is the identity
        there).
    readout : bool, default False
        The last connection (dense) is a softmax readout outside the energy:
        its "state" holds p = softmax(rho(s_L) W + b), recomputed from the last
        relaxing layer s_L, and in the nudged phase its top-down part carries
        beta (d - p sum(d)) instead of a state (the cross-entropy's nudge,
        _relax.pyx).
    precision : {"float32", "bfloat16"}, default "float32"
        The relaxation's matrix products: in the parameters' dtype, or reading
        bfloat16 copies of the weights and the states with float32 sums
        (float32 parameters only).

    Only the structure that protects memory is checked here; ``eqprop.layers``
    validates architectures with messages for users.
    """

    def __cinit__(self, const int[:, ::1] geometry, list weights, list biases, bint linear_output=False,
                  bint readout=False, str precision="float32"):
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
        if precision not in ("float32", "bfloat16"):
            raise ValueError(f"precision must be 'float32' or 'bfloat16'; got {precision!r}")
        self.bfloat16 = precision == "bfloat16"
        if self.bfloat16 and dtype != np.float32:
            raise TypeError("precision 'bfloat16' needs float32 parameters")
        self.conns = <Connection*> calloc(n, sizeof(Connection))
        if self.conns == NULL:
            raise MemoryError()
        self.n_connections = n
        self.linear_output = linear_output
        self.readout = readout
        if readout and (n < 2 or geometry[n - 1, 0] != KIND_DENSE or linear_output):
            raise ValueError("a readout is a dense last connection above a relaxing layer, with no linear output")
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
                c.ld = c.n_out
                c.h_conv = c.w_conv = c.h_out = c.w_out = c.hp = c.wp = 1
                c.patch = c.n_in
                c.hw = 1
                shape, bias_shape = (c.n_in, c.n_out), (c.n_out,)
                c.flops = 2.0 * c.n_in * c.n_out
            elif c.kind == KIND_CONV:
                if c.k < 1 or c.pad < 0 or c.pool not in (POOL_NONE, POOL_MAX, POOL_AVG):
                    raise ValueError(f"connection {j}: bad kernel, padding or pool")
                c.hp, c.wp = c.h_in + 2 * c.pad, c.w_in + 2 * c.pad
                c.h_conv = c.hp - c.k + 1
                c.w_conv = c.wp - c.k + 1
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
                self.conv_scratch = max(self.conv_scratch, _conv_scratch(c, self.bfloat16))
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
        """Floating-point operations of one relaxation step for one example.

        Every connection above the first is used in both directions (its bottom-up
        and top-down products); the first connection's drive is excluded: it is
        computed once per mini-batch, not per step.
        """
        cdef int j
        cdef double total = 0.0
        for j in range(1, self.n_connections):
            total += 2.0 * self.conns[j].flops
        return total


# Tiles of TILE x TILE keep the strided reads of a transpose in L1; a transpose
# of more than PARALLEL_TRANSPOSE entries is split over the threads by blocks of
# columns (a 1024 x 1024 one, serial and untiled, took 11% of a mini-batch of
# mnist-dhn-2h while the other thread waited).
DEF TILE = 32
DEF PARALLEL_TRANSPOSE = 65536


cdef void _transpose_columns(const floating* a, int rows, int cols, int c0, int c1, floating* out) noexcept nogil:
    """Rows c0..c1 of out (cols x rows) = columns c0..c1 of a (rows x cols), tile by tile."""
    cdef int cb, rb, c, r, c_end, r_end
    for cb in range(c0, c1, TILE):
        c_end = min(cb + TILE, c1)
        for rb in range(0, rows, TILE):
            r_end = min(rb + TILE, rows)
            for c in range(cb, c_end):
                for r in range(rb, r_end):
                    out[<size_t> c * rows + r] = a[<size_t> r * cols + c]


cdef void _transpose(const floating* a, int rows, int cols, floating* out, int threads=1) noexcept nogil:
    """out (cols x rows) = a (rows x cols)^T, on up to ``threads`` threads."""
    cdef int blocks = (cols + 4 * TILE - 1) // (4 * TILE), blk
    if threads <= 1 or blocks < 2 or <long> rows * cols < PARALLEL_TRANSPOSE:
        _transpose_columns(a, rows, cols, 0, cols, out)
        return
    for blk in prange(blocks, num_threads=min(threads, blocks), schedule="static"):
        _transpose_columns(a, rows, cols, blk * 4 * TILE, min((blk + 1) * 4 * TILE, cols), out)


cdef void _broadcast_bias(const floating* b, int channels, int positions, floating* out) noexcept nogil:
    cdef Py_ssize_t ch, p
    for ch in range(channels):
        for p in range(positions):
            out[ch * positions + p] = b[ch]


cdef size_t _conv_scratch(const Connection* c, bint bfloat16) noexcept:
    """Floats of scratch one example's work on conv connection ``c`` needs.

    im2col and the conv output (the update); that covers the padded map (at
    most hw patch values) and the channels-last maps of bottom_up / top_down.
    bfloat16 adds the map below as channel-pair words, the wrapped positions
    of a whole-map AMX convolution (``_native_convolution``) and, for max
    pooling, the AMX transposed convolution's operands (``eq_bf16_max_transposed_amx``).
    """
    cdef size_t floats = <size_t> c.hw * (c.patch + c.c_out)
    cdef size_t windows = <size_t> 4 * c.h_out * c.w_out
    if c.pool == POOL_MAX:  # the map below, a rounded state above, eq_max_transposed's work
        floats = max(floats, <size_t> c.n_in + 3 * <size_t> c.n_out + c.hw + 1)
    if eq_wino_tile(c.k):  # the rounded map below (bfloat16), Winograd's work, the conv map
        floats = max(floats, (<size_t> c.n_in if bfloat16 else 0)
                     + eq_wino_scratch(c.c_in, c.c_out, c.k, c.h_conv, c.w_conv) + <size_t> c.hw * c.c_out)
    if _transposed_winograd_fits(c):  # the map below, the un-pooled state above, Winograd's work
        floats = max(floats, <size_t> c.n_in + <size_t> c.c_out * c.hw
                     + eq_wino_scratch(c.c_out, c.c_in, c.k, c.h_in, c.w_in))
    if not bfloat16:
        return floats
    floats += <size_t> eq_bf16_pairs(c.c_in) * eq_bf16_columns(c.hp * c.wp) + <size_t> c.h_conv * (c.k - 1) * c.c_out
    if c.pool == POOL_MAX:
        floats = max(floats, c.n_in + windows * (eq_bf16_pairs(c.c_out) + <size_t> c.k * c.k * c.c_in))
    return floats


cdef void _patch_offsets(const Connection* c, int* offsets) noexcept nogil:
    """offsets[(ci k + a) k + b] = where value (ci, a, b) of a patch lies in the padded map, from its first."""
    cdef int ci, a, b
    for ci in range(c.c_in):
        for a in range(c.k):
            for b in range(c.k):
                offsets[(ci * c.k + a) * c.k + b] = (ci * c.hp + a) * c.wp + b


cdef void _kernel_taps(const floating* w, int c_out, int c_in, int taps, floating* out) noexcept nogil:
    """out (c_out, k, k, c_in) = w (c_out, c_in, k, k) with the input channel last."""
    cdef int co
    for co in range(c_out):
        _transpose(w + <size_t> co * c_in * taps, c_in, taps, out + <size_t> co * c_in * taps)


cdef size_t _bf16_bytes(int n_in, int n_out, int mode, bint transposed) noexcept nogil:
    """The size of W's (or W^T's) bfloat16 operand in ``mode`` (``_bf16_fill``)."""
    if mode == BF16_NATIVE:
        if transposed:
            return <size_t> eq_bf16_pairs(n_out) * eq_bf16_columns(n_in) * sizeof(uint32_t)
        return <size_t> eq_bf16_pairs(n_in) * eq_bf16_columns(n_out) * sizeof(uint32_t)
    return <size_t> n_in * n_out * sizeof(float)


cdef void _bf16_fill(const float* w, int n_in, int n_out, int mode, bint transposed, void* out,
                     int threads=1) noexcept nogil:
    """W (n_in x n_out) or W^T as the bfloat16 operand of ``_gemm.bf16_gemm`` in ``mode``.

    Native: the pair layout of W (pairs along n_in) or of W^T (pairs along
    n_out), its pairs split over up to ``threads`` threads when W has more
    than PARALLEL_TRANSPOSE entries (the same words either way). Fallback: W
    or W^T rounded to bfloat16, as float32.
    """
    cdef float* t = <float*> out
    cdef int pairs, parts, part, p0, p1
    if mode == BF16_NATIVE:
        pairs = eq_bf16_pairs(n_out if transposed else n_in)
        parts = 1
        if threads > 1 and <long> n_in * n_out >= PARALLEL_TRANSPOSE:
            parts = min(threads, pairs)
        if parts <= 1:
            _bf16_fill_pairs(w, n_in, n_out, transposed, 0, pairs, <uint32_t*> out)
            return
        for part in prange(parts, num_threads=parts, schedule="static", chunksize=1):
            p0 = <int> (<long> pairs * part // parts)
            p1 = <int> (<long> pairs * (part + 1) // parts)
            _bf16_fill_pairs(w, n_in, n_out, transposed, p0, p1, <uint32_t*> out)
    elif transposed:
        _transpose(w, n_in, n_out, t)
        eq_bf16_round_f32(n_out, n_in, t, n_in, t, n_in)
    else:
        eq_bf16_round_f32(n_in, n_out, w, n_out, t, n_out)


cdef inline void _bf16_fill_pairs(const float* w, int n_in, int n_out, bint transposed, int p0, int p1,
                                  uint32_t* out) noexcept nogil:
    """Pairs p0 .. p1 of the native pair layout of W or W^T (``_bf16_fill``)."""
    if p1 <= p0:
        return
    if transposed:  # pairs of W's columns, each a row of the layout over n_in
        eq_bf16_pack_pairs_t_native(n_in, min(n_out, 2 * p1) - 2 * p0, w + 2 * p0, n_out,
                                    out + <size_t> p0 * eq_bf16_columns(n_in))
    else:  # pairs of W's rows
        eq_bf16_pack_pairs_native(min(n_in, 2 * p1) - 2 * p0, n_out, w + <size_t> 2 * p0 * n_out, n_out,
                                  out + <size_t> p0 * eq_bf16_columns(n_out))


cdef void _conv_pairs(Connection* c) noexcept nogil:
    """The native direct convolution's operands: W's pair layout and the pair offsets.

    Pair p = (cp k + a) k + b holds input channels 2 cp and 2 cp + 1 at kernel
    position (a, b) (a zero partner past c_in): weights_bf[p][co] =
    bf16(W[co, 2cp, a, b]) | bf16(W[co, 2cp + 1, a, b]) << 16, columns padded to
    16; offsets_bf[p] = its word in the pair map below (rows of
    eq_bf16_columns(hp wp) words, one per channel pair), from a patch's first.
    On AMX (``conv_amx``) the pairs go in the order p = t cpairs + cp instead,
    and offsets_bf[t] is tap t's first word in the map with channel pairs last.
    """
    cdef int taps = c.k * c.k, np = eq_bf16_columns(c.c_out), stride = eq_bf16_columns(c.hp * c.wp)
    cdef int cp, t, co, lo, p
    cdef const float* w = <const float*> c.weights
    cdef uint32_t* out = <uint32_t*> c.weights_bf
    cdef uint32_t high
    cdef int cpairs = eq_bf16_pairs(c.c_in)
    for cp in range(cpairs):
        for t in range(taps):
            if c.conv_amx:  # AMX: pairs in the order (tap, channel pair), one offset per tap
                p = t * cpairs + cp
                c.offsets_bf[t] = ((t // c.k) * c.wp + t % c.k) * cpairs
            else:
                p = cp * taps + t
                c.offsets_bf[p] = cp * stride + (t // c.k) * c.wp + t % c.k
            lo = 2 * cp * taps + t  # (channel 2 cp, tap t) in a row of W's (c_in, k, k)
            for co in range(np):
                if co >= c.c_out:
                    out[<size_t> p * np + co] = 0
                    continue
                high = 0
                if 2 * cp + 1 < c.c_in:
                    high = <uint32_t> eq_bf16_bits(w[<size_t> co * c.patch + lo + taps]) << 16
                out[<size_t> p * np + co] = eq_bf16_bits(w[<size_t> co * c.patch + lo]) | high


cdef Connection* derived_connections(Chain chain, bint transposes, int bf16=0, bint drive=True,
                                     int threads=1) except NULL:
    """A copy of the chain with the weight layouts the products read, and full biases.

    Conv connections get W as (patch, c_out) and the patch offsets (bottom-up
    products); with ``transposes``, the connections above the input get the
    top-down layouts: dense W^T, conv W as (c_out, k, k, c_in). The copies are
    made here (``refresh_derived``), so that they match the parameters as the
    caller left them; a caller that keeps them across updates (the compiled
    epoch loop) refreshes them. Free with ``free_derived``.

    ``bf16`` (a ``_gemm.BF16_*`` mode, for a bfloat16 chain): the dense
    connections get bfloat16 copies instead, W for the bottom-up product and
    (with ``transposes``, above the input) W^T for the top-down one; without
    ``drive`` the first connection gets none (its product, the drive, is
    already computed). Conv connections keep their layouts, rounded to
    bfloat16 (the transposed convolutions, and the direct one in the
    fallback, run on the float32 kernels); native, they also get the pair
    layout and offsets of the AVX512_BF16 direct convolution, and on AMX a
    max-pooled one above the input gets its taps' pair layout
    (``weights_t_bf``) for the AMX transposed convolution.
    """
    cdef int n = chain.n_connections, j
    cdef size_t item = chain.itemsize
    cdef Connection* conns = <Connection*> malloc(n * sizeof(Connection))
    cdef Connection* c
    if conns == NULL:
        raise MemoryError()
    memcpy(conns, chain.conns, n * sizeof(Connection))
    for j in range(n):
        conns[j].weights_t = NULL
        conns[j].weights_taps = NULL
        conns[j].offsets = NULL
        conns[j].bias_full = NULL
        conns[j].bf16 = bf16
        conns[j].weights_bf = NULL
        conns[j].weights_t_bf = NULL
        conns[j].offsets_bf = NULL
        conns[j].conv_amx = False
        conns[j].wino_m = 0
        conns[j].wino_u = NULL
        conns[j].wino_t_u = NULL
        conns[j].wino_mats = NULL
        conns[j].wino_paired = False
    try:
        for j in range(n):
            c = &conns[j]
            if c.kind == KIND_DENSE:
                c.bias_full = c.biases
                if bf16:
                    if j > 0 or drive:
                        c.weights_bf = _checked_malloc(_bf16_bytes(c.n_in, c.n_out, bf16, False))
                    if transposes and j > 0:
                        c.weights_t_bf = _checked_malloc(_bf16_bytes(c.n_in, c.n_out, bf16, True))
                elif transposes and j > 0:  # the clamped input gets no top-down input
                    c.weights_t = _checked_malloc(<size_t> c.n_in * c.n_out * item)
                continue
            c.bias_full = _checked_malloc(<size_t> c.n_out * item)
            c.weights_t = _checked_malloc(<size_t> c.c_out * c.patch * item)
            c.offsets = <int*> _checked_malloc(<size_t> c.patch * sizeof(int))
            if transposes and j > 0:
                c.weights_taps = _checked_malloc(<size_t> c.c_out * c.patch * item)
            c.conv_amx = bf16 == BF16_NATIVE and amx_active()
            _winograd_layouts(c, bf16, item)
            if bf16 == BF16_NATIVE and not c.wino_m:  # the AVX512_BF16 / AMX direct convolution's operands
                c.weights_bf = _checked_malloc(<size_t> eq_bf16_pairs(c.c_in) * c.k * c.k
                                               * eq_bf16_columns(c.c_out) * sizeof(uint32_t))
                c.offsets_bf = <int*> _checked_malloc(<size_t> eq_bf16_pairs(c.c_in) * c.k * c.k * sizeof(int))
                if c.conv_amx and c.weights_taps != NULL and c.pool == POOL_MAX:
                    c.weights_t_bf = _checked_malloc(<size_t> eq_bf16_pairs(c.c_out)
                                                     * eq_bf16_columns(c.patch) * sizeof(uint32_t))
    except MemoryError:
        free_derived(conns, n)
        raise
    with nogil:
        refresh_derived(conns, n, item, threads)
    return conns


# Winograd's "auto" choice: below this many input channels the products are too short
# for the transforms to pay (python tools/conv_algorithms.py on Zen 4, relaxation steps:
# 0.78-1.18x the direct convolution's speed over 4 and 8 input channels, below 1 in 7 of 8
# measurements; 1.01-1.05x over 16; 1.04-2.1x over 32 to 128; docs/performance.md).
DEF WINOGRAD_MIN_CHANNELS = 32


cdef bint _winograd_pays(int kernel, int channels) noexcept:
    """Whether the convolution algorithm in force takes Winograd for a kernel size and input channel count."""
    cdef int algorithm = conv_algorithm()
    if eq_wino_tile(kernel) == 0 or algorithm == CONV_DIRECT:
        return False
    return algorithm == CONV_WINOGRAD or channels >= WINOGRAD_MIN_CHANNELS


cdef bint _transposed_winograd_fits(const Connection* c) noexcept:
    """Whether conv connection ``c``'s transposed convolution can run by Winograd's algorithm: a kernel
    Winograd takes, average or no pooling (max pooling has its sparse kernel), padding below k (the
    transposed convolution pads the map above by k - 1 - pad)."""
    return eq_wino_tile(c.k) != 0 and c.pool != POOL_MAX and c.pad <= c.k - 1


cdef void _winograd_layouts(Connection* c, int bf16, size_t item) except *:
    """Choose Winograd or direct for conv connection ``c``'s bottom-up and (with its top-down layouts,
    ``weights_taps``) transposed convolutions; allocate the transformed kernels (filled by
    ``refresh_derived``) and fill the transforms of F(m x m, k x k) (and whether they take their paired forms)."""
    cdef int m = eq_wino_tile(c.k), alpha = eq_wino_tile(c.k) + c.k - 1, i
    cdef int sizes = m * alpha + alpha * alpha + alpha * c.k
    cdef size_t kernels = <size_t> alpha * alpha * c.c_in * c.c_out * item
    cdef double mats[192]  # 3 matrices of at most 8 x 8 (winograd.h: alpha <= 8)
    # AMX keeps its direct convolution (its tile products do the multiply-adds at twice the AVX512_BF16
    # rate, measured faster on the Intel machine). AVX512_BF16 takes Winograd on the rounded operands:
    # with the paired transforms, 1.2x its direct convolution on Zen 4 (docs/performance.md).
    if _winograd_pays(c.k, c.c_in) and not c.conv_amx:
        c.wino_m = m
        c.wino_u = _checked_malloc(kernels + <size_t> alpha * c.k * c.c_out * item)  # U, then its refresh's work
    if c.weights_taps != NULL and _transposed_winograd_fits(c) and _winograd_pays(c.k, c.c_out):
        c.wino_t_u = _checked_malloc(kernels + <size_t> alpha * c.k * c.c_in * item)
    if c.wino_u == NULL and c.wino_t_u == NULL:
        return
    c.wino_mats = _checked_malloc(<size_t> sizes * item)
    eq_wino_matrices(m, c.k, mats, mats + m * alpha + alpha * alpha, mats + m * alpha)
    for i in range(sizes):
        if item == 4:
            (<float*> c.wino_mats)[i] = <float> mats[i]
        else:
            (<double*> c.wino_mats)[i] = mats[i]
    if item == 4:
        c.wino_paired = eq_wino_paired_float(<const float*> c.wino_mats, m, c.k)
    else:
        c.wino_paired = eq_wino_paired_double(<const double*> c.wino_mats, m, c.k)


cdef void _transformed_kernels(const floating* wt, int c_in, int c_out, int k, const floating* g, bint flip,
                               floating* u, int isa) noexcept nogil:
    """u (alpha^2 x c_in x c_out, then the refresh's work) = G W G^T from wt (c_in k k x c_out; turned: ``flip``)."""
    cdef int alpha = eq_wino_tile(k) + k - 1
    cdef floating* work = u + <size_t> alpha * alpha * c_in * c_out
    if floating is float:
        eq_wino_weights_f32(isa, wt, c_in, c_out, k, alpha, g, flip, u, work)
    else:
        eq_wino_weights_f64(isa, wt, c_in, c_out, k, alpha, g, flip, u, work)


cdef void _refresh_winograd(Connection* c, size_t item) noexcept nogil:
    """U = G W G^T for every (input, output) channel pair, from ``weights_t`` (as the products read it),
    and the transposed convolution's from ``weights_taps``, the kernel turned."""
    cdef int alpha = eq_wino_tile(c.k) + c.k - 1, isa = current_isa()
    cdef size_t g_at = <size_t> (alpha - c.k + 1) * alpha + alpha * alpha  # G follows A^T and B^T
    if item == 4:
        if c.wino_u != NULL:
            _transformed_kernels(<const float*> c.weights_t, c.c_in, c.c_out, c.k, <const float*> c.wino_mats + g_at,
                                 False, <float*> c.wino_u, isa)
        if c.wino_t_u != NULL:
            _transformed_kernels(<const float*> c.weights_taps, c.c_out, c.c_in, c.k,
                                 <const float*> c.wino_mats + g_at, True, <float*> c.wino_t_u, isa)
    else:
        if c.wino_u != NULL:
            _transformed_kernels(<const double*> c.weights_t, c.c_in, c.c_out, c.k,
                                 <const double*> c.wino_mats + g_at, False, <double*> c.wino_u, isa)
        if c.wino_t_u != NULL:
            _transformed_kernels(<const double*> c.weights_taps, c.c_out, c.c_in, c.k,
                                 <const double*> c.wino_mats + g_at, True, <double*> c.wino_t_u, isa)


cdef void refresh_derived(Connection* conns, int n, size_t item, int threads=1,
                          const bint* kept=NULL) noexcept nogil:
    """Recompute the derived layouts of ``derived_connections`` from the parameters as they are now.

    The compiled epoch loop (_epoch.pyx) allocates them once and refreshes
    them before every mini-batch, after the previous update; ``kept[j]``: the
    update keeps dense connection j's transpose current itself (_update.keeps_transpose).
    """
    cdef int j
    cdef Connection* c
    for j in range(n):
        c = &conns[j]
        if c.kind == KIND_DENSE:
            if c.weights_t != NULL and (kept == NULL or not kept[j]):
                if item == 4:
                    _transpose(<const float*> c.weights, c.n_in, c.n_out, <float*> c.weights_t, threads)
                else:
                    _transpose(<const double*> c.weights, c.n_in, c.n_out, <double*> c.weights_t, threads)
            if c.weights_bf != NULL:
                _bf16_fill(<const float*> c.weights, c.n_in, c.n_out, c.bf16, False, c.weights_bf, threads)
            if c.weights_t_bf != NULL:
                _bf16_fill(<const float*> c.weights, c.n_in, c.n_out, c.bf16, True, c.weights_t_bf, threads)
            continue
        if c.weights_bf != NULL:
            _conv_pairs(c)
        _patch_offsets(c, c.offsets)
        if item == 4:
            _broadcast_bias(<const float*> c.biases, c.c_out, c.h_out * c.w_out, <float*> c.bias_full)
            _transpose(<const float*> c.weights, c.c_out, c.patch, <float*> c.weights_t)
            if c.weights_taps != NULL:
                _kernel_taps(<const float*> c.weights, c.c_out, c.c_in, c.k * c.k, <float*> c.weights_taps)
            if c.bf16:
                eq_bf16_round_f32(1, c.c_out * c.patch, <const float*> c.weights_t, 0, <float*> c.weights_t, 0)
                if c.weights_taps != NULL:
                    eq_bf16_round_f32(1, c.c_out * c.patch, <const float*> c.weights_taps, 0,
                                      <float*> c.weights_taps, 0)
                if c.weights_t_bf != NULL:  # taps (c_out x k k c_in) in the pair layout
                    eq_bf16_pack_pairs_native(c.c_out, c.patch, <const float*> c.weights_taps, c.patch,
                                              <uint32_t*> c.weights_t_bf)
        else:
            _broadcast_bias(<const double*> c.biases, c.c_out, c.h_out * c.w_out, <double*> c.bias_full)
            _transpose(<const double*> c.weights, c.c_out, c.patch, <double*> c.weights_t)
            if c.weights_taps != NULL:
                _kernel_taps(<const double*> c.weights, c.c_out, c.c_in, c.k * c.k, <double*> c.weights_taps)
        if c.wino_mats != NULL:
            _refresh_winograd(c, item)


cdef extern from "<stdlib.h>" nogil:
    int posix_memalign(void** memptr, size_t alignment, size_t size)


cdef int padded_rows(int n, size_t item) noexcept nogil:
    """A row stride for rows of ``n`` values of ``item`` bytes: whole cache lines, an odd number of them.

    Rows of 500 floats (2,000 bytes) start at every offset a vector load can
    straddle two lines from; rows of 512 (2,048 bytes) map the same columns of
    consecutive rows to the same few sets of a 32 KB L1 (data/perf/drive-ld-bench.c:
    one thread's half of the MNIST drive 29.1-29.9 us at 500 floats, 33.5 at 512,
    26.8-27.1 at 528).
    """
    cdef size_t lines = (<size_t> n * item + 63) // 64
    if lines % 2 == 0:
        lines += 1
    return <int> (lines * 64 // item)


cdef void* line_malloc(size_t size) noexcept nogil:
    """``malloc`` on a cache line (NULL when out of memory; ``free`` releases it). A 64-byte
    vector load that straddles two lines costs two loads (docs/performance.md, "On an Intel
    Xeon", and the sixth session's rows of states on Zen 4); malloc and NumPy give 16 or 32 bytes."""
    cdef void* p = NULL
    if posix_memalign(&p, 64, size if size else 1) != 0:
        return NULL
    return p


cdef void* _checked_malloc(size_t size) except NULL:
    cdef void* p = line_malloc(size)
    if p == NULL:
        raise MemoryError()
    return p


cdef void free_derived(Connection* conns, int n) noexcept:
    cdef int j
    if conns == NULL:
        return
    for j in range(n):
        free(conns[j].weights_t)
        free(conns[j].weights_taps)
        free(conns[j].offsets)
        free(conns[j].weights_bf)
        free(conns[j].weights_t_bf)
        free(conns[j].offsets_bf)
        free(conns[j].wino_u)
        free(conns[j].wino_t_u)
        free(conns[j].wino_mats)
        if conns[j].bias_full != conns[j].biases:
            free(conns[j].bias_full)
    free(conns)


cdef void _native_convolution(const Connection* c, const float* src, uint32_t* pairs, float* conv) noexcept nogil:
    """conv (hw x c_out, channels last) = W * src in AVX512_BF16: src's channel pairs into ``pairs``, then
    one shifted pair product per row of the convolution's map (``weights_bf``, ``offsets_bf``); on AMX,
    one product for the whole map (``conv`` holds h_conv wp x c_out floats)."""
    cdef int y, cpairs = eq_bf16_pairs(c.c_in), n_pairs = eq_bf16_pairs(c.c_in) * c.k * c.k
    cdef size_t row = <size_t> c.w_conv * c.c_out
    if c.conv_amx:
        # the whole map in one product, its rows wp positions apart (full tiles of 16 rows, one
        # tile configuration); a row's last k - 1 positions wrap to the next row, and are dropped
        eq_bf16_pack_channel_pairs_last_native(src, c.c_in, c.hp * c.wp, pairs)
        eq_bf16_conv_amx((c.h_conv - 1) * c.wp + c.w_conv, c.c_out, c.k * c.k, cpairs, pairs,
                         c.offsets_bf, <const uint32_t*> c.weights_bf, conv, c.c_out)
        for y in range(1, c.h_conv):
            memmove(conv + y * row, conv + <size_t> y * c.wp * c.c_out, row * sizeof(float))
        return
    eq_bf16_pack_pairs_native(c.c_in, c.hp * c.wp, src, c.hp * c.wp, pairs)
    for y in range(c.h_conv):
        eq_bf16_shifted(c.w_conv, c.c_out, n_pairs, pairs + <size_t> y * c.wp, <const uint32_t*> c.weights_bf,
                        conv + <size_t> y * c.w_conv * c.c_out, c.c_out, c.offsets_bf)


cdef void _winograd_convolution(const floating* src, int c_in, int h, int w, int pad, int k, int c_out,
                                int hc, int wc, const floating* u, const floating* mats, bint paired,
                                floating* work, floating* conv, int isa) noexcept nogil:
    """conv (hc wc x c_out, channels last) = the convolution of one example's src (c_in x h x w, padded by
    ``pad``) by Winograd's F(m x m, k x k) (winograd.h), with U (alpha^2 x c_in x c_out) and the transforms
    ``mats`` (A^T, then B^T), in their paired forms with ``paired`` (``eq_wino_paired``).

    ``work`` holds ``eq_wino_scratch`` items: the padded map channels-last,
    V, M and two byte masks.
    """
    cdef int m = eq_wino_tile(k), alpha = eq_wino_tile(k) + k - 1, pos
    cdef int tiles = ((hc + m - 1) // m) * ((wc + m - 1) // m)
    cdef int hx = (hc + m - 1) // m * m + k - 1, wx = (wc + m - 1) // m * m + k - 1
    cdef int a2 = alpha * alpha
    cdef floating* v = work + <size_t> hx * wx * c_in
    cdef floating* mm = v + <size_t> a2 * tiles * c_in
    cdef unsigned char* field = <unsigned char*> (mm + <size_t> a2 * tiles * c_out)
    cdef unsigned char* any_input = field + <size_t> hc * wc
    if floating is float:
        eq_wino_input_f32(isa, src, c_in, h, w, pad, k, m, mats + m * alpha, paired, hc, wc, work, any_input,
                          field, v)
    else:
        eq_wino_input_f64(isa, src, c_in, h, w, pad, k, m, mats + m * alpha, paired, hc, wc, work, any_input,
                          field, v)
    for pos in range(a2):
        small_gemm(tiles, c_out, c_in, v + <size_t> pos * tiles * c_in, c_in, u + <size_t> pos * c_in * c_out,
                   c_out, False, mm + <size_t> pos * tiles * c_out, c_out, isa)
    if floating is float:
        eq_wino_output_f32(isa, mm, c_out, k, m, mats, paired, hc, wc, field, conv)
    else:
        eq_wino_output_f64(isa, mm, c_out, k, m, mats, paired, hc, wc, field, conv)


cdef void bottom_up(const Connection* c, const floating* below, int rows, floating* out,
                    int* winners, floating* scratch, int isa) noexcept nogil:
    """out (rows x n_out) = the bottom-up input of the layer above; records max-pool winners.

    ``scratch`` holds hw (patch + c_out) values (conv; in bfloat16 the padded
    map below is rounded in place there, and natively its pair map follows it,
    which ``Chain.conv_scratch`` counts) or, for a bfloat16 dense connection,
    rows x n_in (the rounded states); ``winners`` rows x n_out ints (max
    pooling only). Needs the derived layouts (conv: ``weights_t`` and
    ``offsets``, native bfloat16 ``weights_bf`` and ``offsets_bf``; dense uses
    ``weights_t`` when the output is narrow and accepts NULL; bfloat16 dense:
    ``weights_bf``).

    A conv connection runs as a direct convolution: for each row of the output
    map, the shifted-product kernel broadcasts the patch values from the
    (padded) input map and accumulates all output channels in registers, into
    a channels-last map that the pooling reads. With ``wino_m`` set it runs
    Winograd's algorithm instead (``_winograd_convolution``; its work follows
    the rounded map below in bfloat16), into the same map.
    """
    cdef const floating* wt = <const floating*> c.weights_t
    cdef const floating* src
    cdef floating* conv
    cdef floating* work = NULL
    cdef floating* dst
    cdef int r, y
    cdef bint rounded = False, native = False
    cdef uint32_t* pairs = NULL
    if c.kind == KIND_DENSE:
        if floating is float:
            if c.bf16:
                bf16_gemm(c.bf16, rows, c.n_out, c.n_in, below, c.n_in, c.weights_bf,
                          <const float*> c.weights_t_bf if c.bf16 == BF16_FALLBACK else NULL,
                          False, out, c.n_out, scratch, NULL, False, isa)
                return
        small_gemm_with_transpose(rows, c.n_out, c.n_in, below, c.n_in, <const floating*> c.weights,
                                  c.ld, wt, False, out, c.n_out, isa)
        return
    if floating is float:
        rounded = c.bf16 != 0
        native = c.bf16 == BF16_NATIVE and c.weights_bf != NULL
    conv = scratch + (<size_t> c.c_in * c.hp * c.wp if c.pad or rounded else 0)
    if c.wino_m:
        work = scratch + (<size_t> c.n_in if rounded else 0)
        conv = work + eq_wino_scratch(c.c_in, c.c_out, c.k, c.h_conv, c.w_conv)
    elif native:  # the pair map below after the padded map, then the convolution
        pairs = <uint32_t*> conv
        conv = conv + <size_t> eq_bf16_pairs(c.c_in) * eq_bf16_columns(c.hp * c.wp)
    for r in range(rows):
        src = below + <size_t> r * c.n_in
        if c.wino_m:
            if floating is float:
                if rounded:  # the map below in bfloat16
                    eq_bf16_round_f32(1, c.n_in, src, 0, scratch, 0)
                    src = scratch
            _winograd_convolution(src, c.c_in, c.h_in, c.w_in, c.pad, c.k, c.c_out, c.h_conv, c.w_conv,
                                  <const floating*> c.wino_u, <const floating*> c.wino_mats, c.wino_paired, work,
                                  conv, isa)
        else:
            if c.pad:
                if floating is float:
                    eq_pad_map_f32(isa, src, c.c_in, c.h_in, c.w_in, c.pad, scratch)
                else:
                    eq_pad_map_f64(isa, src, c.c_in, c.h_in, c.w_in, c.pad, scratch)
                src = scratch
            if native:
                if floating is float:
                    _native_convolution(c, src, pairs, conv)
            else:
                if floating is float:
                    if rounded:  # the map below in bfloat16 (in place when padded)
                        eq_bf16_round_f32(1, c.c_in * c.hp * c.wp, src, 0, scratch, 0)
                        src = scratch
                for y in range(c.h_conv):
                    if floating is float:
                        eq_shifted_f32(isa, c.w_conv, c.c_out, c.patch, src + <size_t> y * c.wp, wt, c.c_out,
                                       conv + <size_t> y * c.w_conv * c.c_out, c.c_out, c.offsets)
                    else:
                        eq_shifted_f64(isa, c.w_conv, c.c_out, c.patch, src + <size_t> y * c.wp, wt, c.c_out,
                                       conv + <size_t> y * c.w_conv * c.c_out, c.c_out, c.offsets)
        dst = out + <size_t> r * c.n_out
        if c.pool == POOL_MAX:
            if floating is float:
                eq_pool_max_cl_f32(isa, conv, c.c_out, c.h_conv, c.w_conv, dst, winners + <size_t> r * c.n_out)
            else:
                eq_pool_max_cl_f64(isa, conv, c.c_out, c.h_conv, c.w_conv, dst, winners + <size_t> r * c.n_out)
        elif c.pool == POOL_AVG:
            if floating is float:
                eq_pool_avg_cl_f32(isa, conv, c.c_out, c.h_conv, c.w_conv, dst)
            else:
                eq_pool_avg_cl_f64(isa, conv, c.c_out, c.h_conv, c.w_conv, dst)
        else:
            if floating is float:
                eq_transpose_f32(isa, conv, c.hw, c.c_out, 0, dst)
            else:
                eq_transpose_f64(isa, conv, c.hw, c.c_out, 0, dst)


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
                   floating* out, bint accumulate, floating* scratch, int isa) noexcept nogil:
    """out (rows x n_in) += (or, without ``accumulate``, =) the top-down input the layer above sends
    to the layer below.

    Needs the derived layouts (dense ``weights_t``, or ``weights_t_bf`` with
    rows x n_out floats of ``scratch`` in bfloat16; conv ``weights_taps``,
    rounded in bfloat16, where the state above is rounded too) and,
    for max pooling, the winners that ``bottom_up`` recorded for the current
    state below. A conv connection accumulates into a channels-last map of the
    layer below: with max pooling straight from the pooled state (each
    non-zero value reaches k^2 positions below its winner); otherwise one
    product per kernel tap and row of the un-pooled map, shifted into place.
    """
    cdef const floating* taps = <const floating*> c.weights_taps
    cdef floating* out_cl = scratch
    cdef floating* g = scratch + <size_t> c.n_in
    cdef const floating* above_row
    cdef int r, a, b, y, yi, x_lo, x_hi, positions = c.h_in * c.w_in
    if c.kind == KIND_DENSE:
        if floating is float:
            if c.bf16:
                bf16_gemm(c.bf16, rows, c.n_in, c.n_out, above, c.n_out, c.weights_t_bf, NULL, accumulate,
                          out, c.n_in, scratch, NULL, False, isa)
                return
        small_gemm(rows, c.n_in, c.n_out, above, c.n_out, <const floating*> c.weights_t, c.n_in,
                   accumulate, out, c.n_in, isa)
        return
    for r in range(rows):
        above_row = above + <size_t> r * c.n_out
        memset(out_cl, 0, <size_t> c.n_in * sizeof(floating))
        if floating is float:
            if c.weights_t_bf != NULL:
                eq_bf16_max_transposed_amx(above_row, winners + <size_t> r * c.n_out,
                                           <const uint32_t*> c.weights_t_bf, c.c_out, c.h_out, c.w_out,
                                           c.w_conv, c.c_in, c.h_in, c.w_in, c.k, c.pad, g, out_cl)
                eq_transpose_f32(isa, out_cl, positions, c.c_in, accumulate, out + <size_t> r * c.n_in)
                continue
            if c.bf16 and c.pool == POOL_MAX:  # the pooled state in bfloat16, in g's (unused) room
                eq_bf16_round_f32(1, c.n_out, above_row, 0, g, 0)
                above_row = g
        if c.pool == POOL_MAX:  # its work after the (rounded) state above in g
            if floating is float:
                eq_max_transposed_f32(isa, above_row, winners + <size_t> r * c.n_out, taps, c.c_out, c.h_out,
                                      c.w_out, c.h_conv, c.w_conv, c.c_in, c.h_in, c.w_in, c.k, c.pad,
                                      g + c.n_out, out_cl)
            else:
                eq_max_transposed_f64(isa, above_row, winners + <size_t> r * c.n_out, taps, c.c_out, c.h_out,
                                      c.w_out, c.h_conv, c.w_conv, c.c_in, c.h_in, c.w_in, c.k, c.pad,
                                      g + c.n_out, out_cl)
        elif c.wino_t_u != NULL:  # Winograd: the un-pooled state above (channels first) convolved
            if c.pool == POOL_AVG:
                if floating is float:
                    eq_unpool_avg_f32(isa, above_row, c.c_out, c.h_conv, c.w_conv, g)
                else:
                    eq_unpool_avg_f64(isa, above_row, c.c_out, c.h_conv, c.w_conv, g)
                above_row = g
            if floating is float:
                if c.bf16:  # the un-pooled state above in bfloat16 (avg: a quarter, exact)
                    eq_bf16_round_f32(1, c.hw * c.c_out, above_row, 0, g, 0)
                    above_row = g
            _winograd_convolution(above_row, c.c_out, c.h_conv, c.w_conv, c.k - 1 - c.pad, c.k, c.c_in, c.h_in,
                                  c.w_in, <const floating*> c.wino_t_u, <const floating*> c.wino_mats,
                                  c.wino_paired, g + <size_t> c.hw * c.c_out, out_cl, isa)
        else:
            if c.pool == POOL_AVG:
                if floating is float:
                    eq_unpool_avg_cl_f32(isa, above_row, c.c_out, c.h_conv, c.w_conv, g)
                else:
                    eq_unpool_avg_cl_f64(isa, above_row, c.c_out, c.h_conv, c.w_conv, g)
            elif floating is float:
                eq_transpose_f32(isa, above_row, c.c_out, c.hw, 0, g)
            else:
                eq_transpose_f64(isa, above_row, c.c_out, c.hw, 0, g)
            if floating is float:
                if c.bf16:  # the un-pooled state above in bfloat16 (avg: a quarter, exact)
                    eq_bf16_round_f32(1, c.hw * c.c_out, g, 0, g, 0)
            for a in range(c.k):
                for b in range(c.k):
                    x_lo = max(0, c.pad - b)
                    x_hi = min(c.w_conv, c.w_in + c.pad - b)
                    if x_hi <= x_lo:
                        continue
                    for y in range(c.h_conv):
                        yi = y + a - c.pad
                        if yi < 0 or yi >= c.h_in:
                            continue
                        small_gemm(x_hi - x_lo, c.c_in, c.c_out, g + (<size_t> y * c.w_conv + x_lo) * c.c_out,
                                   c.c_out, taps + <size_t> (a * c.k + b) * c.c_in, c.k * c.k * c.c_in, True,
                                   out_cl + (<size_t> yi * c.w_in + x_lo + b - c.pad) * c.c_in, c.c_in, isa)
        if floating is float:
            eq_transpose_f32(isa, out_cl, positions, c.c_in, accumulate, out + <size_t> r * c.n_in)
        else:
            eq_transpose_f64(isa, out_cl, positions, c.c_in, accumulate, out + <size_t> r * c.n_in)
