/*
 * The output layer's bottom-up product of 784-500-10 (padded: K = 512, rows 528 floats apart) on
 * one thread's 10 rows, AVX-512 float: eq_dot_f32_avx512 (four horizontal sums at once,
 * eq_hsum4_f16) against the same kernel with each sum's own EQ_HSUM_F16 (the code before), and
 * a check that both give the same bits on every shape R, N in 1..13, K in {1, 15, 16, 17, 40, 512},
 * acc 0 and 1.
 *
 *   gcc -O3 -ffp-contract=fast -Isrc/eqcore docs/data/perf/dot-hsum4-bench.c -o /tmp/dot-hsum4
 *   taskset -c 1 /tmp/dot-hsum4
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "dense_kernels.h"

EQ_DEFINE_DOT(dot_each_sum, float, eq_f16, 16, EQ_HSUM_F16, EQ_LOADN_F16, EQ_DOT_STORE, 1, EQ_TARGET_AVX512)

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

int main(void) {
    enum { LD = 528 };
    float *A = aligned_alloc(64, 4 * 16 * LD), *BT = aligned_alloc(64, 4 * 16 * LD);
    float *C = malloc(4 * 16 * 16), *C2 = malloc(4 * 16 * 16);
    srand(1);
    for (int i = 0; i < 16 * LD; i++) A[i] = rand() % 3 == 0 ? rand() / (float)RAND_MAX : 0;
    for (int i = 0; i < 16 * LD; i++) BT[i] = (rand() / (float)RAND_MAX - 0.5f) * 0.1f;
    int ks[] = {1, 15, 16, 17, 40, 512}, shapes = 0, mismatches = 0;
    for (int R = 1; R <= 13; R++)
        for (int N = 1; N <= 13; N++)
            for (int q = 0; q < 6; q++)
                for (int acc = 0; acc < 2; acc++) {
                    for (int i = 0; i < 16 * 16; i++) C[i] = C2[i] = i * 0.001f;
                    dot_each_sum(R, N, ks[q], A, LD, BT, LD, acc, C, 16);
                    eq_dot_f32_avx512(R, N, ks[q], A, LD, BT, LD, acc, C2, 16);
                    shapes++;
                    mismatches += memcmp(C, C2, sizeof(float) * 16 * 16) != 0;
                }
    printf("%d shapes, %d with different bits\n", shapes, mismatches);
    volatile int rows = 10, cols = 10, depth = 512; /* not constants the compiler specializes on */
    for (int round = 0; round < 5; round++) {
        int n = 300000;
        double t0 = now();
        for (int it = 0; it < n; it++) dot_each_sum(rows, cols, depth, A, LD, BT, LD, 0, C, 16);
        double t1 = now();
        for (int it = 0; it < n; it++) eq_dot_f32_avx512(rows, cols, depth, A, LD, BT, LD, 0, C2, 16);
        double t2 = now();
        printf("10 x 10 x 512: each sum's own %.3f us, four at once %.3f us\n", (t1 - t0) / n * 1e6,
               (t2 - t1) / n * 1e6);
    }
    return 0;
}
