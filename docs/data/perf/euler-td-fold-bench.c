/*
 * The hidden layer's Euler step below a 10-class output (eq_euler_td_f32, AVX-512), 10 rows of 512,
 * with 0, 1 or 2 active output units: the drive d and the biases b added at every step ("with b",
 * as the relaxation called it before) against d + b summed once beforehand ("folded", b = NULL: what
 * _relax_rows now passes for the first layer). Best of five runs, ns per row.
 *
 *   gcc -O3 -ffp-contract=fast -Isrc/eqcore docs/data/perf/euler-td-fold-bench.c -o /tmp/td-fold
 *   taskset -c 1 /tmp/td-fold b 1; taskset -c 1 /tmp/td-fold f 1
 *
 * The kernel before this change (one multiply per unit above, then h, d and b added one by one):
 *   mkdir -p /tmp/old && git show 40d31a5:src/eqcore/state_update.h > /tmp/old/state_update.h
 *   cp src/eqcore/simd.h /tmp/old/ && gcc -O3 -ffp-contract=fast -I/tmp/old <this file> -o /tmp/td-old
 */
#include "state_update.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static float s[20 * 512], d[20 * 512], hb[20 * 512], b[512], wt[10 * 512], above[20 * 10];
int main(int argc, char **argv) {
    int fold = argc > 1 && argv[1][0] == 'f', active = argc > 2 ? atoi(argv[2]) : 1;
    srand(1);
    for (int i = 0; i < 20 * 512; i++) { s[i] = rand() % 3 == 0 ? 0.3f : 0; d[i] = (rand() % 100 - 55) / 10.f; }
    for (int i = 0; i < 512; i++) b[i] = (rand() % 10 - 5) / 100.f;
    for (int i = 0; i < 20 * 512; i++) hb[i] = d[i] + b[i % 512];
    for (int i = 0; i < 10 * 512; i++) wt[i] = (rand() % 100 - 50) / 100.f;
    for (int r = 0; r < 20; r++)
        for (int k = 0; k < 10; k++) above[r * 10 + k] = k >= 3 && k < 3 + active ? 0.5f : 0;
    int rows = 10, repeats = 300000;
    double best = 1e9;
    for (int round = 0; round < 5; round++) {
        double t = now();
        for (int it = 0; it < repeats; it++)
            if (fold) eq_euler_td_f32(2, s, NULL, hb, NULL, above, 10, 10, wt, rows, 512, 0.5f, 1);
            else eq_euler_td_f32(2, s, NULL, d, b, above, 10, 10, wt, rows, 512, 0.5f, 1);
        double ns = (now() - t) / repeats / rows * 1e9;
        if (ns < best) best = ns;
    }
    printf("%s, %d active: %.1f ns per row\n", fold ? "folded" : "with b", active, best);
    return 0;
}
