/*
 * One thread's update of its half of W_0 (784-500-10, batch 20, MNIST), in process CPU time,
 * four ways, every one adding to each row of W_0 (a pixel) the row's non-zero terms in the
 * order of the batch:
 *
 * - "previous": the kernel the update ran before 2026-12-07 (fifth session), copied here:
 *   each row of W_0 gets all its 8-vector tiles before the next row, B_0 (20 x 500 floats,
 *   40 KB, more than Zen 4's 32 KB of L1) read from wherever it is, and the row's last tile
 *   (columns 372-499, overlapping the whole tiles) stored to a buffer and copied back;
 * - "eq_sparse": sparse_rows.h as it is now (the block's rows compacted once, then each
 *   8-vector tile for every row before the next tile, so that the tile's 10 KB of B_0 stay in
 *   L1; the last tile stored from its registers);
 * - "strips": the same order written by hand with a masked store for the last tile;
 * - "pairs": two rows at a time over the union of their non-zeros, each vector of B_0 read
 *   once for both (17% more multiply-adds for MNIST).
 *
 * Each runs on its own copy of W; the last lines check that all four give the same bits.
 *
 *   python -c "import numpy as np; from eqprop.datasets import load_dataset; d = load_dataset('mnist');
 *       x = d.x_train[np.random.default_rng(0).permutation(len(d.x_train))[:1000]];
 *       x.astype(np.float32).tofile('/tmp/nb/batches.bin')"
 *   gcc -O3 -Isrc/eqcore docs/data/perf/update-strips-bench.c -o /tmp/upd && /tmp/upd
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <immintrin.h>
#include "sparse_rows.h"
static double now(void){struct timespec t;clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t);return t.tv_sec+1e-9*t.tv_nsec;}
#define K 784
#define NW 500
#define R 20
#define BLOCK 64
#define HALF 392

/* rows of x^T (pixels) from..to of a batch of R images */
static void transpose(const float *x, float *xt) {
    for (int k = 0; k < K; k++) for (int r = 0; r < R; r++) xt[k * R + r] = x[r * K + k];
}

/* the previous sparse_rows.h kernel (AVX-512, float) */
#define PREV_TILE(W, col, src, dst)                                                   \
    {                                                                                 \
        __m512 s[W];                                                                  \
        for (int w = 0; w < (W); w++) s[w] = _mm512_loadu_ps((src) + 16 * w);         \
        for (int q = 0; q < nnz; q++) {                                               \
            const float *bp = B + (size_t)idx[q] * NW + (col);                        \
            __m512 a = _mm512_set1_ps(val[q]);                                        \
            for (int w = 0; w < (W); w++) s[w] = _mm512_fmadd_ps(a, _mm512_loadu_ps(bp + 16 * w), s[w]); \
        }                                                                             \
        for (int w = 0; w < (W); w++) _mm512_storeu_ps((dst) + 16 * w, s[w]);         \
    }
EQ_TARGET_AVX512
static void previous_rows(int rows, const float *A, const float *B, float *C, int *idx, float *val) {
    float tail[128];
    for (int r = 0; r < rows; r++) {
        float *crow = C + (size_t)r * NW;
        int nnz = eq_compact_f32_avx512(A + (size_t)r * R, R, idx, val);
        if (nnz == 0) continue;
        int whole = NW - NW % 128, start = NW - 128, c = 0;
        PREV_TILE(8, start, crow + start, tail)
        for (; c < whole; c += 128) PREV_TILE(8, c, crow + c, crow + c)
        for (; c < NW; c++) crow[c] = tail[c - start];
    }
}

static void update_previous(const float *xt, int r0, int r1, const float *B, float *W, int *idx, float *val) {
    for (int b = r0; b < r1; b += BLOCK) {
        int rows = b + BLOCK < r1 ? BLOCK : r1 - b;
        previous_rows(rows, xt + (size_t)b * R, B, W + (size_t)b * NW, idx, val);
    }
}

static void update_eq_sparse(const float *xt, int r0, int r1, const float *B, float *W, int *idx, float *val) {
    for (int b = r0; b < r1; b += BLOCK) {
        int rows = b + BLOCK < r1 ? BLOCK : r1 - b;
        eq_sparse_f32_avx512(rows, NW, R, xt + (size_t)b * R, R, B, NW, 1, W + (size_t)b * NW, NW, idx, val);
    }
}

EQ_TARGET_AVX512
static void update_strips(const float *xt, int r0, int r1, const float *B, float *W, int *idx, float *val) {
    int nnz[BLOCK];
    for (int b = r0; b < r1; b += BLOCK) {
        int rows = b + BLOCK < r1 ? BLOCK : r1 - b;
        for (int r = 0; r < rows; r++)
            nnz[r] = eq_compact_f32_avx512(xt + (size_t)(b + r) * R, R, idx + r * R, val + r * R);
        for (int c = 0; c < NW; c += 128) {
            int start = c + 128 <= NW ? c : NW - 128;       /* the last strip ends at NW */
            __mmask16 first = (__mmask16)(0xFFFFu << (c - start)); /* its lanes before c are the previous strip's */
            for (int r = 0; r < rows; r++) {
                int n = nnz[r];
                if (n == 0) continue;
                float *w = W + (size_t)(b + r) * NW + start;
                const int *ir = idx + r * R; const float *vr = val + r * R;
                __m512 s[8];
                for (int v = 0; v < 8; v++) s[v] = _mm512_loadu_ps(w + 16 * v);
                for (int q = 0; q < n; q++) {
                    const float *bp = B + (size_t)ir[q] * NW + start;
                    __m512 a = _mm512_set1_ps(vr[q]);
                    for (int v = 0; v < 8; v++) s[v] = _mm512_fmadd_ps(a, _mm512_loadu_ps(bp + 16 * v), s[v]);
                }
                _mm512_mask_storeu_ps(w, first, s[0]);
                for (int v = 1; v < 8; v++) _mm512_storeu_ps(w + 16 * v, s[v]);
            }
        }
    }
}

/* pairs of rows: one list of the batch entries non-zero in either, each B vector read once for both */
EQ_TARGET_AVX512
static void update_pairs(const float *xt, int r0, int r1, const float *B, float *W, int *idx, float *val) {
    int cnt[BLOCK / 2];
    for (int b = r0; b < r1; b += BLOCK) {
        int rows = b + BLOCK < r1 ? BLOCK : r1 - b;
        for (int p = 0; 2 * p < rows; p++) {
            const float *a0 = xt + (size_t)(b + 2 * p) * R, *a1 = 2 * p + 1 < rows ? a0 + R : NULL;
            int n = 0;
            for (int k = 0; k < R; k++) {
                float v0 = a0[k], v1 = a1 ? a1[k] : 0.0f;
                idx[p * R + n] = k; val[2 * (p * R + n)] = v0; val[2 * (p * R + n) + 1] = v1;
                n += (v0 != 0) | (v1 != 0);
            }
            cnt[p] = n;
        }
        for (int c = 0; c < NW; c += 128) {
            int start = c + 128 <= NW ? c : NW - 128;
            __mmask16 first = (__mmask16)(0xFFFFu << (c - start));
            for (int p = 0; 2 * p < rows; p++) {
                int n = cnt[p];
                if (n == 0) continue;
                float *w0 = W + (size_t)(b + 2 * p) * NW + start;
                int two = 2 * p + 1 < rows;
                float *w1 = two ? w0 + NW : w0;
                const int *ir = idx + p * R; const float *vr = val + 2 * p * R;
                __m512 s[8], t[8];
                for (int v = 0; v < 8; v++) { s[v] = _mm512_loadu_ps(w0 + 16 * v); t[v] = _mm512_loadu_ps(w1 + 16 * v); }
                for (int q = 0; q < n; q++) {
                    const float *bp = B + (size_t)ir[q] * NW + start;
                    __m512 a = _mm512_set1_ps(vr[2 * q]), e = _mm512_set1_ps(vr[2 * q + 1]);
                    for (int v = 0; v < 8; v++) {
                        __m512 bv = _mm512_loadu_ps(bp + 16 * v);
                        s[v] = _mm512_fmadd_ps(a, bv, s[v]); t[v] = _mm512_fmadd_ps(e, bv, t[v]);
                    }
                }
                _mm512_mask_storeu_ps(w0, first, s[0]);
                for (int v = 1; v < 8; v++) _mm512_storeu_ps(w0 + 16 * v, s[v]);
                if (two) {
                    _mm512_mask_storeu_ps(w1, first, t[0]);
                    for (int v = 1; v < 8; v++) _mm512_storeu_ps(w1 + 16 * v, t[v]);
                }
            }
        }
    }
}

int main(int argc, char **argv) {
    int batches = 50, reps = 20;
    float *x = malloc(sizeof(float) * 1000 * K);
    FILE *f = fopen("/tmp/nb/batches.bin", "rb");
    if (!f || fread(x, sizeof(float), 1000 * K, f) != 1000 * K) { fprintf(stderr, "no /tmp/nb/batches.bin\n"); return 1; }
    fclose(f);
    float *xt = malloc(sizeof(float) * batches * K * R);
    for (int t = 0; t < batches; t++) transpose(x + (size_t)t * R * K, xt + (size_t)t * K * R);
    float *B = malloc(sizeof(float) * R * NW), *W1 = malloc(sizeof(float) * K * NW), *W2 = malloc(sizeof(float) * K * NW), *W3 = malloc(sizeof(float) * K * NW),
          *W4 = malloc(sizeof(float) * K * NW);
    srand(1);
    for (int i = 0; i < R * NW; i++) B[i] = 1e-6f * ((float)rand() / RAND_MAX - 0.5f);
    for (int i = 0; i < K * NW; i++) W1[i] = W2[i] = W3[i] = W4[i] = (float)rand() / RAND_MAX - 0.5f;
    int *idx = malloc(sizeof(int) * BLOCK * R); float *val = malloc(2 * sizeof(float) * BLOCK * R);
    for (int half = 0; half < 2; half++) {
        int r0 = half ? HALF : 0, r1 = half ? K : HALF;
        for (int round = 0; round < 3; round++) {
            double t0 = now();
            for (int k = 0; k < reps; k++) for (int t = 0; t < batches; t++) update_eq_sparse(xt + (size_t)t * K * R, r0, r1, B, W1, idx, val);
            double t1 = now();
            for (int k = 0; k < reps; k++) for (int t = 0; t < batches; t++) update_strips(xt + (size_t)t * K * R, r0, r1, B, W2, idx, val);
            double t2 = now();
            for (int k = 0; k < reps; k++) for (int t = 0; t < batches; t++) update_pairs(xt + (size_t)t * K * R, r0, r1, B, W3, idx, val);
            double t3 = now();
            for (int k = 0; k < reps; k++) for (int t = 0; t < batches; t++) update_previous(xt + (size_t)t * K * R, r0, r1, B, W4, idx, val);
            double t4 = now();
            printf("half %d: previous %.1f us, eq_sparse %.1f us, strips %.1f us, pairs %.1f us per update\n", half,
                   1e6 * (t4 - t3) / (reps * batches), 1e6 * (t1 - t0) / (reps * batches),
                   1e6 * (t2 - t1) / (reps * batches), 1e6 * (t3 - t2) / (reps * batches));
        }
    }
    printf("%s\n", memcmp(W1, W2, sizeof(float) * K * NW) == 0 ? "strips == eq_sparse bitwise" : "strips differ");
    printf("%s\n", memcmp(W1, W3, sizeof(float) * K * NW) == 0 ? "pairs == eq_sparse bitwise" : "pairs differ");
    printf("%s\n", memcmp(W1, W4, sizeof(float) * K * NW) == 0 ? "previous == eq_sparse bitwise" : "previous differs");
    return 0;
}
