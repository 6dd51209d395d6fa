# The EP update as the compiled epoch loop (_epoch.pyx) calls it: scratch
# allocated once by the caller, then any number of nogil calls (_update.pyx).
from cython cimport floating

from eqcore._engine cimport Chain, Connection

cdef struct UpdateWork:
    int max_batch            # the largest batch the scratch is sized for
    int max_threads          # and the most threads a call may use
    int n_tasks              # blocks of weight rows (they do not depend on the batch)
    int* task_layer
    int* task_row
    int* task_end            # each block's last row + 1
    size_t* left_offset      # per connection, into the operands (set by each call)
    size_t* right_offset
    void* operands           # A_j and B_j (dense), G and R (conv), V (max-pooled conv), every connection
    int* pool_winners        # the winners of V's values (max-pooled conv), every such connection
    size_t* winners_offset   # per connection, into pool_winners (set by each call)
    void* input_value        # per thread: one row of x^T compacted
    int* input_index
    void* conv_scratch       # per thread: one example's conv operands
    size_t per_thread        # conv_scratch floats per thread
    void* narrow             # per thread: the update of a block of a narrow W, transposed
    void* own_right          # per thread: B_0, built by each thread that updates blocks of W_0
    int own_ld               # its row stride (whole cache lines)
    size_t own_stride        # and its values per thread

cdef struct UpdatePlan:
    size_t left_size         # the left operands' values, before the right ones
    int n_threads            # the threads the tasks take
    int bound                # W_0's blocks, each bound to the thread that drove with its half
    int next_task            # the next task of the shared list (taken atomically: update_tasks)

cdef int update_work_alloc(UpdateWork* work, Chain chain, int max_batch, int threads) except -1
cdef void update_work_free(UpdateWork* work) noexcept

cdef bint keeps_transpose(const Connection* c, int j) noexcept nogil
cdef int* pooled_winners(const Connection* conns, int n_layers, UpdateWork* work, int batch, int j,
                         int phase) noexcept nogil
cdef void update_plan(Chain chain, const Connection* conns, int batch, int threads, UpdateWork* work,
                      UpdatePlan* plan) noexcept nogil
cdef void update_operands(Chain chain, const Connection* conns, int batch, const floating* x,
                          floating** P, floating** N, const double* scales, floating** Bp,
                          UpdateWork* work, int isa, bint winners_ready, const UpdatePlan* plan) noexcept nogil
cdef void update_tasks(int tid, Chain chain, const Connection* conns, int batch, const floating* x,
                       floating** P, floating** N, const double* scales, floating** W, floating** Bp,
                       UpdateWork* work, int isa, const floating* readout_input, UpdatePlan* plan) noexcept nogil
cdef bint biases_finite(const Connection* conns, int n_layers, floating** Bp) noexcept nogil
cdef bint ep_update(Chain chain, const Connection* conns, int batch, const floating* x,
                    floating** P, floating** N, const double* scales, floating** W,
                    floating** Bp, int threads, UpdateWork* work, int isa,
                    const floating* readout_input, bint winners_ready) noexcept nogil
