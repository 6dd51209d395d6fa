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
 * the input map with channel pairs last, its own layout (_engine.pyx); the
 * max-pooled transposed convolution (eq_bf16_max_transposed_amx) builds its A
 * from the pooled state and its winners and reads the taps' pair layout.
 * Every product goes through one driver, eq_amx_product.
 */
#ifndef EQCORE_AMX_KERNELS_H
#define EQCORE_AMX_KERNELS_H

#include <stdint.h>
#include <string.h>

#include "bf16_kernels.h"
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

/*
 * The C tiles of one row block (the rows the tile configuration says): up to three blocks of 16 columns, c[0..blocks-1]
 * (leading dimension ldc_bytes), loaded (acc) or zeroed, then
 * += sum over taps t of A_t @ B_t, with A_t = A + a_offsets[t] (rows lda words
 * apart, KP words of K pairs) and B_t = B + t KP ldb (the pair layout).
 */
EQ_TARGET_AMX static void eq_amx_blocks(int blocks, int taps, int KP, const uint32_t *A, int lda,
                                        const int *a_offsets, const uint32_t *B, int ldb, int acc,
                                        float *const c[3], int ldc_bytes) {
    int lda_bytes = 4 * lda, ldb_bytes = 4 * ldb, full = KP / 16 * 16;
    EQ_AMX_LOAD_C(0, 0) EQ_AMX_LOAD_C(1, 1) EQ_AMX_LOAD_C(2, 2)
    for (int t = 0; t < taps; t++) {
        const uint32_t *at = A + a_offsets[t], *bt = B + (size_t)t * KP * ldb;
        for (int p = 0; p < full; p += 16) {
            const uint32_t *bp = bt + (size_t)p * ldb;
            _tile_loadd(3, at + p, lda_bytes);
            EQ_AMX_PRODUCT(0, 0, 4, bp)
            EQ_AMX_PRODUCT(1, 1, 5, bp)
            EQ_AMX_PRODUCT(2, 2, 4, bp)
        }
        if (full < KP) {
            const uint32_t *bp = bt + (size_t)full * ldb;
            _tile_loadd(6, at + full, lda_bytes);
            EQ_AMX_TAIL_PRODUCT(0, 0, bp)
            EQ_AMX_TAIL_PRODUCT(1, 1, bp)
            EQ_AMX_TAIL_PRODUCT(2, 2, bp)
        }
    }
    EQ_AMX_STORE_C(0, 0) EQ_AMX_STORE_C(1, 1) EQ_AMX_STORE_C(2, 2)
}

/*
 * C (R x N) [+]= sum over taps of A_t @ B_t (eq_amx_blocks): rows in blocks of at
 * most 16, columns in groups of three tiles, the last partial block of columns
 * through a 16 x 16 buffer. The tile configuration is loaded once for the full
 * row blocks and once more for a short last one.
 */
EQ_TARGET_AMX static void eq_amx_product(int R, int N, int taps, int KP, const uint32_t *A, int lda,
                                         const int *a_offsets, const uint32_t *B, int acc, float *C, int ldc) {
    int ldb = (N + 15) / 16 * 16, whole = N / 16 * 16, configured = 0;
    float buffer[16 * 16] __attribute__((aligned(64)));
    for (int r0 = 0; r0 < R; r0 += 16) {
        int rows = R - r0 < 16 ? R - r0 : 16;
        const uint32_t *a = A + (size_t)r0 * lda;
        float *cr = C + (size_t)r0 * ldc;
        if (rows != configured) {
            eq_amx_configure(rows, KP % 16);
            configured = rows;
        }
        for (int n0 = 0; n0 < whole; n0 += 48) {
            int blocks = (whole - n0) / 16 < 3 ? (whole - n0) / 16 : 3;
            float *c[3] = {cr + n0, cr + n0 + 16, cr + n0 + 32};
            eq_amx_blocks(blocks, taps, KP, a, lda, a_offsets, B + n0, ldb, acc, c, 4 * ldc);
        }
        if (whole < N) {
            int left = N - whole;
            for (int r = 0; r < rows && acc; r++)
                memcpy(buffer + 16 * r, cr + (size_t)r * ldc + whole, sizeof(float) * left);
            float *c[3] = {buffer, NULL, NULL};
            eq_amx_blocks(1, taps, KP, a, lda, a_offsets, B + whole, ldb, acc, c, 64);
            for (int r = 0; r < rows; r++) memcpy(cr + (size_t)r * ldc + whole, buffer + 16 * r, sizeof(float) * left);
        }
    }
    if (configured) _tile_release();
}

/*
 * C (R x N) [+]= A @ B (see the top of this file). Call only when
 * eq_amx_available() said yes.
 */
EQ_TARGET_AMX static void eq_bf16_gemm_amx(int R, int N, int KP, const uint32_t *A, int lda,
                                           const uint32_t *B, int acc, float *C, int ldc) {
    static const int no_offset = 0;
    eq_amx_product(R, N, 1, KP, A, lda, &no_offset, B, acc, C, ldc);
}

/*
 * The direct convolution on tiles: C (R x N) = sum over taps t and channel pairs
 * cp of A[r cpairs + tap_offsets[t] + cp] B[t cpairs + cp, :]. A is the (padded)
 * input map with channel pairs last (cpairs words per position), so the pairs
 * of one tap are contiguous and the rows of an A tile (consecutive positions)
 * are cpairs words apart; tap_offsets[t] is the tap's first word from a patch's
 * first. B is the weights' pair layout in the order (tap, channel pair), N
 * padded to whole tiles. C is overwritten. Row r is the patch at position r of
 * the map, so a caller can run a whole map at once, its rows' last k - 1
 * positions (patches that wrap to the next row) computed and dropped.
 */
EQ_TARGET_AMX static void eq_bf16_conv_amx(int R, int N, int taps, int cpairs, const uint32_t *A,
                                           const int *tap_offsets, const uint32_t *B, float *C, int ldc) {
    eq_amx_product(R, N, taps, cpairs, A, cpairs, tap_offsets, B, 0, C, ldc);
}

/*
 * The transposed convolution of a max-pooled conv connection, for one example:
 * out_cl (h_in w_in x c_in, channels last) += what the state above (c_out x ho x
 * wo, routed to its windows' winners: win, positions in the wc-wide map of the
 * convolution) sends below through the taps (c_out x k k c_in, taps_bf in the
 * pair layout). The scatter of eq_max_transposed as one product: row 4 o + q of
 * V (4 ho wo x c_out) holds the values whose window o has its winner at window
 * position q (row-major), so row 4 o + q of V @ taps is everything the winners
 * at that position of the convolution's map send below, added in place over k
 * rows of the map. work: 4 ho wo (pairs(c_out) + k k c_in) floats.
 */
EQ_TARGET_AMX static void eq_bf16_max_transposed_amx(const float *above, const int *win, const uint32_t *taps_bf,
                                                     int c_out, int ho, int wo, int wc, int c_in, int h_in,
                                                     int w_in, int k, int pad, float *work, float *out_cl) {
    int windows = ho * wo, rows = 4 * windows, kp = (c_out + 1) / 2, n = k * k * c_in;
    uint32_t *v = (uint32_t *)work;
    float *product = work + (size_t)rows * kp;
    memset(v, 0, sizeof(uint32_t) * rows * kp);
    for (int ch = 0; ch < c_out; ch++)
        for (int o = 0; o < windows; o++) {
            float value = above[(size_t)ch * windows + o];
            if (value == 0) continue; /* clipped states, most of them: 0 * w adds nothing */
            int p = win[(size_t)ch * windows + o];
            int q = (p / wc - 2 * (o / wo)) * 2 + p % wc - 2 * (o % wo);
            v[(size_t)(4 * o + q) * kp + ch / 2] |= (uint32_t)eq_bf16_bits(value) << (16 * (ch & 1));
        }
    eq_bf16_gemm_amx(rows, n, kp, v, kp, taps_bf, 0, product, n);
    for (int i = 0; i < rows; i++) {
        int used = 0;
        for (int t = 0; t < kp && !used; t++) used = v[(size_t)i * kp + t] != 0;
        if (!used) continue;
        int o = i / 4, q = i % 4, y = 2 * (o / wo) + q / 2, x = 2 * (o % wo) + q % 2;
        int b_lo = pad - x > 0 ? pad - x : 0, b_hi = w_in + pad - x < k ? w_in + pad - x : k;
        if (b_hi <= b_lo) continue;
        int len = (b_hi - b_lo) * c_in;
        for (int a = 0; a < k; a++) {
            int yi = y + a - pad;
            if (yi < 0 || yi >= h_in) continue;
            float *dst = out_cl + ((size_t)yi * w_in + x + b_lo - pad) * c_in;
            const float *src = product + (size_t)i * n + (a * k + b_lo) * c_in;
            for (int t = 0; t < len; t++) dst[t] += src[t];
        }
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

static void eq_bf16_max_transposed_amx(const float *above, const int *win, const uint32_t *taps_bf, int c_out,
                                       int ho, int wo, int wc, int c_in, int h_in, int w_in, int k, int pad,
                                       float *work, float *out_cl) {
    (void)above; (void)win; (void)taps_bf; (void)c_out; (void)ho; (void)wo; (void)wc; (void)c_in;
    (void)h_in; (void)w_in; (void)k; (void)pad; (void)work; (void)out_cl;
}

#endif
#endif
