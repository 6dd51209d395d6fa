/*
 * One thread's update of its half of W_0 (784-500-10, batch 20, MNIST), in process CPU time:
 * "rows", what the update runs (sparse_rows.h's eq_sparse per block of 64 rows of x^T: each
 * row of W_0 gets its 8-vector tiles, each tile summing the row's non-zero terms with B_0 read
 * from wherever it is: 20 x 500 floats, 40 KB, more than Zen 4's 32 KB of L1), and "strips":
 * the block's rows compacted once, then for each strip of 8 vectors of columns every row's tile,
 * so that the strip of B_0 (10 KB) stays in L1 while the rows pass. The same sums in the same
 * order: the last line checks the bits.
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

static void update_rows(const float *xt, int r0, int r1, const float *B, float *W, int *idx, float *val) {
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
    float *B = malloc(sizeof(float) * R * NW), *W1 = malloc(sizeof(float) * K * NW), *W2 = malloc(sizeof(float) * K * NW), *W3 = malloc(sizeof(float) * K * NW);
    srand(1);
    for (int i = 0; i < R * NW; i++) B[i] = 1e-6f * ((float)rand() / RAND_MAX - 0.5f);
    for (int i = 0; i < K * NW; i++) W1[i] = W2[i] = W3[i] = (float)rand() / RAND_MAX - 0.5f;
    int *idx = malloc(sizeof(int) * BLOCK * R); float *val = malloc(2 * sizeof(float) * BLOCK * R);
    for (int half = 0; half < 2; half++) {
        int r0 = half ? HALF : 0, r1 = half ? K : HALF;
        for (int round = 0; round < 3; round++) {
            double t0 = now();
            for (int k = 0; k < reps; k++) for (int t = 0; t < batches; t++) update_rows(xt + (size_t)t * K * R, r0, r1, B, W1, idx, val);
            double t1 = now();
            for (int k = 0; k < reps; k++) for (int t = 0; t < batches; t++) update_strips(xt + (size_t)t * K * R, r0, r1, B, W2, idx, val);
            double t2 = now();
            for (int k = 0; k < reps; k++) for (int t = 0; t < batches; t++) update_pairs(xt + (size_t)t * K * R, r0, r1, B, W3, idx, val);
            double t3 = now();
            printf("half %d: rows %.1f us, strips %.1f us, pairs %.1f us per update\n", half, 1e6 * (t1 - t0) / (reps * batches),
                   1e6 * (t2 - t1) / (reps * batches), 1e6 * (t3 - t2) / (reps * batches));
        }
    }
    printf("%s\n", memcmp(W1, W2, sizeof(float) * K * NW) == 0 ? "strips == rows bitwise" : "DIFFERENT");
    printf("%s\n", memcmp(W1, W3, sizeof(float) * K * NW) == 0 ? "pairs == rows bitwise" : "pairs differ");
    return 0;
}
