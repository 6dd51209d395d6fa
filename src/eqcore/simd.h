/*
 * The SIMD platform: vector types, per-function target attributes, CPU
 * detection and one dispatch macro. No state: the instruction set is an
 * argument of every kernel (0 portable, 1 AVX2+FMA, 2 AVX-512), chosen once
 * per call by the Python-facing entry point (eqcore._gemm.current_isa), so
 * that every extension module runs the same instruction set. The bfloat16
 * products (bf16_kernels.h) add one choice on top: AVX512_BF16 or the fallback
 * (eqcore._gemm.current_bf16).
 *
 * Each kernel is written once as a macro over its element type and vector
 * width, instantiated per instruction set with EQ_TARGET, and reached through
 * EQ_DISPATCH: wheels built for baseline x86-64 still run AVX-512 where the CPU
 * has it.
 */
#ifndef EQCORE_SIMD_H
#define EQCORE_SIMD_H

#include <stddef.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define EQ_X86_DISPATCH 1
#define EQ_TARGET(t) __attribute__((target(t)))
#else
#define EQ_X86_DISPATCH 0
#define EQ_TARGET(t)
#endif

#define EQ_TARGET_AVX2 EQ_TARGET("avx2,fma")
#define EQ_TARGET_AVX512 EQ_TARGET("avx512f,avx512vl,fma")
#define EQ_INLINE static inline __attribute__((always_inline))

#define EQ_ISA_PORTABLE 0
#define EQ_ISA_AVX2 1
#define EQ_ISA_AVX512 2

/* Unaligned vector types: the state rows and weight rows have any offset. */
typedef float eq_f16 __attribute__((vector_size(64), aligned(4)));
typedef float eq_f8 __attribute__((vector_size(32), aligned(4)));
typedef float eq_f4 __attribute__((vector_size(16), aligned(4)));
typedef float eq_f2 __attribute__((vector_size(8), aligned(4)));
typedef double eq_d8 __attribute__((vector_size(64), aligned(8)));
typedef double eq_d4 __attribute__((vector_size(32), aligned(8)));
typedef double eq_d2 __attribute__((vector_size(16), aligned(8)));

/*
 * The scalar multiply-add of the products' last columns (dense_kernels.h,
 * sparse_rows.h' strips). Written fused where the instruction set has FMA:
 * left to contraction, GCC fuses it in some
 * row-group sizes and not in others (where it vectorizes the loop over k and
 * adds the products in order), so a row's last columns would depend on how
 * the batch is cut into row groups, and the event-driven relaxation cuts it
 * by each row's own changes (_relax.pyx). Without FMA nothing is fused.
 */
#define EQ_MADD_FUSED(a, b, c) _Generic((c), float: __builtin_fmaf((a), (b), (c)), default: __builtin_fma((a), (b), (c)))
#define EQ_MADD_SEPARATE(a, b, c) ((a) * (b) + (c))

/* The best instruction set this CPU supports. */
static int eq_best_isa(void) {
#if EQ_X86_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) return EQ_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return EQ_ISA_AVX2;
#endif
    return EQ_ISA_PORTABLE;
}

/* Whether this CPU has the AVX512_BF16 instructions (and the AVX-512 they extend). */
static int eq_has_bf16(void) {
#if EQ_X86_DISPATCH
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512f")
           && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
#else
    return 0;
#endif
}

/*
 * Call NAME_avx512 ARGS512, NAME_avx2 ARGS or NAME_generic ARGS by the
 * instruction set ISA (the caller has capped it at eq_best_isa()). Used as the
 * whole body of a void dispatcher.
 */
#if EQ_X86_DISPATCH
#define EQ_DISPATCH(ISA, NAME, ARGS512, ARGS)                                         \
    if ((ISA) == EQ_ISA_AVX512) { NAME##_avx512 ARGS512; return; }                    \
    if ((ISA) == EQ_ISA_AVX2) { NAME##_avx2 ARGS; return; }                           \
    NAME##_generic ARGS;
#else
#define EQ_DISPATCH(ISA, NAME, ARGS512, ARGS) (void)(ISA); NAME##_generic ARGS;
#endif

/* The same for a dispatcher that returns the kernel's value. */
#if EQ_X86_DISPATCH
#define EQ_DISPATCH_RETURN(ISA, NAME, ARGS)                                           \
    if ((ISA) == EQ_ISA_AVX512) return NAME##_avx512 ARGS;                            \
    if ((ISA) == EQ_ISA_AVX2) return NAME##_avx2 ARGS;                                \
    return NAME##_generic ARGS;
#else
#define EQ_DISPATCH_RETURN(ISA, NAME, ARGS) (void)(ISA); return NAME##_generic ARGS;
#endif

/* Instantiate a kernel family for every instruction set: DEFINE(suffix, attribute, float vector, lanes, double vector, lanes). */
#if EQ_X86_DISPATCH
#define EQ_FOR_EACH_ISA(DEFINE)                                                       \
    DEFINE(generic, , eq_f4, 4, eq_d2, 2)                                             \
    DEFINE(avx2, EQ_TARGET_AVX2, eq_f8, 8, eq_d4, 4)                                  \
    DEFINE(avx512, EQ_TARGET_AVX512, eq_f16, 16, eq_d8, 8)
#else
#define EQ_FOR_EACH_ISA(DEFINE) DEFINE(generic, , eq_f4, 4, eq_d2, 2)
#endif

#endif
