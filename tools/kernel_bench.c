/*
 * The relaxation's register-blocked product alone, without Python or OpenMP:
 * C (10 x N) = A (10 x K) @ B (K x N) in float32, timed in process CPU time.
 *
 *   gcc -O3 -Isrc/eqcore tools/kernel_bench.c -o /tmp/kernel_bench && /tmp/kernel_bench
 *
 * Prints GFLOP/s for the shapes of the paper's networks: the input's drive
 * (K = 784, N = 500) and a hidden-to-hidden product (K = N = 500).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "dense_kernels.h"

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int isa;

static void bench(int rows, int k, int n, int repeats) {
    float *a = malloc(sizeof(float) * rows * k), *b = malloc(sizeof(float) * k * n);
    float *c = malloc(sizeof(float) * rows * n);
    for (int i = 0; i < rows * k; i++) a[i] = (float)rand() / RAND_MAX;
    for (int i = 0; i < k * n; i++) b[i] = (float)rand() / RAND_MAX - 0.5f;
    eq_gemm_f32(isa, rows, n, k, a, k, b, n, 0, c, n); /* warm-up */
    double best = 1e30;
    for (int round = 0; round < 5; round++) {
        double start = cpu_seconds();
        for (int i = 0; i < repeats; i++) eq_gemm_f32(isa, rows, n, k, a, k, b, n, 0, c, n);
        double seconds = (cpu_seconds() - start) / repeats;
        if (seconds < best) best = seconds;
    }
    printf("%d x %d @ %d x %d: %.1f us, %.0f GFLOP/s (best of 5 rounds of %d)\n", rows, k, k, n,
           1e6 * best, 2.0 * rows * k * n / best / 1e9, repeats);
    free(a);
    free(b);
    free(c);
}

int main(void) {
    isa = eq_best_isa();
    printf("instruction set: %s\n", isa == EQ_ISA_AVX512 ? "avx512" : isa == EQ_ISA_AVX2 ? "avx2" : "portable");
    bench(10, 784, 500, 2000);
    bench(10, 500, 500, 2000);
    return 0;
}
