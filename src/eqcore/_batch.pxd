# The per-mini-batch bookkeeping as nogil functions over raw rows (_batch.pyx),
# shared by the Python wrappers and the compiled epoch loop (_epoch.pyx).
from cython cimport floating
from libc.stdint cimport int64_t

cdef void gather_examples(const floating* x, int n_in, const int64_t* labels, const int64_t* index,
                          int m, floating* x_out, floating* target_out, int n_out) noexcept nogil
cdef void gather_rows(const floating* source, const int64_t* index, int m, int width,
                      floating* dest, int ld) noexcept nogil
cdef void scatter_rows(const floating* rows, int ld, const int64_t* index, int m, int width,
                       floating* dest) noexcept nogil
cdef bint all_finite(const floating* values, int rows, int width, int isa) noexcept nogil
cdef double score_output(const floating* output, const floating* target, int m, int n_out,
                         const int64_t* labels, const int64_t* index, long* errors,
                         bint cross_entropy) noexcept nogil
