/*
 * The bottom-up convolution by Winograd's minimal filtering F(m x m, k x k)
 * (Lavin and Gray 2016): per example, the conv map is cut into tiles of m x m
 * outputs, each computed from an alpha x alpha input tile (alpha = m + k - 1):
 *
 *   V[pos, tile, ci]  = (B^T d_tile,ci B)[pos]            input transform
 *   M[pos, tile, co]  = sum_ci V[pos, tile, ci] U[pos, ci, co]   alpha^2 products
 *   conv tile, co     = A^T M[., tile, co] A               output transform
 *
 * with U[pos, ci, co] = (G W[co, ci] G^T)[pos], made once per mini-batch from
 * W. For the conv preset's second layer (F(4x4, 5x5)) the products do 4 of
 * direct convolution's 25 multiply-adds per output, and run through the
 * register-blocked small products of dense_kernels.h.
 *
 * The matrices come from the Toom-Cook construction on the points
 * 0, 1, -1, 2, -2, 1/2, -1/2 (the first alpha - 1 of them) and infinity:
 * A^T = the Vandermonde matrix (m columns) transposed, G = the Vandermonde
 * matrix (k columns), B^T = the inverse of the full one, transposed; computed
 * in double and rounded once. The rounding error grows with alpha (about 5x
 * the direct convolution's in float32 at alpha = 8: docs/performance.md), so
 * alpha stays at most 8.
 *
 * The transposed convolution of an average- or un-pooled state above is the
 * same computation on the un-pooled map above (padding k - 1 - pad) with the
 * kernel turned by 180 degrees and its channels swapped (eq_wino_weights' flip).
 *
 * An output whose receptive field is zero in every channel is set to exactly
 * 0, as the direct convolution gives it: max pooling breaks ties by position
 * (clipped states make all-zero fields common), and the transforms' rounding
 * would otherwise turn those ties into noise.
 */
#ifndef EQCORE_WINOGRAD_H
#define EQCORE_WINOGRAD_H

#include <math.h>
#include <string.h>

#include "simd.h"
#include "transpose.h"

#define EQ_WINO_MAX_ALPHA 8

/* The output tile side m of the kernel size k (alpha = m + k - 1 <= 8), 0 where
 * Winograd does not apply (k = 1 is already a product; k > 7 leaves m < 2). */
static int eq_wino_tile(int k) {
    if (k < 2 || k > 7) return 0;
    return 9 - k < 4 ? 9 - k : 4;
}

/* at (m x alpha), g (alpha x k) and bt (alpha x alpha) of F(m, k), row-major. */
static void eq_wino_matrices(int m, int k, double *at, double *g, double *bt) {
    static const double points[EQ_WINO_MAX_ALPHA - 1] = {0, 1, -1, 2, -2, 0.5, -0.5};
    int alpha = m + k - 1;
    double v[EQ_WINO_MAX_ALPHA * EQ_WINO_MAX_ALPHA], inv[EQ_WINO_MAX_ALPHA * EQ_WINO_MAX_ALPHA];
    for (int j = 0; j < alpha; j++) {
        int infinity = j == alpha - 1; /* evaluation at infinity: the leading coefficient */
        double power = 1;
        for (int i = 0; i < alpha; i++, power *= infinity ? 1 : points[j]) {
            v[j * alpha + i] = infinity ? i == alpha - 1 : power;
            if (i < m) at[i * alpha + j] = infinity ? i == m - 1 : power;
            if (i < k) g[j * k + i] = infinity ? i == k - 1 : power;
            inv[j * alpha + i] = i == j;
        }
    }
    /* Gauss-Jordan with partial pivoting: the points are distinct, v is invertible */
    for (int col = 0; col < alpha; col++) {
        int pivot = col;
        for (int r = col + 1; r < alpha; r++)
            if (fabs(v[r * alpha + col]) > fabs(v[pivot * alpha + col])) pivot = r;
        for (int j = 0; j < alpha; j++) {
            double t = v[col * alpha + j];
            v[col * alpha + j] = v[pivot * alpha + j];
            v[pivot * alpha + j] = t;
            t = inv[col * alpha + j];
            inv[col * alpha + j] = inv[pivot * alpha + j];
            inv[pivot * alpha + j] = t;
        }
        double p = v[col * alpha + col];
        for (int j = 0; j < alpha; j++) {
            v[col * alpha + j] /= p;
            inv[col * alpha + j] /= p;
        }
        for (int r = 0; r < alpha; r++) {
            double f = v[r * alpha + col];
            if (r == col || f == 0) continue;
            for (int j = 0; j < alpha; j++) {
                v[r * alpha + j] -= f * v[col * alpha + j];
                inv[r * alpha + j] -= f * inv[col * alpha + j];
            }
        }
    }
    for (int i = 0; i < alpha; i++)
        for (int j = 0; j < alpha; j++) bt[i * alpha + j] = inv[j * alpha + i];
}

/* Items of scratch eq_wino_input / eq_wino_output need for one example: the
 * channels-last map, V, M and the two byte masks (counted one item per byte). */
static size_t eq_wino_scratch(int c_in, int c_out, int k, int hc, int wc) {
    int m = eq_wino_tile(k), alpha = m + k - 1;
    size_t ty = (hc + m - 1) / m, tx = (wc + m - 1) / m, hx = ty * m + k - 1, wx = tx * m + k - 1;
    size_t a2 = (size_t)alpha * alpha;
    return hx * wx * c_in + a2 * ty * tx * (c_in + c_out) + (size_t)hc * wc + hx * wx;
}

/*
 * One tile's transforms for a compile-time ALPHA (so that a column of the
 * tile stays in registers), a vector of VT (V lanes) of channels at a time,
 * then the last c % V channels one by one: the same code with T as the vector.
 */
#define EQ_WINO_IN_CHANNELS(VT, ALPHA)                                                \
    {                                                                                 \
        VT tmp[ALPHA][ALPHA];                                                         \
        for (int b = 0; b < (ALPHA); b++) { /* tmp[:, b] = bt d[:, b] */             \
            VT col[ALPHA];                                                            \
            _Pragma("GCC unroll 8") for (int a = 0; a < (ALPHA); a++)                 \
                col[a] = *(const VT *)(d + a * ldrow + (size_t)b * c + ch);           \
            _Pragma("GCC unroll 8") for (int i = 0; i < (ALPHA); i++) {               \
                VT sum = bt[i * (ALPHA)] * col[0];                                    \
                _Pragma("GCC unroll 8") for (int a = 1; a < (ALPHA); a++) sum += bt[i * (ALPHA) + a] * col[a]; \
                tmp[i][b] = sum;                                                      \
            }                                                                         \
        }                                                                             \
        for (int i = 0; i < (ALPHA); i++) /* v[(i, j)] = tmp[i, :] bt^T */            \
            _Pragma("GCC unroll 8") for (int j = 0; j < (ALPHA); j++) {               \
                VT sum = bt[j * (ALPHA)] * tmp[i][0];                                 \
                _Pragma("GCC unroll 8") for (int b = 1; b < (ALPHA); b++) sum += bt[j * (ALPHA) + b] * tmp[i][b]; \
                *(VT *)(vt + (size_t)(i * (ALPHA) + j) * ldpos + ch) = sum;           \
            }                                                                         \
    }
#define EQ_WINO_TILE_IN(VT, V, T, ALPHA)                                              \
    {                                                                                 \
        int ch = 0;                                                                   \
        for (; ch + (V) <= c; ch += (V)) EQ_WINO_IN_CHANNELS(VT, ALPHA)               \
        for (; ch < c; ch++) EQ_WINO_IN_CHANNELS(T, ALPHA)                            \
    }
#define EQ_WINO_OUT_CHANNELS(VT, T, ALPHA)                                            \
    {                                                                                 \
        VT tmp[ALPHA][ALPHA]; /* rows y < my used */                                  \
        for (int j = 0; j < (ALPHA); j++) { /* tmp[:, j] = at mm[:, j] */            \
            VT col[ALPHA];                                                            \
            _Pragma("GCC unroll 8") for (int i = 0; i < (ALPHA); i++)                 \
                col[i] = *(const VT *)(mt + (size_t)(i * (ALPHA) + j) * ldpos + ch);  \
            for (int y = 0; y < my; y++) {                                            \
                VT sum = at[y * (ALPHA)] * col[0];                                    \
                _Pragma("GCC unroll 8") for (int i = 1; i < (ALPHA); i++) sum += at[y * (ALPHA) + i] * col[i]; \
                tmp[y][j] = sum;                                                      \
            }                                                                         \
        }                                                                             \
        for (int y = 0; y < my; y++)                                                  \
            for (int x = 0; x < mx; x++) {                                            \
                VT sum = at[x * (ALPHA)] * tmp[y][0];                                 \
                _Pragma("GCC unroll 8") for (int j = 1; j < (ALPHA); j++) sum += at[x * (ALPHA) + j] * tmp[y][j]; \
                if (!field[(y0 + y) * wc + x0 + x]) sum = (VT){0};                    \
                *(VT *)(conv + ((size_t)(y0 + y) * wc + x0 + x) * c + ch) = sum;      \
            }                                                                         \
    }
#define EQ_WINO_TILE_OUT(VT, V, T, ALPHA)                                             \
    {                                                                                 \
        int ch = 0;                                                                   \
        for (; ch + (V) <= c; ch += (V)) EQ_WINO_OUT_CHANNELS(VT, T, ALPHA)           \
        for (; ch < c; ch++) EQ_WINO_OUT_CHANNELS(T, T, ALPHA)                        \
    }

/*
 * alpha = 8, the points 0, +-1, +-2, +-1/2 and infinity: B^T's row 0 lives on the
 * even columns, row 7 on the odd ones, rows 1 to 6 on columns 1 to 6, and row
 * p + 1 (the point -x of row p's x) is row p with its odd columns negated
 * (p = 1, 3, 5). So a transformed column is, with E and O row p's sums over the
 * even and the odd columns, E + O and E - O: 32 multiply-adds where the dense
 * product does 64. eq_wino_paired8 checks the structure on the rounded bt.
 */
#define EQ_DEFINE_WINO_PAIRED8(T, TOLERANCE)                                          \
    static int eq_wino_paired8_##T(const T *bt) {                                     \
        for (int i = 0; i < 8; i++) {                                                 \
            double scale = 0;                                                         \
            for (int a = 0; a < 8; a++) scale = fmax(scale, fabs((double)bt[i * 8 + a])); \
            for (int a = 0; a < 8; a++) {                                             \
                int zero = i == 0 ? a % 2 : i == 7 ? a % 2 == 0 : a == 0 || a == 7;   \
                double x = bt[i * 8 + a];                                             \
                if (zero && fabs(x) > (TOLERANCE) * scale) return 0;                  \
                if (i % 2 == 0 && i > 0 && i < 7                                      \
                    && fabs(x - (a % 2 ? -1 : 1) * (double)bt[(i - 1) * 8 + a]) > (TOLERANCE) * scale) \
                    return 0;                                                         \
            }                                                                         \
        }                                                                             \
        return 1;                                                                     \
    }
EQ_DEFINE_WINO_PAIRED8(float, 1e-6)
EQ_DEFINE_WINO_PAIRED8(double, 1e-13)

/* OUT(j) = sum_a bt[j, a] X(a) for the 8 rows j, by the structure above. */
#define EQ_WINO_APPLY8(VT, OUT, X)                                                    \
    {                                                                                 \
        OUT(0) = bt[0] * X(0) + bt[2] * X(2) + bt[4] * X(4) + bt[6] * X(6);           \
        _Pragma("GCC unroll 3") for (int p = 1; p < 7; p += 2) {                      \
            VT even = bt[p * 8 + 2] * X(2) + bt[p * 8 + 4] * X(4) + bt[p * 8 + 6] * X(6); \
            VT odd = bt[p * 8 + 1] * X(1) + bt[p * 8 + 3] * X(3) + bt[p * 8 + 5] * X(5); \
            OUT(p) = even + odd;                                                      \
            OUT(p + 1) = even - odd;                                                  \
        }                                                                             \
        OUT(7) = bt[57] * X(1) + bt[59] * X(3) + bt[61] * X(5) + bt[63] * X(7);       \
    }
#define EQ_WINO_IN8_CHANNELS(VT)                                                      \
    {                                                                                 \
        VT tmp[8][8];                                                                 \
        for (int b = 0; b < 8; b++) { /* tmp[:, b] = bt d[:, b] */                   \
            VT col[8];                                                                \
            _Pragma("GCC unroll 8") for (int a = 0; a < 8; a++)                       \
                col[a] = *(const VT *)(d + a * ldrow + (size_t)b * c + ch);           \
            EQ_WINO_APPLY8(VT, EQ_WINO_TMP_COLUMN, EQ_WINO_COL)                       \
        }                                                                             \
        for (int i = 0; i < 8; i++) { /* v[(i, j)] = tmp[i, :] bt^T */                \
            VT row[8];                                                                \
            EQ_WINO_APPLY8(VT, EQ_WINO_ROW, EQ_WINO_TMP_ROW)                          \
            _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++)                       \
                *(VT *)(vt + (size_t)(i * 8 + j) * ldpos + ch) = row[j];              \
        }                                                                             \
    }
/* The X and OUT arguments of the paired transforms: a tile column, tmp by column and by row. */
#define EQ_WINO_COL(a) col[a]
#define EQ_WINO_TMP_COLUMN(j) tmp[j][b]
#define EQ_WINO_TMP_ROW(a) tmp[i][a]
#define EQ_WINO_ROW(j) row[j]
#define EQ_WINO_TILE_IN8(VT, V, T)                                                    \
    {                                                                                 \
        int ch = 0;                                                                   \
        for (; ch + (V) <= c; ch += (V)) EQ_WINO_IN8_CHANNELS(VT)                     \
        for (; ch < c; ch++) EQ_WINO_IN8_CHANNELS(T)                                  \
    }

/*
 * A^T (m x 8) has the same points as columns: column 0 (the point 0) is used by
 * row 0 only, column 7 (infinity) by row m - 1 only, and column p + 1 is column
 * p times (-1)^y in row y (p = 1, 3, 5). So row y of A^T M sums the three sums
 * (even y) or differences (odd y) of M's rows p and p + 1, and M's row 0 or 7
 * where it reaches: 20 multiply-adds and adds per column instead of 32 (m = 4).
 * eq_wino_out_paired8 checks the structure on the rounded at.
 */
#define EQ_DEFINE_WINO_OUT_PAIRED8(T, TOLERANCE)                                      \
    static int eq_wino_out_paired8_##T(const T *at, int m) {                          \
        for (int y = 0; y < m; y++) {                                                 \
            double scale = 0;                                                         \
            for (int i = 0; i < 8; i++) scale = fmax(scale, fabs((double)at[y * 8 + i])); \
            if ((y > 0 && fabs((double)at[y * 8]) > (TOLERANCE) * scale)              \
                || (y < m - 1 && fabs((double)at[y * 8 + 7]) > (TOLERANCE) * scale))  \
                return 0;                                                             \
            for (int p = 1; p < 7; p += 2)                                            \
                if (fabs(at[y * 8 + p + 1] - (y % 2 ? -1.0 : 1.0) * at[y * 8 + p]) > (TOLERANCE) * scale) \
                    return 0;                                                         \
        }                                                                             \
        return 1;                                                                     \
    }
EQ_DEFINE_WINO_OUT_PAIRED8(float, 1e-6)
EQ_DEFINE_WINO_OUT_PAIRED8(double, 1e-13)

/* Whether the transforms of F(m x m, k x k) can take the paired forms: alpha = 8
 * and the rounded A^T and B^T (mats: A^T, then B^T) have the structure. Checked
 * once when the transforms are made; eq_wino_input and eq_wino_output take the
 * answer as their paired argument. */
#define EQ_DEFINE_WINO_PAIRED(T)                                                      \
    static int eq_wino_paired_##T(const T *mats, int m, int k) {                      \
        return m + k - 1 == 8 && eq_wino_out_paired8_##T(mats, m) && eq_wino_paired8_##T(mats + m * 8); \
    }
EQ_DEFINE_WINO_PAIRED(float)
EQ_DEFINE_WINO_PAIRED(double)

/* SUM = row r of A^T applied to X(0..7), by the structure above. */
#define EQ_WINO_ATROW8(T, VT, SUM, X, R)                                              \
    {                                                                                 \
        const T *a = at + (R) * 8;                                                    \
        VT *pair = (R) % 2 ? diff : sum2;                                             \
        SUM = a[1] * pair[0] + a[3] * pair[1] + a[5] * pair[2];                       \
        if ((R) == 0) SUM += a[0] * X(0);                                             \
        if ((R) == m - 1) SUM += a[7] * X(7);                                         \
    }
#define EQ_WINO_PAIRS8(X)                                                             \
    for (int p = 0; p < 3; p++) {                                                     \
        sum2[p] = X(2 * p + 1) + X(2 * p + 2);                                        \
        diff[p] = X(2 * p + 1) - X(2 * p + 2);                                        \
    }
#define EQ_WINO_OUT8_CHANNELS(VT, T)                                                  \
    {                                                                                 \
        VT tmp[8][8], sum2[3], diff[3]; /* rows y < my of tmp used */                 \
        for (int j = 0; j < 8; j++) { /* tmp[:, j] = at mm[:, j] */                  \
            VT col[8];                                                                \
            _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++)                       \
                col[i] = *(const VT *)(mt + (size_t)(i * 8 + j) * ldpos + ch);        \
            EQ_WINO_PAIRS8(EQ_WINO_COL)                                               \
            for (int y = 0; y < my; y++) EQ_WINO_ATROW8(T, VT, tmp[y][j], EQ_WINO_COL, y) \
        }                                                                             \
        for (int y = 0; y < my; y++) {                                                \
            EQ_WINO_PAIRS8(EQ_WINO_TMP_Y)                                             \
            for (int x = 0; x < mx; x++) {                                            \
                VT sum;                                                               \
                EQ_WINO_ATROW8(T, VT, sum, EQ_WINO_TMP_Y, x)                          \
                if (!field[(y0 + y) * wc + x0 + x]) sum = (VT){0};                    \
                *(VT *)(conv + ((size_t)(y0 + y) * wc + x0 + x) * c + ch) = sum;      \
            }                                                                         \
        }                                                                             \
    }
#define EQ_WINO_TMP_Y(j) tmp[y][j]
#define EQ_WINO_TILE_OUT8(VT, V, T)                                                   \
    {                                                                                 \
        int ch = 0;                                                                   \
        for (; ch + (V) <= c; ch += (V)) EQ_WINO_OUT8_CHANNELS(VT, T)                 \
        for (; ch < c; ch++) EQ_WINO_OUT8_CHANNELS(T, T)                              \
    }

/* TILE(VT, V, T, alpha) for the run-time alpha, 5 to 8, as a compile-time constant. */
#define EQ_WINO_BY_ALPHA(TILE, VT, V, T)                                              \
    switch (alpha) {                                                                  \
    case 8: TILE(VT, V, T, 8); break;                                                 \
    case 7: TILE(VT, V, T, 7); break;                                                 \
    case 6: TILE(VT, V, T, 6); break;                                                 \
    default: TILE(VT, V, T, 5); break;                                                \
    }

#define EQ_DEFINE_WINOGRAD(SUFFIX, ATTR, T, VT, V)                                         \
    /* u (alpha^2 x c_in x c_out) = G W G^T for every (ci, co), from wt = W as        \
     * (patch x c_out), patch index (ci k + a) k + b, or with flip the kernel turned  \
     * by 180 degrees (tap (a, b) read at (k - 1 - a, k - 1 - b): the transposed      \
     * convolution's); tmp holds alpha k c_out. */                                   \
    ATTR static void eq_wino_weights_##SUFFIX(const T *wt, int c_in, int c_out, int k, int alpha, \
                                              const T *g, int flip, T *u, T *tmp) {   \
        for (int ci = 0; ci < c_in; ci++) {                                           \
            const T *w = wt + (size_t)ci * k * k * c_out;                             \
            for (int i = 0; i < alpha; i++)                                           \
                for (int b = 0; b < k; b++) {                                         \
                    T *t = tmp + (size_t)(i * k + b) * c_out;                         \
                    for (int co = 0; co < c_out; co++) t[co] = 0;                     \
                    for (int a = 0; a < k; a++) {                                     \
                        T f = g[i * k + a];                                           \
                        int tap = flip ? (k - 1 - a) * k + k - 1 - b : a * k + b;     \
                        const T *wr = w + (size_t)tap * c_out;                        \
                        if (f != 0) for (int co = 0; co < c_out; co++) t[co] += f * wr[co]; \
                    }                                                                 \
                }                                                                     \
            for (int i = 0; i < alpha; i++)                                           \
                for (int j = 0; j < alpha; j++) {                                     \
                    T *dst = u + ((size_t)(i * alpha + j) * c_in + ci) * c_out;       \
                    for (int co = 0; co < c_out; co++) dst[co] = 0;                   \
                    for (int b = 0; b < k; b++) {                                     \
                        T f = g[j * k + b];                                           \
                        const T *t = tmp + (size_t)(i * k + b) * c_out;               \
                        if (f != 0) for (int co = 0; co < c_out; co++) dst[co] += f * t[co]; \
                    }                                                                 \
                }                                                                     \
        }                                                                             \
    }                                                                                 \
    /* v (alpha^2 x tiles x c) = the transformed tiles of one example's c x h x w    \
     * map, zero-padded by pad (and on the far sides up to whole tiles); field      \
     * (hc wc bytes) = whether some input of output (y, x)'s k x k field is non-zero. \
     * Scratch: cl, the padded map channels-last (hx x wx x c, hx = tiles_y m +     \
     * k - 1), and any (hx wx bytes). paired: eq_wino_paired's answer. */            \
    ATTR static void eq_wino_input_##SUFFIX(const T *in, int c, int h, int w, int pad, int k, int m, \
                                            const T *bt, int paired, int hc, int wc, T *cl, \
                                            unsigned char *any, unsigned char *field, T *v) { \
        int alpha = m + k - 1, ty = (hc + m - 1) / m, tx = (wc + m - 1) / m, tiles = ty * tx; \
        int hx = ty * m + k - 1, wx = tx * m + k - 1;                                 \
        memset(cl, 0, sizeof(T) * (size_t)hx * wx * c);                               \
        for (int y = 0; y < h; y++) /* row y: (c x w, rows h w apart) -> (w x c) */   \
            eq_transpose_strided_##SUFFIX(in + (size_t)y * w, c, w, (size_t)h * w,    \
                                          cl + ((size_t)(y + pad) * wx + pad) * c, (size_t)c, 0); \
        for (int q = 0; q < hx * wx; q++) {                                           \
            const T *row = cl + (size_t)q * c;                                        \
            int nz = 0;                                                               \
            for (int ch = 0; ch < c; ch++) nz |= row[ch] != 0;                        \
            any[q] = (unsigned char)nz;                                               \
        }                                                                             \
        for (int y = 0; y < hc; y++)                                                  \
            for (int x = 0; x < wc; x++) {                                            \
                unsigned char nz = 0;                                                 \
                for (int a = 0; a < k; a++)                                           \
                    for (int b = 0; b < k; b++) nz |= any[(size_t)(y + a) * wx + x + b]; \
                field[y * wc + x] = nz;                                               \
            }                                                                         \
        size_t ldrow = (size_t)wx * c, ldpos = (size_t)tiles * c;                     \
        for (int t = 0; t < tiles; t++) {                                             \
            const T *d = cl + ((size_t)(t / tx) * m * wx + (size_t)(t % tx) * m) * c; \
            T *vt = v + (size_t)t * c;                                                \
            if (paired)                                                               \
                EQ_WINO_TILE_IN8(VT, V, T)                                            \
            else                                                                      \
                EQ_WINO_BY_ALPHA(EQ_WINO_TILE_IN, VT, V, T)                           \
        }                                                                             \
    }                                                                                 \
    /* conv (hc wc x c, channels last) = the output transform of mm (alpha^2 x tiles  \
     * x c), 0 where field says the receptive field is all zero. */                  \
    ATTR static void eq_wino_output_##SUFFIX(const T *mm, int c, int k, int m, const T *at, int paired, \
                                             int hc, int wc, const unsigned char *field, T *conv) { \
        int alpha = m + k - 1, ty = (hc + m - 1) / m, tx = (wc + m - 1) / m, tiles = ty * tx; \
        size_t ldpos = (size_t)tiles * c;                                             \
        for (int t = 0; t < tiles; t++) {                                             \
            int y0 = (t / tx) * m, x0 = (t % tx) * m;                                 \
            int my = hc - y0 < m ? hc - y0 : m, mx = wc - x0 < m ? wc - x0 : m;       \
            const T *mt = mm + (size_t)t * c;                                         \
            if (paired)                                                               \
                EQ_WINO_TILE_OUT8(VT, V, T)                                           \
            else                                                                      \
                EQ_WINO_BY_ALPHA(EQ_WINO_TILE_OUT, VT, V, T)                          \
        }                                                                             \
    }

#define EQ_DEFINE_WINOGRAD_ISA(SUFFIX, ATTR, FV, FL, DV, DL)                          \
    EQ_DEFINE_WINOGRAD(f32_##SUFFIX, ATTR, float, FV, FL)                             \
    EQ_DEFINE_WINOGRAD(f64_##SUFFIX, ATTR, double, DV, DL)
EQ_FOR_EACH_ISA(EQ_DEFINE_WINOGRAD_ISA)

#define EQ_DEFINE_WINOGRAD_DISPATCH(S, T)                                             \
    static void eq_wino_weights_##S(int isa, const T *wt, int c_in, int c_out, int k, int alpha, \
                                    const T *g, int flip, T *u, T *tmp) {             \
        EQ_DISPATCH(isa, eq_wino_weights_##S, (wt, c_in, c_out, k, alpha, g, flip, u, tmp), \
                    (wt, c_in, c_out, k, alpha, g, flip, u, tmp))                     \
    }                                                                                 \
    static void eq_wino_input_##S(int isa, const T *in, int c, int h, int w, int pad, int k, int m, \
                                  const T *bt, int paired, int hc, int wc, T *cl, unsigned char *any, \
                                  unsigned char *field, T *v) {                       \
        EQ_DISPATCH(isa, eq_wino_input_##S, (in, c, h, w, pad, k, m, bt, paired, hc, wc, cl, any, field, v), \
                    (in, c, h, w, pad, k, m, bt, paired, hc, wc, cl, any, field, v))  \
    }                                                                                 \
    static void eq_wino_output_##S(int isa, const T *mm, int c, int k, int m, const T *at, int paired, \
                                   int hc, int wc, const unsigned char *field, T *conv) { \
        EQ_DISPATCH(isa, eq_wino_output_##S, (mm, c, k, m, at, paired, hc, wc, field, conv), \
                    (mm, c, k, m, at, paired, hc, wc, field, conv))                   \
    }

EQ_DEFINE_WINOGRAD_DISPATCH(f32, float)
EQ_DEFINE_WINOGRAD_DISPATCH(f64, double)

#endif
