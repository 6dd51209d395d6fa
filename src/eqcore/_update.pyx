# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The EP learning rule, accumulated in place into weight and bias arrays.

With ``pos`` and ``neg`` two states of the same mini-batch (the nudged and the
free fixed points, or the +beta and -beta ones of the symmetric estimate),
every parameter theta gets

    theta += scale_j * (dPhi/dtheta at pos - dPhi/dtheta at neg),  summed over the batch

(Scellier & Bengio 2016, eq. 13; rho(s) = s on the clipped state space).
Training passes the parameters themselves and scale_j = lr_j / (beta * batch);
the gradient estimate passes zeroed arrays and scale_j = -1 / (beta * batch).

**Dense** connection j (P_{-1} = N_{-1} = x):
W_j += scale_j (P_{j-1}^T P_j - N_{j-1}^T N_j), b_j += scale_j sum_batch(P_j - N_j),
one product W_j += A_j @ B_j with A_j = [P_{j-1}; N_{j-1}]^T and
B_j = scale_j [P_j; -N_j] (batch stacked twice), and for the clamped input
A_0 = x^T, B_0 = scale_0 (P_0 - N_0): depth batch instead of 2 batch. Fixed
blocks of weight rows are spread over the threads, each building its rows of
A_j, so each element is computed by the same arithmetic whatever the thread
count. The blocks of W_0 go to the threads that computed the drive with their
half of W_0's rows (_relax._drive_task: thread p, half p % 2), so that on two
cores each half of W_0 stays in one core's cache from one mini-batch to the
next instead of crossing to the other core twice per mini-batch; the other
blocks go to whichever thread is free. Where x is mostly zeros (images), the
product for W_0 skips them (sparse_rows.h), and rows of W_0 whose input is zero
in the whole batch are not touched.

**Readout** (``Chain.readout``, the last connection L, outside the energy):
it learns from the cost's gradient at the free fixed point, not from a
contrast. The caller passes ``readout_input`` = s_L^0 (the free last relaxing
layer), pos[L] = d and neg[L] = p^0 sum(d) (p^0 for a one-hot d), so that
W_L += scale_L s_L^0^T (d - p^0) = -scale_L dC/dW_L: the clamped input's form
(A_L = readout_input^T, depth batch) with scale_L = lr / batch (or -1 / batch
for the gradient).

**Conv** connection j: dPhi/dW_j is the correlation of the state below with
the un-pooled state above, U(P_j) (max pooling routes by the winners of that
state's own bottom-up input P(W_j * P_{j-1})). Stacked over examples and
phases along the depth D: W_j (c_out x patch) += G @ R with
G = scale_j [U(P_j) | -U(N_j)] (c_out x D) and R the unfolded states below,
one row per output position (D x patch). Un-pooling keeps sums, so the
channel biases get the row sums of G. With max pooling, G is three quarters
zeros (and more where states are clipped): the update keeps it pooled instead,
V = scale_j [P_j | -N_j] (scale_0 (P_0 - N_0) for the clamped input, whose
winners both phases share) with each value's winner, and adds each non-zero
value times the patch below its winner to its channel's row of W
(``eq_max_weight_update``): no unfolded R, and no products with zeros.
"""

from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport isfinite
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from eqcore._engine cimport (
    KIND_CONV, KIND_DENSE, POOL_MAX, Chain, Connection, bottom_up, derived_connections, free_derived,
    line_malloc, padded_rows, unpool,
)
from eqcore._gemm cimport blas_products, current_isa, input_gemm, input_half, small_gemm
from eqcore._kernels cimport (
    eq_im2row_f32, eq_im2row_f64, eq_max_weight_update_f32, eq_max_weight_update_f64, eq_take_next,
    eq_transpose_add_block_f32, eq_transpose_add_block_f64, eq_transpose_block_f32, eq_transpose_block_f64,
)
from eqcore._openmp cimport useful_threads

import numpy as np


DEF ROW_BLOCK = 64
DEF CONV_ROW_BLOCK = 16
# max pooling: a task is a block of input channels (W's columns) for every output channel, and
# unfolds only its part of each patch; split by output channels instead, the tasks of two
# threads each unfolded the whole patches (docs/performance.md, "Winograd")
DEF POOLED_CHANNEL_BLOCK = 16
# Below this many outputs (a 10-class layer) a block of W (rows x n_out) gets its update as
# B^T @ A^T (n_out x rows, the states below read in place) and transposed into it: as
# dot products along the batch (K = 2 batch) the horizontal sums cost more than the products.
DEF NARROW_OUTPUTS = 16


cdef void _build_left_rows(const Connection* c, int j, int batch, const floating* single,
                           floating** P, floating** N, int row0, int rows,
                           floating* left, int isa) noexcept nogil:
    """Rows row0 .. row0 + rows of A_j (n_in x depth): depth batch from ``single`` (x, or the
    readout's input) if it is not NULL, else 2 batch from P_{j-1} and N_{j-1}; each a block of
    its (batch x n_in) source transposed by 4 x 4 register blocks (transpose.h)."""
    cdef int depth = batch if single != NULL else 2 * batch
    cdef floating* out = left + <size_t> row0 * depth
    if floating is float:
        if single != NULL:
            eq_transpose_block_f32(isa, single + row0, batch, rows, c.n_in, out, depth)
        else:
            eq_transpose_block_f32(isa, P[j - 1] + row0, batch, rows, c.n_in, out, depth)
            eq_transpose_block_f32(isa, N[j - 1] + row0, batch, rows, c.n_in, out + batch, depth)
    else:
        if single != NULL:
            eq_transpose_block_f64(isa, single + row0, batch, rows, c.n_in, out, depth)
        else:
            eq_transpose_block_f64(isa, P[j - 1] + row0, batch, rows, c.n_in, out, depth)
            eq_transpose_block_f64(isa, N[j - 1] + row0, batch, rows, c.n_in, out + batch, depth)


cdef void _build_right(const Connection* c, int j, bint single, int batch, floating** P, floating** N,
                       double scale, floating* right, int ld) noexcept nogil:
    """B_j (depth x n_out, rows ``ld`` apart): scale (P_j - N_j) when ``single`` (depth batch), else
    scale [P_j; -N_j]; for a narrow n_out then its transpose B_j^T (n_out x depth), which
    ``_narrow_task`` reads, at right + depth ld."""
    cdef int n_out = c.n_out
    cdef int depth = batch if single else 2 * batch
    cdef Py_ssize_t r, col, size = <Py_ssize_t> batch * n_out
    cdef floating s = <floating> scale
    cdef floating* right_t = right + <size_t> depth * ld
    # local pointers: through P[j] and N[j] the compiler would reload both after every store
    cdef const floating* pos = P[j]
    cdef const floating* neg = N[j]
    cdef floating* negated = right + <size_t> batch * ld
    cdef floating* row
    if single:  # rows ld apart (a thread's own B_0 pads them)
        for r in range(batch):
            row = right + r * ld
            for col in range(n_out):
                row[col] = s * (pos[r * n_out + col] - neg[r * n_out + col])
    else:  # only the shared operands, whose rows are not padded (ld = n_out)
        for r in range(size):
            right[r] = s * pos[r]
        for r in range(size):
            negated[r] = -s * neg[r]
    if n_out < NARROW_OUTPUTS:
        for r in range(depth):
            for col in range(n_out):
                right_t[col * depth + r] = right[r * ld + col]


cdef void _narrow_task(const Connection* c, int batch, int depth, const floating* right_t,
                       const floating* pos_below, const floating* neg_below, int row0, int rows,
                       floating* w, floating* t, int isa) noexcept nogil:
    """Rows row0 .. row0 + rows of a narrow W += A @ B, as t = B^T @ A^T (n_out x rows), then added.

    A^T is the states below read in place: rows row0.. of ``pos_below`` against the
    first ``batch`` columns of B^T, then, unless NULL, of ``neg_below`` against the rest.
    With the connection's derived transpose (``weights_t``, n_out x n_in), t is added to
    it too (``keeps_transpose``): the same additions, so it stays bitwise W's transpose.
    """
    cdef int n_out = c.n_out
    cdef Py_ssize_t i, o
    cdef floating* wt = <floating*> c.weights_t
    cdef floating* wt_row
    cdef const floating* t_row
    small_gemm(n_out, rows, batch, right_t, depth, pos_below + row0, c.n_in, False, t, rows, isa)
    if neg_below != NULL:
        small_gemm(n_out, rows, batch, right_t + batch, depth, neg_below + row0, c.n_in, True, t, rows, isa)
    if floating is float:  # w[i, o] += t[o, i], by 4 x 4 blocks: the same additions
        eq_transpose_add_block_f32(isa, t, n_out, rows, rows, w, c.ld)
    else:
        eq_transpose_add_block_f64(isa, t, n_out, rows, rows, w, c.ld)
    if wt != NULL:
        for o in range(n_out):
            wt_row = wt + <size_t> o * c.n_in + row0
            t_row = t + o * rows
            for i in range(rows):
                wt_row[i] += t_row[i]


cdef bint keeps_transpose(const Connection* c, int j) noexcept nogil:
    """Whether ``ep_update`` keeps dense connection j's derived transpose W^T current itself
    (``_narrow_task``), so that the compiled epoch loop need not recompute it."""
    return c.kind == KIND_DENSE and j > 0 and c.n_out < NARROW_OUTPUTS and not blas_products()


cdef void _dense_bias(floating* b, int n, int depth, const floating* right, int ld) noexcept nogil:
    # b += column sums of B_j (rows ld apart), which is scale * sum_batch(P - N)
    cdef Py_ssize_t r, col
    for r in range(depth):
        for col in range(n):
            b[col] += right[r * ld + col]


cdef void _conv_bias(floating* b, int c_out, size_t depth, const floating* g) noexcept nogil:
    # b += row sums of G
    cdef Py_ssize_t ch
    cdef size_t d
    cdef floating total
    for ch in range(c_out):
        total = 0
        for d in range(depth):
            total = total + g[ch * depth + d]
        b[ch] += total


cdef void _pooled_bias(floating* b, int c_out, int windows, int depth, const floating* v) noexcept nogil:
    # b += the channel sums of V (depth x c_out x windows): un-pooling keeps sums
    cdef Py_ssize_t ch, e, o
    cdef floating total
    for ch in range(c_out):
        total = 0
        for e in range(depth):
            for o in range(windows):
                total = total + v[(e * c_out + ch) * windows + o]
        b[ch] += total


cdef void _conv_operands(const Connection* c, const floating* below, const floating* above,
                         floating sign_scale, floating* g, floating* rows_out, size_t depth,
                         size_t offset, floating* scratch, int isa) noexcept nogil:
    """One example's block of G (c_out x hw at column offset) and of R (hw rows x patch at row offset),
    for average or no pooling (max pooling: ``_pooled_example``).

    ``scratch``: at least hw (patch + 2 c_out) values.
    """
    cdef floating* unpooled = scratch + <size_t> c.hw * (c.patch + c.c_out)
    cdef Py_ssize_t ch, p
    unpool(c, above, NULL, unpooled, isa)
    for ch in range(c.c_out):
        for p in range(c.hw):
            g[ch * depth + offset + p] = sign_scale * unpooled[ch * c.hw + p]
    if floating is float:
        eq_im2row_f32(isa, below, c.c_in, c.h_in, c.w_in, c.k, c.pad, c.h_conv, c.w_conv,
                      rows_out + offset * c.patch, c.patch)
    else:
        eq_im2row_f64(isa, below, c.c_in, c.h_in, c.w_in, c.k, c.pad, c.h_conv, c.w_conv,
                      rows_out + offset * c.patch, c.patch)


cdef int update_work_alloc(UpdateWork* work, Chain chain, int max_batch, int threads) except -1:
    """Allocate the scratch of ``ep_update`` for batches of up to ``max_batch`` examples.

    The task list (fixed blocks of weight rows) does not depend on the batch
    and is built here; the operands grow linearly with it. Free with
    ``update_work_free`` (also after a MemoryError).
    """
    cdef int n_layers = chain.n_connections, j, t, row0, block, rows, depth, n_threads, start
    cdef size_t operand_size = 0, winners_size = 0, batch = <size_t> max(max_batch, 1)
    cdef const Connection* c
    work.max_batch = max_batch
    work.n_tasks = 0
    for j in range(n_layers):
        c = &chain.conns[j]
        depth = 1 if (j == 0 or (chain.readout and j == n_layers - 1)) else 2  # times the batch
        if c.kind == KIND_DENSE:
            operand_size += (<size_t> c.n_in + 2 * c.n_out) * depth * batch
            work.n_tasks += _dense_blocks(c.n_in, j)
        elif c.pool == POOL_MAX:
            operand_size += <size_t> c.n_out * depth * batch
            winners_size += <size_t> c.n_out * depth * batch
            work.n_tasks += (c.c_in + POOLED_CHANNEL_BLOCK - 1) // POOLED_CHANNEL_BLOCK
        else:
            operand_size += (<size_t> c.c_out + c.patch) * depth * batch * c.hw
            work.n_tasks += (c.c_out + CONV_ROW_BLOCK - 1) // CONV_ROW_BLOCK
    n_threads = max(1, min(threads, work.n_tasks))
    work.max_threads = n_threads
    # per thread: a block's rows of x^T compacted (sparse product of layer 0), and
    # one example's conv operands (max pooling: the patches below its winners, their
    # values, and ints; conv_kernels.h's eq_max_weight_update)
    work.per_thread = 2 * chain.conv_scratch
    for j in range(n_layers):
        c = &chain.conns[j]
        if c.kind == KIND_CONV and c.pool == POOL_MAX:
            work.per_thread = max(work.per_thread, <size_t> 2 * c.h_out * c.w_conv * (c.patch + 1)
                                  + 2 * <size_t> c.h_out * c.w_out)
    work.left_offset = <size_t*> malloc(n_layers * sizeof(size_t))
    work.right_offset = <size_t*> malloc(n_layers * sizeof(size_t))
    work.operands = line_malloc(max(operand_size, 1) * chain.itemsize)
    work.pool_winners = <int*> malloc(max(winners_size, 1) * sizeof(int))
    work.winners_offset = <size_t*> malloc(n_layers * sizeof(size_t))
    work.task_layer = <int*> malloc(work.n_tasks * sizeof(int))
    work.task_row = <int*> malloc(work.n_tasks * sizeof(int))
    work.task_end = <int*> malloc(work.n_tasks * sizeof(int))
    work.input_value = line_malloc(<size_t> n_threads * ROW_BLOCK * batch * chain.itemsize)
    work.input_index = <int*> malloc(<size_t> n_threads * ROW_BLOCK * batch * sizeof(int))
    work.conv_scratch = line_malloc(max(<size_t> n_threads * work.per_thread, 1) * chain.itemsize)
    work.narrow = line_malloc(<size_t> n_threads * NARROW_OUTPUTS * ROW_BLOCK * chain.itemsize)
    # per thread that updates a dense W_0's blocks: its own B_0 (and its transpose for a narrow
    # layer 0), its rows padded (_engine.padded_rows), so that its vector loads never straddle lines
    work.own_ld = chain.conns[0].n_out
    if chain.conns[0].n_out >= NARROW_OUTPUTS:
        work.own_ld = padded_rows(chain.conns[0].n_out, chain.itemsize)
    work.own_stride = 2 * batch * work.own_ld
    work.own_right = line_malloc((<size_t> n_threads * work.own_stride
                                  if chain.conns[0].kind == KIND_DENSE else 1) * chain.itemsize)
    if not (work.left_offset and work.right_offset and work.operands and work.task_layer and work.task_row
            and work.task_end and work.input_value and work.input_index and work.conv_scratch and work.narrow
            and work.own_right and work.pool_winners and work.winners_offset):
        raise MemoryError()
    if chain.conns[0].kind == KIND_DENSE:  # B_0's padding, which no kernel reads
        memset(work.own_right, 0, <size_t> n_threads * work.own_stride * chain.itemsize)
    # W_0's blocks first (ep_update binds them to threads), from 0 and from input_half
    t = 0
    for j in range(n_layers):
        start = 0
        if chain.conns[j].kind == KIND_DENSE:
            block, rows = ROW_BLOCK, chain.conns[j].n_in
            if j == 0:
                start = input_half(rows)
        elif chain.conns[j].pool == POOL_MAX:  # blocks of input channels
            block, rows = POOLED_CHANNEL_BLOCK, chain.conns[j].c_in
        else:
            block, rows = CONV_ROW_BLOCK, chain.conns[j].c_out
        for row0 in range(0, start, block):
            work.task_layer[t], work.task_row[t], work.task_end[t] = j, row0, min(row0 + block, start)
            t += 1
        for row0 in range(start, rows, block):
            work.task_layer[t], work.task_row[t], work.task_end[t] = j, row0, min(row0 + block, rows)
            t += 1
    return 0


cdef inline int _dense_blocks(int n_in, int j) noexcept nogil:
    """Dense connection j's blocks of weight rows: W_0's from 0 and from ``input_half``."""
    cdef int half = input_half(n_in) if j == 0 else 0
    return (half + ROW_BLOCK - 1) // ROW_BLOCK + (n_in - half + ROW_BLOCK - 1) // ROW_BLOCK


cdef void update_work_free(UpdateWork* work) noexcept:
    free(work.left_offset)
    free(work.right_offset)
    free(work.operands)
    free(work.task_layer)
    free(work.task_row)
    free(work.task_end)
    free(work.input_value)
    free(work.input_index)
    free(work.conv_scratch)
    free(work.narrow)
    free(work.own_right)
    free(work.pool_winners)
    free(work.winners_offset)
    work.narrow = work.own_right = NULL
    work.pool_winners = NULL
    work.winners_offset = NULL
    work.left_offset = work.right_offset = NULL
    work.operands = work.input_value = work.conv_scratch = NULL
    work.task_layer = work.task_row = work.task_end = work.input_index = NULL


cdef int* pooled_winners(const Connection* conns, int n_layers, UpdateWork* work, int batch, int j,
                         int phase) noexcept nogil:
    """Where ``ep_update`` keeps the winners of max-pooled connection j's rows of V: batch x n_out ints.

    Phase 0: those of P_{j-1}'s bottom-up input (for j = 0, of x's drive),
    phase 1 (j > 0): N_{j-1}'s. A caller that has them (the relaxation
    records them) writes them here and calls ``ep_update`` with ``winners_ready``.
    """
    cdef size_t offset = 0
    cdef int i
    for i in range(j):
        if conns[i].kind == KIND_CONV and conns[i].pool == POOL_MAX:
            offset += <size_t> (batch if i == 0 else 2 * batch) * conns[i].n_out
    return work.pool_winners + offset + <size_t> phase * batch * conns[j].n_out


cdef inline int _block_owner(int row0, int half, int threads) noexcept nogil:
    """The thread that updates W_0's block of rows from row0: of the threads of the half's parity
    (thread p drives with half p % 2, _relax._drive_task), the block's turn in its half."""
    cdef int h = 0 if row0 < half else 1
    cdef int peers = (threads - h + 1) // 2
    return h + 2 * (((row0 - h * half) // ROW_BLOCK) % peers)


cdef void _run_task(int t, const Connection* conns, UpdateWork* work, int batch, int readout_layer,
                    const floating* x, const floating* readout_input, floating** P, floating** N,
                    floating** W, size_t left_size, floating* own_right, int tid, int isa) noexcept nogil:
    """Task t of ``ep_update``'s list on thread ``tid``: one block of a weight matrix gets its update
    (``own_right``: the thread's own B_0, or NULL for the shared operands')."""
    cdef int layer = work.task_layer[t], row0 = work.task_row[t], task_rows = work.task_end[t] - row0
    cdef int depth, n_out, e, right_ld
    cdef const Connection* c = &conns[layer]
    cdef floating* operands = <floating*> work.operands
    cdef floating* task_left
    cdef floating* task_right
    cdef floating* task_w
    cdef size_t conv_depth
    if c.kind == KIND_DENSE:
        depth = batch if (layer == 0 or layer == readout_layer) else 2 * batch
        n_out = c.n_out
        task_left = operands + work.left_offset[layer] + <size_t> row0 * depth
        task_right = own_right if own_right != NULL else operands + left_size + work.right_offset[layer]
        right_ld = work.own_ld if own_right != NULL else n_out
        task_w = W[layer] + <size_t> row0 * c.ld
        if keeps_transpose(c, layer):
            _narrow_task(c, batch, depth, task_right + <size_t> depth * n_out,
                         readout_input if layer == readout_layer else P[layer - 1],
                         NULL if layer == readout_layer else N[layer - 1], row0, task_rows, task_w,
                         <floating*> work.narrow + <size_t> tid * NARROW_OUTPUTS * ROW_BLOCK, isa)
            return
        _build_left_rows(c, layer, batch,
                         x if layer == 0 else (readout_input if layer == readout_layer else NULL),
                         P, N, row0, task_rows, operands + work.left_offset[layer], isa)
        if layer == 0:  # the left operand is x^T: its zeros can be skipped
            input_gemm(task_rows, n_out, depth, task_left, depth, task_right, right_ld, True,
                       task_w, c.ld, work.input_index + <size_t> tid * ROW_BLOCK * batch,
                       <floating*> work.input_value + <size_t> tid * ROW_BLOCK * batch, False, isa)
        else:
            small_gemm(task_rows, n_out, depth, task_left, depth, task_right, n_out, True, task_w, c.ld, isa)
    elif c.pool == POOL_MAX:
        depth = batch if layer == 0 else 2 * batch
        for e in range(depth):
            _pooled_task(c, layer, e, batch, x, P, N, operands + work.left_offset[layer] + <size_t> e * c.n_out,
                         work.pool_winners + work.winners_offset[layer] + <size_t> e * c.n_out, row0,
                         row0 + task_rows, W[layer], <floating*> work.conv_scratch + <size_t> tid * work.per_thread,
                         isa)
    else:
        depth = batch if layer == 0 else 2 * batch
        conv_depth = <size_t> depth * c.hw
        small_gemm(task_rows, c.patch, <int> conv_depth,
                   operands + work.left_offset[layer] + <size_t> row0 * conv_depth, <int> conv_depth,
                   operands + left_size + work.right_offset[layer], c.patch, True,
                   W[layer] + <size_t> row0 * c.patch, c.patch, isa)


cdef void update_plan(Chain chain, const Connection* conns, int batch, int threads, UpdateWork* work,
                      UpdatePlan* plan) noexcept nogil:
    """Where ``ep_update``'s operands go (``work``'s offsets) and how many threads its tasks take:
    what does not depend on the states. ``plan.bound``: W_0's blocks, bound to threads."""
    cdef int n_layers = chain.n_connections
    cdef int readout_layer = n_layers - 1 if chain.readout else -1
    cdef int j, depth
    cdef size_t left_size = 0, right_size = 0, conv_depth
    cdef const Connection* c
    cdef double flops = 0.0
    for j in range(n_layers):
        c = &conns[j]
        depth = batch if (j == 0 or j == readout_layer) else 2 * batch
        work.left_offset[j] = left_size
        work.right_offset[j] = right_size
        if c.kind == KIND_DENSE:
            # left: A_j (n_in x depth); right: B_j (depth x n_out), then B_j^T
            left_size += <size_t> c.n_in * depth
            right_size += 2 * <size_t> depth * c.n_out
            flops += 2.0 * c.n_in * c.n_out * depth
        elif c.pool == POOL_MAX:
            # left: V (depth x n_out); its winners (depth x n_out ints)
            work.winners_offset[j] = pooled_winners(conns, n_layers, work, batch, j, 0) - work.pool_winners
            left_size += <size_t> depth * c.n_out
            flops += 2.0 * c.n_out * c.patch * depth  # about a quarter of G @ R's, less the clipped states
        else:
            # left: G (c_out x D); right: R (D x patch), D = depth hw
            conv_depth = <size_t> depth * c.hw
            left_size += <size_t> c.c_out * conv_depth
            right_size += conv_depth * c.patch
            flops += 2.0 * c.c_out * c.patch * conv_depth
    plan.left_size = left_size
    plan.n_threads = useful_threads(threads, flops, work.n_tasks)
    # W_0's blocks (first in the task list) go to the threads that drove with their half of its
    # rows (_relax._drive_task), so that each core keeps its half of W_0 in its cache; each
    # such thread builds its own B_0 from the states (instead of reading one thread's copy)
    plan.bound = 0
    if plan.n_threads > 1 and conns[0].kind == KIND_DENSE and input_half(conns[0].n_in) > 0:
        plan.bound = _dense_blocks(conns[0].n_in, 0)
    plan.next_task = plan.bound


cdef void update_operands(Chain chain, const Connection* conns, int batch, const floating* x,
                          floating** P, floating** N, const double* scales, floating** Bp,
                          UpdateWork* work, int isa, bint winners_ready, const UpdatePlan* plan) noexcept nogil:
    """The operands the threads share (all but a bound W_0's B_0, which each builds itself) and the
    biases but b_0's: dense ones on this thread, conv ones on ``plan.n_threads`` (a region of their own)."""
    cdef int n_layers = chain.n_connections
    cdef int readout_layer = n_layers - 1 if chain.readout else -1
    cdef int j, depth, e, phase
    cdef size_t conv_depth, per_thread = work.per_thread
    cdef floating* operands = <floating*> work.operands
    cdef floating* conv_scratch = <floating*> work.conv_scratch
    cdef floating* right
    cdef const Connection* c
    for j in range(n_layers):
        c = &conns[j]
        if c.kind == KIND_DENSE:
            if j == 0 and plan.bound:
                continue
            right = operands + plan.left_size + work.right_offset[j]
            _build_right(c, j, j == 0 or j == readout_layer, batch, P, N, scales[j], right, c.n_out)
            _dense_bias(Bp[j], c.n_out, batch if (j == 0 or j == readout_layer) else 2 * batch, right, c.n_out)
            continue
        # conv: G and R (or V and its winners), one example (and phase) per iteration, in parallel
        depth = batch if j == 0 else 2 * batch
        if c.pool == POOL_MAX:
            for e in prange(depth, num_threads=plan.n_threads, schedule="static"):
                phase = e // batch
                _pooled_example(c, j, e - phase * batch, phase, batch, x, P, N, <floating> scales[j],
                                operands + work.left_offset[j] + <size_t> e * c.n_out,
                                work.pool_winners + work.winners_offset[j] + <size_t> e * c.n_out, winners_ready,
                                conv_scratch + <size_t> threadid() * per_thread, per_thread // 2, isa)
            _pooled_bias(Bp[j], c.c_out, c.h_out * c.w_out, depth, operands + work.left_offset[j])
            continue
        conv_depth = <size_t> depth * c.hw
        for e in prange(depth, num_threads=plan.n_threads, schedule="static"):
            phase = e // batch  # 0: pos, 1: neg (j > 0 only)
            _conv_example(c, j, e - phase * batch, phase, batch, x, P, N, <floating> scales[j],
                          operands + work.left_offset[j], operands + plan.left_size + work.right_offset[j],
                          conv_depth, <size_t> e * c.hw,
                          conv_scratch + <size_t> threadid() * per_thread, isa)
        _conv_bias(Bp[j], c.c_out, conv_depth, operands + work.left_offset[j])


cdef void update_tasks(int tid, Chain chain, const Connection* conns, int batch, const floating* x,
                       floating** P, floating** N, const double* scales, floating** W, floating** Bp,
                       UpdateWork* work, int isa, const floating* readout_input, UpdatePlan* plan) noexcept nogil:
    """Thread ``tid``'s part of the weight updates, once ``update_operands`` has run: its own B_0 and
    bound blocks of W_0 (thread 0 also b_0), then tasks taken from ``plan.next_task`` until none is
    left. Every thread of ``plan.n_threads`` calls it, in one parallel region."""
    cdef int readout_layer = chain.n_connections - 1 if chain.readout else -1
    cdef int t, u
    cdef floating* right
    if plan.bound:
        right = <floating*> work.own_right + <size_t> tid * work.own_stride
        _build_right(&conns[0], 0, True, batch, P, N, scales[0], right, work.own_ld)
        if tid == 0:
            _dense_bias(Bp[0], conns[0].n_out, batch, right, work.own_ld)
        for u in range(plan.bound):
            if _block_owner(work.task_row[u], input_half(conns[0].n_in), plan.n_threads) == tid:
                _run_task(u, conns, work, batch, readout_layer, x, readout_input, P, N, W, plan.left_size, right,
                          tid, isa)
    t = eq_take_next(&plan.next_task)
    while t < work.n_tasks:
        _run_task(t, conns, work, batch, readout_layer, x, readout_input, P, N, W, plan.left_size, NULL, tid, isa)
        t = eq_take_next(&plan.next_task)


cdef bint biases_finite(const Connection* conns, int n_layers, floating** Bp) noexcept nogil:
    """Whether every bias is finite (after an update)."""
    cdef int j
    cdef Py_ssize_t col
    for j in range(n_layers):
        for col in range(conns[j].c_out if conns[j].kind == KIND_CONV else conns[j].n_out):
            if not isfinite(Bp[j][col]):
                return False
    return True


cdef bint ep_update(Chain chain, const Connection* conns, int batch, const floating* x,
                    floating** P, floating** N, const double* scales, floating** W,
                    floating** Bp, int threads, UpdateWork* work, int isa,
                    const floating* readout_input, bint winners_ready) noexcept nogil:
    """The body of ``apply_ep_update``: W[j] += ..., Bp[j] += ... in place; returns whether the biases are finite.

    P[j], N[j] are the (batch x n_j) states, ``conns`` the chain's derived
    float32 or float64 connections (``derived_connections``, with or without
    transposes), current for the parameters; a dense W[j]'s rows are
    ``conns[j].ld`` apart. A narrow connection's derived transpose, where
    ``conns`` has one (``weights_t``), gets the same additions as W[j]
    (``keeps_transpose``). With the
    chain's readout, ``readout_input`` is the free (batch x n_L) state below it
    (else NULL). With ``winners_ready`` the max-pool winners are already where
    ``pooled_winners`` says, and no convolution is run. Arguments are not
    checked: ``batch`` must not exceed ``work.max_batch`` nor ``threads`` the
    threads it was allocated for. Its three parts (``update_plan``,
    ``update_operands``, ``update_tasks``) let the compiled epoch loop run the
    update in a parallel region of its own (_epoch.pyx).
    """
    cdef UpdatePlan plan
    if batch <= 0:
        return True
    update_plan(chain, conns, batch, threads, work, &plan)
    update_operands(chain, conns, batch, x, P, N, scales, Bp, work, isa, winners_ready, &plan)
    with parallel(num_threads=plan.n_threads):
        update_tasks(threadid(), chain, conns, batch, x, P, N, scales, W, Bp, work, isa, readout_input, &plan)
    return biases_finite(conns, chain.n_connections, Bp)


def apply_ep_update(Chain chain, const floating[:, ::1] x, list pos, list neg,
                    const double[::1] scales, int threads=1, list out_weights=None,
                    list out_biases=None, const floating[:, ::1] readout_input=None) -> bool:
    """Accumulate the EP update into the chain's parameters (or ``out_*``) in place.

    ``scales[j]`` multiplies connection j's weight and bias updates (its
    learning rate over beta and the batch size). ``out_weights``/``out_biases``,
    if given, receive the update instead (arrays shaped like the parameters,
    used by the gradient estimate); the chain's own weights still define the
    max-pool winners. With the chain's ``readout``, ``readout_input`` (batch,
    n_L) is the free state of the last relaxing layer and pos[-1], neg[-1]
    hold d and p^0 sum(d) (see the module's documentation). Unchecked core
    entry point; ``eqprop`` validates first.

    Returns whether every updated bias is finite: the bias update sums the
    states of both phases, so this is a cheap check that neither diverged.
    """
    cdef int n_layers = chain.n_connections
    cdef int batch = x.shape[0]
    cdef int isa = current_isa()
    cdef int j
    cdef floating[:, ::1] p_view, n_view
    cdef Connection* conns = NULL
    cdef floating** W = NULL
    cdef floating** Bp = NULL
    cdef floating** P = NULL
    cdef floating** N = NULL
    cdef UpdateWork work
    cdef bint finite = True
    cdef const floating* readout_ptr = NULL

    if chain.itemsize != sizeof(floating):
        raise TypeError("x and the states must have the parameters' dtype")
    if len(pos) != n_layers or len(neg) != n_layers:
        raise ValueError("pos and neg must have one entry per non-input layer")
    if scales.shape[0] != n_layers:
        raise ValueError("scales must have one entry per non-input layer")
    if x.shape[1] != chain.layer_sizes[0]:
        raise ValueError("x must have one column per input unit")
    if chain.readout:
        if (readout_input is None or readout_input.shape[0] != batch
                or readout_input.shape[1] != chain.layer_sizes[n_layers - 1]):
            raise ValueError("a readout chain's update needs readout_input, the free (batch, n_L) state")
    if batch == 0:
        return True
    if chain.readout:
        readout_ptr = &readout_input[0, 0]
    weights, biases = chain.arrays
    if out_weights is not None or out_biases is not None:
        if out_weights is None or out_biases is None or len(out_weights) != n_layers or len(out_biases) != n_layers:
            raise ValueError("out_weights and out_biases go together, one array per connection")
        for j in range(n_layers):
            for out, ref in ((out_weights[j], weights[j]), (out_biases[j], biases[j])):
                if (not isinstance(out, np.ndarray) or out.shape != ref.shape or out.dtype != ref.dtype
                        or not out.flags.c_contiguous or not out.flags.writeable):
                    raise ValueError("out arrays must be writeable C-contiguous arrays shaped like the parameters")
        weights, biases = out_weights, out_biases
    memset(&work, 0, sizeof(UpdateWork))
    try:
        W = <floating**> malloc(n_layers * sizeof(floating*))
        Bp = <floating**> malloc(n_layers * sizeof(floating*))
        P = <floating**> malloc(n_layers * sizeof(floating*))
        N = <floating**> malloc(n_layers * sizeof(floating*))
        if not (W and Bp and P and N):
            raise MemoryError()
        for j in range(n_layers):
            p_view = pos[j]
            n_view = neg[j]
            if (p_view.shape[0] != batch or p_view.shape[1] != chain.layer_sizes[j + 1]
                    or n_view.shape[0] != batch or n_view.shape[1] != chain.layer_sizes[j + 1]):
                raise ValueError(f"pos[{j}] and neg[{j}] must have shape (batch, {chain.layer_sizes[j + 1]})")
            P[j] = &p_view[0, 0]
            N[j] = &n_view[0, 0]
        _parameter_pointers(weights, biases, W, Bp, n_layers)
        conns = derived_connections(chain, False)
        update_work_alloc(&work, chain, batch, max(threads, 1))
        with nogil:
            finite = ep_update(chain, conns, batch, &x[0, 0], P, N, &scales[0], W, Bp, threads, &work, isa,
                               readout_ptr, False)
    finally:
        free_derived(conns, n_layers)
        free(W)
        free(Bp)
        free(P)
        free(N)
        update_work_free(&work)
    return finite


cdef void _conv_example(const Connection* c, int j, int e, int phase, int batch,
                        const floating* x, floating** P, floating** N, floating scale,
                        floating* g, floating* rows_out, size_t depth, size_t offset,
                        floating* scratch, int isa) noexcept nogil:
    cdef const floating* below = _below(j, e + phase * batch, batch, x, P, N, c.n_in)
    if j == 0:
        # the clamped input is the same in both phases: G = scale (U(P_0) - U(N_0)) in one block of depth batch
        _conv_operands(c, below, P[0] + <size_t> e * c.n_out, scale, g, rows_out, depth, offset, scratch, isa)
        _conv_subtract(c, N[0] + <size_t> e * c.n_out, scale, g, depth, offset, scratch, isa)
    elif phase == 0:
        _conv_operands(c, below, P[j] + <size_t> e * c.n_out, scale, g, rows_out, depth, offset, scratch, isa)
    else:
        _conv_operands(c, below, N[j] + <size_t> e * c.n_out, -scale, g, rows_out, depth, offset, scratch, isa)


cdef void _conv_subtract(const Connection* c, const floating* above, floating scale, floating* g,
                         size_t depth, size_t offset, floating* scratch, int isa) noexcept nogil:
    """G's block -= scale U(above) (average or no pooling)."""
    cdef floating* unpooled = scratch + <size_t> c.hw * (2 * c.patch + c.c_out)
    cdef Py_ssize_t ch, p
    unpool(c, above, NULL, unpooled, isa)
    for ch in range(c.c_out):
        for p in range(c.hw):
            g[ch * depth + offset + p] -= scale * unpooled[ch * c.hw + p]


cdef const floating* _below(int j, int e, int batch, const floating* x, floating** P, floating** N,
                             int n_in) noexcept nogil:
    """The state below connection j of row e of the depth: x, or P_{j-1} then N_{j-1}."""
    if j == 0:
        return x + <size_t> e * n_in
    if e < batch:
        return P[j - 1] + <size_t> e * n_in
    return N[j - 1] + <size_t> (e - batch) * n_in


cdef void _pooled_example(const Connection* c, int j, int e, int phase, int batch, const floating* x,
                          floating** P, floating** N, floating scale, floating* values, int* winners,
                          bint winners_ready, floating* scratch, size_t half, int isa) noexcept nogil:
    """One example's row of V (n_out values, scaled) and, unless ``winners_ready``, their winners,
    for a max-pooled connection j.

    j = 0: scale (P_0 - N_0), the winners of x's drive; else +scale P_j with the
    winners of P_{j-1}'s bottom-up input (phase 0), -scale N_j with N_{j-1}'s (phase 1).
    ``scratch``: 2 ``half`` values, ``half`` (the chain's conv scratch) for the
    convolution and then its pooled output.
    """
    cdef const floating* below = _below(j, e + phase * batch, batch, x, P, N, c.n_in)
    cdef Py_ssize_t i
    cdef size_t row = <size_t> e * c.n_out
    if not winners_ready:
        bottom_up(c, below, 1, scratch + half, winners, scratch, isa)
    if j == 0:
        for i in range(c.n_out):
            values[i] = scale * (P[0][row + i] - N[0][row + i])
    elif phase == 0:
        for i in range(c.n_out):
            values[i] = scale * P[j][row + i]
    else:
        for i in range(c.n_out):
            values[i] = -scale * N[j][row + i]


cdef void _pooled_task(const Connection* c, int j, int e, int batch, const floating* x, floating** P,
                       floating** N, const floating* values, const int* winners, int ci0, int ci1,
                       floating* w, floating* scratch, int isa) noexcept nogil:
    """Input channels ci0 .. ci1 - 1 of a max-pooled connection's W += row e of V times the patches below
    its winners (``scratch``: the thread's ``per_thread`` values, which hold the unfolded patches)."""
    cdef const floating* below = _below(j, e, batch, x, P, N, c.n_in)
    if floating is float:
        eq_max_weight_update_f32(isa, below, c.c_in, c.h_in, c.w_in, c.k, c.pad, values, winners, c.c_out,
                                 c.h_out, c.w_out, c.w_conv, ci0, ci1, w, scratch)
    else:
        eq_max_weight_update_f64(isa, below, c.c_in, c.h_in, c.w_in, c.k, c.pad, values, winners, c.c_out,
                                 c.h_out, c.w_out, c.w_conv, ci0, ci1, w, scratch)


cdef void _parameter_pointers(list weights, list biases, floating** W, floating** Bp, int n) except *:
    """W[j], Bp[j]: the data of the arrays the update accumulates into (dense 2-D or conv 4-D weights)."""
    cdef floating[:, ::1] w2
    cdef floating[:, :, :, ::1] w4
    cdef floating[::1] b
    cdef int j
    for j in range(n):
        if weights[j].ndim == 2:
            w2 = weights[j]
            W[j] = &w2[0, 0]
        else:
            w4 = weights[j]
            W[j] = &w4[0, 0, 0, 0]
        b = biases[j]
        Bp[j] = &b[0]
