# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Row-major GEMM over the BLAS that SciPy ships (no separate BLAS to link)."""

from scipy.linalg.cython_blas cimport sgemm, dgemm


cdef void gemm_rm(bint trans_a, bint trans_b, int m, int n, int k,
                  floating alpha, const floating* a, int lda,
                  const floating* b, int ldb,
                  floating beta, floating* c, int ldc) noexcept nogil:
    """C (m x n) = alpha * op(A) @ op(B) + beta * C, all matrices row-major.

    A row-major matrix is the column-major transpose, so the column-major call
    computes C^T = op(B)^T @ op(A)^T: operands and their flags are swapped here,
    once, instead of at every call site.
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if m <= 0 or n <= 0:
        return
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> b, &ldb, <float*> a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> b, &ldb, <double*> a, &lda,
              &beta, c, &ldc)
