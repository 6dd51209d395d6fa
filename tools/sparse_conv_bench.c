/*
 * Would a direct convolution that skips the zero entries of the state below pay?
 * The conv preset's second convolution (32 x 12 x 12 -> 64 x 8 x 8, k = 5), one
 * example, one core, process CPU time: the dense shifted product the core runs
 * (eq_shifted_f32) against two sparse versions that list each input position's
 * non-zero channels and sum only their products:
 *
 *   taps outside   one tap at a time (its 64 x 32 weights stay in L1), every
 *                  output position sums its input position's list in registers
 *                  and adds the sum into the channels-last map;
 *   positions outside  every output position keeps its 64 sums in registers over all
 *                  taps (the weights then come from L2).
 *
 *   gcc -O3 -Isrc/eqcore tools/sparse_conv_bench.c -o /tmp/sparse_conv_bench
 *   for z in 0 0.3 0.47 0.6; do /tmp/sparse_conv_bench $z; done
 *
 * The argument is the fraction of zeros in the input map (independent uniform
 * draws; the preset's rho(s_1) has 46% after one epoch on 6,000 MNIST images:
 * tools/state_density.py).
 * Needs AVX-512. Results: docs/performance.md, "Conv training on Zen 4".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dense_kernels.h"

typedef float V16 __attribute__((vector_size(64)));
#define NV 4 /* 64 output channels */

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* vals/chs: the non-zero values of each input position and their channels' weight-row offsets */
static int list_nonzeros(const float *in, int c_in, int positions, int row, float *vals, int *chs, int *first) {
    int n = 0;
    for (int q = 0; q < positions; q++) {
        first[q] = n;
        for (int ci = 0; ci < c_in; ci++) {
            float v = in[(size_t)ci * positions + q];
            vals[n] = v;
            chs[n] = ci * row;
            n += v != 0;
        }
    }
    first[positions] = n;
    return n;
}

/* sum += the run's values times their rows of one tap (two chains of adds, alternate values) */
EQ_TARGET_AVX512 static inline __attribute__((always_inline)) void add_run(const float *tap, const float *vals,
                                                                          const int *chs, int i, int end, V16 *sum) {
    V16 t[NV] = {{0}};
    for (; i + 1 < end; i += 2) {
        const float *w0 = tap + chs[i], *w1 = tap + chs[i + 1];
        for (int u = 0; u < NV; u++) {
            sum[u] += vals[i] * *(const V16 *)(w0 + 16 * u);
            t[u] += vals[i + 1] * *(const V16 *)(w1 + 16 * u);
        }
    }
    if (i < end)
        for (int u = 0; u < NV; u++) sum[u] += vals[i] * *(const V16 *)(tap + chs[i] + 16 * u);
    for (int u = 0; u < NV; u++) sum[u] += t[u];
}

EQ_TARGET_AVX512 static void taps_outside(const float *in, int c_in, int hp, int wp, int k, int hc, int wc,
                                          const float *wt, int c_out, float *vals, int *chs, int *first,
                                          float *out) {
    list_nonzeros(in, c_in, hp * wp, k * k * c_out, vals, chs, first);
    memset(out, 0, sizeof(float) * hc * wc * c_out);
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++) {
            const float *tap = wt + (size_t)(a * k + b) * c_out;
            for (int y = 0; y < hc; y++)
                for (int x = 0; x < wc; x++) {
                    int q = (y + a) * wp + x + b, i = first[q], end = first[q + 1];
                    if (i == end) continue;
                    V16 s[NV] = {{0}};
                    add_run(tap, vals, chs, i, end, s);
                    float *dst = out + (size_t)(y * wc + x) * c_out;
                    for (int u = 0; u < NV; u++) *(V16 *)(dst + 16 * u) += s[u];
                }
        }
}

EQ_TARGET_AVX512 static void positions_outside(const float *in, int c_in, int hp, int wp, int k, int hc, int wc,
                                               const float *wt, int c_out, float *vals, int *chs, int *first,
                                               float *out) {
    list_nonzeros(in, c_in, hp * wp, k * k * c_out, vals, chs, first);
    for (int y = 0; y < hc; y++)
        for (int x = 0; x < wc; x++) {
            V16 s[NV] = {{0}};
            for (int a = 0; a < k; a++)
                for (int b = 0; b < k; b++) {
                    int q = (y + a) * wp + x + b;
                    add_run(wt + (size_t)(a * k + b) * c_out, vals, chs, first[q], first[q + 1], s);
                }
            float *dst = out + (size_t)(y * wc + x) * c_out;
            for (int u = 0; u < NV; u++) *(V16 *)(dst + 16 * u) = s[u];
        }
}

typedef void (*sparse_fn)(const float *, int, int, int, int, int, int, const float *, int, float *, int *, int *,
                          float *);

int main(int argc, char **argv) {
    double zeros = argc > 1 ? atof(argv[1]) : 0.47;
    int c_in = 32, h = 12, k = 5, c_out = 64, hc = 8, wc = 8, patch = c_in * k * k, reps = 20000;
    float *in = aligned_alloc(64, sizeof(float) * c_in * h * h), *wt = aligned_alloc(64, sizeof(float) * patch * c_out);
    float *dense = aligned_alloc(64, sizeof(float) * hc * wc * c_out), *sparse = aligned_alloc(64, sizeof(float) * hc * wc * c_out);
    float *vals = malloc(sizeof(float) * c_in * h * h);
    int *chs = malloc(sizeof(int) * c_in * h * h), *first = malloc(sizeof(int) * (h * h + 1)), *off = malloc(sizeof(int) * patch);
    if (eq_best_isa() != EQ_ISA_AVX512) {
        printf("needs AVX-512\n");
        return 1;
    }
    srand(1);
    for (int i = 0; i < c_in * h * h; i++) in[i] = (double)rand() / RAND_MAX < zeros ? 0 : (float)rand() / RAND_MAX;
    for (int i = 0; i < patch * c_out; i++) wt[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int ci = 0; ci < c_in; ci++)
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++) off[(ci * k + a) * k + b] = ci * h * h + a * h + b;
    double flop = 2.0 * patch * c_out * hc * wc, best_dense = 1e30;
    for (int round = 0; round < 5; round++) {
        double start = cpu_seconds();
        for (int r = 0; r < reps; r++)
            for (int y = 0; y < hc; y++)
                eq_shifted_f32(EQ_ISA_AVX512, wc, c_out, patch, in + y * h, wt, c_out, dense + y * wc * c_out, c_out, off);
        double seconds = cpu_seconds() - start;
        if (seconds < best_dense) best_dense = seconds;
    }
    printf("zeros %.2f: dense %.1f us (%.0f GFLOP/s)", zeros, 1e6 * best_dense / reps, flop * reps / best_dense / 1e9);
    const char *names[] = {"taps outside", "positions outside"};
    sparse_fn fns[] = {taps_outside, positions_outside};
    for (int f = 0; f < 2; f++) {
        double best = 1e30, error = 0;
        for (int round = 0; round < 5; round++) {
            double start = cpu_seconds();
            for (int r = 0; r < reps; r++) fns[f](in, c_in, h, h, k, hc, wc, wt, c_out, vals, chs, first, sparse);
            double seconds = cpu_seconds() - start;
            if (seconds < best) best = seconds;
        }
        for (int i = 0; i < hc * wc * c_out; i++) {
            double d = dense[i] > sparse[i] ? dense[i] - sparse[i] : sparse[i] - dense[i];
            if (d > error) error = d;
        }
        printf("; %s %.1f us (%.2fx dense, max difference %.1e)", names[f], 1e6 * best / reps, best_dense / best, error);
    }
    printf("\n");
    return 0;
}
