/*
 * bfloat16 products on Intel's AMX tile unit: C (R x N) [+]= A @ B, with A and B
 * exactly as the AVX512_BF16 path holds them (bf16_kernels.h): A as packed
 * bfloat16 rows (R x KP words of two bfloat16), B in the pair layout (KP x
 * eq_bf16_columns(N) words). That layout is the one TDPBF16PS reads for its B
 * tile, so no copy is made for this path.
 *
 * One TDPBF16PS multiplies a tile of A (up to 16 rows x 16 words: 32 bfloat16
 * along K) by a tile of B (16 words of K pairs x 16 columns) into a 16 x 16
 * float32 tile: 16,384 FLOP per instruction, about 16 times the float32 FMA
 * rate of the same core (tools/amx_peak.c). Tiles used here:
 *   tmm0-2  C: three blocks of 16 columns, rows = the row block (<= 16)
 *   tmm3    A: 16 words of K pairs        tmm6  A: the K tail (KP % 16 words)
 *   tmm4-5  B: 16 pairs x 16 columns      tmm7  B: the K tail
 * The tile configuration is per thread; each call loads its own and releases
 * the tiles on return. The last block of columns, when N is not a multiple of
 * 16, goes through a 16 x 16 buffer so that nothing past column N of C is
 * written (B is zero there, so the buffer's extra columns are never used).
 *
 * Linux gives a process the AMX state only on request (arch_prctl
 * ARCH_REQ_XCOMP_PERM); eq_amx_available asks once and says whether it was
 * granted. Elsewhere (other systems, compilers without AMX) it returns 0 and
 * the AVX512_BF16 kernels run. The direct convolution (eq_bf16_conv_amx) reads
 * the input map with channel pairs last, its own layout (_engine.pyx).
 */
#ifndef EQCORE_AMX_KERNELS_H
#define EQCORE_AMX_KERNELS_H

#include <stdint.h>
#include <string.h>

#include "simd.h"

#if EQ_X86_DISPATCH && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define EQ_AMX_COMPILED 1
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#define EQ_AMX_COMPILED 0
#endif

#if EQ_AMX_COMPILED

#define EQ_TARGET_AMX EQ_TARGET("amx-tile,amx-bf16,avx512f")
#define EQ_ARCH_REQ_XCOMP_PERM 0x1023
#define EQ_XFEATURE_XTILEDATA 18

/* Whether the CPU has AMX-BF16 and the kernel lets this process use the tiles. */
static int eq_amx_available(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("amx-tile") || !__builtin_cpu_supports("amx-bf16")) return 0;
    return syscall(SYS_arch_prctl, EQ_ARCH_REQ_XCOMP_PERM, EQ_XFEATURE_XTILEDATA) == 0;
}

/* The 64-byte operand of LDTILECFG (palette 1). */
typedef struct {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} eq_tile_config;

EQ_TARGET_AMX static void eq_amx_configure(int rows, int tail_words) {
    eq_tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 3; t++) { cfg.rows[t] = (uint8_t)rows; cfg.colsb[t] = 64; } /* C */
    cfg.rows[3] = (uint8_t)rows; cfg.colsb[3] = 64;                                   /* A */
    cfg.rows[4] = 16; cfg.colsb[4] = 64;                                              /* B */
    cfg.rows[5] = 16; cfg.colsb[5] = 64;
    if (tail_words) {
        cfg.rows[6] = (uint8_t)rows; cfg.colsb[6] = (uint16_t)(4 * tail_words);       /* A, K tail */
        cfg.rows[7] = (uint8_t)tail_words; cfg.colsb[7] = 64;                         /* B, K tail */
    }
    _tile_loadconfig(&cfg);
}

/*
 * Up to three blocks of 16 columns of rows 0..rows-1: C tiles tmm0..tmm(blocks-1),
 * loaded from c[j] (leading dimension ldc floats) or zeroed, then stored back.
 */
#define EQ_AMX_LOAD_C(T, J)                                                           \
    if ((J) < blocks) {                                                               \
        if (acc) _tile_loadd(T, c[J], ldc_bytes); else _tile_zero(T);                 \
    }
#define EQ_AMX_STORE_C(T, J) \
    if ((J) < blocks) _tile_stored(T, c[J], ldc_bytes);
#define EQ_AMX_PRODUCT(T, J, BT, BP)                                                  \
    if ((J) < blocks) {                                                               \
        _tile_loadd(BT, (BP) + 16 * (J), ldb_bytes);                                  \
        _tile_dpbf16ps(T, 3, BT);                                                     \
    }
#define EQ_AMX_TAIL_PRODUCT(T, J, BP)                                                 \
    if ((J) < blocks) {                                                               \
        _tile_loadd(7, (BP) + 16 * (J), ldb_bytes);                                   \
        _tile_dpbf16ps(T, 6, 7);                                                      \
    }

EQ_TARGET_AMX static void eq_amx_blocks(int rows, int blocks, int KP, const uint32_t *A, int lda,
                                        const uint32_t *B, int ldb, int acc, float *const c[3],
                                        int ldc_bytes) {
    int lda_bytes = 4 * lda, ldb_bytes = 4 * ldb, full = KP / 16 * 16;
    EQ_AMX_LOAD_C(0, 0) EQ_AMX_LOAD_C(1, 1) EQ_AMX_LOAD_C(2, 2)
    for (int p = 0; p < full; p += 16) {
        const uint32_t *bp = B + (size_t)p * ldb;
        _tile_loadd(3, A + p, lda_bytes);
        EQ_AMX_PRODUCT(0, 0, 4, bp)
        EQ_AMX_PRODUCT(1, 1, 5, bp)
        EQ_AMX_PRODUCT(2, 2, 4, bp)
    }
    if (full < KP) {
        const uint32_t *bp = B + (size_t)full * ldb;
        _tile_loadd(6, A + full, lda_bytes);
        EQ_AMX_TAIL_PRODUCT(0, 0, bp)
        EQ_AMX_TAIL_PRODUCT(1, 1, bp)
        EQ_AMX_TAIL_PRODUCT(2, 2, bp)
    }
    EQ_AMX_STORE_C(0, 0) EQ_AMX_STORE_C(1, 1) EQ_AMX_STORE_C(2, 2)
}

/*
 * C (R x N) [+]= A @ B (see the top of this file); rows in blocks of at most 16,
 * columns in groups of three tiles. Call only when eq_amx_available() said yes.
 */
EQ_TARGET_AMX static void eq_bf16_gemm_amx(int R, int N, int KP, const uint32_t *A, int lda,
                                           const uint32_t *B, int acc, float *C, int ldc) {
    int ldb = (N + 15) / 16 * 16, whole = N / 16 * 16, tail_words = KP % 16;
    float buffer[16 * 16] __attribute__((aligned(64)));
    for (int r0 = 0; r0 < R; r0 += 16) {
        int rows = R - r0 < 16 ? R - r0 : 16;
        const uint32_t *a = A + (size_t)r0 * lda;
        float *cr = C + (size_t)r0 * ldc;
        eq_amx_configure(rows, tail_words);
        for (int n0 = 0; n0 < whole; n0 += 48) {
            int blocks = (whole - n0) / 16 < 3 ? (whole - n0) / 16 : 3;
            float *c[3] = {cr + n0, cr + n0 + 16, cr + n0 + 32};
            eq_amx_blocks(rows, blocks, KP, a, lda, B + n0, ldb, acc, c, 4 * ldc);
        }
        if (whole < N) {
            int left = N - whole;
            for (int r = 0; r < rows; r++) {
                if (acc) memcpy(buffer + 16 * r, cr + (size_t)r * ldc + whole, sizeof(float) * left);
            }
            float *c[3] = {buffer, NULL, NULL};
            eq_amx_blocks(rows, 1, KP, a, lda, B + whole, ldb, acc, c, 64);
            for (int r = 0; r < rows; r++) memcpy(cr + (size_t)r * ldc + whole, buffer + 16 * r, sizeof(float) * left);
        }
        _tile_release();
    }
}

/*
 * The direct convolution on tiles, for one row of output positions: C (R x N) =
 * sum over taps t and channel pairs cp of A[(r + tap) pairs + cp] B[t cpairs + cp, :].
 * A is the (padded) input map with channel pairs last (cpairs words per
 * position), so the pairs of one tap are contiguous and the rows of an A tile
 * (consecutive output positions) are cpairs words apart; tap_offsets[t] is the
 * tap's first word from a patch's first. B is the weights' pair layout in the
 * order (tap, channel pair), N padded to whole tiles. C is overwritten.
 */
EQ_TARGET_AMX static void eq_amx_conv_blocks(int rows, int blocks, int taps, int cpairs, const uint32_t *A,
                                             const int *tap_offsets, const uint32_t *B, int ldb,
                                             float *const c[3], int ldc_bytes) {
    int lda_bytes = 4 * cpairs, ldb_bytes = 4 * ldb, full = cpairs / 16 * 16, acc = 0;
    EQ_AMX_LOAD_C(0, 0) EQ_AMX_LOAD_C(1, 1) EQ_AMX_LOAD_C(2, 2)
    for (int t = 0; t < taps; t++) {
        const uint32_t *at = A + tap_offsets[t], *bt = B + (size_t)t * cpairs * ldb;
        for (int p = 0; p < full; p += 16) {
            const uint32_t *bp = bt + (size_t)p * ldb;
            _tile_loadd(3, at + p, lda_bytes);
            EQ_AMX_PRODUCT(0, 0, 4, bp)
            EQ_AMX_PRODUCT(1, 1, 5, bp)
            EQ_AMX_PRODUCT(2, 2, 4, bp)
        }
        if (full < cpairs) {
            const uint32_t *bp = bt + (size_t)full * ldb;
            _tile_loadd(6, at + full, lda_bytes);
            EQ_AMX_TAIL_PRODUCT(0, 0, bp)
            EQ_AMX_TAIL_PRODUCT(1, 1, bp)
            EQ_AMX_TAIL_PRODUCT(2, 2, bp)
        }
    }
    EQ_AMX_STORE_C(0, 0) EQ_AMX_STORE_C(1, 1) EQ_AMX_STORE_C(2, 2)
}

EQ_TARGET_AMX static void eq_bf16_conv_amx(int R, int N, int taps, int cpairs, const uint32_t *A,
                                           const int *tap_offsets, const uint32_t *B, float *C, int ldc) {
    int ldb = (N + 15) / 16 * 16, whole = N / 16 * 16;
    float buffer[16 * 16] __attribute__((aligned(64)));
    for (int r0 = 0; r0 < R; r0 += 16) {
        int rows = R - r0 < 16 ? R - r0 : 16;
        const uint32_t *a = A + (size_t)r0 * cpairs;
        float *cr = C + (size_t)r0 * ldc;
        eq_amx_configure(rows, cpairs % 16);
        for (int n0 = 0; n0 < whole; n0 += 48) {
            int blocks = (whole - n0) / 16 < 3 ? (whole - n0) / 16 : 3;
            float *c[3] = {cr + n0, cr + n0 + 16, cr + n0 + 32};
            eq_amx_conv_blocks(rows, blocks, taps, cpairs, a, tap_offsets, B + n0, ldb, c, 4 * ldc);
        }
        if (whole < N) {
            float *c[3] = {buffer, NULL, NULL};
            eq_amx_conv_blocks(rows, 1, taps, cpairs, a, tap_offsets, B + whole, ldb, c, 64);
            for (int r = 0; r < rows; r++)
                memcpy(cr + (size_t)r * ldc + whole, buffer + 16 * r, sizeof(float) * (N - whole));
        }
        _tile_release();
    }
}

#else /* no AMX in this build */

static int eq_amx_available(void) { return 0; }

static void eq_bf16_gemm_amx(int R, int N, int KP, const uint32_t *A, int lda, const uint32_t *B, int acc,
                             float *C, int ldc) {
    (void)R; (void)N; (void)KP; (void)A; (void)lda; (void)B; (void)acc; (void)C; (void)ldc;
}

static void eq_bf16_conv_amx(int R, int N, int taps, int cpairs, const uint32_t *A, const int *tap_offsets,
                             const uint32_t *B, float *C, int ldc) {
    (void)R; (void)N; (void)taps; (void)cpairs; (void)A; (void)tap_offsets; (void)B; (void)C; (void)ldc;
}

#endif
#endif
