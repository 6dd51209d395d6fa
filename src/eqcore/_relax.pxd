# The relaxation as the compiled epoch loop (_epoch.pyx) calls it: scratch
# allocated once by the caller, then any number of nogil calls (_relax.pyx).
from cython cimport floating

from eqcore._engine cimport Chain, Connection

cdef struct RelaxWork:
    int max_batch            # the largest batch the scratch is sized for
    int max_chunks           # and the most row blocks (threads) per call
    void** chunk_s           # max_chunks * n_layers state pointers
    void** chunk_h           # max_chunks * n_layers net-input pointers
    int** chunk_winners      # max_chunks * n_layers max-pool winner pointers
    int** chunk_winners_out  # max_chunks * n_layers: where each block's final winners go
    void* scratch            # floats: the net inputs, a drive if the caller has none, conv scratch
    int* int_scratch         # the winners
    int* input_index         # the sparse drive's scratch, _gemm.shared_scratch(n_in) ints per chunk
    void* drive_partial      # floats: the second half of a dense drive, n_1 per row
    bint own_drive           # the scratch holds a drive (calls pass drive = NULL)
    int bf16_width           # bfloat16 chains: the widest layer, whose rows the products round in scratch
    void* events             # event-driven relaxation (events_apply's chains, else NULL): per row
    size_t events_per_row    #   the top-down parts, last states and changes of every layer;
    int event_width          #   per chunk a row of values as wide as the widest layer
    int* event_index         #   and event_ints ints: as many, then each layer's changes per row
    int event_ints

cdef int relax_work_alloc(RelaxWork* work, Chain chain, int max_batch, int threads, bint own_drive) except -1
cdef void relax_work_free(RelaxWork* work) noexcept

cdef void relax_chunks(Chain chain, const Connection* conns, const floating* x, floating** S,
                       const floating* target, floating* drive, int batch, int steps,
                       double flops_per_example, double epsilon, double beta, int solver,
                       int threads, bint drive_ready, bint clamp_output, RelaxWork* work,
                       int** winners_out, int isa, floating** copies=*, int n_copies=*) noexcept nogil
cdef bint events_apply(Chain chain) noexcept
