/*
 * Winograd's transforms for the conv preset's second layer (F(4x4, 5x5),
 * alpha = 8), one example, one core, process CPU time: the input transform
 * (32 channels of 12 x 12) and the output transform (64 channels of 8 x 8),
 * each in its paired form (the points' +-x pairs: 32 multiply-adds per column
 * of B^T d instead of 64) against the dense alpha x alpha product, on the
 * same matrices.
 *
 *   gcc -O3 -ffp-contract=fast -Isrc/eqcore tools/wino_transform_bench.c -o /tmp/wino_transform_bench -lm
 *   /tmp/wino_transform_bench
 *
 * Needs AVX-512. Results: docs/performance.md, "The max-pooled transposed convolution by windows".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "winograd.h"

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

enum { K = 5, M = 4, ALPHA = 8, C_IN = 32, C_OUT = 64, H = 12, W = 12, HC = 8, WC = 8, TILES = 4, REPEATS = 20000 };

int main(void) {
    double at64[M * ALPHA], g64[ALPHA * K], bt64[ALPHA * ALPHA];
    float mats[M * ALPHA + ALPHA * ALPHA];
    eq_wino_matrices(M, K, at64, g64, bt64);
    for (int i = 0; i < M * ALPHA; i++) mats[i] = (float)at64[i];
    for (int i = 0; i < ALPHA * ALPHA; i++) mats[M * ALPHA + i] = (float)bt64[i];
    if (!eq_wino_paired_float(mats, M, K)) {
        printf("the matrices lack the pair structure\n");
        return 1;
    }
    const float *at = mats, *bt = mats + M * ALPHA;
    float *in = malloc(sizeof(float) * C_IN * H * W), *cl = malloc(sizeof(float) * 16 * 16 * C_IN);
    float *v[2] = {malloc(sizeof(float) * ALPHA * ALPHA * TILES * C_IN), malloc(sizeof(float) * ALPHA * ALPHA * TILES * C_IN)};
    float *mm = malloc(sizeof(float) * ALPHA * ALPHA * TILES * C_OUT);
    float *conv[2] = {malloc(sizeof(float) * HC * WC * C_OUT), malloc(sizeof(float) * HC * WC * C_OUT)};
    unsigned char any[16 * 16], field[HC * WC];
    for (int i = 0; i < C_IN * H * W; i++) in[i] = (float)rand() / RAND_MAX;
    for (int i = 0; i < ALPHA * ALPHA * TILES * C_OUT; i++) mm[i] = (float)rand() / RAND_MAX - 0.5f;
    double input_difference = 0, output_difference = 0;
    /* the sizes read at run time, as the core passes them (constants let the compiler specialise the kernels) */
    volatile int sizes[] = {C_IN, C_OUT, H, W, K, M, HC, WC};
    int c_in = sizes[0], c_out = sizes[1], h = sizes[2], w = sizes[3], k = sizes[4], m = sizes[5], hc = sizes[6], wc = sizes[7];
    for (int paired = 0; paired < 2; paired++) {
        eq_wino_input_f32_avx512(in, C_IN, H, W, 0, K, M, bt, paired, HC, WC, cl, any, field, v[paired]);
        eq_wino_output_f32_avx512(mm, C_OUT, K, M, at, paired, HC, WC, field, conv[paired]);
    }
    for (int i = 0; i < ALPHA * ALPHA * TILES * C_IN; i++) input_difference = fmax(input_difference, fabs(v[0][i] - v[1][i]));
    for (int i = 0; i < HC * WC * C_OUT; i++) output_difference = fmax(output_difference, fabs(conv[0][i] - conv[1][i]));
    printf("largest difference paired - dense: input %.1e, output %.1e\n", input_difference, output_difference);
    for (int round = 0; round < 3; round++)
        for (int paired = 1; paired >= 0; paired--) {
            double start = cpu_seconds();
            for (int r = 0; r < REPEATS; r++)
                eq_wino_input_f32_avx512(in, c_in, h, w, 0, k, m, bt, paired, hc, wc, cl, any, field, v[paired]);
            double middle = cpu_seconds();
            for (int r = 0; r < REPEATS; r++)
                eq_wino_output_f32_avx512(mm, c_out, k, m, at, paired, hc, wc, field, conv[paired]);
            double end = cpu_seconds();
            printf("%s: input %.2f us, output %.2f us\n", paired ? "paired" : "dense ", 1e6 * (middle - start) / REPEATS,
                   1e6 * (end - middle) / REPEATS);
        }
    return 0;
}
