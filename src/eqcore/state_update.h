/*
 * The element-wise part of a relaxation step, for rows x n states:
 *
 *   euler: s <- clip(s + eps (h [+ d] + b - s) [+ eps beta (t - s)], 0, 1)
 *   exact: s <- clip(h [+ d] + b, 0, 1)   or   clip((h [+ d] + b + beta t) / (1 + beta), 0, 1)
 *
 * (d, the first layer's drive, when the top-down input in h leaves it out, which
 * saves copying it into h every step; t, the target, only for the output layer
 * in the nudged phase; either NULL otherwise; clip = 0 drops the clip, for a
 * linear output layer.)
 * Vector loops compiled once per instruction set and chosen at run time like
 * the products (a wheel built for baseline x86-64 would otherwise run them
 * with 128-bit vectors). The clip lets a NaN through, so that it reaches the
 * caller's divergence check instead of becoming a bound.
 */
#ifndef EQCORE_STATE_UPDATE_H
#define EQCORE_STATE_UPDATE_H

#include "simd.h"

#define EQ_CLIP01(v) ((v) > 1 ? 1 : ((v) < 0 ? 0 : (v)))
#define EQ_BOUND(v) (clip ? EQ_CLIP01(v) : (v))

/* The vector loops clip with max(0, min(1, v)) in that operand order: x86's
 * min and max return their second operand when either is NaN, so a NaN passes
 * through as EQ_CLIP01 lets it, in two instructions instead of the compares,
 * mask moves and blends GCC makes of the ternaries. VT: a vector of V lanes;
 * VCLIP: its clip. */
#define EQ_DEFINE_STATE_UPDATES(SUFFIX, T, VT, V, VCLIP, ATTR)                        \
    ATTR static void eq_euler_##SUFFIX(T *restrict s, const T *restrict h,            \
                                       const T *restrict d,                           \
                                       const T *restrict b, const T *restrict t,      \
                                       int rows, int n, T eps, T beta, int clip) {    \
        T eb = eps * beta;                                                            \
        for (int r = 0; r < rows; r++) {                                              \
            T *sr = s + (size_t)r * n;                                                \
            const T *hr = h + (size_t)r * n;                                          \
            const T *dr = d == NULL ? NULL : d + (size_t)r * n;                       \
            const T *tr = t == NULL ? NULL : t + (size_t)r * n;                       \
            int c = 0;                                                                \
            for (; c + (V) <= n; c += (V)) {                                          \
                VT sv = *(VT *)(sr + c);                                              \
                VT hv = *(const VT *)(hr + c);                                        \
                if (dr != NULL) hv += *(const VT *)(dr + c);                          \
                VT v = sv + eps * (hv + *(const VT *)(b + c) - sv);                   \
                if (tr != NULL) v += eb * (*(const VT *)(tr + c) - sv);               \
                *(VT *)(sr + c) = clip ? VCLIP(v) : v;                                \
            }                                                                         \
            for (; c < n; c++) {                                                      \
                T hc = dr != NULL ? hr[c] + dr[c] : hr[c];                            \
                T v = sr[c] + eps * (hc + b[c] - sr[c]);                              \
                if (tr != NULL) v += eb * (tr[c] - sr[c]);                            \
                sr[c] = EQ_BOUND(v);                                                  \
            }                                                                         \
        }                                                                             \
    }                                                                                 \
    ATTR static void eq_exact_##SUFFIX(T *restrict s, const T *restrict h,            \
                                       const T *restrict d,                           \
                                       const T *restrict b, const T *restrict t,      \
                                       int rows, int n, T beta, int clip) {           \
        T inv = 1 / (1 + beta);                                                       \
        for (int r = 0; r < rows; r++) {                                              \
            T *sr = s + (size_t)r * n;                                                \
            const T *hr = h + (size_t)r * n;                                          \
            const T *dr = d == NULL ? NULL : d + (size_t)r * n;                       \
            const T *tr = t == NULL ? NULL : t + (size_t)r * n;                       \
            int c = 0;                                                                \
            for (; c + (V) <= n; c += (V)) {                                          \
                VT v = *(const VT *)(hr + c) + *(const VT *)(b + c);                  \
                if (dr != NULL) v += *(const VT *)(dr + c);                           \
                if (tr != NULL) v = (v + beta * *(const VT *)(tr + c)) * inv;         \
                *(VT *)(sr + c) = clip ? VCLIP(v) : v;                                \
            }                                                                         \
            for (; c < n; c++) {                                                      \
                T v = hr[c] + b[c];                                                   \
                if (dr != NULL) v += dr[c];                                           \
                if (tr != NULL) v = (v + beta * tr[c]) * inv;                         \
                sr[c] = EQ_BOUND(v);                                                  \
            }                                                                         \
        }                                                                             \
    }

/*
 * The same steps with the top-down input of a narrow layer above computed in
 * registers instead of read from h:
 *
 *   h' = [h or d] + a W^T [+ d when h is given too] [+ b],  then the step above on h'
 *
 * (a: rows x K, lda apart; wt = W^T, K x n; h, d and b each optional). Only the
 * non-zero entries of each row of a are visited, in ascending order, each
 * multiplied and added to the sum in one fused multiply-add: the sum starts from
 * h (or, without h, from d), so a row with one unit above costs one multiply-add
 * per vector. Without b the caller has added the biases to d already (_relax.pyx:
 * the first layer's drive plus its biases, summed once per relaxation instead of
 * at every step). For K <= EQ_TOP_DOWN_MAX_K: a layer of up to 64 units above (a
 * 10-class output is mostly zeros at its fixed point), whose rows of W^T stay in
 * L1.
 */
#define EQ_TOP_DOWN_MAX_K 64
#define EQ_TOP_DOWN_START(VT, c, load)                                                 \
    VT t_ = hr != NULL ? load(hr + (c)) : dr != NULL ? load(dr + (c)) : (VT){0};
#define EQ_TOP_DOWN_SUM(T, VT, c, load)                                               \
    EQ_TOP_DOWN_START(VT, c, load)                                                    \
    for (int q = 0; q < nk; q++) t_ += av[q] * load(wt + (size_t)kidx[q] * n + (c));  \
    EQ_TOP_DOWN_REST(VT, c, load)
/* The same sum for a row with no, one or two non-zero units above (the usual case
 * below a 10-class output): their rows of W^T and values held from the row's start,
 * the same additions in the same order (the vector loop of the generic sum reloads
 * and re-broadcasts them for every vector). */
#define EQ_TOP_DOWN_SUM0(T, VT, c, load)                                              \
    EQ_TOP_DOWN_START(VT, c, load)                                                    \
    EQ_TOP_DOWN_REST(VT, c, load)
#define EQ_TOP_DOWN_SUM1(T, VT, c, load)                                              \
    EQ_TOP_DOWN_START(VT, c, load)                                                    \
    t_ += a0 * load(w0 + (c));                                                        \
    EQ_TOP_DOWN_REST(VT, c, load)
#define EQ_TOP_DOWN_SUM2(T, VT, c, load)                                              \
    EQ_TOP_DOWN_START(VT, c, load)                                                    \
    t_ += a0 * load(w0 + (c));                                                        \
    t_ += a1 * load(w1 + (c));                                                        \
    EQ_TOP_DOWN_REST(VT, c, load)
/* hv: the net input h' of the row's vector at c (the biases added when given) */
#define EQ_TOP_DOWN_REST(VT, c, load)                                                 \
    VT hv = t_;                                                                       \
    if (hr != NULL && dr != NULL) hv += load(dr + (c));                               \
    if (b != NULL) hv += load(b + (c));
/* The vector loop of a row, one version per count of non-zero units above. */
#define EQ_TOP_DOWN_VECTORS(T, VT, V, VCLIP, BODY)                                    \
    const T *w0 = nk > 0 ? wt + (size_t)kidx[0] * n : wt;                             \
    const T *w1 = nk > 1 ? wt + (size_t)kidx[1] * n : wt;                             \
    T a0 = nk > 0 ? av[0] : 0, a1 = nk > 1 ? av[1] : 0;                               \
    switch (nk) {                                                                     \
    case 0: for (; c + (V) <= n; c += (V)) { BODY(EQ_TOP_DOWN_SUM0, T, VT, VCLIP) } break;          \
    case 1: for (; c + (V) <= n; c += (V)) { BODY(EQ_TOP_DOWN_SUM1, T, VT, VCLIP) } break;          \
    case 2: for (; c + (V) <= n; c += (V)) { BODY(EQ_TOP_DOWN_SUM2, T, VT, VCLIP) } break;          \
    default: for (; c + (V) <= n; c += (V)) { BODY(EQ_TOP_DOWN_SUM, T, VT, VCLIP) } break;          \
    }
#define EQ_TOP_DOWN_LIST(T)                                                           \
    const T *ar = a + (size_t)r * lda;                                                \
    int kidx[EQ_TOP_DOWN_MAX_K], nk = 0;                                              \
    T av[EQ_TOP_DOWN_MAX_K];                                                          \
    for (int k = 0; k < K; k++) { kidx[nk] = k; av[nk] = ar[k]; nk += ar[k] != 0; }
/* Row r's pointers and its list of non-zero units above. */
#define EQ_TOP_DOWN_ROW(T)                                                            \
    T *sr = s + (size_t)r * n;                                                        \
    const T *hr = h == NULL ? NULL : h + (size_t)r * n;                               \
    const T *dr = d == NULL ? NULL : d + (size_t)r * n;                               \
    EQ_TOP_DOWN_LIST(T)
#define EQ_LOAD_VEC(VT) *(const VT *)
/* One vector of the two steps (in a loop over c, with the row's pointers, sr, b, eps, clip). */
#define EQ_EULER_TD_BODY(SUM, T, VT, VCLIP)                                                       \
    SUM(T, VT, c, EQ_LOAD_VEC(VT))                                                    \
    VT sv = *(VT *)(sr + c);                                                          \
    VT v = sv + eps * (hv - sv);                                                      \
    *(VT *)(sr + c) = clip ? VCLIP(v) : v;
#define EQ_EXACT_TD_BODY(SUM, T, VT, VCLIP)                                                       \
    SUM(T, VT, c, EQ_LOAD_VEC(VT))                                                    \
    *(VT *)(sr + c) = clip ? VCLIP(hv) : hv;
#define EQ_DEFINE_TOP_DOWN_UPDATES(SUFFIX, T, VT, V, VCLIP, ATTR)                     \
    ATTR static void eq_euler_td_##SUFFIX(T *restrict s, const T *restrict h,         \
                                          const T *restrict d, const T *restrict b,   \
                                          const T *restrict a, int lda, int K,        \
                                          const T *restrict wt, int rows, int n,      \
                                          T eps, int clip) {                          \
        for (int r = 0; r < rows; r++) {                                              \
            EQ_TOP_DOWN_ROW(T)                                                        \
            int c = 0;                                                                \
            EQ_TOP_DOWN_VECTORS(T, VT, V, VCLIP, EQ_EULER_TD_BODY)                        \
            for (; c < n; c++) {                                                      \
                EQ_TOP_DOWN_SUM(T, T, c, *)                                           \
                T v = sr[c] + eps * (hv - sr[c]);                                     \
                sr[c] = EQ_BOUND(v);                                                  \
            }                                                                         \
        }                                                                             \
    }                                                                                 \
    ATTR static void eq_exact_td_##SUFFIX(T *restrict s, const T *restrict h,         \
                                          const T *restrict d, const T *restrict b,   \
                                          const T *restrict a, int lda, int K,        \
                                          const T *restrict wt, int rows, int n,      \
                                          int clip) {                                 \
        for (int r = 0; r < rows; r++) {                                              \
            EQ_TOP_DOWN_ROW(T)                                                        \
            int c = 0;                                                                \
            EQ_TOP_DOWN_VECTORS(T, VT, V, VCLIP, EQ_EXACT_TD_BODY)                        \
            for (; c < n; c++) {                                                      \
                EQ_TOP_DOWN_SUM(T, T, c, *)                                           \
                sr[c] = EQ_BOUND(hv);                                                 \
            }                                                                         \
        }                                                                             \
    }

/* Portable: the scalar loop (V = 1), which the compiler vectorises as it can. */
EQ_DEFINE_STATE_UPDATES(f32_generic, float, float, 1, EQ_CLIP01, )
EQ_DEFINE_STATE_UPDATES(f64_generic, double, double, 1, EQ_CLIP01, )
EQ_DEFINE_TOP_DOWN_UPDATES(f32_generic, float, float, 1, EQ_CLIP01, )
EQ_DEFINE_TOP_DOWN_UPDATES(f64_generic, double, double, 1, EQ_CLIP01, )
#if EQ_X86_DISPATCH
#include <immintrin.h>
#define EQ_VCLIP_F8(v) ((eq_f8)_mm256_max_ps(_mm256_setzero_ps(), _mm256_min_ps(_mm256_set1_ps(1.0f), (__m256)(v))))
#define EQ_VCLIP_D4(v) ((eq_d4)_mm256_max_pd(_mm256_setzero_pd(), _mm256_min_pd(_mm256_set1_pd(1.0), (__m256d)(v))))
#define EQ_VCLIP_F16(v) ((eq_f16)_mm512_max_ps(_mm512_setzero_ps(), _mm512_min_ps(_mm512_set1_ps(1.0f), (__m512)(v))))
#define EQ_VCLIP_D8(v) ((eq_d8)_mm512_max_pd(_mm512_setzero_pd(), _mm512_min_pd(_mm512_set1_pd(1.0), (__m512d)(v))))
EQ_DEFINE_STATE_UPDATES(f32_avx2, float, eq_f8, 8, EQ_VCLIP_F8, EQ_TARGET_AVX2)
EQ_DEFINE_STATE_UPDATES(f64_avx2, double, eq_d4, 4, EQ_VCLIP_D4, EQ_TARGET_AVX2)
EQ_DEFINE_STATE_UPDATES(f32_avx512, float, eq_f16, 16, EQ_VCLIP_F16, EQ_TARGET_AVX512)
EQ_DEFINE_STATE_UPDATES(f64_avx512, double, eq_d8, 8, EQ_VCLIP_D8, EQ_TARGET_AVX512)
EQ_DEFINE_TOP_DOWN_UPDATES(f32_avx2, float, eq_f8, 8, EQ_VCLIP_F8, EQ_TARGET_AVX2)
EQ_DEFINE_TOP_DOWN_UPDATES(f64_avx2, double, eq_d4, 4, EQ_VCLIP_D4, EQ_TARGET_AVX2)
EQ_DEFINE_TOP_DOWN_UPDATES(f32_avx512, float, eq_f16, 16, EQ_VCLIP_F16, EQ_TARGET_AVX512)
EQ_DEFINE_TOP_DOWN_UPDATES(f64_avx512, double, eq_d8, 8, EQ_VCLIP_D8, EQ_TARGET_AVX512)
#endif

#define EQ_DEFINE_STATE_DISPATCH(SUFFIX, T)                                           \
    static void eq_euler_##SUFFIX(int isa, T *s, const T *h, const T *d, const T *b,  \
                                  const T *t, int rows, int n, T eps, T beta,         \
                                  int clip) {                                         \
        EQ_DISPATCH(isa, eq_euler_##SUFFIX, (s, h, d, b, t, rows, n, eps, beta, clip), \
                    (s, h, d, b, t, rows, n, eps, beta, clip))                        \
    }                                                                                 \
    static void eq_exact_##SUFFIX(int isa, T *s, const T *h, const T *d, const T *b,  \
                                  const T *t, int rows, int n, T beta, int clip) {    \
        EQ_DISPATCH(isa, eq_exact_##SUFFIX, (s, h, d, b, t, rows, n, beta, clip),     \
                    (s, h, d, b, t, rows, n, beta, clip))                             \
    }

EQ_DEFINE_STATE_DISPATCH(f32, float)
EQ_DEFINE_STATE_DISPATCH(f64, double)

#define EQ_DEFINE_TOP_DOWN_DISPATCH(SUFFIX, T)                                        \
    static void eq_euler_td_##SUFFIX(int isa, T *s, const T *h, const T *d, const T *b, \
                                     const T *a, int lda, int K, const T *wt,         \
                                     int rows, int n, T eps, int clip) {              \
        EQ_DISPATCH(isa, eq_euler_td_##SUFFIX, (s, h, d, b, a, lda, K, wt, rows, n, eps, clip), \
                    (s, h, d, b, a, lda, K, wt, rows, n, eps, clip))                  \
    }                                                                                 \
    static void eq_exact_td_##SUFFIX(int isa, T *s, const T *h, const T *d, const T *b, \
                                     const T *a, int lda, int K, const T *wt,         \
                                     int rows, int n, int clip) {                     \
        EQ_DISPATCH(isa, eq_exact_td_##SUFFIX, (s, h, d, b, a, lda, K, wt, rows, n, clip), \
                    (s, h, d, b, a, lda, K, wt, rows, n, clip))                       \
    }

EQ_DEFINE_TOP_DOWN_DISPATCH(f32, float)
EQ_DEFINE_TOP_DOWN_DISPATCH(f64, double)

#endif
