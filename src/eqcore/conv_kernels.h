/*
 * The data movement of a convolutional connection, for one example. The
 * arithmetic goes through the dense products (dense_kernels.h):
 *
 *   forward     conv (c_out x hw)   = W (c_out x patch) @ cols (patch x hw)
 *   transposed  gcols (patch x hw)  = W^T (patch x c_out) @ g (c_out x hw),  then col2im
 *   weights     dW (c_out x patch) += G (c_out x D) @ COLS^T (D x patch), D = examples x hw
 *
 * with patch = c_in k^2, hw = h_conv w_conv, and cols the unfolded input
 * (im2col): cols[(ci k + a) k + b, y w_conv + x] = in[ci, y + a - pad, x + b - pad],
 * zero outside the map. Cross-correlation, as torch.nn.functional.conv2d.
 *
 * Pooling is 2x2 with stride 2 over the convolution's map; an odd last row or
 * column is dropped (PyTorch's floor rule). Max pooling records the winner of
 * each window: the first maximum in row-major order (PyTorch's rule), and a
 * NaN wins, so that it propagates to the caller's divergence check.
 * Un-pooling is the transpose of pooling: max routes each value to its
 * window's winner, average spreads a quarter over the window.
 *
 * Plain loops the compiler vectorises, compiled per instruction set and
 * chosen at run time like the products.
 */
#ifndef EQCORE_CONV_KERNELS_H
#define EQCORE_CONV_KERNELS_H

#include <string.h>

#include "simd.h"

#define EQ_DEFINE_CONV_MOVES(SUFFIX, ATTR, T)                                         \
    /* cols (patch rows, ld apart) of one example's c x h x w map. */                 \
    ATTR static void eq_im2col_##SUFFIX(const T *in, int c, int h, int w, int k,      \
                                        int pad, int hc, int wc, T *cols, size_t ld) { \
        for (int ci = 0; ci < c; ci++)                                                \
            for (int a = 0; a < k; a++)                                               \
                for (int b = 0; b < k; b++) {                                         \
                    T *row = cols + (size_t)((ci * k + a) * k + b) * ld;              \
                    int x0 = pad - b; /* first output column whose input is inside */ \
                    int lo = x0 > 0 ? x0 : 0, hi = w + pad - b;                       \
                    if (hi > wc) hi = wc;                                             \
                    for (int y = 0; y < hc; y++) {                                    \
                        int yi = y + a - pad;                                         \
                        T *out = row + (size_t)y * wc;                                \
                        if (yi < 0 || yi >= h || hi <= lo) {                          \
                            for (int x = 0; x < wc; x++) out[x] = 0;                  \
                            continue;                                                 \
                        }                                                             \
                        const T *src = in + ((size_t)ci * h + yi) * w + (b - pad);    \
                        for (int x = 0; x < lo; x++) out[x] = 0;                      \
                        for (int x = lo; x < hi; x++) out[x] = src[x];                \
                        for (int x = hi; x < wc; x++) out[x] = 0;                     \
                    }                                                                 \
                }                                                                     \
    }                                                                                 \
    /* in (c x h x w) += the fold of cols (patch x hw, ld apart): the transpose of im2col. */ \
    ATTR static void eq_col2im_##SUFFIX(const T *cols, size_t ld, int c, int h, int w, \
                                        int k, int pad, int hc, int wc, T *in) {      \
        for (int ci = 0; ci < c; ci++)                                                \
            for (int a = 0; a < k; a++)                                               \
                for (int b = 0; b < k; b++) {                                         \
                    const T *row = cols + (size_t)((ci * k + a) * k + b) * ld;        \
                    int x0 = pad - b;                                                 \
                    int lo = x0 > 0 ? x0 : 0, hi = w + pad - b;                       \
                    if (hi > wc) hi = wc;                                             \
                    for (int y = 0; y < hc; y++) {                                    \
                        int yi = y + a - pad;                                         \
                        if (yi < 0 || yi >= h) continue;                              \
                        T *dst = in + ((size_t)ci * h + yi) * w + (b - pad);          \
                        const T *src = row + (size_t)y * wc;                          \
                        for (int x = lo; x < hi; x++) dst[x] += src[x];               \
                    }                                                                 \
                }                                                                     \
    }                                                                                 \
    /* out (c x hc/2 x wc/2) = 2x2 max of conv (c x hc x wc); win = flat index in hc x wc. */ \
    ATTR static void eq_pool_max_##SUFFIX(const T *conv, int c, int hc, int wc, T *out, \
                                          int *win) {                                 \
        int ho = hc / 2, wo = wc / 2;                                                 \
        for (int ch = 0; ch < c; ch++) {                                              \
            const T *m = conv + (size_t)ch * hc * wc;                                 \
            for (int i = 0; i < ho; i++)                                              \
                for (int j = 0; j < wo; j++) {                                        \
                    int p = (2 * i) * wc + 2 * j, q;                                  \
                    int best = p;                                                     \
                    T v = m[p];                                                       \
                    q = p + 1;      if (!(m[q] <= v) && v == v) { v = m[q]; best = q; } \
                    q = p + wc;     if (!(m[q] <= v) && v == v) { v = m[q]; best = q; } \
                    q = p + wc + 1; if (!(m[q] <= v) && v == v) { v = m[q]; best = q; } \
                    size_t o = ((size_t)ch * ho + i) * wo + j;                        \
                    out[o] = v;                                                       \
                    win[o] = best;                                                    \
                }                                                                     \
        }                                                                             \
    }                                                                                 \
    ATTR static void eq_pool_avg_##SUFFIX(const T *conv, int c, int hc, int wc, T *out) { \
        int ho = hc / 2, wo = wc / 2;                                                 \
        for (int ch = 0; ch < c; ch++) {                                              \
            const T *m = conv + (size_t)ch * hc * wc;                                 \
            for (int i = 0; i < ho; i++) {                                            \
                const T *r0 = m + (size_t)(2 * i) * wc, *r1 = r0 + wc;                \
                T *o = out + ((size_t)ch * ho + i) * wo;                              \
                for (int j = 0; j < wo; j++)                                          \
                    o[j] = ((r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1])) * (T)0.25; \
            }                                                                         \
        }                                                                             \
    }                                                                                 \
    /* g (c x hc x wc) = the state above routed to its windows' winners, 0 elsewhere. */ \
    ATTR static void eq_unpool_max_##SUFFIX(const T *above, const int *win, int c,    \
                                            int hc, int wc, T *g) {                   \
        int ho = hc / 2, wo = wc / 2;                                                 \
        memset(g, 0, (size_t)c * hc * wc * sizeof(T));                                \
        for (int ch = 0; ch < c; ch++) {                                              \
            T *m = g + (size_t)ch * hc * wc;                                          \
            const T *a = above + (size_t)ch * ho * wo;                                \
            const int *wn = win + (size_t)ch * ho * wo;                               \
            for (int o = 0; o < ho * wo; o++) m[wn[o]] = a[o];                        \
        }                                                                             \
    }                                                                                 \
    ATTR static void eq_unpool_avg_##SUFFIX(const T *above, int c, int hc, int wc, T *g) { \
        int ho = hc / 2, wo = wc / 2;                                                 \
        memset(g, 0, (size_t)c * hc * wc * sizeof(T));                                \
        for (int ch = 0; ch < c; ch++)                                                \
            for (int i = 0; i < ho; i++) {                                            \
                const T *a = above + ((size_t)ch * ho + i) * wo;                      \
                T *r0 = g + ((size_t)ch * hc + 2 * i) * wc, *r1 = r0 + wc;            \
                for (int j = 0; j < wo; j++) {                                        \
                    T q = a[j] * (T)0.25;                                             \
                    r0[2 * j] = q; r0[2 * j + 1] = q; r1[2 * j] = q; r1[2 * j + 1] = q; \
                }                                                                     \
            }                                                                         \
    }

#define EQ_DEFINE_CONV_ISA(SUFFIX, ATTR, FV, FL, DV, DL)                              \
    EQ_DEFINE_CONV_MOVES(f32_##SUFFIX, ATTR, float)                                   \
    EQ_DEFINE_CONV_MOVES(f64_##SUFFIX, ATTR, double)
EQ_FOR_EACH_ISA(EQ_DEFINE_CONV_ISA)

#define EQ_DEFINE_CONV_DISPATCH(S, T)                                                 \
    static void eq_im2col_##S(int isa, const T *in, int c, int h, int w, int k, int pad, \
                              int hc, int wc, T *cols, size_t ld) {                   \
        EQ_DISPATCH(isa, eq_im2col_##S, (in, c, h, w, k, pad, hc, wc, cols, ld),      \
                    (in, c, h, w, k, pad, hc, wc, cols, ld))                          \
    }                                                                                 \
    static void eq_col2im_##S(int isa, const T *cols, size_t ld, int c, int h, int w, \
                              int k, int pad, int hc, int wc, T *in) {                \
        EQ_DISPATCH(isa, eq_col2im_##S, (cols, ld, c, h, w, k, pad, hc, wc, in),      \
                    (cols, ld, c, h, w, k, pad, hc, wc, in))                          \
    }                                                                                 \
    static void eq_pool_max_##S(int isa, const T *conv, int c, int hc, int wc, T *out, \
                                int *win) {                                           \
        EQ_DISPATCH(isa, eq_pool_max_##S, (conv, c, hc, wc, out, win),                \
                    (conv, c, hc, wc, out, win))                                      \
    }                                                                                 \
    static void eq_pool_avg_##S(int isa, const T *conv, int c, int hc, int wc, T *out) { \
        EQ_DISPATCH(isa, eq_pool_avg_##S, (conv, c, hc, wc, out), (conv, c, hc, wc, out)) \
    }                                                                                 \
    static void eq_unpool_max_##S(int isa, const T *above, const int *win, int c, int hc, \
                                  int wc, T *g) {                                     \
        EQ_DISPATCH(isa, eq_unpool_max_##S, (above, win, c, hc, wc, g),               \
                    (above, win, c, hc, wc, g))                                       \
    }                                                                                 \
    static void eq_unpool_avg_##S(int isa, const T *above, int c, int hc, int wc, T *g) { \
        EQ_DISPATCH(isa, eq_unpool_avg_##S, (above, c, hc, wc, g), (above, c, hc, wc, g)) \
    }

EQ_DEFINE_CONV_DISPATCH(f32, float)
EQ_DEFINE_CONV_DISPATCH(f64, double)

#endif
