# The product the relaxation uses at every step: skinny kernels or BLAS.
from cython cimport floating

cdef void small_gemm(int rows, int n, int k, const floating* a, int lda,
                     const floating* b, int ldb, bint accumulate,
                     floating* c, int ldc) noexcept nogil

cdef void small_gemm_with_transpose(int rows, int n, int k, const floating* a, int lda,
                                    const floating* b, int ldb, const floating* bt,
                                    bint accumulate, floating* c, int ldc) noexcept nogil

cdef void input_gemm(int rows, int n, int k, const floating* a, int lda,
                     const floating* b, int ldb, bint accumulate, floating* c, int ldc,
                     int* idx, floating* val, bint rows_share_b) noexcept nogil
