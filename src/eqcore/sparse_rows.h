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
 * 40 KB for batch 20 and 500 units, taken in column tiles that stay in L1):
 * rows of W_0 whose pixel is zero in the whole batch are not touched at all.
 * The drive x W_0, whose B (W_0) does not stay in L1, takes the strips below
 * instead (eq_strips): the same sums, with each line of W_0 read once for all
 * the rows. Instruction set chosen at run time.
 */
#ifndef EQCORE_SPARSE_ROWS_H
#define EQCORE_SPARSE_ROWS_H

#include "simd.h"

#if EQ_X86_DISPATCH
#include <immintrin.h>
#endif

/*
 * A row's non-zero entries, compacted: idx[q] = k and val[q] = a[k] for the
 * entries a[k] != 0 (NaN included), in the order of k; returns their count.
 * The scalar form writes every k and advances only past the non-zeros (no
 * branch: the pattern is unpredictable), a chain of dependent additions, one
 * per entry, for each of the 784 rows of x^T in the update of W_0; AVX-512
 * compacts 16 (float) or 8 (double) entries per step with vcompress, its
 * register form (the memory form is slow on Zen 4). docs/performance.md has
 * the update's time before and after.
 */
#define EQ_DEFINE_COMPACT(NAME, T, ATTR)                                              \
    ATTR EQ_INLINE int NAME(const T *a, int K, int *idx, T *val) {                    \
        int nnz = 0;                                                                  \
        for (int k = 0; k < K; k++) {                                                 \
            idx[nnz] = k; val[nnz] = a[k]; nnz += a[k] != 0;                          \
        }                                                                             \
        return nnz;                                                                   \
    }

EQ_DEFINE_COMPACT(eq_compact_f32_generic, float, )
EQ_DEFINE_COMPACT(eq_compact_f64_generic, double, )
#if EQ_X86_DISPATCH
EQ_DEFINE_COMPACT(eq_compact_f32_avx2, float, EQ_TARGET_AVX2)
EQ_DEFINE_COMPACT(eq_compact_f64_avx2, double, EQ_TARGET_AVX2)

EQ_TARGET_AVX512 EQ_INLINE int eq_compact_f32_avx512(const float *a, int K, int *idx, float *val) {
    int nnz = 0;
    __m512i k16 = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int k = 0; k < K; k += 16, k16 = _mm512_add_epi32(k16, _mm512_set1_epi32(16))) {
        __mmask16 live = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(live, a + k);
        __mmask16 nonzero = _mm512_mask_cmp_ps_mask(live, v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
        int count = __builtin_popcount(nonzero);
        __mmask16 head = (__mmask16)((1u << count) - 1);
        _mm512_mask_storeu_epi32(idx + nnz, head, _mm512_maskz_compress_epi32(nonzero, k16));
        _mm512_mask_storeu_ps(val + nnz, head, _mm512_maskz_compress_ps(nonzero, v));
        nnz += count;
    }
    return nnz;
}

EQ_TARGET_AVX512 EQ_INLINE int eq_compact_f64_avx512(const double *a, int K, int *idx, double *val) {
    int nnz = 0;
    __m256i k8 = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int k = 0; k < K; k += 8, k8 = _mm256_add_epi32(k8, _mm256_set1_epi32(8))) {
        __mmask8 live = K - k >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (K - k)) - 1);
        __m512d v = _mm512_maskz_loadu_pd(live, a + k);
        __mmask8 nonzero = _mm512_mask_cmp_pd_mask(live, v, _mm512_setzero_pd(), _CMP_NEQ_UQ);
        int count = __builtin_popcount(nonzero);
        __mmask8 head = (__mmask8)((1u << count) - 1);
        _mm256_mask_storeu_epi32(idx + nnz, head, _mm256_maskz_compress_epi32(nonzero, k8));
        _mm512_mask_storeu_pd(val + nnz, head, _mm512_maskz_compress_pd(nonzero, v));
        nnz += count;
    }
    return nnz;
}
#endif

/* s[W]: W vectors of columns from col of one row, (acc ? src : 0) + sum_q val[q] B[idx[q], col:]. */
#define EQ_SPARSE_SUMS(T, VT, V, W, col, src, idx, val, nnz)                          \
        VT s[W];                                                                      \
        for (int w = 0; w < (W); w++)                                                 \
            s[w] = acc ? *(const VT *)((src) + w * (V)) : (VT){0};                    \
        for (int q = 0; q < (nnz); q++) {                                             \
            const T *bp = B + (size_t)(idx)[q] * ldb + (col);                         \
            T a = (val)[q];                                                           \
            for (int w = 0; w < (W); w++) s[w] += a * *(const VT *)(bp + w * (V));    \
        }

/* The W vectors of sums stored at dst. */
#define EQ_SPARSE_TILE(T, VT, V, W, col, src, dst, idx, val, nnz)                     \
    {                                                                                 \
        EQ_SPARSE_SUMS(T, VT, V, W, col, src, idx, val, nnz)                          \
        for (int w = 0; w < (W); w++) *(VT *)((dst) + w * (V)) = s[w];                \
    }

/*
 * The last 8 vectors of a row (from start = N - 8 V), stored only from column whole on:
 * its vectors past whole straight from the registers, the one that straddles whole
 * through a buffer of one vector (a store to a buffer read back at other offsets
 * stalls the loads until the store completes).
 */
#define EQ_SPARSE_TAIL(T, VT, V, crow, start, whole, idx, val, nnz)                   \
    {                                                                                 \
        EQ_SPARSE_SUMS(T, VT, V, 8, start, (crow) + (start), idx, val, nnz)           \
        int skip = (whole) - (start), w0 = skip / (V);                                \
        if (skip % (V)) {                                                             \
            T part[V];                                                                \
            *(VT *)part = s[w0];                                                      \
            for (int l = skip % (V); l < (V); l++) (crow)[(start) + w0 * (V) + l] = part[l]; \
            w0++;                                                                     \
        }                                                                             \
        for (int w = w0; w < 8; w++) *(VT *)((crow) + (start) + w * (V)) = s[w];      \
    }

/* The rows of a group at most this many: their compacted entries fill the scratch. */
#define EQ_SPARSE_GROUP 64

/* The W-vector tile from column col of every row of the group that has terms (or, without acc, every row). */
#define EQ_SPARSE_GROUP_TILES(T, VT, V, W, col, dst_of)                               \
    for (int r = 0; r < rows; r++) {                                                  \
        if (nnz[r] == 0 && acc) continue;                                             \
        T *crow = C + (size_t)(r0 + r) * ldc;                                         \
        EQ_SPARSE_TILE(T, VT, V, W, col, crow + (col), dst_of, idx + (size_t)r * K,   \
                       val + (size_t)r * K, nnz[r])                                   \
    }

/*
 * The rows go in groups of EQ_SPARSE_GROUP, each row of a group compacted
 * first; then the group takes the columns in tiles of 8 vectors, every row its
 * tile before the next tile, so that the tile's rows of B (at most K x 8
 * vectors: 10 KB for the update of W_0 with batch 20, where all of B is 40 KB)
 * stay in L1 while the rows pass (docs/data/perf/update-strips-bench.c).
 * Columns past the whole tiles: one more 8-vector tile ending at column N,
 * computed first (from C as it was) and stored only past the whole tiles
 * (EQ_SPARSE_TAIL), so that its overlap with them is not added twice.
 * Narrower rows step down through 4, 2, 1 vectors. Each element is the sum of
 * its row's terms in the order of k, whatever the grouping.
 */
#define EQ_DEFINE_SPARSE_ROWS(NAME, T, VT, V, ATTR, COMPACT)                          \
    ATTR static void NAME(int R, int N, int K, const T *A, int lda, const T *B,       \
                          int ldb, int acc, T *C, int ldc, int *idx, T *val) {        \
        int nnz[EQ_SPARSE_GROUP];                                                     \
        for (int r0 = 0; r0 < R; r0 += EQ_SPARSE_GROUP) {                             \
            int rows = R - r0 < EQ_SPARSE_GROUP ? R - r0 : EQ_SPARSE_GROUP;           \
            int c = 0;                                                                \
            for (int r = 0; r < rows; r++)                                            \
                nnz[r] = COMPACT(A + (size_t)(r0 + r) * lda, K, idx + (size_t)r * K,  \
                                 val + (size_t)r * K);                                \
            if (N >= 8 * (V)) {                                                       \
                int whole = N - N % (8 * (V)), start = N - 8 * (V);                   \
                if (whole < N)                                                        \
                    for (int r = 0; r < rows; r++) {                                  \
                        if (nnz[r] == 0 && acc) continue;                             \
                        T *crow = C + (size_t)(r0 + r) * ldc;                         \
                        EQ_SPARSE_TAIL(T, VT, V, crow, start, whole, idx + (size_t)r * K, \
                                       val + (size_t)r * K, nnz[r])                   \
                    }                                                                 \
                for (; c < whole; c += 8 * (V)) EQ_SPARSE_GROUP_TILES(T, VT, V, 8, c, crow + c) \
                c = N; /* the tail tile took the rest */                              \
            }                                                                         \
            for (; c + 4 * (V) <= N; c += 4 * (V)) EQ_SPARSE_GROUP_TILES(T, VT, V, 4, c, crow + c) \
            for (; c + 2 * (V) <= N; c += 2 * (V)) EQ_SPARSE_GROUP_TILES(T, VT, V, 2, c, crow + c) \
            for (; c + (V) <= N; c += (V)) EQ_SPARSE_GROUP_TILES(T, VT, V, 1, c, crow + c) \
            for (; c < N; c++)                                                        \
                for (int r = 0; r < rows; r++) {                                      \
                    if (nnz[r] == 0 && acc) continue;                                 \
                    T *crow = C + (size_t)(r0 + r) * ldc;                             \
                    const int *ir = idx + (size_t)r * K;                              \
                    const T *vr = val + (size_t)r * K;                                \
                    T s0 = acc ? crow[c] : 0;                                         \
                    for (int q = 0; q < nnz[r]; q++) s0 += vr[q] * B[(size_t)ir[q] * ldb + c]; \
                    crow[c] = s0;                                                     \
                }                                                                     \
        }                                                                             \
    }

EQ_DEFINE_SPARSE_ROWS(eq_sparse_f32_generic, float, eq_f4, 4, , eq_compact_f32_generic)
EQ_DEFINE_SPARSE_ROWS(eq_sparse_f64_generic, double, eq_d2, 2, , eq_compact_f64_generic)
#if EQ_X86_DISPATCH
EQ_DEFINE_SPARSE_ROWS(eq_sparse_f32_avx2, float, eq_f8, 8, EQ_TARGET_AVX2, eq_compact_f32_avx2)
EQ_DEFINE_SPARSE_ROWS(eq_sparse_f64_avx2, double, eq_d4, 4, EQ_TARGET_AVX2, eq_compact_f64_avx2)
EQ_DEFINE_SPARSE_ROWS(eq_sparse_f32_avx512, float, eq_f16, 16, EQ_TARGET_AVX512, eq_compact_f32_avx512)
EQ_DEFINE_SPARSE_ROWS(eq_sparse_f64_avx512, double, eq_d8, 8, EQ_TARGET_AVX512, eq_compact_f64_avx512)
#endif

/* idx and val: scratch for min(R, EQ_SPARSE_GROUP) x K entries each, owned by the calling thread. */
#define EQ_DEFINE_SPARSE_DISPATCH(NAME, T)                                            \
    static void NAME(int isa, int R, int N, int K, const T *A, int lda, const T *B,   \
                     int ldb, int acc, T *C, int ldc, int *idx, T *val) {             \
        EQ_DISPATCH(isa, NAME, (R, N, K, A, lda, B, ldb, acc, C, ldc, idx, val),      \
                    (R, N, K, A, lda, B, ldb, acc, C, ldc, idx, val))                 \
    }

EQ_DEFINE_SPARSE_DISPATCH(eq_sparse_f32, float)
EQ_DEFINE_SPARSE_DISPATCH(eq_sparse_f64, double)

/*
 * The product for rows that share B when B does not stay in L1 (the drive
 * x W_0), in column strips: every row of A is compacted first; then for each
 * strip of columns the k come in chunks of about EQ_STRIP_BYTES of B's strip,
 * and every row adds its terms of the chunk to its partial sums, so that the
 * chunk's lines of B, read from L2 once, serve every row from L1. (The listed
 * product of dense_kernels.h reads them once per group of rows too, but sums
 * every k where one row of its group is non-zero: 2.5 times the terms for
 * MNIST's groups of 10.) Each element is the sum of its row's non-zero terms
 * in the order of k, from 0, then stored or (acc) added to C: the listed
 * product's bits for finite B, whatever the strips, the chunks and the rows
 * of the call.
 *
 * At most EQ_STRIP_ROWS rows per call. Scratch: idx EQ_STRIP_ROWS (K + 2)
 * ints, val EQ_STRIP_ROWS (K + EQ_STRIP_TAIL) values.
 */
#define EQ_STRIP_BYTES 32768
#define EQ_STRIP_ROWS 32
#define EQ_STRIP_TAIL 128 /* 8 vectors of the widest: 16 floats */
#define EQ_STRIP(T, VT, V, W, col, first)                                              \
    {                                                                                 \
        int chunk_ = EQ_STRIP_BYTES / ((W) * (V) * (int)sizeof(T));                   \
        for (int r = 0; r < R; r++) {                                                 \
            pos[r] = 0;                                                               \
            for (int w = 0; w < (W) * (V); w++) part[(size_t)r * 8 * (V) + w] = 0;    \
        }                                                                             \
        for (int k1 = chunk_; k1 - chunk_ < K; k1 += chunk_) {                        \
            for (int r = 0; r < R; r++) {                                             \
                const int *ir = idx + (size_t)r * K;                                  \
                const T *vr = val + (size_t)r * K;                                    \
                int q = pos[r], n = nnz[r];                                           \
                if (q == n || ir[q] >= k1) continue;                                  \
                T *pr = part + (size_t)r * 8 * (V);                                   \
                VT s[W];                                                              \
                for (int w = 0; w < (W); w++) s[w] = *(const VT *)(pr + w * (V));     \
                for (; q < n && ir[q] < k1; q++) {                                    \
                    const T *bp = B + (size_t)ir[q] * ldb + (col);                    \
                    T a = vr[q];                                                      \
                    for (int w = 0; w < (W); w++) s[w] += a * *(const VT *)(bp + w * (V)); \
                }                                                                     \
                for (int w = 0; w < (W); w++) *(VT *)(pr + w * (V)) = s[w];           \
                pos[r] = q;                                                           \
            }                                                                         \
        }                                                                             \
        for (int r = 0; r < R; r++) {                                                 \
            T *cr = C + (size_t)r * ldc;                                              \
            const T *pr = part + (size_t)r * 8 * (V);                                 \
            for (int c_ = (first); c_ < (col) + (W) * (V); c_++)                      \
                cr[c_] = acc ? cr[c_] + pr[c_ - (col)] : pr[c_ - (col)];              \
        }                                                                             \
    }

/* Strips of 8 vectors, the last one ending at column N (its columns before ``c``
 * already done: not written again), then 4, 2, 1 vectors and scalar columns for
 * narrower rows. */
#define EQ_DEFINE_STRIPS(NAME, T, VT, V, ATTR, COMPACT, MADD)                         \
    ATTR static void NAME(int R, int N, int K, const T *A, int lda, const T *B,       \
                          int ldb, int acc, T *C, int ldc, int *idx, T *val) {        \
        int *nnz = idx + (size_t)R * K, *pos = nnz + R;                               \
        T *part = val + (size_t)R * K;                                                \
        for (int r = 0; r < R; r++)                                                   \
            nnz[r] = COMPACT(A + (size_t)r * lda, K, idx + (size_t)r * K, val + (size_t)r * K); \
        int c = 0;                                                                    \
        if (N >= 8 * (V)) {                                                           \
            for (; c + 8 * (V) <= N; c += 8 * (V)) EQ_STRIP(T, VT, V, 8, c, c)        \
            if (c < N) EQ_STRIP(T, VT, V, 8, N - 8 * (V), c)                          \
            c = N;                                                                    \
        }                                                                             \
        for (; c + 4 * (V) <= N; c += 4 * (V)) EQ_STRIP(T, VT, V, 4, c, c)            \
        for (; c + 2 * (V) <= N; c += 2 * (V)) EQ_STRIP(T, VT, V, 2, c, c)            \
        for (; c + (V) <= N; c += (V)) EQ_STRIP(T, VT, V, 1, c, c)                    \
        for (; c < N; c++)                                                            \
            for (int r = 0; r < R; r++) {                                             \
                T s0 = 0;                                                             \
                for (int q = 0; q < nnz[r]; q++)                                      \
                    s0 = MADD(val[(size_t)r * K + q], B[(size_t)idx[(size_t)r * K + q] * ldb + c], s0); \
                C[(size_t)r * ldc + c] = acc ? C[(size_t)r * ldc + c] + s0 : s0;      \
            }                                                                         \
    }

/* the scalar columns fused where the instruction set has FMA, as the listed product's */
EQ_DEFINE_STRIPS(eq_strips_f32_generic, float, eq_f4, 4, , eq_compact_f32_generic, EQ_MADD_SEPARATE)
EQ_DEFINE_STRIPS(eq_strips_f64_generic, double, eq_d2, 2, , eq_compact_f64_generic, EQ_MADD_SEPARATE)
#if EQ_X86_DISPATCH
EQ_DEFINE_STRIPS(eq_strips_f32_avx2, float, eq_f8, 8, EQ_TARGET_AVX2, eq_compact_f32_avx2, EQ_MADD_FUSED)
EQ_DEFINE_STRIPS(eq_strips_f64_avx2, double, eq_d4, 4, EQ_TARGET_AVX2, eq_compact_f64_avx2, EQ_MADD_FUSED)
EQ_DEFINE_STRIPS(eq_strips_f32_avx512, float, eq_f16, 16, EQ_TARGET_AVX512, eq_compact_f32_avx512, EQ_MADD_FUSED)
EQ_DEFINE_STRIPS(eq_strips_f64_avx512, double, eq_d8, 8, EQ_TARGET_AVX512, eq_compact_f64_avx512, EQ_MADD_FUSED)
#endif

/* Any number of rows, EQ_STRIP_ROWS at a time (scratch as above). */
#define EQ_DEFINE_STRIPS_DISPATCH(NAME, T)                                            \
    static void NAME##_rows(int isa, int R, int N, int K, const T *A, int lda, const T *B, \
                            int ldb, int acc, T *C, int ldc, int *idx, T *val) {      \
        EQ_DISPATCH(isa, NAME, (R, N, K, A, lda, B, ldb, acc, C, ldc, idx, val),      \
                    (R, N, K, A, lda, B, ldb, acc, C, ldc, idx, val))                 \
    }                                                                                 \
    static void NAME(int isa, int R, int N, int K, const T *A, int lda, const T *B,   \
                     int ldb, int acc, T *C, int ldc, int *idx, T *val) {             \
        for (int r0 = 0; r0 < R; r0 += EQ_STRIP_ROWS)                                 \
            NAME##_rows(isa, R - r0 < EQ_STRIP_ROWS ? R - r0 : EQ_STRIP_ROWS, N, K,   \
                        A + (size_t)r0 * lda, lda, B, ldb, acc, C + (size_t)r0 * ldc, ldc, idx, val); \
    }

EQ_DEFINE_STRIPS_DISPATCH(eq_strips_f32, float)
EQ_DEFINE_STRIPS_DISPATCH(eq_strips_f64, double)

/*
 * Entries of the R x K block A (lda apart) that pass TEST, each row counted in
 * 32-bit lanes, which vectorize (a long count did not):
 *
 * - eq_count_nonzero: the non-zero ones (NaN included), to decide which product
 *   pays: 20 MNIST-sized rows, 0.63 us with AVX-512 against 2.5-3.3 us before, a
 *   cost the drive x W_0 pays on each thread (docs/performance.md);
 * - eq_count_nonfinite: the infinite or NaN ones, for which a - a is NaN where
 *   it is exactly 0 for a finite a (isfinite() did not vectorize): the compiled
 *   epoch loop asks it of every free state to stop a diverging run.
 */
#define EQ_NONZERO(a) ((a) != 0)
#define EQ_NONFINITE(a) (!((a) - (a) == 0))
#define EQ_DEFINE_COUNT(NAME, T, ATTR, TEST)                                          \
    ATTR static long NAME(int R, int K, const T *A, int lda) {                        \
        long n = 0;                                                                   \
        for (int r = 0; r < R; r++) {                                                 \
            const T *a = A + (size_t)r * lda;                                         \
            int row = 0;                                                              \
            for (int k = 0; k < K; k++) row += TEST(a[k]);                            \
            n += row;                                                                 \
        }                                                                             \
        return n;                                                                     \
    }

/* Both element types of both families on one instruction set (EQ_FOR_EACH_ISA's arguments). */
#define EQ_DEFINE_COUNT_ISA(SUFFIX, ATTR, FV, FL, DV, DL)                             \
    EQ_DEFINE_COUNT(eq_count_nonzero_f32_##SUFFIX, float, ATTR, EQ_NONZERO)           \
    EQ_DEFINE_COUNT(eq_count_nonzero_f64_##SUFFIX, double, ATTR, EQ_NONZERO)          \
    EQ_DEFINE_COUNT(eq_count_nonfinite_f32_##SUFFIX, float, ATTR, EQ_NONFINITE)       \
    EQ_DEFINE_COUNT(eq_count_nonfinite_f64_##SUFFIX, double, ATTR, EQ_NONFINITE)
EQ_FOR_EACH_ISA(EQ_DEFINE_COUNT_ISA)

#define EQ_DEFINE_COUNT_DISPATCH(NAME, T)                                             \
    static long NAME(int isa, int R, int K, const T *A, int lda) {                    \
        EQ_DISPATCH_RETURN(isa, NAME, (R, K, A, lda))                                 \
    }
EQ_DEFINE_COUNT_DISPATCH(eq_count_nonzero_f32, float)
EQ_DEFINE_COUNT_DISPATCH(eq_count_nonzero_f64, double)
EQ_DEFINE_COUNT_DISPATCH(eq_count_nonfinite_f32, float)
EQ_DEFINE_COUNT_DISPATCH(eq_count_nonfinite_f64, double)

/*
 * The change of a state since the last call: delta = s - prev, then prev = s,
 * over n entries; returns how many changed (NaN counts as a change). The
 * event-driven relaxation (_relax.pyx) sends only these changes through the
 * weights, with the sparse product above or the listed one of dense_kernels.h.
 */
#define EQ_DEFINE_STEP_DELTA(NAME, T, ATTR)                                           \
    ATTR static long NAME(size_t n, const T *s, T *prev, T *delta) {                  \
        int changed = 0; /* n < 2^31 (a row): 32-bit lanes count half the work of 64 */ \
        for (size_t i = 0; i < n; i++) {                                              \
            T d = s[i] - prev[i];                                                     \
            delta[i] = d;                                                             \
            prev[i] = s[i];                                                           \
            changed += d != 0;                                                        \
        }                                                                             \
        return changed;                                                               \
    }

#define EQ_DEFINE_STEP_DELTA_ISA(SUFFIX, ATTR, FV, FL, DV, DL)                        \
    EQ_DEFINE_STEP_DELTA(eq_step_delta_f32_##SUFFIX, float, ATTR)                     \
    EQ_DEFINE_STEP_DELTA(eq_step_delta_f64_##SUFFIX, double, ATTR)
EQ_FOR_EACH_ISA(EQ_DEFINE_STEP_DELTA_ISA)

static long eq_step_delta_f32(int isa, size_t n, const float *s, float *prev, float *delta) {
    EQ_DISPATCH_RETURN(isa, eq_step_delta_f32, (n, s, prev, delta))
}

static long eq_step_delta_f64(int isa, size_t n, const double *s, double *prev, double *delta) {
    EQ_DISPATCH_RETURN(isa, eq_step_delta_f64, (n, s, prev, delta))
}

#endif
