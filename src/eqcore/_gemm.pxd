# The products the relaxation and the update use: skinny kernels or BLAS, and
# the instruction set, chosen in one place (this module) and passed down.
from cython cimport floating

cdef int current_isa() noexcept nogil

cdef void small_gemm(int rows, int n, int k, const floating* a, int lda,
                     const floating* b, int ldb, bint accumulate,
                     floating* c, int ldc, int isa) noexcept nogil

cdef void small_gemm_with_transpose(int rows, int n, int k, const floating* a, int lda,
                                    const floating* b, int ldb, const floating* bt,
                                    bint accumulate, floating* c, int ldc, int isa) noexcept nogil

cdef void dot_gemm(int rows, int n, int k, const floating* a, int lda,
                   const floating* bt, int ldbt, bint accumulate,
                   floating* c, int ldc, int isa) noexcept nogil

cdef void input_gemm(int rows, int n, int k, const floating* a, int lda,
                     const floating* b, int ldb, bint accumulate, floating* c, int ldc,
                     int* idx, floating* val, bint rows_share_b, int isa) noexcept nogil
