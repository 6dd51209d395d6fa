/*
 * The AMX tile unit's bfloat16 rate on one core: TDPBF16PS on four independent
 * 16 x 16 float32 accumulator tiles, from tiles already loaded (no memory
 * traffic), timed in process CPU time. Compare with tools/instruction_peak.c.
 *
 *   gcc -O2 -mamx-tile -mamx-bf16 tools/amx_peak.c -o /tmp/amx_peak && /tmp/amx_peak
 *
 * Linux gives a process the tile state only on request (arch_prctl); without
 * AMX (or the grant) it says so and exits with status 1.
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("amx-bf16") || syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)) {
        printf("no usable AMX-BF16 on this CPU or system\n");
        return 1;
    }
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) { cfg.rows[t] = 16; cfg.colsb[t] = 64; }
    _tile_loadconfig(&cfg);
    static uint16_t ones[16 * 32] __attribute__((aligned(64)));
    for (int i = 0; i < 16 * 32; i++) ones[i] = 0x3f80; /* 1.0 in bfloat16 */
    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    _tile_loadd(4, ones, 64); _tile_loadd(5, ones, 64); _tile_loadd(6, ones, 64); _tile_loadd(7, ones, 64);
    const long repeats = 20000000;
    double start = cpu_seconds();
    for (long i = 0; i < repeats; i++) {
        _tile_dpbf16ps(0, 4, 6); _tile_dpbf16ps(1, 4, 7); _tile_dpbf16ps(2, 5, 6); _tile_dpbf16ps(3, 5, 7);
    }
    double seconds = cpu_seconds() - start;
    _tile_release();
    printf("tdpbf16ps: %.1f GFLOP/s (one core, process CPU time)\n", 4.0 * repeats * 16 * 16 * 32 * 2 / seconds / 1e9);
    return 0;
}
