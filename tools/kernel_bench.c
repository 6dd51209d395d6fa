/*
 * The relaxation's register-blocked product alone, without Python or OpenMP:
 * C (R x N) = A (R x K) @ B (K x N) in float32, timed in process CPU time.
 *
 *   gcc -O3 -Isrc/eqcore tools/kernel_bench.c -o /tmp/kernel_bench && /tmp/kernel_bench
 *
 * Prints GFLOP/s for the shapes of the networks' products: the paper's input
 * drive (784 x 500) and hidden-to-hidden product (500 x 500; 500 x 512 shows
 * what the 20-column tail of 500 costs), the DHN's 1024 x 1024 and a 10-unit
 * output, each with B on a 64-byte boundary and 16 bytes past one (where
 * NumPy's allocator may put it).
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

static void bench(int isa, int rows, int k, int n, int offset) {
    float *a = aligned_alloc(64, sizeof(float) * rows * k + 64);
    float *b_block = aligned_alloc(64, sizeof(float) * k * n + 64), *b = b_block + offset;
    float *c = aligned_alloc(64, sizeof(float) * rows * n + 64);
    for (int i = 0; i < rows * k; i++) a[i] = (float)rand() / RAND_MAX;
    for (int i = 0; i < k * n; i++) b[i] = (float)rand() / RAND_MAX - 0.5f;
    int repeats = 300000000 / (2 * rows * k * n) + 1;
    eq_gemm_f32(isa, rows, n, k, a, k, b, n, 0, c, n); /* warm-up */
    double best = 1e30;
    for (int round = 0; round < 5; round++) {
        double start = cpu_seconds();
        for (int i = 0; i < repeats; i++) eq_gemm_f32(isa, rows, n, k, a, k, b, n, 0, c, n);
        double seconds = (cpu_seconds() - start) / repeats;
        if (seconds < best) best = seconds;
    }
    printf("%2d x %4d @ %4d x %4d, B %2d bytes past a 64-byte boundary: %7.1f us, %4.0f GFLOP/s\n", rows, k,
           k, n, (int)sizeof(float) * offset, 1e6 * best, 2.0 * rows * k * n / best / 1e9);
    free(a);
    free(b_block);
    free(c);
}

int main(void) {
    static const int shapes[][3] = {{10, 784, 500}, {10, 500, 500}, {10, 500, 512}, {8, 1024, 1024}, {8, 1024, 10}};
    int isa = eq_best_isa();
    printf("instruction set: %s (best of 5 rounds, process CPU time)\n",
           isa == EQ_ISA_AVX512 ? "avx512" : isa == EQ_ISA_AVX2 ? "avx2" : "portable");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int offset = 0; offset <= 4; offset += 4) bench(isa, shapes[i][0], shapes[i][1], shapes[i][2], offset);
    return 0;
}
