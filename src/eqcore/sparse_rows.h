/*
 * C (R x N) [+]= A (R x K) @ B (K x N), row-major, for an A that is mostly zeros:
 * the clamped input x in the drive x W_0 and in the update of W_0 (an MNIST
 * image has about 19% non-zero pixels).
 *
 * Each row of A is first compacted into (index, value) pairs; the row of C is
 * then a sum of scaled rows of B over those pairs only. Zero entries add
 * exact zeros in the dense product, so both give the same result up to the
 * order of the additions.
 *
 * Used for the update of W_0 (A = x^T, B = the batch's state differences,
 * small enough to stay in L1): rows of W_0 whose pixel is zero in the whole
 * batch are not touched at all. The drive x W_0 instead uses the listed
 * product of dense_kernels.h, which reads each row of W_0 once per group of
 * examples rather than once per example. Instruction set chosen at run time.
 */
#ifndef EQCORE_SPARSE_ROWS_H
#define EQCORE_SPARSE_ROWS_H

#include "simd.h"

/* W vectors of columns from col: dst = (acc ? src : 0) + sum_q val[q] B[idx[q], col:]. */
#define EQ_SPARSE_TILE(T, VT, V, W, col, src, dst)                                    \
    {                                                                                 \
        VT s[W];                                                                      \
        for (int w = 0; w < (W); w++)                                                 \
            s[w] = acc ? *(const VT *)((src) + w * (V)) : (VT){0};                    \
        for (int q = 0; q < nnz; q++) {                                               \
            const T *bp = B + (size_t)idx[q] * ldb + (col);                           \
            T a = val[q];                                                             \
            for (int w = 0; w < (W); w++) s[w] += a * *(const VT *)(bp + w * (V));    \
        }                                                                             \
        for (int w = 0; w < (W); w++) *(VT *)((dst) + w * (V)) = s[w];                \
    }

/*
 * Rows of 8 vectors or more: whole 8-vector tiles, and for the columns left
 * over one more 8-vector tile ending at column N, computed first (from C as it
 * was) into a buffer and copied in last, so that its overlap with the whole
 * tiles is not added twice. Narrower rows step down through 4, 2, 1 vectors.
 */
#define EQ_DEFINE_SPARSE_ROWS(NAME, T, VT, V, ATTR)                                   \
    ATTR static void NAME(int R, int N, int K, const T *A, int lda, const T *B,       \
                          int ldb, int acc, T *C, int ldc, int *idx, T *val) {        \
        T tail[8 * (V)];                                                              \
        for (int r = 0; r < R; r++) {                                                 \
            const T *arow = A + (size_t)r * lda;                                      \
            T *crow = C + (size_t)r * ldc;                                            \
            int nnz = 0;                                                              \
            for (int k = 0; k < K; k++) {                                             \
                idx[nnz] = k; val[nnz] = arow[k]; nnz += arow[k] != 0; /* no branch */ \
            }                                                                         \
            if (nnz == 0 && acc) continue;                                            \
            int c = 0;                                                                \
            if (N >= 8 * (V)) {                                                       \
                int whole = N - N % (8 * (V)), start = N - 8 * (V);                   \
                if (whole < N) EQ_SPARSE_TILE(T, VT, V, 8, start, crow + start, tail) \
                for (; c < whole; c += 8 * (V)) EQ_SPARSE_TILE(T, VT, V, 8, c, crow + c, crow + c) \
                for (; c < N; c++) crow[c] = tail[c - start];                         \
            }                                                                         \
            for (; c + 4 * (V) <= N; c += 4 * (V)) EQ_SPARSE_TILE(T, VT, V, 4, c, crow + c, crow + c) \
            for (; c + 2 * (V) <= N; c += 2 * (V)) EQ_SPARSE_TILE(T, VT, V, 2, c, crow + c, crow + c) \
            for (; c + (V) <= N; c += (V)) EQ_SPARSE_TILE(T, VT, V, 1, c, crow + c, crow + c) \
            for (; c < N; c++) {                                                      \
                T s0 = acc ? crow[c] : 0;                                             \
                for (int q = 0; q < nnz; q++) s0 += val[q] * B[(size_t)idx[q] * ldb + c]; \
                crow[c] = s0;                                                         \
            }                                                                         \
        }                                                                             \
    }

EQ_DEFINE_SPARSE_ROWS(eq_sparse_f32_generic, float, eq_f4, 4, )
EQ_DEFINE_SPARSE_ROWS(eq_sparse_f64_generic, double, eq_d2, 2, )
#if EQ_X86_DISPATCH
EQ_DEFINE_SPARSE_ROWS(eq_sparse_f32_avx2, float, eq_f8, 8, EQ_TARGET_AVX2)
EQ_DEFINE_SPARSE_ROWS(eq_sparse_f64_avx2, double, eq_d4, 4, EQ_TARGET_AVX2)
EQ_DEFINE_SPARSE_ROWS(eq_sparse_f32_avx512, float, eq_f16, 16, EQ_TARGET_AVX512)
EQ_DEFINE_SPARSE_ROWS(eq_sparse_f64_avx512, double, eq_d8, 8, EQ_TARGET_AVX512)
#endif

/* idx and val: scratch for K entries each, owned by the calling thread. */
#define EQ_DEFINE_SPARSE_DISPATCH(NAME, T)                                            \
    static void NAME(int isa, int R, int N, int K, const T *A, int lda, const T *B,   \
                     int ldb, int acc, T *C, int ldc, int *idx, T *val) {             \
        EQ_DISPATCH(isa, NAME, (R, N, K, A, lda, B, ldb, acc, C, ldc, idx, val),      \
                    (R, N, K, A, lda, B, ldb, acc, C, ldc, idx, val))                 \
    }

EQ_DEFINE_SPARSE_DISPATCH(eq_sparse_f32, float)
EQ_DEFINE_SPARSE_DISPATCH(eq_sparse_f64, double)

/* Non-zero entries of the R x K block A (lda apart), to decide which product pays. */
#define EQ_DEFINE_COUNT(NAME, T)                                                      \
    static long NAME(int R, int K, const T *A, int lda) {                             \
        long n = 0;                                                                   \
        for (int r = 0; r < R; r++)                                                   \
            for (int k = 0; k < K; k++) n += A[(size_t)r * lda + k] != 0;             \
        return n;                                                                     \
    }

EQ_DEFINE_COUNT(eq_count_nonzero_f32, float)
EQ_DEFINE_COUNT(eq_count_nonzero_f64, double)

#endif
