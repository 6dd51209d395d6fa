# The network as the core sees it: a chain of connections, each joining layer
# j (below; layer 0 is the clamped input) to layer j + 1 (above), described
# once as a C struct array (Chain) and dispatched on its kind inside nogil
# loops. See docs/architecture.md.
from cython cimport floating

cdef enum:
    KIND_DENSE = 0
    KIND_CONV = 1

cdef enum:
    POOL_NONE = 0
    POOL_MAX = 1
    POOL_AVG = 2

# Columns of the geometry array a Chain is built from.
cdef enum:
    GEOMETRY_FIELDS = 8

cdef struct Connection:
    int kind
    int n_in, n_out            # flat sizes of the layers below and above
    int c_in, h_in, w_in       # the layer below as a map (dense: n_in x 1 x 1)
    int c_out, k, pad, pool    # dense: c_out = n_out
    int h_conv, w_conv         # the convolution's map, before pooling
    int h_out, w_out           # the layer above's map
    int patch                  # c_in k^2: one column of the unfolded input
    int hw                     # h_conv w_conv
    int hp, wp                 # the layer below's map with its zero padding
    double flops               # one bottom-up product, per example
    void* weights              # dense (n_in, n_out); conv (c_out, c_in, k, k)
    int ld                     # dense: weights' row stride, n_out (the compiled loop pads W_0's: padded_rows)
    void* biases               # the layer above's bias: (n_out,) dense, (c_out,) conv
    void* weights_t            # per call: dense W^T (n_out, n_in); conv W as (patch, c_out)
    void* weights_taps         # per call, conv: W as (c_out, k, k, c_in), for the transposed convolution
    int* offsets               # per call, conv: (patch,) offsets of a patch's values in the padded map below
    void* bias_full            # per call: the bias at every unit of the layer above (n_out,)
    int bf16                   # per call: the bfloat16 products' mode (_gemm.BF16_*), 0 for float32
    void* weights_bf           # per call, bf16 dense: W for the bottom-up product (native: pair layout);
                               # native conv: W's pair layout over (channel pair, kernel row, column)
    int* offsets_bf            # per call, native conv: (pairs,) a patch's pair offsets in the pair map below
                               # (AMX: (taps,) each tap's first word in the channels-last pair map)
    int conv_amx               # per call, native conv: the direct convolution runs on AMX tiles
    void* weights_t_bf         # per call, bf16 dense above the input: W^T for the top-down product;
                               # AMX conv with max pooling: weights_taps' pair layout (c_out x k k c_in)
    int wino_m                 # per call, conv: the output tile side of Winograd's F(m x m, k x k) for the
                               # bottom-up convolution, 0: direct
    void* wino_u               # per call, Winograd bottom-up: the transformed kernels (alpha^2 x c_in x c_out)
    void* wino_t_u             # per call, Winograd transposed convolution (average or no pooling): the
                               # transformed turned kernels (alpha^2 x c_out x c_in); NULL: direct
    void* wino_mats            # per call, Winograd (either): A^T (m x alpha), B^T (alpha x alpha), G (alpha x k)
    int wino_paired            # per call, Winograd (either): the transforms take their paired forms (eq_wino_paired)

cdef class Chain:
    cdef Connection* conns
    cdef readonly int n_connections
    cdef readonly int itemsize
    cdef readonly object layer_sizes
    cdef object _arrays
    cdef size_t conv_scratch      # floats a thread needs for one example's conv products
    cdef bint has_max_pool
    cdef readonly bint linear_output  # the output layer is not clipped
    cdef readonly bint readout        # the last connection is a softmax readout outside the energy
    cdef readonly bint bfloat16       # the relaxation's products read bfloat16 copies

cdef Connection* derived_connections(Chain chain, bint transposes, int bf16=*, bint drive=*,
                                     int threads=*) except NULL
cdef int padded_rows(int n, size_t item) noexcept nogil
cdef void* line_malloc(size_t size) noexcept nogil
cdef void refresh_derived(Connection* conns, int n, size_t item, int threads=*,
                          const bint* kept=*) noexcept nogil
cdef void free_derived(Connection* conns, int n) noexcept

cdef void bottom_up(const Connection* c, const floating* below, int rows, floating* out,
                    int* winners, floating* scratch, int isa) noexcept nogil
cdef void top_down(const Connection* c, const floating* above, const int* winners, int rows,
                   floating* out, bint accumulate, floating* scratch, int isa) noexcept nogil
cdef void unpool(const Connection* c, const floating* above, const int* winners,
                 floating* g, int isa) noexcept nogil
