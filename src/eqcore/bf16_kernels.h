/*
 * bfloat16 products for the relaxation: C (R x N) [+]= bf16(A) (R x K) @ bf16(B) (K x N),
 * accumulated in float32 (precision="bfloat16"; everything but these products stays float32).
 *
 * A bfloat16 is the upper half of a float32: 8 exponent bits, 7 stored mantissa
 * bits. eq_bf16_bits rounds a float32 to it to nearest, ties to even, on the bit
 * pattern (NaN stays a quiet NaN, never becomes infinity or a number).
 *
 * Two ways to compute the products, chosen per call (eqcore._gemm.current_bf16):
 *
 * - native (AVX512_BF16, where the CPU has it): _mm512_dpbf16_ps multiplies
 *   pairs of bfloat16 along K and adds both products to a float32 lane. B is
 *   stored **pair-interleaved**: for each pair p of rows of B (k = 2p, 2p + 1),
 *   the N columns (padded with zeros to whole vectors of 16), each as one 32-bit
 *   word holding bf16(B[2p][c]) in its low half and bf16(B[2p + 1][c]) in its
 *   high half; an odd K gets a zero row. A row of A rounded to bfloat16 (padded
 *   with a zero to an even length) is then already a row of such words, and one
 *   word, broadcast to every lane, feeds one instruction: 32 products.
 * - fallback (any CPU; tests force it on every instruction set): A and B rounded
 *   to bfloat16 and widened back to float32 (eq_bf16_round_f32), then the float32
 *   kernels. The same products; only the order of the float32 sums differs.
 *
 * The weights' copies are made per relaxation call (_engine.derived_connections),
 * the states' per product (each thread, into its own scratch). The native path
 * packs with the AVX512_BF16 conversion (eq_bf16_pack_*_native); the scalar
 * packings are its stand-ins where x86 dispatch is not compiled. Conv
 * connections take the fallback's way in both modes (_engine.pyx).
 */
#ifndef EQCORE_BF16_KERNELS_H
#define EQCORE_BF16_KERNELS_H

#include <stdint.h>
#include <string.h>

#include "simd.h"
#include "sparse_rows.h"

#if EQ_X86_DISPATCH
#include <immintrin.h>
#endif

/* Columns of a vector in the pair layout: 16 float32 lanes, each a pair of bfloat16. */
#define EQ_BF16_LANES 16

/* The pair layout's row length: N rounded up to whole vectors. */
static inline int eq_bf16_columns(int n) { return (n + EQ_BF16_LANES - 1) / EQ_BF16_LANES * EQ_BF16_LANES; }

/* The pairs of a K-long row: K / 2 rounded up (an odd K gets a zero partner). */
static inline int eq_bf16_pairs(int k) { return (k + 1) / 2; }

/* The bfloat16 nearest to x (ties to even), as its 16 bits. */
static inline uint16_t eq_bf16_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* NaN: keep it quiet */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* The bits of a float32 (as u) rounded to bfloat16 and widened back: eq_bf16_bits' rounding,
 * written to vectorize in the loops that inline it. */
static inline uint32_t eq_bf16_widened_bits(uint32_t u) {
    uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    uint32_t nan = (u | 0x00400000u) & 0xffff0000u;
    return (u & 0x7fffffffu) > 0x7f800000u ? nan : rounded;
}

/* dst = src rounded to bfloat16 and widened back to float32 (rows x n, leading dimensions lds, ldd). */
static void eq_bf16_round_f32(int rows, int n, const float *src, int lds, float *dst, int ldd) {
    for (int r = 0; r < rows; r++) {
        const uint32_t *s = (const uint32_t *)(const void *)(src + (size_t)r * lds);
        uint32_t *d = (uint32_t *)(void *)(dst + (size_t)r * ldd);
        for (int i = 0; i < n; i++) d[i] = eq_bf16_widened_bits(s[i]);
    }
}

/* Rows of A as bfloat16 pairs: dst[r * ldd + p] = bf16(A[r][2p]) | bf16(A[r][2p + 1]) << 16 (0 past K). */
static void eq_bf16_pack_rows(int rows, int k, const float *src, int lds, uint32_t *dst, int ldd) {
    int pairs = eq_bf16_pairs(k);
    for (int r = 0; r < rows; r++) {
        const float *s = src + (size_t)r * lds;
        uint32_t *d = dst + (size_t)r * ldd;
        for (int p = 0; p < k / 2; p++)
            d[p] = (uint32_t)eq_bf16_bits(s[2 * p]) | (uint32_t)eq_bf16_bits(s[2 * p + 1]) << 16;
        if (k % 2) d[pairs - 1] = eq_bf16_bits(s[k - 1]);
    }
}

/*
 * B (K x N, row-major, leading dimension ldb) in the pair layout:
 * out[p * eq_bf16_columns(N) + c] = bf16(B[2p][c]) | bf16(B[2p + 1][c]) << 16, zero past K and N.
 * out holds eq_bf16_pairs(K) * eq_bf16_columns(N) words.
 */
static void eq_bf16_pack_pairs(int K, int N, const float *B, int ldb, uint32_t *out) {
    int np = eq_bf16_columns(N);
    for (int p = 0; p < eq_bf16_pairs(K); p++) {
        const float *lo = B + (size_t)(2 * p) * ldb;
        const float *hi = 2 * p + 1 < K ? lo + ldb : NULL;
        uint32_t *o = out + (size_t)p * np;
        for (int c = 0; c < N; c++)
            o[c] = (uint32_t)eq_bf16_bits(lo[c]) | (hi ? (uint32_t)eq_bf16_bits(hi[c]) << 16 : 0u);
        for (int c = N; c < np; c++) o[c] = 0;
    }
}

/* out[pos cpairs + cp] = (src[2 cp, pos], src[2 cp + 1, pos]) for a (channels x positions) map: its
 * channel pairs, channels last (a zero partner past the last channel). */
static void eq_bf16_pack_channel_pairs_last(const float *src, int channels, int positions, uint32_t *out) {
    int cpairs = eq_bf16_pairs(channels);
    for (int pos = 0; pos < positions; pos++)
        for (int cp = 0; cp < cpairs; cp++) {
            uint32_t high = 2 * cp + 1 < channels ? (uint32_t)eq_bf16_bits(src[(size_t)(2 * cp + 1) * positions + pos]) << 16 : 0;
            out[(size_t)pos * cpairs + cp] = eq_bf16_bits(src[(size_t)2 * cp * positions + pos]) | high;
        }
}

/*
 * B^T in the pair layout, from B (K x N) itself: the product's operand is B^T (N x K),
 * so out[p * eq_bf16_columns(K) + c] = bf16(B[c][2p]) | bf16(B[c][2p + 1]) << 16 for
 * p < eq_bf16_pairs(N): a pair is two neighbours of a row of B. Blocks of 16
 * rows of B keep the reads and the writes in cache.
 */
static void eq_bf16_pack_pairs_t(int K, int N, const float *B, int ldb, uint32_t *out) {
    int np = eq_bf16_columns(K), pairs = eq_bf16_pairs(N);
    for (int c0 = 0; c0 < np; c0 += 16) {
        for (int p = 0; p < pairs; p++) {
            uint32_t *o = out + (size_t)p * np;
            for (int c = c0; c < c0 + 16; c++) {
                if (c >= K) { o[c] = 0; continue; }
                const float *row = B + (size_t)c * ldb;
                uint32_t high = 2 * p + 1 < N ? (uint32_t)eq_bf16_bits(row[2 * p + 1]) << 16 : 0u;
                o[c] = (uint32_t)eq_bf16_bits(row[2 * p]) | high;
            }
        }
    }
}

/*
 * The same three packings with the AVX512_BF16 conversion (vcvtne2ps2bf16: nearest
 * even like eq_bf16_bits, but denormal inputs become zeros of their sign, as the
 * product instruction reads denormal bfloat16 anyway). Used by the native path only.
 */
#if EQ_X86_DISPATCH
#define EQ_TARGET_BF16 EQ_TARGET("avx512bf16,avx512f,avx512vl,avx512bw,fma")

/* The lanes of a column block of 16 that hold real columns: left = N - c. */
#define EQ_BF16_MASK(left) ((left) >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << ((left) > 0 ? (left) : 0)) - 1u))

/* Rows of A as bfloat16 pairs: 32 floats, rounded, are 16 words in order. */
EQ_TARGET_BF16 static void eq_bf16_pack_rows_native(int rows, int k, const float *src, int lds, uint32_t *dst,
                                                    int ldd) {
    for (int r = 0; r < rows; r++) {
        const float *s = src + (size_t)r * lds;
        uint32_t *d = dst + (size_t)r * ldd;
        int i = 0;
        for (; i + 32 <= k; i += 32) {
            __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + i + 16), _mm512_loadu_ps(s + i));
            _mm512_storeu_si512((void *)(d + i / 2), (__m512i)v);
        }
        if (i < k) {
            int left = k - i;
            __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(EQ_BF16_MASK(left - 16), s + i + 16),
                                             _mm512_maskz_loadu_ps(EQ_BF16_MASK(left), s + i));
            _mm512_mask_storeu_epi32((void *)(d + i / 2), EQ_BF16_MASK((left + 1) / 2), (__m512i)v);
        }
    }
}

/* eq_bf16_pack_pairs: two rows of B rounded together, their bfloat16 interleaved into words. */
EQ_TARGET_BF16 static void eq_bf16_pack_pairs_native(int K, int N, const float *B, int ldb, uint32_t *out) {
    int np = eq_bf16_columns(N);
    uint16_t order[32]; /* word i of the result = (low row's i, high row's i) */
    for (int i = 0; i < 16; i++) { order[2 * i] = (uint16_t)i; order[2 * i + 1] = (uint16_t)(16 + i); }
    __m512i interleave = _mm512_loadu_si512((const void *)order);
    for (int p = 0; p < eq_bf16_pairs(K); p++) {
        const float *lo = B + (size_t)(2 * p) * ldb;
        const float *hi = lo + ldb;
        uint32_t *o = out + (size_t)p * np;
        for (int c = 0; c < np; c += 16) {
            __mmask16 m = EQ_BF16_MASK(N - c);
            __m512 high = 2 * p + 1 < K ? _mm512_maskz_loadu_ps(m, hi + c) : _mm512_setzero_ps();
            __m512bh v = _mm512_cvtne2ps_pbh(high, _mm512_maskz_loadu_ps(m, lo + c));
            _mm512_storeu_si512((void *)(o + c), _mm512_permutexvar_epi16(interleave, (__m512i)v));
        }
    }
}

/* eq_bf16_pack_channel_pairs_last: 16 positions of a channel pair converted at once, the words
 * scattered to their positions' rows. */
EQ_TARGET_BF16 static void eq_bf16_pack_channel_pairs_last_native(const float *src, int channels, int positions,
                                                                  uint32_t *out) {
    int cpairs = eq_bf16_pairs(channels);
    uint16_t order[32]; /* word i of the result = (low channel's i, high channel's i) */
    for (int i = 0; i < 16; i++) { order[2 * i] = (uint16_t)i; order[2 * i + 1] = (uint16_t)(16 + i); }
    __m512i interleave = _mm512_loadu_si512((const void *)order);
    __m512i rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                      _mm512_set1_epi32(cpairs));
    for (int cp = 0; cp < cpairs; cp++) {
        const float *lo = src + (size_t)(2 * cp) * positions;
        const float *hi = lo + positions;
        for (int pos = 0; pos < positions; pos += 16) {
            __mmask16 m = EQ_BF16_MASK(positions - pos);
            __m512 high = 2 * cp + 1 < channels ? _mm512_maskz_loadu_ps(m, hi + pos) : _mm512_setzero_ps();
            __m512bh v = _mm512_cvtne2ps_pbh(high, _mm512_maskz_loadu_ps(m, lo + pos));
            _mm512_mask_i32scatter_epi32((void *)(out + (size_t)pos * cpairs + cp), m, rows,
                                         _mm512_permutexvar_epi16(interleave, (__m512i)v), 4);
        }
    }
}

/* eq_bf16_pack_pairs_t: 16 rows of B packed into a block, whose words are then gathered by pair. */
EQ_TARGET_BF16 static void eq_bf16_pack_pairs_t_native(int K, int N, const float *B, int ldb, uint32_t *out) {
    enum { CHUNK = 64 }; /* pairs per block: 16 x 64 words on the stack */
    uint32_t block[16 * CHUNK];
    int np = eq_bf16_columns(K), pairs = eq_bf16_pairs(N);
    __m512i stride = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                        _mm512_set1_epi32(CHUNK));
    for (int c0 = 0; c0 < np; c0 += 16) {
        int rows = K - c0 < 16 ? K - c0 : 16;
        for (int p0 = 0; p0 < pairs; p0 += CHUNK) {
            int n_pairs = pairs - p0 < CHUNK ? pairs - p0 : CHUNK;
            int n_values = 2 * n_pairs < N - 2 * p0 ? 2 * n_pairs : N - 2 * p0;
            memset(block, 0, sizeof block);
            eq_bf16_pack_rows_native(rows, n_values, B + (size_t)c0 * ldb + 2 * p0, ldb, block, CHUNK);
            for (int p = 0; p < n_pairs; p++)
                _mm512_storeu_si512((void *)(out + (size_t)(p0 + p) * np + c0),
                                    _mm512_i32gather_epi32(stride, (const void *)(block + p), 4));
        }
    }
}
#else
#define EQ_TARGET_BF16
#define eq_bf16_pack_rows_native eq_bf16_pack_rows
#define eq_bf16_pack_pairs_native eq_bf16_pack_pairs
#define eq_bf16_pack_pairs_t_native eq_bf16_pack_pairs_t
#define eq_bf16_pack_channel_pairs_last_native eq_bf16_pack_channel_pairs_last
#endif

/* The pair a row kernel's q-th step reads: q itself, or pidx[q] (listed pairs, patch offsets). */
#define EQ_BF16_P_ALL(q) (q)
#define EQ_BF16_P_LISTED(q) pidx[q]

#if EQ_X86_DISPATCH
/*
 * Rows of C for a compile-time RG: blocks of two vectors (32 columns), then one
 * (the pair layout pads N to whole vectors, so the loads never need a mask;
 * only the stores of the last block do). KK pairs; step q reads word AIDX(q) of
 * each row of A and row BIDX(q) of B.
 */
#define EQ_DEFINE_BF16_ROWS(NAME, RG, AIDX, BIDX)                                                          \
    EQ_TARGET_BF16 EQ_INLINE void NAME(int N, int KK, const uint32_t *A, int lda, const uint32_t *B, \
                                       int ldb, int acc, float *C, int ldc, const int *pidx) {       \
        int np = eq_bf16_columns(N), c = 0;                                                          \
        (void)pidx;                                                                                  \
        for (; c + 32 <= np; c += 32) {                                                              \
            __m512 s0[RG], s1[RG];                                                                   \
            for (int r = 0; r < RG; r++) { s0[r] = _mm512_setzero_ps(); s1[r] = _mm512_setzero_ps(); } \
            for (int q = 0; q < KK; q++) {                                                           \
                const uint32_t *bp = B + (size_t)BIDX(q) * ldb + c;                                  \
                __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)bp);                        \
                __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void *)(bp + 16));                 \
                for (int r = 0; r < RG; r++) {                                                       \
                    __m512bh a = (__m512bh)_mm512_set1_epi32((int)A[(size_t)r * lda + AIDX(q)]);     \
                    s0[r] = _mm512_dpbf16_ps(s0[r], b0, a);                                          \
                    s1[r] = _mm512_dpbf16_ps(s1[r], b1, a);                                          \
                }                                                                                    \
            }                                                                                        \
            __mmask16 m0 = EQ_BF16_MASK(N - c), m1 = EQ_BF16_MASK(N - c - 16);                       \
            for (int r = 0; r < RG; r++) {                                                           \
                float *cr = C + (size_t)r * ldc + c;                                                 \
                if (acc) {                                                                           \
                    s0[r] = _mm512_add_ps(s0[r], _mm512_maskz_loadu_ps(m0, cr));                     \
                    s1[r] = _mm512_add_ps(s1[r], _mm512_maskz_loadu_ps(m1, cr + 16));                \
                }                                                                                    \
                _mm512_mask_storeu_ps(cr, m0, s0[r]);                                                \
                _mm512_mask_storeu_ps(cr + 16, m1, s1[r]);                                           \
            }                                                                                        \
        }                                                                                            \
        if (c < np) {                                                                                \
            __m512 s0[RG];                                                                           \
            for (int r = 0; r < RG; r++) s0[r] = _mm512_setzero_ps();                                \
            for (int q = 0; q < KK; q++) {                                                           \
                __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)(B + (size_t)BIDX(q) * ldb + c)); \
                for (int r = 0; r < RG; r++)                                                         \
                    s0[r] = _mm512_dpbf16_ps(s0[r], b0,                                              \
                                             (__m512bh)_mm512_set1_epi32((int)A[(size_t)r * lda + AIDX(q)])); \
            }                                                                                        \
            __mmask16 m0 = EQ_BF16_MASK(N - c);                                                      \
            for (int r = 0; r < RG; r++) {                                                           \
                float *cr = C + (size_t)r * ldc + c;                                                 \
                if (acc) s0[r] = _mm512_add_ps(s0[r], _mm512_maskz_loadu_ps(m0, cr));                \
                _mm512_mask_storeu_ps(cr, m0, s0[r]);                                                \
            }                                                                                        \
        }                                                                                            \
    }
#else
/* Portable stand-in (never selected: no CPU without x86 dispatch reports AVX512_BF16). */
#define EQ_DEFINE_BF16_ROWS(NAME, RG, AIDX, BIDX)                                                          \
    static inline void NAME(int N, int KK, const uint32_t *A, int lda, const uint32_t *B, int ldb,   \
                            int acc, float *C, int ldc, const int *pidx) {                           \
        (void)pidx;                                                                                  \
        for (int r = 0; r < RG; r++)                                                                 \
            for (int c = 0; c < N; c++) {                                                            \
                float s = 0;                                                                         \
                for (int q = 0; q < KK; q++) {                                                       \
                    uint32_t a = A[(size_t)r * lda + AIDX(q)], b = B[(size_t)BIDX(q) * ldb + c];     \
                    uint32_t a0 = a << 16, a1 = a & 0xffff0000u, b0 = b << 16, b1 = b & 0xffff0000u; \
                    float fa0, fa1, fb0, fb1;                                                        \
                    memcpy(&fa0, &a0, 4); memcpy(&fa1, &a1, 4); memcpy(&fb0, &b0, 4); memcpy(&fb1, &b1, 4); \
                    s += fa0 * fb0 + fa1 * fb1;                                                      \
                }                                                                                    \
                float *cr = C + (size_t)r * ldc + c;                                                 \
                *cr = acc ? *cr + s : s;                                                             \
            }                                                                                        \
    }
#endif

#define EQ_DEFINE_BF16_ROW_SET(NAME, AIDX, BIDX)                                                     \
    EQ_DEFINE_BF16_ROWS(NAME##_r1, 1, AIDX, BIDX) EQ_DEFINE_BF16_ROWS(NAME##_r2, 2, AIDX, BIDX)      \
    EQ_DEFINE_BF16_ROWS(NAME##_r3, 3, AIDX, BIDX) EQ_DEFINE_BF16_ROWS(NAME##_r4, 4, AIDX, BIDX)      \
    EQ_DEFINE_BF16_ROWS(NAME##_r5, 5, AIDX, BIDX) EQ_DEFINE_BF16_ROWS(NAME##_r6, 6, AIDX, BIDX)      \
    EQ_DEFINE_BF16_ROWS(NAME##_r7, 7, AIDX, BIDX) EQ_DEFINE_BF16_ROWS(NAME##_r8, 8, AIDX, BIDX)      \
    EQ_DEFINE_BF16_ROWS(NAME##_r9, 9, AIDX, BIDX) EQ_DEFINE_BF16_ROWS(NAME##_r10, 10, AIDX, BIDX)    \
    EQ_DEFINE_BF16_ROWS(NAME##_r11, 11, AIDX, BIDX) EQ_DEFINE_BF16_ROWS(NAME##_r12, 12, AIDX, BIDX)

#define EQ_BF16_CALL_ROWS(NAME, rg, ARGS)                                                            \
    switch (rg) {                                                                                    \
        case 1: NAME##_r1 ARGS; break;   case 2: NAME##_r2 ARGS; break;                              \
        case 3: NAME##_r3 ARGS; break;   case 4: NAME##_r4 ARGS; break;                              \
        case 5: NAME##_r5 ARGS; break;   case 6: NAME##_r6 ARGS; break;                              \
        case 7: NAME##_r7 ARGS; break;   case 8: NAME##_r8 ARGS; break;                              \
        case 9: NAME##_r9 ARGS; break;   case 10: NAME##_r10 ARGS; break;                            \
        case 11: NAME##_r11 ARGS; break; default: NAME##_r12 ARGS; break;                            \
    }

EQ_DEFINE_BF16_ROW_SET(eq_bf16_gemm_rows, EQ_BF16_P_ALL, EQ_BF16_P_ALL)
EQ_DEFINE_BF16_ROW_SET(eq_bf16_listed_rows, EQ_BF16_P_LISTED, EQ_BF16_P_LISTED)
/* the shifted product: row q of B against A at offset pidx[q] (the patch's pair offsets) */
EQ_DEFINE_BF16_ROW_SET(eq_bf16_shifted_rows, EQ_BF16_P_LISTED, EQ_BF16_P_ALL)

/* Balanced groups of at most 12 rows (24 accumulators of AVX-512's 32 registers). */
static inline int eq_bf16_group_rows(int left) {
    int groups = (left + 11) / 12;
    return (left + groups - 1) / groups;
}

/*
 * C (R x N) [+]= A @ B, A as packed bfloat16 rows (R x KP words, leading dimension
 * lda), B in the pair layout (KP x eq_bf16_columns(N) words). With pidx (scratch
 * for KP ints), each group of rows only visits the pairs where one of its rows is
 * non-zero (a sparse input: the drive), reading those rows of B once for the group.
 */
EQ_TARGET_BF16 static void eq_bf16_gemm(int R, int N, int KP, const uint32_t *A, int lda, const uint32_t *B,
                         int acc, float *C, int ldc, int *pidx) {
    int ldb = eq_bf16_columns(N);
    for (int r0 = 0; r0 < R;) {
        int rg = eq_bf16_group_rows(R - r0);
        const uint32_t *a = A + (size_t)r0 * lda;
        float *cc = C + (size_t)r0 * ldc;
        if (pidx) {
            int kk = 0;
            for (int p = 0; p < KP; p++) {
                uint32_t any = 0;
                for (int r = 0; r < rg; r++) any |= a[(size_t)r * lda + p];
                pidx[kk] = p;
                kk += any != 0; /* no branch: the pattern is unpredictable */
            }
            EQ_BF16_CALL_ROWS(eq_bf16_listed_rows, rg, (N, kk, a, lda, B, ldb, acc, cc, ldc, pidx))
        } else {
            EQ_BF16_CALL_ROWS(eq_bf16_gemm_rows, rg, (N, KP, a, lda, B, ldb, acc, cc, ldc, pidx))
        }
        r0 += rg;
    }
}

/*
 * The direct convolution in bfloat16: C (R x N) = sum_p A[r + off[p]] B[p, :], the R
 * rows R consecutive output positions of one row of a map, A the input map as
 * channel-pair words (eq_bf16_pack_pairs of the (padded) map: word = channels 2c
 * and 2c + 1 at one position), off (KP entries) the words of a patch's pairs
 * (channel pair, kernel row, kernel column) from its first one, B the weights'
 * pair layout over that order.
 */
EQ_TARGET_BF16 static void eq_bf16_shifted(int R, int N, int KP, const uint32_t *A, const uint32_t *B,
                                           float *C, int ldc, const int *off) {
    int ldb = eq_bf16_columns(N);
    for (int r0 = 0; r0 < R;) {
        int rg = eq_bf16_group_rows(R - r0);
        const int *pidx = off;
        EQ_BF16_CALL_ROWS(eq_bf16_shifted_rows, rg, (N, KP, A + r0, 1, B, ldb, 0, C + (size_t)r0 * ldc, ldc, pidx))
        r0 += rg;
    }
}

/*
 * The event-driven relaxation's product in the pair layout (_relax.pyx): one
 * row, part (N) += change (K) @ B over the non-zero changes only, B (K x N)
 * given as its pair layout (bfloat16 weights, pairs along K). The changes are
 * differences of states already rounded to bfloat16, so they are float32
 * values: each weight is widened to float32 (its bits moved to the upper
 * half) and multiplied in float32. Reached only with the native products
 * (AVX512_BF16, so AVX-512), scalar where x86 dispatch is not compiled.
 * idx and val: scratch for K entries each.
 */
#if EQ_X86_DISPATCH
/* W vectors of columns from c: s = part, then += val[q] * row idx[q] of B, widened. */
#define EQ_BF16_SPARSE_TILE(W, MASK)                                                           \
    {                                                                                          \
        __m512 s[W];                                                                           \
        for (int v = 0; v < (W); v++) s[v] = _mm512_maskz_loadu_ps(v == (W) - 1 ? (MASK) : 0xFFFF, part + c + 16 * v); \
        for (int q = 0; q < nnz; q++) {                                                        \
            const uint32_t *row = B + (size_t)(idx[q] >> 1) * ldb + c;                         \
            __m128i shift = _mm_cvtsi32_si128(16 - 16 * (idx[q] & 1));                         \
            __m512 a = _mm512_set1_ps(val[q]);                                                 \
            for (int v = 0; v < (W); v++) {                                                    \
                __m512i w = _mm512_sll_epi32(_mm512_loadu_si512(row + 16 * v), shift);         \
                w = _mm512_and_si512(w, upper);                                                \
                s[v] = _mm512_fmadd_ps(a, _mm512_castsi512_ps(w), s[v]);                       \
            }                                                                                  \
        }                                                                                      \
        for (int v = 0; v < (W); v++) _mm512_mask_storeu_ps(part + c + 16 * v, v == (W) - 1 ? (MASK) : 0xFFFF, s[v]); \
    }

EQ_TARGET_AVX512 static void eq_bf16_sparse_row(int N, int K, const float *change, const uint32_t *B,
                                                float *part, int *idx, float *val) {
    int ldb = eq_bf16_columns(N), nnz = eq_compact_f32_avx512(change, K, idx, val), c = 0;
    const __m512i upper = _mm512_set1_epi32((int)0xffff0000u);
    if (nnz == 0) return;
    for (; c + 128 <= N; c += 128) EQ_BF16_SPARSE_TILE(8, 0xFFFF)
    for (; c + 64 <= N; c += 64) EQ_BF16_SPARSE_TILE(4, 0xFFFF)
    for (; c + 16 <= N; c += 16) EQ_BF16_SPARSE_TILE(1, 0xFFFF)
    if (c < N) EQ_BF16_SPARSE_TILE(1, (__mmask16)((1u << (N - c)) - 1))  /* B's rows are padded to 16 */
}
#else
static void eq_bf16_sparse_row(int N, int K, const float *change, const uint32_t *B,
                               float *part, int *idx, float *val) {
    int ldb = eq_bf16_columns(N), nnz = eq_compact_f32_generic(change, K, idx, val);
    for (int q = 0; q < nnz; q++) {
        const uint32_t *row = B + (size_t)(idx[q] >> 1) * ldb;
        for (int c = 0; c < N; c++) {
            uint32_t bits = (idx[q] & 1) ? (row[c] & 0xffff0000u) : (row[c] << 16);
            float w;
            memcpy(&w, &bits, 4);
            part[c] += val[q] * w;
        }
    }
}
#endif

/*
 * The change of a state since the last call, in bfloat16: r = s rounded to
 * bfloat16 (as float32), delta = r - prev, then prev = r, over n entries;
 * returns how many changed (NaN counts as a change). One per instruction
 * set, as this runs over every state at every step of the event-driven
 * relaxation.
 */
#define EQ_DEFINE_STEP_DELTA_BF16(NAME, ATTR)                                         \
    ATTR static long NAME(size_t n, const float *s, float *prev, float *delta) {      \
        const uint32_t *u = (const uint32_t *)(const void *)s;                        \
        int changed = 0; /* n < 2^31 (a row): 32-bit lanes count half the work of 64 */ \
        for (size_t i = 0; i < n; i++) {                                              \
            uint32_t bits = eq_bf16_widened_bits(u[i]);                               \
            float r;                                                                  \
            memcpy(&r, &bits, 4);                                                     \
            float d = r - prev[i];                                                    \
            delta[i] = d;                                                             \
            prev[i] = r;                                                              \
            changed += d != 0;                                                        \
        }                                                                             \
        return changed;                                                               \
    }

#define EQ_DEFINE_STEP_DELTA_BF16_ISA(SUFFIX, ATTR, FV, FL, DV, DL)                   \
    EQ_DEFINE_STEP_DELTA_BF16(eq_step_delta_bf16_##SUFFIX, ATTR)
EQ_FOR_EACH_ISA(EQ_DEFINE_STEP_DELTA_BF16_ISA)

static long eq_step_delta_bf16(int isa, size_t n, const float *s, float *prev, float *delta) {
    EQ_DISPATCH_RETURN(isa, eq_step_delta_bf16, (n, s, prev, delta))
}

#endif
