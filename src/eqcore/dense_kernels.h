/*
 * Dense products for the relaxation (skinny: few rows): C (R x N) = A (R x K) @ B (K x N),
 * row-major, R small (the rows of the mini-batch one thread owns).
 *
 * Why not BLAS: a BLAS GEMM packs B (here a weight matrix of up to 1.5 MB) into
 * a buffer on every call. With 10-20 rows per thread that copy costs as much as
 * the product itself, and every thread repeats it. These kernels stream B once
 * per group of up to RB rows, keeping RB x (2 vectors) accumulators in
 * registers; B stays hot in L2 across steps.
 *
 * One source, three instruction sets chosen at run time (so wheels built for
 * baseline x86-64 still use AVX-512 where the CPU has it): AVX-512, AVX2+FMA,
 * and a portable 128-bit version (SSE2 / NEON / plain C).
 */
#ifndef EQCORE_DENSE_KERNELS_H
#define EQCORE_DENSE_KERNELS_H

#include "simd.h"

#if EQ_X86_DISPATCH
#include <immintrin.h>
#endif

/*
 * Rows r0..r0+RG of C for a compile-time RG: blocks of 2 vectors of columns,
 * then 1 vector, then a half and a quarter vector, then scalars. ACC = 0 overwrites C, ACC = 1 adds to it.
 */
/*
 * Rows of B are read EQ_PREFETCH_ROWS ahead: walking down a column block, each
 * k starts a new cache line ldb floats away, a stride the hardware prefetchers
 * of some CPUs do not follow (measured with tools/kernel_bench.c, see
 * docs/performance.md).
 */
#define EQ_PREFETCH_ROWS 8

#define EQ_DEFINE_ROWS(NAME, T, VT, V, HVT, HV, QVT, QV, RG, ATTR, AIDX, BIDX, MADD)                              \
    ATTR EQ_INLINE void NAME(int N, int K, const T *A, int lda, const T *B, int ldb,  \
                             int acc, T *C, int ldc, const int *kidx) {              \
        int c = 0;                                                                    \
        for (; c + 2 * V <= N; c += 2 * V) {                                          \
            VT s0[RG], s1[RG];                                                        \
            for (int r = 0; r < RG; r++) { s0[r] = (VT){0}; s1[r] = (VT){0}; }       \
            for (int k = 0; k < K; k++) {                                             \
                const T *bp = B + (size_t)BIDX(k) * ldb + c;                          \
                if (k + EQ_PREFETCH_ROWS < K) {                                       \
                    const T *ahead = B + (size_t)BIDX(k + EQ_PREFETCH_ROWS) * ldb + c;    \
                    __builtin_prefetch(ahead);                                        \
                    __builtin_prefetch(ahead + 2 * V - 1);                            \
                }                                                                     \
                VT b0 = *(const VT *)bp, b1 = *(const VT *)(bp + V);                  \
                for (int r = 0; r < RG; r++) {                                        \
                    T a = A[(size_t)r * lda + AIDX(k)];                                     \
                    s0[r] += a * b0;                                                  \
                    s1[r] += a * b1;                                                  \
                }                                                                     \
            }                                                                         \
            for (int r = 0; r < RG; r++) {                                            \
                VT *c0 = (VT *)(C + (size_t)r * ldc + c), *c1 = (VT *)(C + (size_t)r * ldc + c + V); \
                if (acc) { *c0 += s0[r]; *c1 += s1[r]; } else { *c0 = s0[r]; *c1 = s1[r]; } \
            }                                                                         \
        }                                                                             \
        for (; c + V <= N; c += V) {                                                  \
            VT s0[RG];                                                                \
            for (int r = 0; r < RG; r++) s0[r] = (VT){0};                             \
            for (int k = 0; k < K; k++) {                                             \
                const T *bp = B + (size_t)BIDX(k) * ldb + c;                          \
                VT b0 = *(const VT *)bp;                                              \
                for (int r = 0; r < RG; r++) s0[r] += A[(size_t)r * lda + AIDX(k)] * b0;    \
            }                                                                         \
            for (int r = 0; r < RG; r++) {                                            \
                VT *c0 = (VT *)(C + (size_t)r * ldc + c);                             \
                if (acc) *c0 += s0[r]; else *c0 = s0[r];                              \
            }                                                                         \
        }                                                                             \
        for (; c + HV <= N; c += HV) {                                                \
            HVT s0[RG];                                                               \
            for (int r = 0; r < RG; r++) s0[r] = (HVT){0};                            \
            for (int k = 0; k < K; k++) {                                             \
                const T *bp = B + (size_t)BIDX(k) * ldb + c;                          \
                HVT b0 = *(const HVT *)bp;                                            \
                for (int r = 0; r < RG; r++) s0[r] += A[(size_t)r * lda + AIDX(k)] * b0;    \
            }                                                                         \
            for (int r = 0; r < RG; r++) {                                            \
                HVT *c0 = (HVT *)(C + (size_t)r * ldc + c);                           \
                if (acc) *c0 += s0[r]; else *c0 = s0[r];                              \
            }                                                                         \
        }                                                                             \
        for (; c + QV <= N; c += QV) {                                                \
            QVT s0[RG];                                                               \
            for (int r = 0; r < RG; r++) s0[r] = (QVT){0};                            \
            for (int k = 0; k < K; k++) {                                             \
                const T *bp = B + (size_t)BIDX(k) * ldb + c;                          \
                QVT b0 = *(const QVT *)bp;                                            \
                for (int r = 0; r < RG; r++) s0[r] += A[(size_t)r * lda + AIDX(k)] * b0;    \
            }                                                                         \
            for (int r = 0; r < RG; r++) {                                            \
                QVT *c0 = (QVT *)(C + (size_t)r * ldc + c);                           \
                if (acc) *c0 += s0[r]; else *c0 = s0[r];                              \
            }                                                                         \
        }                                                                             \
        for (; c < N; c++) {                                                          \
            T s0[RG];                                                                 \
            for (int r = 0; r < RG; r++) s0[r] = 0;                                   \
            for (int k = 0; k < K; k++) {                                             \
                T b0 = B[(size_t)BIDX(k) * ldb + c];                                  \
                for (int r = 0; r < RG; r++) s0[r] = MADD(A[(size_t)r * lda + AIDX(k)], b0, s0[r]); \
            }                                                                         \
            for (int r = 0; r < RG; r++) {                                            \
                T *c0 = C + (size_t)r * ldc + c;                                      \
                if (acc) *c0 += s0[r]; else *c0 = s0[r];                              \
            }                                                                         \
        }                                                                             \
    }

/*
 * The whole product: rows cut into balanced groups of at most max_group rows.
 * With LISTED = 1, each group only visits the k where one of its rows of A is
 * non-zero (listed in kidx, scratch for K entries): the zero columns of a
 * sparse input cost nothing and each listed row of B is still read once for
 * the whole group.
 */
#define EQ_K_ALL(k) (k)
#define EQ_K_LISTED(k) kidx[k]
/* NAME_r1 .. NAME_r12: the row kernels for every group size. */
#define EQ_DEFINE_ROW_SET(NAME, T, VT, V, HVT, HV, QVT, QV, ATTR, AIDX, BIDX, MADD)                      \
    EQ_DEFINE_ROWS(NAME##_r1, T, VT, V, HVT, HV, QVT, QV, 1, ATTR, AIDX, BIDX, MADD)                         \
    EQ_DEFINE_ROWS(NAME##_r2, T, VT, V, HVT, HV, QVT, QV, 2, ATTR, AIDX, BIDX, MADD)                         \
    EQ_DEFINE_ROWS(NAME##_r3, T, VT, V, HVT, HV, QVT, QV, 3, ATTR, AIDX, BIDX, MADD)                         \
    EQ_DEFINE_ROWS(NAME##_r4, T, VT, V, HVT, HV, QVT, QV, 4, ATTR, AIDX, BIDX, MADD)                         \
    EQ_DEFINE_ROWS(NAME##_r5, T, VT, V, HVT, HV, QVT, QV, 5, ATTR, AIDX, BIDX, MADD)                         \
    EQ_DEFINE_ROWS(NAME##_r6, T, VT, V, HVT, HV, QVT, QV, 6, ATTR, AIDX, BIDX, MADD)                         \
    EQ_DEFINE_ROWS(NAME##_r7, T, VT, V, HVT, HV, QVT, QV, 7, ATTR, AIDX, BIDX, MADD)                         \
    EQ_DEFINE_ROWS(NAME##_r8, T, VT, V, HVT, HV, QVT, QV, 8, ATTR, AIDX, BIDX, MADD)                         \
    EQ_DEFINE_ROWS(NAME##_r9, T, VT, V, HVT, HV, QVT, QV, 9, ATTR, AIDX, BIDX, MADD)                         \
    EQ_DEFINE_ROWS(NAME##_r10, T, VT, V, HVT, HV, QVT, QV, 10, ATTR, AIDX, BIDX, MADD)                       \
    EQ_DEFINE_ROWS(NAME##_r11, T, VT, V, HVT, HV, QVT, QV, 11, ATTR, AIDX, BIDX, MADD)                       \
    EQ_DEFINE_ROWS(NAME##_r12, T, VT, V, HVT, HV, QVT, QV, 12, ATTR, AIDX, BIDX, MADD)

/* Call the row kernel NAME_r<rg> (rg in 1..12) with ARGS. */
#define EQ_CALL_ROWS(NAME, rg, ARGS)                                                  \
    switch (rg) {                                                                     \
        case 1: NAME##_r1 ARGS; break;                                                \
        case 2: NAME##_r2 ARGS; break;                                                \
        case 3: NAME##_r3 ARGS; break;                                                \
        case 4: NAME##_r4 ARGS; break;                                                \
        case 5: NAME##_r5 ARGS; break;                                                \
        case 6: NAME##_r6 ARGS; break;                                                \
        case 7: NAME##_r7 ARGS; break;                                                \
        case 8: NAME##_r8 ARGS; break;                                                \
        case 9: NAME##_r9 ARGS; break;                                                \
        case 10: NAME##_r10 ARGS; break;                                              \
        case 11: NAME##_r11 ARGS; break;                                              \
        default: NAME##_r12 ARGS; break;                                              \
    }

/* The number of rows of the next group: R - r0 rows left, cut into balanced groups of at most max_group. */
EQ_INLINE int eq_group_rows(int left, int max_group) {
    int groups = (left + max_group - 1) / max_group;
    return (left + groups - 1) / groups;
}

/*
 * The whole product: rows cut into balanced groups of at most max_group rows.
 * With LISTED = 1, each group only visits the k where one of its rows of A is
 * non-zero (listed in kidx, scratch for K entries): the zero columns of a
 * sparse input cost nothing and each listed row of B is still read once for
 * the whole group.
 */
#define EQ_K_ALL(k) (k)
#define EQ_K_LISTED(k) kidx[k]
#define EQ_DEFINE_GEMM(NAME, T, VT, V, HVT, HV, QVT, QV, ATTR, LISTED, KIDX, MADD)                      \
    EQ_DEFINE_ROW_SET(NAME, T, VT, V, HVT, HV, QVT, QV, ATTR, KIDX, KIDX, MADD)                         \
    ATTR static void NAME(int R, int N, int K, const T *A, int lda, const T *B,       \
                          int ldb, int acc, T *C, int ldc, int max_group, int *kidx) { \
        int r0 = 0;                                                                   \
        while (r0 < R) {                                                              \
            int rg = eq_group_rows(R - r0, max_group);                                \
            const T *a = A + (size_t)r0 * lda;                                        \
            T *cc = C + (size_t)r0 * ldc;                                             \
            int kk = K;                                                               \
            if (LISTED) {                                                             \
                kk = 0;                                                               \
                for (int k = 0; k < K; k++) {                                         \
                    int any = 0;                                                      \
                    for (int r = 0; r < rg; r++) any |= a[(size_t)r * lda + k] != 0;  \
                    kidx[kk] = k;                                                     \
                    kk += any; /* no branch: the pattern is unpredictable */          \
                }                                                                     \
            }                                                                         \
            EQ_CALL_ROWS(NAME, rg, (N, kk, a, lda, B, ldb, acc, cc, ldc, kidx))       \
            r0 += rg;                                                                 \
        }                                                                             \
    }

/*
 * The convolution without unfolding its input (implicit im2col):
 * C (R x N) = sum_k A[r + off[k]] B[k, :], where the R rows are R consecutive
 * output positions of one row of a map and off (K entries) the offsets of a
 * patch's values from its first one. The patch values are broadcast from the
 * (cached) input map itself, so no unfolded copy is written or read.
 */
#define EQ_DEFINE_SHIFTED(NAME, T, VT, V, HVT, HV, QVT, QV, ATTR, MADD)                              \
    EQ_DEFINE_ROW_SET(NAME, T, VT, V, HVT, HV, QVT, QV, ATTR, EQ_K_LISTED, EQ_K_ALL, MADD)           \
    ATTR static void NAME(int R, int N, int K, const T *A, const T *B, int ldb,       \
                          T *C, int ldc, int max_group, const int *off) {             \
        int r0 = 0;                                                                   \
        while (r0 < R) {                                                              \
            int rg = eq_group_rows(R - r0, max_group);                                \
            const int *kidx = off;                                                    \
            EQ_CALL_ROWS(NAME, rg, (N, K, A + r0, 1, B, ldb, 0, C + (size_t)r0 * ldc, ldc, kidx)) \
            r0 += rg;                                                                 \
        }                                                                             \
    }

/*
 * C (R x N) [+]= A (R x K) @ B^T for B^T given row-major (N x K): dot products
 * along K. For a narrow N, such as a 10-class output layer, where the
 * column-vector kernels above would leave most lanes idle. RR rows of A
 * against CC rows of B^T at a time: RR CC independent accumulators hide the
 * FMA latency (4 x 5, then 4 x 4, with AVX-512's 32 registers, 2 x 4
 * otherwise; for 10 columns two blocks of 5 load 9 vectors per 20
 * multiply-adds where blocks of 4, 4 and 2 loaded 8 per 16 and 6 per 8:
 * 1.16 against 1.26 us for 10 x 10 x 500 on one Zen 4 core,
 * docs/data/perf/dot-bench.c). The last K % V values are one more vector
 * in the first lanes, the others zero (LOADN: no load past K), so that each
 * sum's terms sit in the lanes they would with zeros padded after K: rows
 * padded with zero units give the same bits (the compiled epoch loop trains
 * on such rows, _epoch.pyx).
 */
#define EQ_DOT_BLOCK(T, VT, V, HSUM, LOADN, STORE, RR, CC)                            \
    {                                                                                 \
        VT s[RR][CC];                                                                 \
        for (int i = 0; i < (RR); i++)                                                \
            for (int j = 0; j < (CC); j++) s[i][j] = (VT){0};                         \
        int k = 0;                                                                    \
        for (; k + (V) <= K; k += (V)) {                                              \
            VT av[RR], bv[CC];                                                        \
            for (int i = 0; i < (RR); i++) av[i] = *(const VT *)(A + (size_t)(r + i) * lda + k); \
            for (int j = 0; j < (CC); j++) bv[j] = *(const VT *)(BT + (size_t)(c + j) * ldbt + k); \
            for (int i = 0; i < (RR); i++)                                            \
                for (int j = 0; j < (CC); j++) s[i][j] += av[i] * bv[j];              \
        }                                                                             \
        if (k < K) {                                                                  \
            VT av[RR], bv[CC];                                                        \
            for (int i = 0; i < (RR); i++) av[i] = LOADN(A + (size_t)(r + i) * lda + k, K - k); \
            for (int j = 0; j < (CC); j++) bv[j] = LOADN(BT + (size_t)(c + j) * ldbt + k, K - k); \
            for (int i = 0; i < (RR); i++)                                            \
                for (int j = 0; j < (CC); j++) s[i][j] += av[i] * bv[j];              \
        }                                                                             \
        STORE(T, HSUM, RR, CC)                                                        \
    }

/* Each sum of the block stored (or added) on its own: HSUM per accumulator. */
#define EQ_DOT_STORE(T, HSUM, RR, CC)                                                 \
    for (int i = 0; i < (RR); i++) {                                                  \
        T *crow = C + (size_t)(r + i) * ldc;                                          \
        for (int j = 0; j < (CC); j++) {                                              \
            T t = HSUM(s[i][j]);                                                      \
            if (acc) crow[c + j] += t; else crow[c + j] = t;                          \
        }                                                                             \
    }

#define EQ_DOT_ROWS(T, VT, V, HSUM, LOADN, STORE, RR)                                 \
    for (; r + (RR) <= R; r += (RR)) {                                                \
        int c = 0;                                                                    \
        if ((RR) == 4) for (; c + 5 <= N; c += 5) EQ_DOT_BLOCK(T, VT, V, HSUM, LOADN, STORE, RR, 5) \
        for (; c + 4 <= N; c += 4) EQ_DOT_BLOCK(T, VT, V, HSUM, LOADN, STORE, RR, 4)   \
        for (; c + 2 <= N; c += 2) EQ_DOT_BLOCK(T, VT, V, HSUM, LOADN, STORE, RR, 2)   \
        for (; c < N; c++) EQ_DOT_BLOCK(T, VT, V, HSUM, LOADN, STORE, RR, 1)           \
    }

#define EQ_DEFINE_DOT(NAME, T, VT, V, HSUM, LOADN, STORE, WIDE, ATTR)                 \
    ATTR static void NAME(int R, int N, int K, const T *A, int lda, const T *BT,      \
                          int ldbt, int acc, T *C, int ldc) {                          \
        int r = 0;                                                                    \
        if (WIDE) EQ_DOT_ROWS(T, VT, V, HSUM, LOADN, STORE, 4)                        \
        EQ_DOT_ROWS(T, VT, V, HSUM, LOADN, STORE, 2)                                  \
        EQ_DOT_ROWS(T, VT, V, HSUM, LOADN, STORE, 1)                                  \
    }

/* The first n (< V) values from p in a vector's first lanes, zeros after them. */
#define EQ_LOADN(VT, V, p, n) ({ VT v_ = {0}; for (int l_ = 0; l_ < (n); l_++) v_[l_] = (p)[l_]; v_; })
#define EQ_LOADN_F4(p, n) EQ_LOADN(eq_f4, 4, p, n)
#define EQ_LOADN_D2(p, n) EQ_LOADN(eq_d2, 2, p, n)
#define EQ_LOADN_F8(p, n) EQ_LOADN(eq_f8, 8, p, n)
#define EQ_LOADN_D4(p, n) EQ_LOADN(eq_d4, 4, p, n)
#define EQ_LOADN_F16(p, n) ((eq_f16)_mm512_maskz_loadu_ps((__mmask16)((1u << (n)) - 1), (p)))
#define EQ_LOADN_D8(p, n) ((eq_d8)_mm512_maskz_loadu_pd((__mmask8)((1u << (n)) - 1), (p)))

/* Horizontal sums: halve the vector until 4 (float) or 2 (double) lanes are left. */
#define EQ_HALVE(FROM, TO, x) ({ union { FROM v; TO h[2]; } u_ = { .v = (x) }; u_.h[0] + u_.h[1]; })
#define EQ_SUM4(x) ({ eq_f4 q_ = (x); (q_[0] + q_[1]) + (q_[2] + q_[3]); })
#define EQ_SUM2(x) ({ eq_d2 q_ = (x); q_[0] + q_[1]; })
#define EQ_HSUM_F4(x) EQ_SUM4(x)
#define EQ_HSUM_F8(x) EQ_SUM4(EQ_HALVE(eq_f8, eq_f4, x))
#define EQ_HSUM_F16(x) EQ_SUM4(EQ_HALVE(eq_f8, eq_f4, EQ_HALVE(eq_f16, eq_f8, x)))
#define EQ_HSUM_D2(x) EQ_SUM2(x)
#define EQ_HSUM_D4(x) EQ_SUM2(EQ_HALVE(eq_d4, eq_d2, x))
#define EQ_HSUM_D8(x) EQ_SUM2(EQ_HALVE(eq_d4, eq_d2, EQ_HALVE(eq_d8, eq_d4, x)))

EQ_DEFINE_DOT(eq_dot_f32_generic, float, eq_f4, 4, EQ_HSUM_F4, EQ_LOADN_F4, EQ_DOT_STORE, 0, )
EQ_DEFINE_DOT(eq_dot_f64_generic, double, eq_d2, 2, EQ_HSUM_D2, EQ_LOADN_D2, EQ_DOT_STORE, 0, )
#if EQ_X86_DISPATCH
/*
 * AVX-512 float: the horizontal sums of four accumulators at once, each in
 * EQ_HSUM_F16's order (lanes i and i + 8, then i and i + 4, then (0 + 1) + (2 + 3)),
 * so with the same bits: the two 256-bit halves added for two accumulators per
 * vector, then the two 128-bit quarters for four, then pairs of lanes; sums 0, 1,
 * 2, 3 land in lanes 0, 4, 8, 12. Six shuffles and permutes and five additions
 * for four sums instead of four chains of three extracts and three additions:
 * 10 x 10 x 512 in 1.03-1.13 us against 1.08-1.17 on one Zen 4 core
 * (docs/data/perf/dot-hsum4-bench.c, which also checks the bits on 2,028 shapes).
 */
EQ_TARGET_AVX512 EQ_INLINE __m512 eq_hsum4_f16(__m512 a, __m512 b, __m512 c, __m512 d) {
    __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
    __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, 0x44), _mm512_shuffle_f32x4(c, d, 0xEE));
    __m512 w = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, 0x88), _mm512_shuffle_f32x4(ab, cd, 0xDD));
    __m512 x = _mm512_add_ps(w, _mm512_permute_ps(w, 0xB1));
    return _mm512_add_ps(x, _mm512_permute_ps(x, 0x4E));
}

/* A row's four consecutive sums in one 128-bit store; the sums of a last column (past
 * the fours) of four rows together; the rest on their own. */
#define EQ_DOT_STORE_F16(T, HSUM, RR, CC)                                             \
    for (int i = 0; i < (RR); i++) {                                                  \
        T *crow = C + (size_t)(r + i) * ldc + c;                                      \
        for (int j = 0; j + 4 <= (CC); j += 4) {                                      \
            __m512 h_ = eq_hsum4_f16((__m512)s[i][j], (__m512)s[i][j + 1], (__m512)s[i][j + 2], \
                                     (__m512)s[i][j + 3]);                            \
            __m128 t_ = _mm512_castps512_ps128(_mm512_permutexvar_ps(                  \
                _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), h_)); \
            if (acc) t_ = _mm_add_ps(_mm_loadu_ps(crow + j), t_);                     \
            _mm_storeu_ps(crow + j, t_);                                              \
        }                                                                             \
    }                                                                                 \
    for (int j = (CC) - (CC) % 4; j < (CC); j++) {                                    \
        int i = 0;                                                                    \
        if ((RR) == 4) {                                                              \
            __m512 h_ = eq_hsum4_f16((__m512)s[0][j], (__m512)s[(RR) > 1][j],         \
                                     (__m512)s[(RR) > 2 ? 2 : 0][j], (__m512)s[(RR) > 3 ? 3 : 0][j]); \
            T t_[4] = {_mm512_cvtss_f32(h_), _mm_cvtss_f32(_mm512_extractf32x4_ps(h_, 1)), \
                       _mm_cvtss_f32(_mm512_extractf32x4_ps(h_, 2)),                  \
                       _mm_cvtss_f32(_mm512_extractf32x4_ps(h_, 3))};                 \
            for (; i < 4; i++) {                                                      \
                T *cij = C + (size_t)(r + i) * ldc + c + j;                           \
                if (acc) *cij += t_[i]; else *cij = t_[i];                            \
            }                                                                         \
        }                                                                             \
        for (; i < (RR); i++) {                                                       \
            T t = HSUM(s[i][j]);                                                      \
            T *cij = C + (size_t)(r + i) * ldc + c + j;                               \
            if (acc) *cij += t; else *cij = t;                                        \
        }                                                                             \
    }

EQ_DEFINE_DOT(eq_dot_f32_avx2, float, eq_f8, 8, EQ_HSUM_F8, EQ_LOADN_F8, EQ_DOT_STORE, 0, EQ_TARGET_AVX2)
EQ_DEFINE_DOT(eq_dot_f64_avx2, double, eq_d4, 4, EQ_HSUM_D4, EQ_LOADN_D4, EQ_DOT_STORE, 0, EQ_TARGET_AVX2)
EQ_DEFINE_DOT(eq_dot_f32_avx512, float, eq_f16, 16, EQ_HSUM_F16, EQ_LOADN_F16, EQ_DOT_STORE_F16, 1,
              EQ_TARGET_AVX512)
EQ_DEFINE_DOT(eq_dot_f64_avx512, double, eq_d8, 8, EQ_HSUM_D8, EQ_LOADN_D8, EQ_DOT_STORE, 1, EQ_TARGET_AVX512)
#endif

#define EQ_DEFINE_GEMMS(SUFFIX, ATTR, MADD, F, FV, FHV, FH, FQV, FQ, D, DV, DHV, DH, DQV, DQ)                      \
    EQ_DEFINE_GEMM(eq_gemm_any_f32_##SUFFIX, float, F, FV, FHV, FH, FQV, FQ, ATTR, 0, EQ_K_ALL, MADD)     \
    EQ_DEFINE_GEMM(eq_gemm_any_f64_##SUFFIX, double, D, DV, DHV, DH, DQV, DQ, ATTR, 0, EQ_K_ALL, MADD)    \
    EQ_DEFINE_GEMM(eq_listed_f32_##SUFFIX, float, F, FV, FHV, FH, FQV, FQ, ATTR, 1, EQ_K_LISTED, MADD) \
    EQ_DEFINE_GEMM(eq_listed_f64_##SUFFIX, double, D, DV, DHV, DH, DQV, DQ, ATTR, 1, EQ_K_LISTED, MADD) \
    EQ_DEFINE_SHIFTED(eq_shifted_f32_##SUFFIX, float, F, FV, FHV, FH, FQV, FQ, ATTR, MADD)               \
    EQ_DEFINE_SHIFTED(eq_shifted_f64_##SUFFIX, double, D, DV, DHV, DH, DQV, DQ, ATTR, MADD)

EQ_DEFINE_GEMMS(generic, , EQ_MADD_SEPARATE, eq_f4, 4, eq_f2, 2, eq_f2, 2, eq_d2, 2, eq_d2, 2, eq_d2, 2)
#if EQ_X86_DISPATCH
EQ_DEFINE_GEMMS(avx2, EQ_TARGET_AVX2, EQ_MADD_FUSED, eq_f8, 8, eq_f4, 4, eq_f2, 2, eq_d4, 4, eq_d2, 2, eq_d2, 2)
EQ_DEFINE_GEMMS(avx512, EQ_TARGET_AVX512, EQ_MADD_FUSED, eq_f16, 16, eq_f8, 8, eq_f4, 4, eq_d8, 8, eq_d4, 4, eq_d2, 2)
#endif

/* The accumulator budget differs per instruction set: 12 rows x 2 vectors
 * take 24 of AVX-512's 32 registers; AVX2 and 128-bit have 16 registers, so
 * 6 rows x 2 vectors. (12 against 8 rows: ~200 against ~160 GFLOP/s for
 * 10 x 500 @ 500 x 500 on one Zen 5 core, measured in process CPU time.)
 * kidx: scratch for K column indices, owned by the calling thread (listed only). */
#define EQ_DEFINE_GEMM_DISPATCH(NAME, T)                                              \
    static void NAME(int isa, int R, int N, int K, const T *A, int lda, const T *B,   \
                     int ldb, int acc, T *C, int ldc, int *kidx) {                    \
        EQ_DISPATCH(isa, NAME, (R, N, K, A, lda, B, ldb, acc, C, ldc, 12, kidx),      \
                    (R, N, K, A, lda, B, ldb, acc, C, ldc, 6, kidx))                  \
    }

EQ_DEFINE_GEMM_DISPATCH(eq_listed_f32, float)
EQ_DEFINE_GEMM_DISPATCH(eq_listed_f64, double)
EQ_DEFINE_GEMM_DISPATCH(eq_gemm_any_f32, float)
EQ_DEFINE_GEMM_DISPATCH(eq_gemm_any_f64, double)

#define EQ_DEFINE_SHIFTED_DISPATCH(NAME, T)                                           \
    static void NAME(int isa, int R, int N, int K, const T *A, const T *B, int ldb,   \
                     T *C, int ldc, const int *off) {                                 \
        EQ_DISPATCH(isa, NAME, (R, N, K, A, B, ldb, C, ldc, 12, off),                 \
                    (R, N, K, A, B, ldb, C, ldc, 6, off))                             \
    }

EQ_DEFINE_SHIFTED_DISPATCH(eq_shifted_f32, float)
EQ_DEFINE_SHIFTED_DISPATCH(eq_shifted_f64, double)

static void eq_gemm_f32(int isa, int R, int N, int K, const float *A, int lda, const float *B,
                        int ldb, int acc, float *C, int ldc) {
    eq_gemm_any_f32(isa, R, N, K, A, lda, B, ldb, acc, C, ldc, NULL);
}

static void eq_gemm_f64(int isa, int R, int N, int K, const double *A, int lda, const double *B,
                        int ldb, int acc, double *C, int ldc) {
    eq_gemm_any_f64(isa, R, N, K, A, lda, B, ldb, acc, C, ldc, NULL);
}

#define EQ_DEFINE_DOT_DISPATCH(NAME, T)                                               \
    static void NAME(int isa, int R, int N, int K, const T *A, int lda, const T *BT,  \
                     int ldbt, int acc, T *C, int ldc) {                              \
        EQ_DISPATCH(isa, NAME, (R, N, K, A, lda, BT, ldbt, acc, C, ldc),              \
                    (R, N, K, A, lda, BT, ldbt, acc, C, ldc))                         \
    }

EQ_DEFINE_DOT_DISPATCH(eq_dot_f32, float)
EQ_DEFINE_DOT_DISPATCH(eq_dot_f64, double)

#endif
