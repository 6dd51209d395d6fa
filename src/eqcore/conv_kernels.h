/*
 * The data movement of a convolutional connection, for one example. The
 * arithmetic goes through the products of dense_kernels.h:
 *
 *   forward     conv_cl (hw x c_out) = the shifted product of the padded input
 *               map with W as (patch x c_out): a direct convolution, no unfolding
 *   transposed  max pooling: eq_max_transposed, from the pooled state;
 *               otherwise per kernel tap, g_cl (rows of hw x c_out) @ W_tap (c_out x c_in)
 *               added into a channels-last map of the layer below
 *   weights     dW (c_out x patch) += G (c_out x D) @ ROWS (D x patch), D = examples x hw;
 *               max pooling: eq_max_weight_update, from the pooled values and their winners,
 *               by blocks of input channels
 *
 * with patch = c_in k^2, hw = h_conv w_conv, "cl" a channels-last map, and
 * rows the unfolded input, one row per output position (im2row, for the weights only):
 * rows[y w_conv + x, (ci k + a) k + b] = in[ci, y + a - pad, x + b - pad],
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
#include "transpose.h"

#define EQ_DEFINE_CONV_MOVES(SUFFIX, ATTR, T)                                         \
    /* row[(ci k + a) k + b] = in[ci, y + a - pad, x + b - pad] (0 outside the map): the patch of   \
     * output position (y, x) of one example's c x h x w map. */                     \
    ATTR static void eq_patch_row_##SUFFIX(const T *in, int c, int h, int w, int k, int pad, int y, \
                                           int x, T *row) {                           \
        int x0 = x - pad; /* the input column of tap b = 0 */                         \
        if (x0 >= 0 && x0 + k <= w && y - pad >= 0 && y - pad + k <= h) {             \
            /* inside the map (no padding reached): straight copies */                \
            const T *src = in + (size_t)(y - pad) * w + x0;                           \
            for (int ci = 0; ci < c; ci++, src += (size_t)h * w)                      \
                for (int a = 0; a < k; a++, row += k)                                 \
                    for (int b = 0; b < k; b++) row[b] = src[(size_t)a * w + b];      \
            return;                                                                   \
        }                                                                             \
        for (int ci = 0; ci < c; ci++)                                                \
            for (int a = 0; a < k; a++, row += k) {                                   \
                int yi = y + a - pad;                                                 \
                if (yi < 0 || yi >= h) {                                              \
                    for (int b = 0; b < k; b++) row[b] = 0;                           \
                    continue;                                                         \
                }                                                                     \
                const T *src = in + ((size_t)ci * h + yi) * w;                        \
                for (int b = 0; b < k; b++) {                                         \
                    int xi = x0 + b;                                                  \
                    row[b] = xi >= 0 && xi < w ? src[xi] : 0;                         \
                }                                                                     \
            }                                                                         \
    }                                                                                 \
    /* rows (one per output position, ld apart) of one example's c x h x w map. */    \
    ATTR static void eq_im2row_##SUFFIX(const T *in, int c, int h, int w, int k,      \
                                        int pad, int hc, int wc, T *rows, size_t ld) { \
        for (int y = 0; y < hc; y++)                                                  \
            for (int x = 0; x < wc; x++)                                              \
                eq_patch_row_##SUFFIX(in, c, h, w, k, pad, y, x, rows + (size_t)(y * wc + x) * ld); \
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

/*
 * Channels-last helpers of the direct convolution (_engine.pyx): the products
 * run over positions x channels ("cl") maps, the states stay channels-first.
 */
#define EQ_DEFINE_CONV_CL(SUFFIX, ATTR, T)                                            \
    /* padded (c x (h + 2 pad) x (w + 2 pad)) = in, zero around it. */               \
    ATTR static void eq_pad_map_##SUFFIX(const T *in, int c, int h, int w, int pad, T *padded) { \
        int hp = h + 2 * pad, wp = w + 2 * pad;                                       \
        memset(padded, 0, (size_t)c * hp * wp * sizeof(T));                           \
        for (int ch = 0; ch < c; ch++)                                                \
            for (int y = 0; y < h; y++)                                               \
                memcpy(padded + ((size_t)ch * hp + y + pad) * wp + pad,               \
                       in + ((size_t)ch * h + y) * w, (size_t)w * sizeof(T));         \
    }                                                                                 \
    /* dst (cols x rows) = src (rows x cols)^T, or += with acc. */                    \
    ATTR static void eq_transpose_##SUFFIX(const T *src, int rows, int cols, int acc, T *dst) { \
        eq_transpose_strided_##SUFFIX(src, rows, cols, (size_t)cols, dst, (size_t)rows, acc); \
    }                                                                                 \
    /* out (c x hc/2 x wc/2) and win = eq_pool_max of the channels-last conv (hc wc x c). */ \
    ATTR static void eq_pool_max_cl_##SUFFIX(const T *conv, int c, int hc, int wc, T *out, \
                                             int *win) {                              \
        int ho = hc / 2, wo = wc / 2;                                                 \
        for (int i = 0; i < ho; i++)                                                  \
            for (int j = 0; j < wo; j++) {                                            \
                int p = (2 * i) * wc + 2 * j;                                         \
                const T *m0 = conv + (size_t)p * c, *m1 = m0 + c;                     \
                const T *m2 = m0 + (size_t)wc * c, *m3 = m2 + c;                      \
                for (int ch = 0; ch < c; ch++) {                                      \
                    T v = m0[ch];                                                     \
                    int best = p, take;                                               \
                    take = !(m1[ch] <= v) && v == v; v = take ? m1[ch] : v; best = take ? p + 1 : best; \
                    take = !(m2[ch] <= v) && v == v; v = take ? m2[ch] : v; best = take ? p + wc : best; \
                    take = !(m3[ch] <= v) && v == v; v = take ? m3[ch] : v; best = take ? p + wc + 1 : best; \
                    size_t o = ((size_t)ch * ho + i) * wo + j;                        \
                    out[o] = v;                                                       \
                    win[o] = best;                                                    \
                }                                                                     \
            }                                                                         \
    }                                                                                 \
    ATTR static void eq_pool_avg_cl_##SUFFIX(const T *conv, int c, int hc, int wc, T *out) { \
        int ho = hc / 2, wo = wc / 2;                                                 \
        for (int i = 0; i < ho; i++)                                                  \
            for (int j = 0; j < wo; j++) {                                            \
                const T *m0 = conv + (size_t)((2 * i) * wc + 2 * j) * c, *m1 = m0 + c; \
                const T *m2 = m0 + (size_t)wc * c, *m3 = m2 + c;                      \
                for (int ch = 0; ch < c; ch++)                                        \
                    out[((size_t)ch * ho + i) * wo + j] = ((m0[ch] + m1[ch]) + (m2[ch] + m3[ch])) * (T)0.25; \
            }                                                                         \
    }                                                                                 \
    /* g (hc wc x c) = the average un-pooling of above (c x hc/2 x wc/2), channels-last. */ \
    ATTR static void eq_unpool_avg_cl_##SUFFIX(const T *above, int c, int hc, int wc, T *g) { \
        int ho = hc / 2, wo = wc / 2;                                                 \
        memset(g, 0, (size_t)c * hc * wc * sizeof(T));                                \
        for (int ch = 0; ch < c; ch++)                                                \
            for (int i = 0; i < ho; i++)                                              \
                for (int j = 0; j < wo; j++) {                                        \
                    T q = above[((size_t)ch * ho + i) * wo + j] * (T)0.25;            \
                    size_t p = (size_t)(2 * i) * wc + 2 * j;                          \
                    g[p * c + ch] = q; g[(p + 1) * c + ch] = q;                       \
                    g[(p + wc) * c + ch] = q; g[(p + wc + 1) * c + ch] = q;           \
                }                                                                     \
    }

/*
 * The transposed convolution of a max-unpooled state, from the pooled state
 * itself: out_cl (h_in w_in x c_in, channels last) += at every position below,
 * the sum over taps (a, b) and over the channels ch whose window's winner is
 * the convolution's position (y + pad - a, x + pad - b), with value v != 0, of
 * v * taps[ch, a, b, :] (taps: W as c_out x k x k x c_in). Three quarters of an
 * un-pooled map are zeros, and so are many clipped states: neither is visited
 * (0 * w adds nothing: the weights are finite).
 *
 * The non-zero values are first listed by their winner's position (a counting
 * sort: work holds their values, n_out T, then first, hc wc + 1 ints, where
 * position p's run starts, then their channels, n_out ints). Then, one tap
 * (a, b) at a time, so that the taps it reads (c_out rows of c_in) stay in L1,
 * each position p sums its values' products in registers, NV vectors of input
 * channels at a time with two sets of accumulators taking alternate values
 * (independent chains of adds), and adds the sum to its position below once.
 * Scattering each value's k x k x c_in products into out_cl instead (a load and
 * a store per product) was slower: docs/performance.md, "Conv training on Zen 4".
 *
 * For kernels of 2 to 7 (compiled per k) the vector channels take a longer
 * run per sum first (EQ_MAX_WINDOW_ROWS): one kernel row a at a time (its
 * c_out x k vectors of taps stay in L1), each pooling window keeps in
 * registers the 2 x (k + 1) vectors of the two rows below that its four
 * positions' values reach through row a, sums every value listed at any of
 * its four positions into them, and adds them to out_cl once: about four
 * times the products per load and store of out_cl of the per-tap gather.
 * The per-tap gather takes the channels left over (fewer than a vector) and
 * larger kernels.
 */
#define EQ_MAX_WINDOW_QUADRANT(T, VT, K, QY, QX)                                       \
    for (int i = first[p00 + (QY) * wc + (QX)], end = first[p00 + (QY) * wc + (QX) + 1]; i < end; i++) { \
        const T *w = row + (size_t)channel[i] * per_channel;                           \
        VT v = (VT){0} + value[i];                                                     \
        for (int b = 0; b < (K); b++) acc[QY][(QX) + b] += v * *(const VT *)(w + (size_t)b * c_in); \
    }

/* Skipped (left to the per-tap gather) where the 2 (K + 1) accumulators would
 * not fit the vector registers with room to spare: 32 with AVX-512, 16 else. */
#define EQ_MAX_WINDOW_ROWS(T, VT, V, K)                                                \
    if (2 * ((K) + 1) <= (sizeof(VT) == 64 ? 16 : 12))                                 \
        for (; c0 + (V) <= c_in; c0 += (V))                                            \
            for (int a = 0; a < (K); a++) {                                            \
                const T *row = taps + (size_t)a * (K) * c_in + c0;                     \
                for (int oy = 0; oy < ho; oy++)                                        \
                    for (int ox = 0; ox < wo; ox++) {                                  \
                        int p00 = 2 * oy * wc + 2 * ox;                                \
                        if (first[p00] == first[p00 + 2] && first[p00 + wc] == first[p00 + wc + 2]) \
                            continue; /* no value in this window */                    \
                        VT acc[2][(K) + 1];                                            \
                        for (int j = 0; j <= (K); j++) acc[0][j] = acc[1][j] = (VT){0}; \
                        EQ_MAX_WINDOW_QUADRANT(T, VT, K, 0, 0)                         \
                        EQ_MAX_WINDOW_QUADRANT(T, VT, K, 0, 1)                         \
                        EQ_MAX_WINDOW_QUADRANT(T, VT, K, 1, 0)                         \
                        EQ_MAX_WINDOW_QUADRANT(T, VT, K, 1, 1)                         \
                        for (int qy = 0; qy < 2; qy++) {                               \
                            int yi = 2 * oy + qy + a - pad;                            \
                            if (yi < 0 || yi >= h_in) continue;                        \
                            for (int j = 0; j <= (K); j++) {                           \
                                int xi = 2 * ox + j - pad;                             \
                                if (xi < 0 || xi >= w_in) continue;                    \
                                *(VT *)(out_cl + ((size_t)yi * w_in + xi) * c_in + c0) += acc[qy][j]; \
                            }                                                          \
                        }                                                              \
                    }                                                                  \
            }

#define EQ_MAX_GATHER_CHUNK(T, VT, V, NV)                                              \
    for (; c0 + (NV) * (V) <= c_in; c0 += (NV) * (V))                                  \
        for (int a = 0; a < k; a++)                                                    \
            for (int b = 0; b < k; b++) {                                              \
                const T *tap = taps + (size_t)(a * k + b) * c_in + c0;                 \
                for (int y = 0; y < hc; y++) {                                         \
                    int yi = y + a - pad;                                              \
                    if (yi < 0 || yi >= h_in) continue;                                \
                    for (int x = 0; x < wc; x++) {                                     \
                        int xi = x + b - pad, i = first[y * wc + x], end = first[y * wc + x + 1]; \
                        if (xi < 0 || xi >= w_in || i == end) continue;                \
                        VT s[NV], t[NV];                                               \
                        for (int u = 0; u < (NV); u++) { s[u] = (VT){0}; t[u] = (VT){0}; } \
                        for (; i + 1 < end; i += 2) {                                  \
                            const T *w0 = tap + (size_t)channel[i] * per_channel;      \
                            const T *w1 = tap + (size_t)channel[i + 1] * per_channel;  \
                            for (int u = 0; u < (NV); u++) {                           \
                                s[u] += value[i] * *(const VT *)(w0 + u * (V));        \
                                t[u] += value[i + 1] * *(const VT *)(w1 + u * (V));    \
                            }                                                          \
                        }                                                              \
                        if (i < end) {                                                 \
                            const T *w0 = tap + (size_t)channel[i] * per_channel;      \
                            for (int u = 0; u < (NV); u++) s[u] += value[i] * *(const VT *)(w0 + u * (V)); \
                        }                                                              \
                        T *dst = out_cl + ((size_t)yi * w_in + xi) * c_in + c0;        \
                        for (int u = 0; u < (NV); u++) *(VT *)(dst + u * (V)) += s[u] + t[u]; \
                    }                                                                  \
                }                                                                      \
            }

#define EQ_DEFINE_MAX_TRANSPOSED(SUFFIX, ATTR, T, VT, V)                               \
    /* The counting sort: the non-zero values above (c_out x windows) listed by their  \
     * winner's position, in work as eq_max_transposed describes; returns how many. */ \
    ATTR static int eq_max_list_##SUFFIX(const T *above, const int *win, int c_out, int windows, \
                                         int positions, T *work) {                     \
        T *value = work;                                                               \
        int *first = (int *)(work + (size_t)c_out * windows), *channel = first + positions + 1; \
        memset(first, 0, sizeof(int) * (positions + 1));                               \
        for (int i = 0; i < c_out * windows; i++)                                      \
            if (above[i] != 0) first[win[i] + 1]++;                                    \
        for (int p = 0; p < positions; p++) first[p + 1] += first[p];                  \
        if (first[positions] == 0) return 0;                                           \
        for (int ch = 0; ch < c_out; ch++) /* first[p] walks p's run, then is set back */ \
            for (int o = 0; o < windows; o++) {                                        \
                size_t i = (size_t)ch * windows + o;                                   \
                if (above[i] == 0) continue;                                           \
                int slot = first[win[i]]++;                                            \
                value[slot] = above[i];                                                \
                channel[slot] = ch;                                                    \
            }                                                                          \
        for (int p = positions; p > 0; p--) first[p] = first[p - 1];                   \
        first[0] = 0;                                                                  \
        return first[positions];                                                       \
    }                                                                                  \
    ATTR static void eq_max_transposed_##SUFFIX(const T *above, const int *win, const T *taps, \
                                                int c_out, int ho, int wo, int hc, int wc, int c_in, \
                                                int h_in, int w_in, int k, int pad, T *work, \
                                                T *out_cl) {                           \
        int windows = ho * wo, positions = hc * wc, c0 = 0;                            \
        size_t per_channel = (size_t)k * k * c_in;                                     \
        const T *value = work;                                                         \
        const int *first = (const int *)(work + (size_t)c_out * windows), *channel = first + positions + 1; \
        if (!eq_max_list_##SUFFIX(above, win, c_out, windows, positions, work))        \
            return; /* no non-zero value above */                                      \
        switch (k) {                                                                   \
        case 2: EQ_MAX_WINDOW_ROWS(T, VT, V, 2) break;                                 \
        case 3: EQ_MAX_WINDOW_ROWS(T, VT, V, 3) break;                                 \
        case 4: EQ_MAX_WINDOW_ROWS(T, VT, V, 4) break;                                 \
        case 5: EQ_MAX_WINDOW_ROWS(T, VT, V, 5) break;                                 \
        case 6: EQ_MAX_WINDOW_ROWS(T, VT, V, 6) break;                                 \
        case 7: EQ_MAX_WINDOW_ROWS(T, VT, V, 7) break;                                 \
        default: break;                                                                \
        }                                                                              \
        EQ_MAX_GATHER_CHUNK(T, VT, V, 4)                                               \
        EQ_MAX_GATHER_CHUNK(T, VT, V, 2)                                               \
        EQ_MAX_GATHER_CHUNK(T, VT, V, 1)                                               \
        for (; c0 < c_in; c0++) /* the last c_in % V channels, one at a time */        \
            for (int a = 0; a < k; a++)                                                \
                for (int b = 0; b < k; b++)                                            \
                    for (int y = 0; y < hc; y++) {                                     \
                        int yi = y + a - pad;                                          \
                        if (yi < 0 || yi >= h_in) continue;                            \
                        for (int x = 0; x < wc; x++) {                                 \
                            int xi = x + b - pad;                                      \
                            if (xi < 0 || xi >= w_in) continue;                        \
                            const T *tap = taps + (size_t)(a * k + b) * c_in + c0;     \
                            T sum = 0;                                                 \
                            for (int i = first[y * wc + x]; i < first[y * wc + x + 1]; i++) \
                                sum += value[i] * tap[(size_t)channel[i] * per_channel]; \
                            out_cl[((size_t)yi * w_in + xi) * c_in + c0] += sum;       \
                        }                                                              \
                    }                                                                  \
    }

/*
 * The weight correlation of one example of a max-pooled connection, for the
 * input channels ci0 .. ci1 - 1 (columns ci0 k^2 .. ci1 k^2 - 1 of every row of
 * weights, c_out x patch): row ch += v times the part of the patch below the
 * winner of window o, for every non-zero v = values[ch, o] (c_out x ho wo, the
 * state above already scaled). That is W += G @ R for the un-pooled G, whose
 * zeros (three quarters, and the clipped states) cost nothing here. Split by
 * input channels, the tasks of several threads unfold disjoint parts.
 *
 * First the part of the patch below every position that won a non-zero value
 * is unfolded, once, into scratch (a position's row at position x part); then
 * each output channel takes its row of weights 8 vectors at a time into
 * registers, adds the terms of its windows in window order, and stores it:
 * one load and store of the weights per channel, not per window, and the same
 * additions in the same order as window by window (the bits of the earlier
 * window-by-window loop on every instruction set). The conv network's update
 * stage takes 8-25% less time on two threads and 7% more on one (docs/performance.md;
 * an earlier session read it as the unfolded patches coming from L2). Scratch:
 * 2 ho wc x part + ho wo values, then 2 ho wc + ho wo ints.
 */
#define EQ_WEIGHT_CHUNK(T, VT, V, NV)                                                  \
    for (; t0 + (NV) * (V) <= part; t0 += (NV) * (V)) {                                \
        VT acc[NV];                                                                    \
        for (int u = 0; u < (NV); u++) acc[u] = *(const VT *)(wr + t0 + u * (V));     \
        for (int i = 0; i < n; i++) {                                                  \
            const T *pr = rows + (size_t)at[i] * part + t0;                            \
            for (int u = 0; u < (NV); u++) acc[u] += by[i] * *(const VT *)(pr + u * (V)); \
        }                                                                              \
        for (int u = 0; u < (NV); u++) *(VT *)(wr + t0 + u * (V)) = acc[u];           \
    }

#define EQ_DEFINE_MAX_WEIGHT_UPDATE(SUFFIX, ATTR, T, VT, V)                            \
    ATTR static void eq_max_weight_update_##SUFFIX(const T *in, int c, int h, int w, int k, int pad, \
                                                   const T *values, const int *win, int c_out, int ho, \
                                                   int wo, int wc, int ci0, int ci1, T *weights, T *scratch) { \
        int windows = ho * wo, patch = c * k * k, part = (ci1 - ci0) * k * k;         \
        int positions = 2 * ho * wc;                                                   \
        const T *in_part = in + (size_t)ci0 * h * w;                                  \
        T *rows = scratch, *by = rows + (size_t)positions * part;                      \
        int *unfolded = (int *)(by + windows), *at = unfolded + positions;             \
        memset(unfolded, 0, sizeof(int) * positions);                                  \
        for (int i = 0; i < c_out * windows; i++)                                      \
            if (values[i] != 0 && !unfolded[win[i]]) {                                 \
                eq_patch_row_##SUFFIX(in_part, ci1 - ci0, h, w, k, pad, win[i] / wc, win[i] % wc, \
                                      rows + (size_t)win[i] * part);                   \
                unfolded[win[i]] = 1;                                                  \
            }                                                                          \
        for (int ch = 0; ch < c_out; ch++) {                                           \
            const T *v = values + (size_t)ch * windows;                                \
            const int *wn = win + (size_t)ch * windows;                                \
            int n = 0;                                                                 \
            for (int o = 0; o < windows; o++)                                          \
                if (v[o] != 0) { by[n] = v[o]; at[n] = wn[o]; n++; }                   \
            if (n == 0) continue;                                                      \
            T *wr = weights + (size_t)ch * patch + (size_t)ci0 * k * k;                \
            int t0 = 0;                                                                \
            EQ_WEIGHT_CHUNK(T, VT, V, 8)                                               \
            EQ_WEIGHT_CHUNK(T, VT, V, 2)                                               \
            EQ_WEIGHT_CHUNK(T, VT, V, 1)                                               \
            for (; t0 < part; t0++) {                                                  \
                T sum = wr[t0];                                                        \
                for (int i = 0; i < n; i++) sum += by[i] * rows[(size_t)at[i] * part + t0]; \
                wr[t0] = sum;                                                          \
            }                                                                          \
        }                                                                              \
    }

#define EQ_DEFINE_CONV_ISA(SUFFIX, ATTR, FV, FL, DV, DL)                              \
    EQ_DEFINE_CONV_MOVES(f32_##SUFFIX, ATTR, float)                                   \
    EQ_DEFINE_CONV_MOVES(f64_##SUFFIX, ATTR, double)                                  \
    EQ_DEFINE_CONV_CL(f32_##SUFFIX, ATTR, float)                                      \
    EQ_DEFINE_CONV_CL(f64_##SUFFIX, ATTR, double)                                     \
    EQ_DEFINE_MAX_TRANSPOSED(f32_##SUFFIX, ATTR, float, FV, FL)                       \
    EQ_DEFINE_MAX_TRANSPOSED(f64_##SUFFIX, ATTR, double, DV, DL)                      \
    EQ_DEFINE_MAX_WEIGHT_UPDATE(f32_##SUFFIX, ATTR, float, FV, FL)                    \
    EQ_DEFINE_MAX_WEIGHT_UPDATE(f64_##SUFFIX, ATTR, double, DV, DL)
EQ_FOR_EACH_ISA(EQ_DEFINE_CONV_ISA)

#define EQ_DEFINE_CONV_DISPATCH(S, T)                                                 \
    static void eq_pad_map_##S(int isa, const T *in, int c, int h, int w, int pad, T *padded) { \
        EQ_DISPATCH(isa, eq_pad_map_##S, (in, c, h, w, pad, padded), (in, c, h, w, pad, padded)) \
    }                                                                                 \
    static void eq_transpose_##S(int isa, const T *src, int rows, int cols, int acc, T *dst) { \
        EQ_DISPATCH(isa, eq_transpose_##S, (src, rows, cols, acc, dst), (src, rows, cols, acc, dst)) \
    }                                                                                 \
    /* dst (cols x rows, ldd apart) = a block of src (rows x cols, lds apart), transposed. */ \
    static void eq_transpose_block_##S(int isa, const T *src, int rows, int cols, size_t lds, T *dst, \
                                       size_t ldd) {                                  \
        EQ_DISPATCH(isa, eq_transpose_strided_##S, (src, rows, cols, lds, dst, ldd, 0), \
                    (src, rows, cols, lds, dst, ldd, 0))                              \
    }                                                                                 \
    /* dst (cols x rows, ldd apart) += the same block transposed. */                  \
    static void eq_transpose_add_block_##S(int isa, const T *src, int rows, int cols, size_t lds, T *dst, \
                                           size_t ldd) {                              \
        EQ_DISPATCH(isa, eq_transpose_strided_##S, (src, rows, cols, lds, dst, ldd, 1), \
                    (src, rows, cols, lds, dst, ldd, 1))                              \
    }                                                                                 \
    static void eq_pool_max_cl_##S(int isa, const T *conv, int c, int hc, int wc, T *out, \
                                   int *win) {                                        \
        EQ_DISPATCH(isa, eq_pool_max_cl_##S, (conv, c, hc, wc, out, win),             \
                    (conv, c, hc, wc, out, win))                                      \
    }                                                                                 \
    static void eq_pool_avg_cl_##S(int isa, const T *conv, int c, int hc, int wc, T *out) { \
        EQ_DISPATCH(isa, eq_pool_avg_cl_##S, (conv, c, hc, wc, out), (conv, c, hc, wc, out)) \
    }                                                                                 \
    static void eq_unpool_avg_cl_##S(int isa, const T *above, int c, int hc, int wc, T *g) { \
        EQ_DISPATCH(isa, eq_unpool_avg_cl_##S, (above, c, hc, wc, g), (above, c, hc, wc, g)) \
    }                                                                                 \
    static void eq_max_transposed_##S(int isa, const T *above, const int *win, const T *taps, \
                                      int c_out, int ho, int wo, int hc, int wc, int c_in, \
                                      int h_in, int w_in, int k, int pad, T *work, T *out_cl) { \
        EQ_DISPATCH(isa, eq_max_transposed_##S,                                       \
                    (above, win, taps, c_out, ho, wo, hc, wc, c_in, h_in, w_in, k, pad, work, out_cl), \
                    (above, win, taps, c_out, ho, wo, hc, wc, c_in, h_in, w_in, k, pad, work, out_cl)) \
    }                                                                                 \
    static void eq_im2row_##S(int isa, const T *in, int c, int h, int w, int k, int pad, \
                              int hc, int wc, T *rows, size_t ld) {                   \
        EQ_DISPATCH(isa, eq_im2row_##S, (in, c, h, w, k, pad, hc, wc, rows, ld),      \
                    (in, c, h, w, k, pad, hc, wc, rows, ld))                          \
    }                                                                                 \
    static void eq_max_weight_update_##S(int isa, const T *in, int c, int h, int w, int k, int pad, \
                                         const T *values, const int *win, int c_out, int ho, int wo, \
                                         int wc, int ci0, int ci1, T *weights, T *scratch) { \
        EQ_DISPATCH(isa, eq_max_weight_update_##S,                                    \
                    (in, c, h, w, k, pad, values, win, c_out, ho, wo, wc, ci0, ci1, weights, scratch), \
                    (in, c, h, w, k, pad, values, win, c_out, ho, wo, wc, ci0, ci1, weights, scratch)) \
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
