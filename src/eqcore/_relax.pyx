# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Relax a mini-batch of layered Hopfield networks to a fixed point, in place.

Layer ``j`` (0-based over the non-input layers) has state ``s_j``, flattened to
(batch, n_j) in C order whatever its shape. Its net input is
h_j = bottom-up part of connection j (from s_{j-1}; s_{-1} = x) + top-down part
of connection j + 1 (from s_{j+1}) + b_j, each part computed by its
connection's kind (_engine.pyx). Three solvers share these net inputs:

* ``SOLVER_EULER``: the paper's dynamics, all layers updated synchronously
  from the previous state, s_j <- clip(s_j + epsilon * (h_j - s_j), 0, 1), and
  for the output in the nudged phase an extra epsilon * beta * (d - y).
* ``SOLVER_ALTERNATING``: layers 1, 3, 5, ... (1-based) are set to clip(h_j, 0, 1)
  given their neighbours, then layers 2, 4, ...; the output becomes
  clip((h + beta d) / (1 + beta), 0, 1). For dense and average-pooled chains
  this is exact block-coordinate minimisation of F; with max pooling, h_j
  routes the state above by the winners of the current s_j (a fixed-point
  iteration with the same fixed points).
* ``SOLVER_FIXED_POINT``: the order of ``SOLVER_ALTERNATING``, every layer set
  to clip(-dF/ds_j + s_j) at the current state (its fixed-point update), which
  for the hidden layers and in the free phase is ``SOLVER_ALTERNATING`` itself;
  in the nudged phase the output becomes clip(h + beta (d - y), 0, 1) with the
  current y, not its exact minimum: the FixedPointMinimizer (mode
  'asynchronous') of Scellier's energy-based-learning code. The same fixed
  points; the output's own factor -beta makes it converge only for |beta| < 1.

A chain with a **readout** (``Chain.readout``, the cross-entropy cost of
Laborieux et al. 2021) ends in a dense connection outside the energy: the
logits z = s_L W_out + b_out of the last relaxing layer s_L, p = softmax(z)
(max-subtracted) and C = -sum d log p. The readout has no dynamics: every
solver relaxes s_1 .. s_L only, and in the nudged phase the readout's top-down
part is g W_out^T with g = beta (d - p sum(d)) = -beta dC/dz (beta (d - p) for
a one-hot d) evaluated at the current s_L, in place of a state above; s_L is
then updated exactly as a hidden layer (added to h, then clipped: rho' is
never applied, as for the squared-error nudge of a clipped output, so a unit
at 0 or 1 pushed outwards stays there). For the alternating solver this makes
s_L's update a fixed-point iteration rather than its exact conditional
minimum (C is not quadratic in s_L); the fixed points are the same. After the
last step the readout's slot of the state is set to p at the final s_L.

The batch is cut into one contiguous block of rows per thread; each thread
relaxes its rows through every step without synchronising with the others.
The bottom-up input of the first layer (the drive, x W_0 or P(W_0 * x)) is the
same at every step and in both phases: it is computed once and kept in a
caller-owned buffer; where x is mostly zeros (images) the dense drive skips
them (_gemm.input_gemm). A dense drive is always the sum of two products, over
the two halves of W_0's rows that the update of W_0 also gives one thread each
(``_gemm.input_half``): with two threads each core then reads and writes only
its own half of W_0, which stays in its cache from one mini-batch to the next.

A dense chain with a connection at least 64 wide on both sides past the input's
relaxes **event-driven** (``_relax_rows_events``, ``eqcore.set_delta_threshold``):
the net inputs' bottom-up and top-down parts are kept across steps and, after a
call's first step, updated by the products of the states' changes only, row by
row; near a fixed point few entries still change. Same dynamics, up to the
rounding of the accumulated changes.

A bfloat16 chain (``Chain(..., precision="bfloat16")``) runs every product,
the drive included, on bfloat16 copies of the weights and of the states with
float32 sums (_gemm.bf16_gemm); the states, the net inputs and the element-wise
steps stay float32.
"""

from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport exp, expf
from libc.stdint cimport uint32_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from eqcore._engine cimport (
    KIND_CONV, KIND_DENSE, POOL_MAX, Chain, Connection, bottom_up, derived_connections,
    free_derived, line_malloc, top_down,
)
from eqcore._gemm cimport (
    BF16_NATIVE, BF16_OFF, bf16_gemm, blas_products, column_start, current_bf16, current_isa, delta_density, input_gemm,
    input_half, shared_scratch,
)
from eqcore._kernels cimport (
    EQ_TOP_DOWN_MAX_K, eq_euler_f32, eq_euler_f64, eq_euler_td_f32, eq_euler_td_f64, eq_exact_f32,
    eq_exact_f64, eq_exact_td_f32, eq_exact_td_f64, eq_listed_f32, eq_listed_f64, eq_sparse_f32, eq_sparse_f64,
    eq_step_delta_f32, eq_step_delta_f64, eq_bf16_round_f32, eq_bf16_sparse_row, eq_step_delta_bf16,
)
from eqcore._openmp cimport useful_threads

SOLVER_EULER = 0
SOLVER_ALTERNATING = 1
SOLVER_FIXED_POINT = 2

# The event-driven relaxation (_relax_rows_events) sends changes only into
# net-input parts at least this wide; narrower ones (a 10-class output's) are
# recomputed: a few vectors, cheaper than listing the changes.
DEF EVENT_MIN_WIDTH = 64


cdef inline void _euler_update(floating* s, const floating* h, const floating* d, const floating* b,
                               const floating* target, int rows, int n,
                               floating epsilon, floating beta, bint clip, int isa) noexcept nogil:
    # the net input is h + d (d NULL: h alone)
    if floating is float:
        eq_euler_f32(isa, s, h, d, b, target, rows, n, epsilon, beta, clip)
    else:
        eq_euler_f64(isa, s, h, d, b, target, rows, n, epsilon, beta, clip)


cdef inline void _exact_update(floating* s, const floating* h, const floating* d, const floating* b,
                               const floating* target, int rows, int n,
                               floating beta, bint clip, int isa) noexcept nogil:
    if floating is float:
        eq_exact_f32(isa, s, h, d, b, target, rows, n, beta, clip)
    else:
        eq_exact_f64(isa, s, h, d, b, target, rows, n, beta, clip)


cdef inline void _euler_td(floating* s, const floating* h, const floating* d, const floating* b,
                           const floating* above, int k, const floating* wt, int rows, int n,
                           floating epsilon, int isa) noexcept nogil:
    # the (clipped, un-nudged) Euler step on h [+ above W^T] + d, h and d optional
    if floating is float:
        eq_euler_td_f32(isa, s, h, d, b, above, k, k, wt, rows, n, epsilon, True)
    else:
        eq_euler_td_f64(isa, s, h, d, b, above, k, k, wt, rows, n, epsilon, True)


cdef inline void _exact_td(floating* s, const floating* h, const floating* d, const floating* b,
                           const floating* above, int k, const floating* wt, int rows, int n,
                           int isa) noexcept nogil:
    if floating is float:
        eq_exact_td_f32(isa, s, h, d, b, above, k, k, wt, rows, n, True)
    else:
        eq_exact_td_f64(isa, s, h, d, b, above, k, k, wt, rows, n, True)


def _check_like(array, s, str name) -> None:
    if array is not None and tuple(array.shape) != (s.shape[0], s.shape[1]):
        raise ValueError(f"{name} must be shaped like s")


cdef const floating* _first(object array, floating[:, ::1] like):
    """The first element of ``array`` (None: NULL), a C-contiguous array of ``like``'s dtype."""
    cdef const floating[:, ::1] view
    if array is None:
        return NULL
    view = array
    return &view[0, 0]


def state_update(floating[:, ::1] s, const floating[:, ::1] h, const floating[::1] b, target,
                 double epsilon, double beta, bint clip, bint exact=False, drive=None) -> None:
    """The element-wise part of one relaxation step on ``s`` in place, with the current instruction set.

    Euler ``s <- clip(s + epsilon (h + b - s) [+ epsilon beta (target - s)])``,
    or with ``exact`` ``clip(h + b)`` / ``clip((h + b + beta target) / (1 + beta))``,
    h replaced by h + drive when ``drive`` is given; ``target`` and ``drive`` are
    None or shaped like ``s``. For the tests: the relaxation calls the same
    kernels on its own buffers.
    """
    cdef const floating* tp = NULL
    cdef const floating* dp = NULL
    if h.shape[0] != s.shape[0] or h.shape[1] != s.shape[1] or b.shape[0] != s.shape[1]:
        raise ValueError("h must be shaped like s, and b have one value per column")
    _check_like(target, s, "target")
    _check_like(drive, s, "drive")
    if s.shape[0] == 0 or s.shape[1] == 0:
        return
    tp = _first(target, s)
    dp = _first(drive, s)
    if exact:
        _exact_update(&s[0, 0], &h[0, 0], dp, &b[0], tp, s.shape[0], s.shape[1], <floating> beta, clip,
                      current_isa())
    else:
        _euler_update(&s[0, 0], &h[0, 0], dp, &b[0], tp, s.shape[0], s.shape[1], <floating> epsilon,
                      <floating> beta, clip, current_isa())


def top_down_state_update(floating[:, ::1] s, h, const floating[:, ::1] above, const floating[:, ::1] weights_t,
                          const floating[::1] b, double epsilon, bint exact=False, drive=None) -> None:
    """The fused step below a narrow layer, on ``s`` in place, with the current instruction set.

    The net input is [h +] above @ weights_t [+ drive] (``h``, ``drive``: None or
    shaped like ``s``; ``above``: rows x K with K <= 64, ``weights_t``: K x n),
    then the clipped Euler step of size ``epsilon``, or with ``exact``
    clip(net input + b). For the tests: the relaxation calls the same kernels.
    """
    cdef int rows = s.shape[0], n = s.shape[1], k = above.shape[1]
    if above.shape[0] != rows or weights_t.shape[0] != k or weights_t.shape[1] != n or b.shape[0] != n:
        raise ValueError("above must have s's rows, weights_t be (above's columns, s's columns), b one value per column")
    if not 1 <= k <= EQ_TOP_DOWN_MAX_K:
        raise ValueError(f"above must have 1 to {EQ_TOP_DOWN_MAX_K} columns; got {k}")
    _check_like(h, s, "h")
    _check_like(drive, s, "drive")
    if rows == 0 or n == 0:
        return
    if exact:
        _exact_td(&s[0, 0], _first(h, s), _first(drive, s), &b[0], &above[0, 0], k, &weights_t[0, 0], rows, n,
                  current_isa())
    else:
        _euler_td(&s[0, 0], _first(h, s), _first(drive, s), &b[0], &above[0, 0], k, &weights_t[0, 0], rows, n,
                  <floating> epsilon, current_isa())


cdef void _readout(const Connection* c, const floating* below, const floating* target, int rows,
                   floating beta, floating* z, floating* p, floating* scratch, int isa) noexcept nogil:
    """z = the readout's logits below W + b, turned in place into p = softmax(z).

    ``scratch`` is the relaxation's per-thread scratch (a bfloat16 product rounds
    the rows of ``below`` there). With ``p``, p is also copied there. With ``target``, z then holds
    beta (d - p sum(d)) = -beta dC/dz, the readout's message to the layer below.
    """
    cdef int r, k, n = c.n_out
    cdef const floating* b = <const floating*> c.bias_full
    cdef const floating* d
    cdef floating* zr
    cdef floating largest, total, d_sum
    bottom_up(c, below, rows, z, NULL, scratch, isa)
    for r in range(rows):
        zr = z + <size_t> r * n
        largest = zr[0] + b[0]
        for k in range(n):
            zr[k] = zr[k] + b[k]
            if zr[k] > largest:
                largest = zr[k]
        total = 0
        for k in range(n):  # max-subtracted: every exponent <= 0, the sum >= 1
            if floating is float:
                zr[k] = expf(zr[k] - largest)
            else:
                zr[k] = exp(zr[k] - largest)
            total = total + zr[k]
        for k in range(n):
            zr[k] = zr[k] / total
        if p != NULL:
            memcpy(p + <size_t> r * n, zr, <size_t> n * sizeof(floating))
        if target != NULL:
            d = target + <size_t> r * n
            d_sum = 0
            for k in range(n):
                d_sum = d_sum + d[k]
            for k in range(n):
                zr[k] = beta * (d[k] - zr[k] * d_sum)


cdef inline void _drive_half(const Connection* c, const floating* x, int rows, int c0, int c1, int half,
                             bint accumulate, floating* out, int* input_index, int isa) noexcept nogil:
    """Columns c0 .. c1 of x W_0 over one half of W_0's rows (``input_half``; half 1 is all of them
    when half 0 is empty) into, or with ``accumulate`` added to, ``out`` (rows x n_out). The products
    the drive takes (input_gemm's listed and dense ones) add a block's whole sum to ``out``: half 0,
    then half 1 added, gives each element the bits of the two halves' sums added."""
    cdef int k0 = 0 if half == 0 else input_half(c.n_in)
    cdef int k1 = input_half(c.n_in) if half == 0 else c.n_in
    if c1 > c0:
        input_gemm(rows, c1 - c0, k1 - k0, x + k0, c.n_in, <const floating*> c.weights + <size_t> k0 * c.ld + c0,
                   c.ld, accumulate, out + c0, c.n_out, input_index, NULL, True, isa)


cdef inline void _add_rows(floating* drive, const floating* partial, int rows, int n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(<Py_ssize_t> rows * n):
        drive[i] += partial[i]


cdef void _compute_drive(const Connection* conns, const floating* x, int rows,
                         floating* drive, int** winners, floating* conv_scratch,
                         int* input_index, int isa) noexcept nogil:
    """The first layer's bottom-up input for ``rows`` examples; a dense one as the sum of its two
    halves (``_drive_half``), a bfloat16 one in one product."""
    cdef const Connection* c = &conns[0]
    if c.kind == KIND_DENSE:
        if floating is float:
            if c.bf16:  # conv_scratch holds rows x n_in floats here (relax_batch)
                bf16_gemm(c.bf16, rows, c.n_out, c.n_in, x, c.n_in, c.weights_bf, NULL, False, drive,
                          c.n_out, conv_scratch, input_index, True, isa)
                return
        if input_half(c.n_in) > 0:
            _drive_half(c, x, rows, 0, c.n_out, 0, False, drive, input_index, isa)
        _drive_half(c, x, rows, 0, c.n_out, 1, input_half(c.n_in) > 0, drive, input_index, isa)
    else:
        bottom_up(c, x, rows, drive, winners[0], conv_scratch, isa)


cdef inline void _bottom_up_input(const Connection* conns, int j, floating** s,
                                  int rows, floating* out, int** winners, floating* conv_scratch,
                                  int isa) noexcept nogil:
    """out = the bottom-up part of layer j's net input; nothing for j = 0, whose part is the drive."""
    if j > 0:
        bottom_up(&conns[j], s[j - 1], rows, out, winners[j], conv_scratch, isa)


cdef inline bint _fused_top_down(const Connection* above_c) noexcept nogil:
    """Whether the layer below ``above_c`` takes the fused top-down step of state_update.h (which
    leaves its h free and reads its biases only where given)."""
    return (above_c.kind == KIND_DENSE and above_c.n_out <= EQ_TOP_DOWN_MAX_K and not above_c.bf16
            and not blas_products())


cdef inline const floating* _step_bias(const Connection* conns, int j, const floating* b0) noexcept nogil:
    """The biases layer j's step adds: ``b0`` for the first layer (NULL once its drive holds them)."""
    return b0 if j == 0 else <const floating*> conns[j].bias_full


cdef void _add_bias(floating* out, const floating* drive, const floating* b, int rows, int n) noexcept nogil:
    """out = drive + b, row by row (rows x n)."""
    cdef Py_ssize_t r, i
    for r in range(rows):
        for i in range(n):
            out[r * n + i] = drive[r * n + i] + b[i]


cdef void _top_down_and_update(const Connection* above_c, const floating* above, const int* above_winners,
                              int rows, floating* s, floating* h, const floating* d, const floating* b,
                              int n, bint accumulate, bint exact, floating epsilon,
                              floating* scratch, int isa) noexcept nogil:
    """h [+]= the top-down input from ``above``, then the (un-nudged, clipped) update of s from h + d.

    Below a narrow dense connection (at most 64 units, a 10-class output, mostly
    zeros at its fixed point) the step sums the top-down input over the non-zero
    units above itself, in registers (state_update.h); with bfloat16 or BLAS
    products, product and step run on 4 rows at a time, which stay in L1 between the two.
    """
    cdef int group = rows, r0 = 0, g
    cdef const floating* h_in = h if accumulate else NULL
    if _fused_top_down(above_c):
        # a narrow layer above: its top-down sum, over its non-zero units only, stays in registers
        if exact:
            _exact_td(s, h_in, d, b, above, above_c.n_out, <const floating*> above_c.weights_t, rows, n, isa)
        else:
            _euler_td(s, h_in, d, b, above, above_c.n_out, <const floating*> above_c.weights_t, rows, n,
                      epsilon, isa)
        return
    if above_c.kind == KIND_DENSE and above_c.n_out <= 64:
        group = 4
    while r0 < rows:
        g = min(group, rows - r0)
        top_down(above_c, above + <size_t> r0 * above_c.n_out,
                 above_winners + <size_t> r0 * above_c.n_out if above_winners != NULL else NULL,
                 g, h + <size_t> r0 * n, accumulate, scratch, isa)
        if exact:
            _exact_update(s + <size_t> r0 * n, h + <size_t> r0 * n, d + <size_t> r0 * n if d != NULL else NULL,
                          b, NULL, g, n, 0, True, isa)
        else:
            _euler_update(s + <size_t> r0 * n, h + <size_t> r0 * n, d + <size_t> r0 * n if d != NULL else NULL,
                          b, NULL, g, n, epsilon, 0, True, isa)
        r0 += g


cdef void _relax_rows(const Connection* conns, int n_layers, const floating* x,
                      floating** s, floating** h, int** winners, const floating* target,
                      int rows, int steps, floating epsilon, floating beta, int solver,
                      floating* drive, bint compute_drive, floating* conv_scratch,
                      int* input_index, bint linear_output, bint clamp_output, bint readout,
                      int** winners_out, int isa) noexcept nogil:
    """Relax ``rows`` examples whose layer states start at the pointers ``s``.

    With ``clamp_output`` the output is set to ``target`` and held there while
    the hidden layers relax (beta is 0 then). With ``readout`` the last
    connection is the softmax readout: s_1 .. s_L relax, the nudge reaches s_L
    through it (beta != 0), and its slot ends holding p. ``winners_out``
    (NULL, or per connection NULL or these rows' first row) receives the
    max-pool winners of the final states (``_final_winners``).
    """
    cdef int step, j, parity
    cdef int relaxing = n_layers - 1 if (clamp_output or readout) else n_layers  # the layers that move
    cdef int last = n_layers - 1
    cdef bint nudge_readout = readout and beta != 0
    cdef const floating* layer_target
    # the layers' net inputs are h[j], but layer 0's is h[0] + drive when a top-down
    # input reaches it (it is written into h[0] instead of added: no copy of the
    # drive per step), else the drive alone
    cdef bint top_down_0 = n_layers > 1 and not (readout and last == 1 and not nudge_readout)
    cdef const floating* h0 = h[0] if top_down_0 else drive
    cdef const floating* d0 = drive if top_down_0 else NULL
    cdef const floating* b0 = <const floating*> conns[0].bias_full
    # with a ready drive, connection 0's winners stay unset: nothing reads them (the
    # clamped input gets no top-down input; the update finds its own winners)
    if compute_drive:
        _compute_drive(conns, x, rows, drive, winners, conv_scratch, input_index, isa)
    if top_down_0 and _fused_top_down(&conns[1]):
        # below a narrow layer the first layer's step leaves h[0] free: it holds drive + b_0,
        # summed once here instead of at every step
        _add_bias(h[0], drive, b0, rows, conns[0].n_out)
        d0, b0 = h[0], NULL
    if clamp_output:
        memcpy(s[n_layers - 1], target, <size_t> rows * conns[n_layers - 1].n_out * sizeof(floating))
    for step in range(steps):
        if solver == 0:
            # every layer from the previous state: all bottom-up parts first (they
            # record the max-pool winners the top-down parts route by)
            for j in range(relaxing):
                _bottom_up_input(conns, j, s, rows, h[j], winners, conv_scratch, isa)
            if clamp_output and conns[n_layers - 1].kind == KIND_CONV and conns[n_layers - 1].pool == POOL_MAX:
                # the clamped output's top-down input routes by the winners of the current state below
                bottom_up(&conns[n_layers - 1], s[n_layers - 2], rows, h[n_layers - 1],
                          winners[n_layers - 1], conv_scratch, isa)
            if nudge_readout:  # -beta dC/dz at the previous s_L, sent down by the readout
                _readout(&conns[last], s[last - 1], target, rows, beta, h[last], NULL, conv_scratch, isa)
            # in ascending order, layer j can move as soon as its net input is complete:
            # what is still to come reads only the states above it
            for j in range(relaxing):
                if j < n_layers - 1 and not (readout and j == last - 1):
                    _top_down_and_update(&conns[j + 1], s[j + 1], winners[j + 1], rows, s[j], h[j],
                                         d0 if j == 0 else NULL, _step_bias(conns, j, b0),
                                         conns[j].n_out, j > 0, False, epsilon, conv_scratch, isa)
                elif j < n_layers - 1 and nudge_readout:
                    _top_down_and_update(&conns[last], h[last], NULL, rows, s[j], h[j],
                                         d0 if j == 0 else NULL, _step_bias(conns, j, b0),
                                         conns[j].n_out, j > 0, False, epsilon, conv_scratch, isa)
                else:  # no top-down input: the output, or the layer below a readout in the free phase
                    layer_target = target if j == n_layers - 1 else NULL
                    _euler_update(s[j], h0 if j == 0 else h[j], d0 if j == 0 else NULL,
                                  <const floating*> conns[j].bias_full, layer_target,
                                  rows, conns[j].n_out, epsilon, beta,
                                  not (linear_output and j == n_layers - 1), isa)
        else:
            for parity in range(2):
                for j in range(parity, relaxing, 2):
                    _bottom_up_input(conns, j, s, rows, h[j], winners, conv_scratch, isa)
                    if readout and j == last - 1:
                        if nudge_readout:  # -beta dC/dz at the current s_L
                            _readout(&conns[last], s[j], target, rows, beta, h[last], NULL, conv_scratch, isa)
                            _top_down_and_update(&conns[last], h[last], NULL, rows, s[j], h[j],
                                                 d0 if j == 0 else NULL, _step_bias(conns, j, b0),
                                                 conns[j].n_out, j > 0, True, 0, conv_scratch, isa)
                            continue
                    elif j + 1 < n_layers:
                        if (conns[j + 1].kind == KIND_CONV and conns[j + 1].pool == POOL_MAX
                                and not (j + 1 < relaxing and (step > 0 or parity == 1))):
                            # the winners of the current s_j (h[j + 1] is free scratch here). When
                            # layer j + 1 relaxes, its bottom-up input recorded them in the other
                            # parity, after s_j last moved: only the first sweep's even layers
                            # (and a layer below a held output) have none yet.
                            bottom_up(&conns[j + 1], s[j], rows, h[j + 1], winners[j + 1],
                                      conv_scratch, isa)
                        _top_down_and_update(&conns[j + 1], s[j + 1], winners[j + 1], rows, s[j], h[j],
                                             d0 if j == 0 else NULL, _step_bias(conns, j, b0),
                                             conns[j].n_out, j > 0, True, 0, conv_scratch, isa)
                        continue
                    layer_target = target if j == n_layers - 1 else NULL
                    if solver == 2 and layer_target != NULL:
                        # the output's fixed-point update h + beta (d - y): an Euler step of size 1
                        _euler_update(s[j], h0 if j == 0 else h[j], d0 if j == 0 else NULL,
                                      <const floating*> conns[j].bias_full, layer_target,
                                      rows, conns[j].n_out, 1.0, beta, not linear_output, isa)
                    else:
                        _exact_update(s[j], h0 if j == 0 else h[j], d0 if j == 0 else NULL,
                                      <const floating*> conns[j].bias_full, layer_target,
                                      rows, conns[j].n_out, beta, not (linear_output and j == n_layers - 1), isa)
    if readout:  # the readout's slot: p at the final s_L
        _readout(&conns[last], s[last - 1], NULL, rows, 0, h[last], s[last], conv_scratch, isa)
    if winners_out != NULL:
        _final_winners(conns, n_layers, x, s, h, winners, rows, steps, solver, compute_drive, relaxing,
                       conv_scratch, winners_out, isa)


cdef void _final_winners(const Connection* conns, int n_layers, const floating* x, floating** s, floating** h,
                         int** winners, int rows, int steps, int solver, bint drive_computed, int relaxing,
                         floating* conv_scratch, int** winners_out, int isa) noexcept nogil:
    """winners_out[j] = the max-pool winners of connection j's bottom-up input at the final state below.

    The relaxation has them where it recorded them after the state below last
    moved: the drive's when this call computed it, and with the alternating
    and fixed-point solvers those of every odd relaxing layer (its parity
    runs after the even layer below it). The others are computed here; h[j]
    is free by now and receives the pooled values.
    """
    cdef int j
    cdef bint recorded
    for j in range(n_layers):
        if winners_out[j] == NULL or winners[j] == NULL:
            continue
        if j == 0:
            recorded = drive_computed
        else:
            recorded = solver != 0 and steps > 0 and j % 2 == 1 and j < relaxing
        if not recorded:
            bottom_up(&conns[j], x if j == 0 else s[j - 1], rows, h[j], winners[j], conv_scratch, isa)
        memcpy(winners_out[j], winners[j], <size_t> rows * conns[j].n_out * sizeof(int))


cdef inline floating* _event_buffer(floating* events, const Connection* conns, int rows, int j,
                                    int which) noexcept nogil:
    """Layer j's buffer ``which`` in a block's event scratch: 0 the top-down part D_j,
    1 the state at the last step, 2 its change since then (rows x n_j each)."""
    cdef size_t offset = 0
    cdef int i
    for i in range(j):
        offset += 3 * <size_t> rows * conns[i].n_out
    return events + offset + <size_t> which * rows * conns[j].n_out


cdef inline void _send_changes(const Connection* c, bint up, int n, int k, const floating* change,
                               floating* part, int* index, floating* values, int isa) noexcept nogil:
    """One row: part (n) += change (k) @ W (up) or W^T, over the non-zero changes only. A bfloat16
    connection's changes are those of the states rounded to bfloat16, through its bfloat16 copy of
    W (the pair layout natively, float32 copies in the fallback)."""
    cdef const void* weights
    if floating is float:
        if c.bf16:
            weights = c.weights_bf if up else c.weights_t_bf
            if c.bf16 == BF16_NATIVE:
                eq_bf16_sparse_row(n, k, change, <const uint32_t*> weights, part, index, values)
            else:
                eq_sparse_f32(isa, 1, n, k, change, k, <const float*> weights, n, 1, part, n, index, values)
            return
    weights = c.weights if up else c.weights_t
    if floating is float:
        eq_sparse_f32(isa, 1, n, k, change, k, <const float*> weights, n, 1, part, n, index, values)
    else:
        eq_sparse_f64(isa, 1, n, k, change, k, <const double*> weights, n, 1, part, n, index, values)


# how _event_part brings a row's part up to date
DEF KEEP = 0       # the source row did not change
DEF ROW = 1        # its few changes through the per-row sparse product
DEF LISTED = 2     # its changes with those of neighbouring rows, through the listed product
DEF RECOMPUTE = 3  # from the source row itself


cdef inline int _row_mode(bint recompute, bint narrow, bint bf16, int changed, double limit) noexcept nogil:
    if recompute:
        return RECOMPUTE
    if changed == 0:
        return KEEP
    if narrow:
        return RECOMPUTE
    if changed <= limit:
        return ROW
    return RECOMPUTE if bf16 else LISTED


cdef void _event_part(const Connection* c, bint up, const floating* source, const floating* change,
                      const int* changed, bint recompute, int rows, double density, floating* part,
                      int* index, floating* values, int isa) noexcept nogil:
    """Bring a net-input part (rows x n) up to date with its source layer (rows x k).

    ``up``: the bottom-up part through connection ``c`` (source below, W), else
    the top-down part (source above, W^T). Each row whose source changed
    (``changed`` entries of its k) adds the product of its changes: when at
    most a fraction ``density`` of the entries changed, through the per-row
    sparse product (sparse_rows.h: a weight row per changed entry), else
    together with the neighbouring rows of that kind through the listed
    product (dense_kernels.h: each group of rows reads the weight rows of the
    entries that changed in any of its rows once, which matters when W does
    not fit the cache). bfloat16 rows of the second kind, whose changes are
    not bfloat16 values, are recomputed from the source instead, as are all
    rows with ``recompute`` and every changed row of a narrow part. Each
    row's choice depends on that row alone and the products give a row the
    same bits in any run of rows (zero changes add exact zeros), so the result
    does not depend on how the batch is cut into blocks of rows.
    """
    cdef int n = c.n_out if up else c.n_in
    cdef int k = c.n_in if up else c.n_out
    cdef int r = 0, r1, mode
    cdef bint narrow = n < EVENT_MIN_WIDTH
    cdef bint bf16 = False
    cdef double limit = density * k
    cdef const floating* weights = <const floating*> (c.weights if up else c.weights_t)
    if floating is float:
        bf16 = c.bf16 != 0
    while r < rows:
        mode = _row_mode(recompute, narrow, bf16, changed[r], limit)
        r1 = r + 1
        if mode == ROW:
            _send_changes(c, up, n, k, change + <size_t> r * k, part + <size_t> r * n, index, values, isa)
        elif mode != KEEP:
            while r1 < rows and _row_mode(recompute, narrow, bf16, changed[r1], limit) == mode:
                r1 += 1
            if mode == LISTED:
                if floating is float:
                    eq_listed_f32(isa, r1 - r, n, k, change + <size_t> r * k, k, weights, n, 1,
                                  part + <size_t> r * n, n, index)
                else:
                    eq_listed_f64(isa, r1 - r, n, k, change + <size_t> r * k, k, weights, n, 1,
                                  part + <size_t> r * n, n, index)
            elif up:
                bottom_up(c, source + <size_t> r * k, r1 - r, part + <size_t> r * n, NULL, values, isa)
            else:
                top_down(c, source + <size_t> r * k, NULL, r1 - r, part + <size_t> r * n, False, values, isa)
        r = r1


cdef inline void _track_changes(const Connection* conns, int j, floating** s, floating* events, int* changed,
                                int rows, int isa) noexcept nogil:
    """Layer j's change since its last tracked state, row by row, and how many entries changed per row."""
    cdef int r, n = conns[j].n_out
    cdef floating* last = _event_buffer(events, conns, rows, j, 1)
    cdef floating* change = _event_buffer(events, conns, rows, j, 2)
    for r in range(rows):
        if floating is float:
            if conns[0].bf16:  # the products read the states rounded to bfloat16: so do the changes
                changed[j * rows + r] = eq_step_delta_bf16(isa, n, s[j] + <size_t> r * n, last + <size_t> r * n,
                                                                change + <size_t> r * n)
            else:
                changed[j * rows + r] = eq_step_delta_f32(isa, n, s[j] + <size_t> r * n, last + <size_t> r * n,
                                                          change + <size_t> r * n)
        else:
            changed[j * rows + r] = eq_step_delta_f64(isa, n, s[j] + <size_t> r * n, last + <size_t> r * n,
                                                      change + <size_t> r * n)


cdef inline void _refresh_parts(const Connection* conns, int j, int relaxing, floating** s, floating** h,
                                floating* events, int* changed, bint recompute, int rows, double density,
                                int* index, floating* values, int isa) noexcept nogil:
    """The parts that read layer j: the bottom-up part of layer j + 1 and the top-down part of layer j - 1
    (each with ``recompute``, else from layer j's tracked changes)."""
    if j + 1 < relaxing:
        _event_part(&conns[j + 1], True, s[j], _event_buffer(events, conns, rows, j, 2), changed + <size_t> j * rows,
                    recompute, rows, density, h[j + 1], index, values, isa)
    if j > 0:
        _event_part(&conns[j], False, s[j], _event_buffer(events, conns, rows, j, 2), changed + <size_t> j * rows,
                    recompute, rows, density, _event_buffer(events, conns, rows, j - 1, 0), index, values, isa)


cdef void _relax_rows_events(const Connection* conns, int n_layers, const floating* x,
                             floating** s, floating** h, const floating* target,
                             int rows, int steps, floating epsilon, floating beta, int solver,
                             floating* drive, bint compute_drive, int* input_index,
                             bint linear_output, bint clamp_output, floating* events,
                             int* event_index, int width, double density, int isa) noexcept nogil:
    """``_relax_rows`` for a dense chain without readout, event-driven.

    Layer j's net input is kept across steps in two parts: the bottom-up
    U_j = s_{j-1} W_j (in h[j]; for j = 0 the drive) and the top-down
    D_j = s_{j+1} W_{j+1}^T. They are computed from the states at the start;
    afterwards, whenever layers have moved (all of them after an Euler step,
    one parity after a half-sweep of the alternating and fixed-point
    solvers), the parts that read them are brought up to date, each row by
    the product of its changes alone (``_event_part``: per row where at most a
    fraction ``density`` of the source's entries changed, else with the
    neighbouring rows'). Near a fixed point most units sit at 0 or 1 and
    the rest stop moving, so late steps cost a fraction of a dense one. The
    result differs from ``_relax_rows`` only by the rounding of the
    accumulated changes. A bfloat16 chain tracks the states rounded to
    bfloat16, whose products its parts are (``_send_changes``). ``events``
    holds per layer D_j, the last tracked state and its change
    (``_event_buffer``), then rows + 1 times ``width`` (the widest layer,
    input included) of scratch for the products; ``event_index`` ``width``
    ints for them, then each layer's count of changed entries per row.
    """
    cdef int relaxing = n_layers - 1 if clamp_output else n_layers
    cdef int last = n_layers - 1
    cdef int step, j, parity
    # Euler steps move every layer at once; the other solvers one parity, then the other
    cdef int halves = 1 if solver == 0 else 2, stride = 1 if solver == 0 else 2
    cdef bint final
    cdef floating* values = _event_buffer(events, conns, rows, n_layers, 0)
    cdef int* changed = event_index + width  # rows per layer
    cdef const floating* layer_target
    if compute_drive:
        _compute_drive(conns, x, rows, drive, NULL, values, input_index, isa)
    if clamp_output:
        memcpy(s[last], target, <size_t> rows * conns[last].n_out * sizeof(floating))
    for j in range(n_layers):  # the tracked states: bfloat16 chains track them rounded
        if floating is float:
            if conns[0].bf16:
                eq_bf16_round_f32(rows, conns[j].n_out, s[j], conns[j].n_out, _event_buffer(events, conns, rows, j, 1),
                                  conns[j].n_out)
            else:
                memcpy(_event_buffer(events, conns, rows, j, 1), s[j], <size_t> rows * conns[j].n_out * sizeof(float))
        else:
            memcpy(_event_buffer(events, conns, rows, j, 1), s[j], <size_t> rows * conns[j].n_out * sizeof(double))
        memset(changed + <size_t> j * rows, 0, <size_t> rows * sizeof(int))
    if steps > 0:
        for j in range(n_layers):
            _refresh_parts(conns, j, relaxing, s, h, events, changed, True, rows, density, event_index, values, isa)
    for step in range(steps):
        final = step == steps - 1
        for parity in range(halves):
            j = parity
            while j < relaxing:
                layer_target = target if j == last else NULL
                if solver == 0:
                    _euler_update(s[j], drive if j == 0 else h[j],
                                  _event_buffer(events, conns, rows, j, 0) if j < last else NULL,
                                  <const floating*> conns[j].bias_full, layer_target, rows, conns[j].n_out,
                                  epsilon, beta, not (linear_output and j == last), isa)
                elif solver == 2 and layer_target != NULL:
                    # the output's fixed-point update h + beta (d - y): an Euler step of size 1
                    _euler_update(s[j], h[j], NULL, <const floating*> conns[j].bias_full, layer_target, rows,
                                  conns[j].n_out, 1.0, beta, not linear_output, isa)
                else:
                    _exact_update(s[j], drive if j == 0 else h[j],
                                  _event_buffer(events, conns, rows, j, 0) if j < last else NULL,
                                  <const floating*> conns[j].bias_full, layer_target, rows, conns[j].n_out,
                                  beta, not (linear_output and j == last), isa)
                j += stride
            if final and parity == halves - 1:
                continue  # nothing reads the parts again
            j = parity
            while j < relaxing:
                _track_changes(conns, j, s, events, changed, rows, isa)
                j += stride
            j = parity
            while j < relaxing:
                _refresh_parts(conns, j, relaxing, s, h, events, changed, False, rows, density, event_index,
                               values, isa)
                j += stride


cdef bint events_apply(Chain chain) noexcept:
    """Whether the chain can relax event-driven: dense, no readout, and
    some connection past the input's at least EVENT_MIN_WIDTH wide on both sides (784-500-10 has
    none: its only such product, the top-down input from a 10-class output, already sums over the
    non-zero output units in the fused step, which is faster there)."""
    cdef int j
    cdef bint wide = False
    if chain.readout:
        return False
    for j in range(chain.n_connections):
        if chain.conns[j].kind != KIND_DENSE:
            return False
        if j > 0 and min(chain.conns[j].n_in, chain.conns[j].n_out) >= EVENT_MIN_WIDTH:
            wide = True
    return wide


cdef inline int _drive_halves(const Connection* c) noexcept nogil:
    return 2 if input_half(c.n_in) > 0 else 1


cdef void _drive_task(const Connection* conns, const floating* x, int batch, floating* drive,
                      floating* partial, int parts, int task, int* input_index, int isa) noexcept nogil:
    """Task ``task`` of the drive x W_0 of the whole batch on ``parts`` threads: the batch's
    product with one of the two halves of W_0's rows (``input_half``), cut by columns into
    ceil(parts / 2) slices (``column_start``); ``_drive_halves(c) * slices`` tasks in all.

    Task p takes half p % 2 (half 1 into ``partial``), as thread p of the update of W_0 does
    (_update.pyx), so that on two cores each reads only the half of W_0 that its own updates
    left in its cache. Once every task is done and each row's ``partial`` is added to ``drive``
    (``_add_rows``), the values are those of ``_compute_drive`` on one thread: every
    element is its two halves' sums, each summed in the same order, then added.
    """
    cdef const Connection* c = &conns[0]
    cdef int halves = _drive_halves(c)
    cdef int slices = (parts + halves - 1) // halves
    cdef int half = task % 2 if halves == 2 else 1
    cdef int c0 = column_start(c.n_out, slices, task // halves)
    cdef int c1 = column_start(c.n_out, slices, task // halves + 1)
    _drive_half(c, x, batch, c0, c1, half, False, partial if halves == 2 and half == 1 else drive,
                input_index, isa)


cdef inline size_t _conv_per_chunk(Chain chain, const RelaxWork* work, int chunk_rows) noexcept nogil:
    """A row block's conv scratch: one example's conv work; for bfloat16 also room for the
    block's states rounded to bfloat16 (of the widest layer)."""
    return max(<size_t> chain.conv_scratch, <size_t> chunk_rows * work.bf16_width)


cdef int relax_work_alloc(RelaxWork* work, Chain chain, int max_batch, int threads, bint own_drive) except -1:
    """Allocate the scratch of ``relax_chunks`` for batches of up to ``max_batch`` rows.

    A call cuts its batch into n <= min(threads, batch) blocks of
    ceil(batch / n) rows, at most batch + n - 1 rows in all, so that is what
    every per-row buffer holds. Free with ``relax_work_free`` (also after a
    MemoryError).
    """
    cdef int n_layers = chain.n_connections, j, chunks = max(1, min(threads, max_batch))
    cdef size_t rows = <size_t> max(max_batch, 1) + chunks - 1, h_per_row = 0, winners_per_row = 0
    cdef const Connection* c
    work.max_batch = max_batch
    work.max_chunks = chunks
    work.own_drive = own_drive
    for j in range(n_layers):
        c = &chain.conns[j]
        h_per_row += c.n_out
        if c.kind == KIND_CONV and c.pool == POOL_MAX:
            winners_per_row += c.n_out
    if own_drive:
        h_per_row += chain.conns[0].n_out
    work.chunk_s = <void**> malloc(<size_t> chunks * n_layers * sizeof(void*))
    work.chunk_h = <void**> malloc(<size_t> chunks * n_layers * sizeof(void*))
    work.chunk_winners = <int**> malloc(<size_t> chunks * n_layers * sizeof(int*))
    work.chunk_winners_out = <int**> malloc(<size_t> chunks * n_layers * sizeof(int*))
    work.bf16_width = max(chain.layer_sizes) if chain.bfloat16 else 0
    work.scratch = line_malloc(max(rows * h_per_row + chunks * _conv_per_chunk(chain, work, max(max_batch, 1)),
                                   1) * chain.itemsize)
    work.int_scratch = <int*> malloc(max(rows * winners_per_row, 1) * sizeof(int))
    work.input_index = <int*> malloc(<size_t> chunks * shared_scratch(chain.conns[0].n_in) * sizeof(int))
    # the second half of a dense drive on its own threads, before it is added (_drive_task)
    work.drive_partial = line_malloc((rows * chain.conns[0].n_out if chain.conns[0].kind == KIND_DENSE else 1)
                                     * chain.itemsize)
    if not (work.chunk_s and work.chunk_h and work.chunk_winners and work.chunk_winners_out and work.scratch
            and work.int_scratch and work.input_index and work.drive_partial):
        raise MemoryError()
    if events_apply(chain):
        # per row: a top-down part, the last state and its change per layer, and a row of
        # product scratch (bfloat16 rounds rows there); per chunk one more row
        work.event_width = max(chain.layer_sizes)
        work.events_per_row = 3 * sum(chain.layer_sizes[1:]) + work.event_width
        work.events = line_malloc((rows * work.events_per_row + <size_t> chunks * work.event_width)
                                  * chain.itemsize)
        work.event_ints = work.event_width + max(max_batch, 1) * chain.n_connections
        work.event_index = <int*> malloc(<size_t> chunks * work.event_ints * sizeof(int))
        if not (work.events and work.event_index):
            raise MemoryError()
    return 0


cdef void relax_work_free(RelaxWork* work) noexcept:
    free(work.chunk_s)
    free(work.chunk_h)
    free(work.chunk_winners)
    free(work.chunk_winners_out)
    free(work.scratch)
    free(work.int_scratch)
    free(work.input_index)
    free(work.drive_partial)
    free(work.events)
    free(work.event_index)
    work.events = NULL
    work.event_index = NULL
    work.chunk_s = work.chunk_h = NULL
    work.chunk_winners = work.chunk_winners_out = NULL
    work.scratch = NULL
    work.int_scratch = work.input_index = NULL
    work.drive_partial = NULL


cdef void relax_chunks(Chain chain, const Connection* conns, const floating* x, floating** S,
                       const floating* target, floating* drive, int batch, int steps,
                       double flops_per_example, double epsilon, double beta, int solver,
                       int threads, bint drive_ready, bint clamp_output, RelaxWork* work,
                       int** winners_out, int isa, floating** copies=NULL, int n_copies=0) noexcept nogil:
    """Relax the states S[j] (batch x n_j, C order) in place: the body of ``relax_batch``.

    ``conns`` are the chain's derived connections (transposes included),
    current for the parameters; ``drive`` is NULL when ``work`` owns one.
    ``winners_out`` (NULL, or per connection NULL or a batch x n_out int
    array) receives the max-pool winners of the final states, as the update
    needs them (_update.pooled_winners); with it, 0 steps still fill it.
    ``copies`` (NULL, or ``n_copies`` sets of n_layers state pointers, set k
    at copies[k n_layers]) receive the final states: each thread copies the rows
    it relaxed, from its own cache (the compiled epoch loop's nudged phases
    start from such copies of the free state).
    Arguments are not checked: ``batch`` must not exceed ``work.max_batch``
    nor ``threads`` the threads it was allocated for.
    """
    cdef int n_layers = chain.n_connections
    cdef int j, k, c, n_chunks, chunk_rows, r0, rows, task, halves, drive_tasks
    cdef bint split, add_partial
    cdef size_t h_per_chunk, conv_per_chunk, floats_per_chunk, winners_per_chunk
    cdef floating* scratch = <floating*> work.scratch
    cdef floating** chunk_s = <floating**> work.chunk_s
    cdef floating** chunk_h = <floating**> work.chunk_h
    cdef int** chunk_winners = work.chunk_winners
    cdef int** chunk_out
    cdef floating* chunk_scratch
    cdef int* chunk_ints
    cdef const floating* chunk_target
    cdef floating* chunk_drive
    cdef double event_density = delta_density()
    cdef bint events = work.events != NULL and event_density > 0 and not blas_products()
    if batch <= 0 or (steps <= 0 and winners_out == NULL):
        return
    steps = max(steps, 0)
    n_chunks = useful_threads(threads, flops_per_example * steps * batch, batch)
    chunk_rows = (batch + n_chunks - 1) // n_chunks
    n_chunks = (batch + chunk_rows - 1) // chunk_rows

    # per chunk: a net-input buffer per layer, the drive if the caller gave no
    # buffer, one example's conv scratch; ints: max-pool winners per layer and
    # the sparse drive's column indices
    h_per_chunk = 0
    winners_per_chunk = 0
    for j in range(n_layers):
        h_per_chunk += <size_t> chunk_rows * conns[j].n_out
        if conns[j].kind == KIND_CONV and conns[j].pool == POOL_MAX:
            winners_per_chunk += <size_t> chunk_rows * conns[j].n_out
    conv_per_chunk = _conv_per_chunk(chain, work, chunk_rows)
    floats_per_chunk = h_per_chunk + conv_per_chunk + (0 if drive != NULL else <size_t> chunk_rows * conns[0].n_out)

    # a dense drive on several threads, in the same parallel region: first the drive's tasks
    # (_drive_task: on two threads thread p takes W_0's half p), then, after their barrier, each
    # chunk adds half 1's product (in drive_partial) to its rows of half 0's before relaxing them
    split = (n_chunks > 1 and drive != NULL and not drive_ready and conns[0].kind == KIND_DENSE
             and not conns[0].bf16)
    halves = _drive_halves(&conns[0])
    drive_tasks = halves * ((n_chunks + halves - 1) // halves)
    add_partial = split and halves == 2
    if split:
        drive_ready = True

    with parallel(num_threads=n_chunks):
        if split:
            for task in prange(drive_tasks, schedule="static", chunksize=1):
                _drive_task(conns, x, batch, drive, <floating*> work.drive_partial, n_chunks, task,
                            work.input_index + threadid() * shared_scratch(conns[0].n_in), isa)
        for c in prange(n_chunks, schedule="static", chunksize=1):
            r0 = c * chunk_rows
            rows = min(chunk_rows, batch - r0)
            if add_partial:
                _add_rows(drive + <size_t> r0 * conns[0].n_out,
                          <floating*> work.drive_partial + <size_t> r0 * conns[0].n_out, rows, conns[0].n_out)
            chunk_scratch = scratch + <size_t> c * floats_per_chunk
            chunk_ints = work.int_scratch + <size_t> c * winners_per_chunk
            for j in range(n_layers):
                chunk_s[c * n_layers + j] = S[j] + <size_t> r0 * conns[j].n_out
                chunk_h[c * n_layers + j] = chunk_scratch
                chunk_scratch = chunk_scratch + <size_t> chunk_rows * conns[j].n_out
                chunk_winners[c * n_layers + j] = NULL
                if conns[j].kind == KIND_CONV and conns[j].pool == POOL_MAX:
                    chunk_winners[c * n_layers + j] = chunk_ints
                    chunk_ints = chunk_ints + <size_t> chunk_rows * conns[j].n_out
            chunk_target = NULL
            if target != NULL:
                chunk_target = target + <size_t> r0 * conns[n_layers - 1].n_out
            if drive != NULL:
                chunk_drive = drive + <size_t> r0 * conns[0].n_out
            else:
                chunk_drive = chunk_scratch + conv_per_chunk
            chunk_out = NULL
            if winners_out != NULL:
                chunk_out = &work.chunk_winners_out[c * n_layers]
                for j in range(n_layers):
                    chunk_out[j] = NULL
                    if winners_out[j] != NULL:
                        chunk_out[j] = winners_out[j] + <size_t> r0 * conns[j].n_out
            if events:
                _relax_rows_events(conns, n_layers, x + <size_t> r0 * conns[0].n_in, &chunk_s[c * n_layers],
                                   &chunk_h[c * n_layers], chunk_target, rows, steps, <floating> epsilon,
                                   <floating> beta, solver, chunk_drive, not drive_ready,
                                   work.input_index + c * shared_scratch(conns[0].n_in), chain.linear_output,
                                   clamp_output,
                                   <floating*> work.events
                                   + <size_t> c * (<size_t> chunk_rows * work.events_per_row + work.event_width),
                                   work.event_index + <size_t> c * work.event_ints, work.event_width,
                                   event_density, isa)
            else:
                _relax_rows(conns, n_layers, x + <size_t> r0 * conns[0].n_in, &chunk_s[c * n_layers],
                            &chunk_h[c * n_layers], &chunk_winners[c * n_layers], chunk_target,
                            rows, steps, <floating> epsilon, <floating> beta, solver,
                            chunk_drive, not drive_ready, chunk_scratch,
                            work.input_index + c * shared_scratch(conns[0].n_in), chain.linear_output,
                            clamp_output, chain.readout, chunk_out, isa)
            for k in range(n_copies):
                for j in range(n_layers):
                    memcpy(copies[k * n_layers + j] + <size_t> r0 * conns[j].n_out, chunk_s[c * n_layers + j],
                           <size_t> rows * conns[j].n_out * sizeof(floating))


def relax_batch(Chain chain, const floating[:, ::1] x, list state,
                int steps, double epsilon, double beta,
                const floating[:, ::1] target=None, int solver=0, int threads=1,
                floating[:, ::1] drive=None, bint drive_ready=False, bint clamp_output=False):
    """Relax ``state`` (a list of C-contiguous (batch, n_j) arrays) in place.

    With ``clamp_output``, ``target`` holds the values the output is clamped
    to, and only the hidden layers relax (``beta`` must be 0). The chain's
    ``linear_output`` drops the clip of the output layer; with its
    ``readout``, ``state[-1]`` receives the readout's p (its initial values
    are never read) and ``target`` is the cross-entropy's d.

    ``drive`` (batch, n_1), if given, holds the first layer's bottom-up input:
    it is filled here unless ``drive_ready`` says it already holds it for this
    ``x`` and these weights (the nudged phase reuses the free phase's drive).

    This is the unchecked core entry point: ``eqprop.EqPropNetwork`` validates
    every argument first. Only the cheap structural checks that protect memory
    are repeated here.
    """
    cdef int n_layers = chain.n_connections
    cdef int batch = x.shape[0]
    cdef int isa = current_isa()
    cdef int bf16 = current_bf16() if chain.bfloat16 else BF16_OFF
    cdef int j
    cdef floating[:, ::1] s_view
    cdef Connection* conns = NULL
    cdef floating** S = NULL
    cdef RelaxWork work
    cdef const floating* target_ptr = NULL
    cdef floating* drive_ptr = NULL
    cdef double flops

    if chain.itemsize != sizeof(floating):
        raise TypeError("x and state must have the parameters' dtype")
    if len(state) != n_layers:
        raise ValueError("state must have one array per non-input layer")
    if x.shape[1] != chain.layer_sizes[0]:
        raise ValueError("x must have one column per input unit")
    if solver not in (0, 1, 2):
        raise ValueError(f"unknown solver {solver}")
    if clamp_output and (target is None or beta != 0.0 or n_layers < 2):
        raise ValueError("clamp_output needs a target, beta = 0 and a hidden layer")
    if chain.readout and (clamp_output or (beta != 0.0 and target is None)):
        raise ValueError("a readout chain is nudged through its readout (a target, no clamp_output)")
    if batch == 0 or steps <= 0:
        return
    flops = chain.flops_per_example()
    memset(&work, 0, sizeof(RelaxWork))
    try:
        S = <floating**> malloc(n_layers * sizeof(floating*))
        if S == NULL:
            raise MemoryError()
        for j in range(n_layers):
            s_view = state[j]
            if s_view.shape[0] != batch or s_view.shape[1] != chain.layer_sizes[j + 1]:
                raise ValueError(f"state[{j}] must have shape (batch, {chain.layer_sizes[j + 1]})")
            S[j] = &s_view[0, 0]
        if target is not None:
            if target.shape[0] != batch or target.shape[1] != chain.layer_sizes[n_layers]:
                raise ValueError("target must have shape (batch, n_output)")
            target_ptr = &target[0, 0]
        if drive is not None:
            if drive.shape[0] != batch or drive.shape[1] != chain.layer_sizes[1]:
                raise ValueError("drive must have shape (batch, n_1)")
            drive_ptr = &drive[0, 0]
        elif drive_ready:
            raise ValueError("drive_ready needs a drive buffer")

        conns = derived_connections(chain, True, bf16, not drive_ready, max(threads, 1))
        relax_work_alloc(&work, chain, batch, max(threads, 1), drive_ptr == NULL)
        with nogil:
            relax_chunks(chain, conns, &x[0, 0], S, target_ptr, drive_ptr, batch, steps, flops, epsilon, beta,
                         solver, threads, drive_ready, clamp_output, &work, NULL, isa)
    finally:
        free_derived(conns, n_layers)
        free(S)
        relax_work_free(&work)
