# The products the relaxation and the update use: skinny kernels or BLAS, and
# the instruction set, chosen in one place (this module) and passed down.
from cython cimport floating

cdef int current_isa() noexcept nogil
cdef bint blas_products() noexcept nogil
cdef double delta_density() noexcept nogil
cdef int column_start(int n, int parts, int part) noexcept nogil
cdef int input_half(int n_in) noexcept nogil
cdef size_t shared_scratch(int k) noexcept nogil

# How the bfloat16 products run (precision="bfloat16"; bf16_kernels.h), read once
# per call like the instruction set.
cdef enum:
    BF16_OFF = 0       # float32 products
    BF16_FALLBACK = 1  # operands rounded to bfloat16, widened back; the float32 kernels
    BF16_NATIVE = 2    # AVX512_BF16 on the pair layout

cdef int current_bf16() noexcept nogil
cdef bint amx_active() noexcept nogil

# How the bottom-up convolutions run (set_gemm_path(..., conv=...)), read per call.
cdef enum:
    CONV_AUTO = 0      # Winograd where it pays (_engine._winograd_tile), else direct
    CONV_DIRECT = 1    # the direct convolution (dense_kernels.h, bf16_kernels.h)
    CONV_WINOGRAD = 2  # Winograd wherever the kernel size allows it (winograd.h)

cdef int conv_algorithm() noexcept nogil

cdef void bf16_gemm(int mode, int rows, int n, int k, const float* a, int lda, const void* b,
                    const float* bt, bint accumulate, float* c, int ldc, float* scratch,
                    int* idx, bint sparse_input, int isa) noexcept nogil

cdef void small_gemm(int rows, int n, int k, const floating* a, int lda,
                     const floating* b, int ldb, bint accumulate,
                     floating* c, int ldc, int isa) noexcept nogil

cdef void small_gemm_with_transpose(int rows, int n, int k, const floating* a, int lda,
                                    const floating* b, int ldb, const floating* bt,
                                    bint accumulate, floating* c, int ldc, int isa) noexcept nogil

cdef void dot_gemm(int rows, int n, int k, const floating* a, int lda,
                   const floating* bt, int ldbt, bint accumulate,
                   floating* c, int ldc, int isa) noexcept nogil

cdef void input_gemm(int rows, int n, int k, const floating* a, int lda,
                     const floating* b, int ldb, bint accumulate, floating* c, int ldc,
                     int* idx, floating* val, bint rows_share_b, int isa) noexcept nogil
