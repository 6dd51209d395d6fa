/*
 * dst[j ldd + i] = src[i lds + j] (or += with acc) for i < rows, j < cols: the
 * layout changes between channels-first maps (the states) and channels-last
 * ones (the convolutions' products). Blocks of 4 x 4 go through registers:
 * four loads, eight shuffles and four stores for 16 elements, where the
 * element-by-element loop does 16 loads and 16 stores, half of them strided.
 * The edges (and compilers without __builtin_shufflevector) go element by
 * element. Every element is copied or added once: the values are the loop's.
 */
#ifndef EQCORE_TRANSPOSE_H
#define EQCORE_TRANSPOSE_H

#include <stddef.h>

#include "simd.h"

#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define EQ_HAS_SHUFFLEVECTOR 1
#else
#define EQ_HAS_SHUFFLEVECTOR 0
#endif

#define EQ_TRANSPOSE_ONE(T)                                                           \
    {                                                                                 \
        T value = src[(size_t)i * lds + j], *d = dst + (size_t)j * ldd + i;           \
        *d = acc ? *d + value : value;                                                \
    }

#if EQ_HAS_SHUFFLEVECTOR
#define EQ_TRANSPOSE_BLOCKS(T)                                                        \
    typedef T quad __attribute__((vector_size(4 * sizeof(T)), aligned(sizeof(T))));  \
    for (; i0 + 4 <= rows; i0 += 4) {                                                 \
        int j = 0;                                                                    \
        for (; j + 4 <= cols; j += 4) {                                               \
            const T *s = src + (size_t)i0 * lds + j;                                  \
            quad r0 = *(const quad *)s, r1 = *(const quad *)(s + lds);                \
            quad r2 = *(const quad *)(s + 2 * lds), r3 = *(const quad *)(s + 3 * lds); \
            quad t0 = __builtin_shufflevector(r0, r1, 0, 4, 1, 5);                    \
            quad t1 = __builtin_shufflevector(r0, r1, 2, 6, 3, 7);                    \
            quad t2 = __builtin_shufflevector(r2, r3, 0, 4, 1, 5);                    \
            quad t3 = __builtin_shufflevector(r2, r3, 2, 6, 3, 7);                    \
            quad out[4] = {__builtin_shufflevector(t0, t2, 0, 1, 4, 5),               \
                           __builtin_shufflevector(t0, t2, 2, 3, 6, 7),               \
                           __builtin_shufflevector(t1, t3, 0, 1, 4, 5),               \
                           __builtin_shufflevector(t1, t3, 2, 3, 6, 7)};              \
            T *d = dst + (size_t)j * ldd + i0;                                        \
            if (acc)                                                                  \
                for (int q = 0; q < 4; q++) *(quad *)(d + q * ldd) += out[q];         \
            else                                                                      \
                for (int q = 0; q < 4; q++) *(quad *)(d + q * ldd) = out[q];          \
        }                                                                             \
        for (; j < cols; j++)                                                         \
            for (int i = i0; i < i0 + 4; i++) EQ_TRANSPOSE_ONE(T)                     \
    }
#else
#define EQ_TRANSPOSE_BLOCKS(T)
#endif

#define EQ_DEFINE_TRANSPOSE(SUFFIX, ATTR, T)                                          \
    ATTR static void eq_transpose_strided_##SUFFIX(const T *src, int rows, int cols, size_t lds, \
                                                   T *dst, size_t ldd, int acc) {     \
        int i0 = 0;                                                                   \
        EQ_TRANSPOSE_BLOCKS(T)                                                        \
        for (int i = i0; i < rows; i++)                                               \
            for (int j = 0; j < cols; j++) EQ_TRANSPOSE_ONE(T)                        \
    }

#define EQ_DEFINE_TRANSPOSE_ISA(SUFFIX, ATTR, FV, FL, DV, DL)                         \
    EQ_DEFINE_TRANSPOSE(f32_##SUFFIX, ATTR, float)                                    \
    EQ_DEFINE_TRANSPOSE(f64_##SUFFIX, ATTR, double)
EQ_FOR_EACH_ISA(EQ_DEFINE_TRANSPOSE_ISA)

#endif
