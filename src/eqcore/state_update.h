/*
 * The element-wise part of a relaxation step, for rows x n states:
 *
 *   euler: s <- clip(s + eps (h + b - s) [+ eps beta (t - s)], 0, 1)
 *   exact: s <- clip(h + b, 0, 1)   or   clip((h + b + beta t) / (1 + beta), 0, 1)
 *
 * (t, the target, only for the output layer in the nudged phase; NULL otherwise;
 * clip = 0 drops the clip, for a linear output layer.)
 * Plain loops that the compiler vectorises; compiled once per instruction set
 * and chosen at run time like the products (a wheel built for baseline x86-64
 * would otherwise run them with 128-bit vectors). The clip is two selects, so
 * that a NaN propagates to the caller's divergence check instead of becoming
 * a bound.
 */
#ifndef EQCORE_STATE_UPDATE_H
#define EQCORE_STATE_UPDATE_H

#include "simd.h"

#define EQ_CLIP01(v) ((v) > 1 ? 1 : ((v) < 0 ? 0 : (v)))
#define EQ_BOUND(v) (clip ? EQ_CLIP01(v) : (v))

#define EQ_DEFINE_STATE_UPDATES(SUFFIX, T, ATTR)                                      \
    ATTR static void eq_euler_##SUFFIX(T *restrict s, const T *restrict h,            \
                                       const T *restrict b, const T *restrict t,      \
                                       int rows, int n, T eps, T beta, int clip) {    \
        for (int r = 0; r < rows; r++) {                                              \
            T *sr = s + (size_t)r * n;                                                \
            const T *hr = h + (size_t)r * n;                                          \
            if (t == NULL) {                                                          \
                for (int c = 0; c < n; c++) {                                         \
                    T v = sr[c] + eps * (hr[c] + b[c] - sr[c]);                       \
                    sr[c] = EQ_BOUND(v);                                              \
                }                                                                     \
            } else {                                                                  \
                const T *tr = t + (size_t)r * n;                                      \
                for (int c = 0; c < n; c++) {                                         \
                    T v = sr[c] + eps * (hr[c] + b[c] - sr[c]) + eps * beta * (tr[c] - sr[c]); \
                    sr[c] = EQ_BOUND(v);                                              \
                }                                                                     \
            }                                                                         \
        }                                                                             \
    }                                                                                 \
    ATTR static void eq_exact_##SUFFIX(T *restrict s, const T *restrict h,            \
                                       const T *restrict b, const T *restrict t,      \
                                       int rows, int n, T beta, int clip) {           \
        T inv = 1 / (1 + beta);                                                       \
        for (int r = 0; r < rows; r++) {                                              \
            T *sr = s + (size_t)r * n;                                                \
            const T *hr = h + (size_t)r * n;                                          \
            if (t == NULL) {                                                          \
                for (int c = 0; c < n; c++) {                                         \
                    T v = hr[c] + b[c];                                               \
                    sr[c] = EQ_BOUND(v);                                              \
                }                                                                     \
            } else {                                                                  \
                const T *tr = t + (size_t)r * n;                                      \
                for (int c = 0; c < n; c++) {                                         \
                    T v = (hr[c] + b[c] + beta * tr[c]) * inv;                        \
                    sr[c] = EQ_BOUND(v);                                              \
                }                                                                     \
            }                                                                         \
        }                                                                             \
    }

EQ_DEFINE_STATE_UPDATES(f32_generic, float, )
EQ_DEFINE_STATE_UPDATES(f64_generic, double, )
#if EQ_X86_DISPATCH
EQ_DEFINE_STATE_UPDATES(f32_avx2, float, EQ_TARGET_AVX2)
EQ_DEFINE_STATE_UPDATES(f64_avx2, double, EQ_TARGET_AVX2)
EQ_DEFINE_STATE_UPDATES(f32_avx512, float, EQ_TARGET_AVX512)
EQ_DEFINE_STATE_UPDATES(f64_avx512, double, EQ_TARGET_AVX512)
#endif

#define EQ_DEFINE_STATE_DISPATCH(SUFFIX, T)                                           \
    static void eq_euler_##SUFFIX(int isa, T *s, const T *h, const T *b, const T *t,  \
                                  int rows, int n, T eps, T beta, int clip) {         \
        EQ_DISPATCH(isa, eq_euler_##SUFFIX, (s, h, b, t, rows, n, eps, beta, clip),   \
                    (s, h, b, t, rows, n, eps, beta, clip))                           \
    }                                                                                 \
    static void eq_exact_##SUFFIX(int isa, T *s, const T *h, const T *b, const T *t,  \
                                  int rows, int n, T beta, int clip) {                \
        EQ_DISPATCH(isa, eq_exact_##SUFFIX, (s, h, b, t, rows, n, beta, clip),        \
                    (s, h, b, t, rows, n, beta, clip))                                \
    }

EQ_DEFINE_STATE_DISPATCH(f32, float)
EQ_DEFINE_STATE_DISPATCH(f64, double)

#endif
