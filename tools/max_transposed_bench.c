/*
 * The max-pooled transposed convolution of the conv preset's second layer
 * (64 x 4 x 4 pooled, winners in the 8 x 8 map, k = 5, into 32 x 12 x 12
 * channels last), one example, one core, process CPU time: the core's
 * eq_max_transposed_f32 (windowed sums for k <= 7) against the per-tap gather
 * alone (the same listing, then EQ_MAX_GATHER_CHUNK: one tap at a time, each
 * position's values summed in registers), random winners, the pooled values
 * non-zero with the given probability (the preset's rho(s_2): about 0.37),
 * the taps on a 64-byte boundary as the core allocates them (16 bytes past
 * one, the kernels ran 1.3x and 1.6x slower: loads split across cache lines).
 *
 *   gcc -O3 -ffp-contract=fast -Isrc/eqcore tools/max_transposed_bench.c -o /tmp/max_transposed_bench -lm
 *   for d in 0.37 0.6; do /tmp/max_transposed_bench $d; done
 *
 * Needs AVX-512. Results: docs/performance.md, "The max-pooled transposed
 * convolution by windows".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conv_kernels.h"

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* eq_max_transposed's listing, then only its per-tap gather. */
EQ_TARGET_AVX512 static void per_tap(const float *above, const int *win, const float *taps, int c_out, int ho,
                                     int wo, int hc, int wc, int c_in, int h_in, int w_in, int k, int pad,
                                     float *work, float *out_cl) {
    int windows = ho * wo, positions = hc * wc, c0 = 0;
    size_t per_channel = (size_t)k * k * c_in;
    const float *value = work;
    const int *first = (const int *)(work + (size_t)c_out * windows), *channel = first + positions + 1;
    if (!eq_max_list_f32_avx512(above, win, c_out, windows, positions, work)) return;
    EQ_MAX_GATHER_CHUNK(float, eq_f16, 16, 4)
    EQ_MAX_GATHER_CHUNK(float, eq_f16, 16, 2)
    EQ_MAX_GATHER_CHUNK(float, eq_f16, 16, 1)
}

int main(int argc, char **argv) {
    double density = argc > 1 ? atof(argv[1]) : 0.37;
    enum { C_OUT = 64, C_IN = 32, K = 5, HC = 8, WC = 8, HO = 4, WO = 4, H_IN = 12, W_IN = 12, EXAMPLES = 20 };
    int windows = HO * WO, positions = HC * WC, n_out = C_OUT * windows, n_in = H_IN * W_IN * C_IN;
    float *above = malloc(sizeof(float) * n_out * EXAMPLES);
    int *win = malloc(sizeof(int) * n_out * EXAMPLES);
    float *taps = aligned_alloc(64, sizeof(float) * C_OUT * K * K * C_IN);
    float *work = malloc(sizeof(float) * (3 * n_out + positions + 1));
    float *windowed_out = malloc(sizeof(float) * n_in), *per_tap_out = malloc(sizeof(float) * n_in);
    srand(1);
    for (int i = 0; i < C_OUT * K * K * C_IN; i++) taps[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int i = 0; i < n_out * EXAMPLES; i++) {
        int o = i % windows, q = rand() % 4;
        above[i] = (float)rand() / RAND_MAX < density ? (float)rand() / RAND_MAX : 0.f;
        win[i] = (2 * (o / WO) + q / 2) * WC + 2 * (o % WO) + q % 2;
    }
    double largest = 0, difference = 0;
    for (int e = 0; e < EXAMPLES; e++) {
        memset(windowed_out, 0, sizeof(float) * n_in);
        memset(per_tap_out, 0, sizeof(float) * n_in);
        eq_max_transposed_f32(EQ_ISA_AVX512, above + e * n_out, win + e * n_out, taps, C_OUT, HO, WO, HC, WC, C_IN,
                              H_IN, W_IN, K, 0, work, windowed_out);
        per_tap(above + e * n_out, win + e * n_out, taps, C_OUT, HO, WO, HC, WC, C_IN, H_IN, W_IN, K, 0, work,
                per_tap_out);
        for (int i = 0; i < n_in; i++) {
            difference = fmax(difference, fabs(windowed_out[i] - per_tap_out[i]));
            largest = fmax(largest, fabs(per_tap_out[i]));
        }
    }
    printf("non-zero pooled values %.2f: largest difference %.1e (values up to %.2f)\n", density, difference, largest);
    for (int round = 0; round < 5; round++) {
        enum { REPEATS = 4000 };
        double start = cpu_seconds();
        for (int r = 0; r < REPEATS; r++)
            per_tap(above + r % EXAMPLES * n_out, win + r % EXAMPLES * n_out, taps, C_OUT, HO, WO, HC, WC, C_IN,
                    H_IN, W_IN, K, 0, work, per_tap_out);
        double middle = cpu_seconds();
        for (int r = 0; r < REPEATS; r++)
            eq_max_transposed_f32(EQ_ISA_AVX512, above + r % EXAMPLES * n_out, win + r % EXAMPLES * n_out, taps,
                                  C_OUT, HO, WO, HC, WC, C_IN, H_IN, W_IN, K, 0, work, windowed_out);
        double end = cpu_seconds();
        printf("per-tap gather %.2f us, windowed sums %.2f us: %.2fx\n", 1e6 * (middle - start) / REPEATS,
               1e6 * (end - middle) / REPEATS, (middle - start) / (end - middle));
    }
    return 0;
}
