# Every C kernel of the core, declared once. Each takes the instruction set as
# its first argument (0 portable, 1 AVX2+FMA, 2 AVX-512; simd.h).

from libc.stdint cimport uint16_t, uint32_t

cdef extern from "simd.h" nogil:
    int eq_best_isa()
    int eq_has_bf16()

cdef extern from "bf16_kernels.h" nogil:
    # no instruction-set argument: the native product is AVX512_BF16 or nothing
    int eq_bf16_columns(int n)
    int eq_bf16_pairs(int k)
    uint16_t eq_bf16_bits(float x)
    void eq_bf16_round_f32(int rows, int n, const float* src, int lds, float* dst, int ldd)
    void eq_bf16_pack_rows(int rows, int k, const float* src, int lds, uint32_t* dst, int ldd)
    void eq_bf16_pack_pairs(int K, int N, const float* B, int ldb, uint32_t* out)
    void eq_bf16_pack_pairs_t(int K, int N, const float* B, int ldb, uint32_t* out)
    void eq_bf16_pack_channel_pairs_last(const float* src, int channels, int positions, uint32_t* out)
    # the native path's packings (AVX512_BF16 conversions; call only when it is selected)
    void eq_bf16_pack_rows_native(int rows, int k, const float* src, int lds, uint32_t* dst, int ldd)
    void eq_bf16_pack_pairs_native(int K, int N, const float* B, int ldb, uint32_t* out)
    void eq_bf16_pack_pairs_t_native(int K, int N, const float* B, int ldb, uint32_t* out)
    void eq_bf16_pack_channel_pairs_last_native(const float* src, int channels, int positions, uint32_t* out)
    void eq_bf16_gemm(int R, int N, int KP, const uint32_t* A, int lda, const uint32_t* B,
                      int acc, float* C, int ldc, int* pidx)
    void eq_bf16_shifted(int R, int N, int KP, const uint32_t* A, const uint32_t* B, float* C, int ldc,
                         const int* off)
    void eq_bf16_sparse_row(int N, int K, const float* change, const uint32_t* B, float* part, int* idx,
                            float* val)
    long eq_step_delta_bf16(int isa, size_t n, const float* s, float* prev, float* delta)

cdef extern from "amx_kernels.h" nogil:
    int eq_amx_available()
    void eq_bf16_gemm_amx(int R, int N, int KP, const uint32_t* A, int lda, const uint32_t* B,
                          int acc, float* C, int ldc)
    void eq_bf16_conv_amx(int R, int N, int taps, int cpairs, const uint32_t* A, const int* tap_offsets,
                          const uint32_t* B, float* C, int ldc)
    void eq_bf16_max_transposed_amx(const float* above, const int* win, const uint32_t* taps_bf, int c_out,
                                    int ho, int wo, int wc, int c_in, int h_in, int w_in, int k, int pad,
                                    float* work, float* out_cl)

cdef extern from "dense_kernels.h" nogil:
    void eq_gemm_f32(int isa, int R, int N, int K, const float* A, int lda, const float* B,
                     int ldb, int acc, float* C, int ldc)
    void eq_gemm_f64(int isa, int R, int N, int K, const double* A, int lda, const double* B,
                     int ldb, int acc, double* C, int ldc)
    void eq_dot_f32(int isa, int R, int N, int K, const float* A, int lda, const float* BT,
                    int ldbt, int acc, float* C, int ldc)
    void eq_dot_f64(int isa, int R, int N, int K, const double* A, int lda, const double* BT,
                    int ldbt, int acc, double* C, int ldc)
    void eq_listed_f32(int isa, int R, int N, int K, const float* A, int lda, const float* B,
                       int ldb, int acc, float* C, int ldc, int* kidx)
    void eq_listed_f64(int isa, int R, int N, int K, const double* A, int lda, const double* B,
                       int ldb, int acc, double* C, int ldc, int* kidx)
    void eq_shifted_f32(int isa, int R, int N, int K, const float* A, const float* B, int ldb,
                        float* C, int ldc, const int* off)
    void eq_shifted_f64(int isa, int R, int N, int K, const double* A, const double* B, int ldb,
                        double* C, int ldc, const int* off)

cdef extern from "sparse_rows.h" nogil:
    void eq_strips_f32(int isa, int R, int N, int K, const float* A, int lda, const float* B,
                       int ldb, int acc, float* C, int ldc, int* idx, float* val)
    void eq_strips_f64(int isa, int R, int N, int K, const double* A, int lda, const double* B,
                       int ldb, int acc, double* C, int ldc, int* idx, double* val)
    int EQ_STRIP_ROWS
    int EQ_STRIP_TAIL
    int EQ_SPARSE_GROUP
    void eq_sparse_f32(int isa, int R, int N, int K, const float* A, int lda, const float* B,
                       int ldb, int acc, float* C, int ldc, int* idx, float* val)
    void eq_sparse_f64(int isa, int R, int N, int K, const double* A, int lda, const double* B,
                       int ldb, int acc, double* C, int ldc, int* idx, double* val)
    long eq_count_nonzero_f32(int isa, int R, int K, const float* A, int lda)
    long eq_count_nonzero_f64(int isa, int R, int K, const double* A, int lda)
    long eq_count_nonfinite_f32(int isa, int R, int K, const float* A, int lda)
    long eq_count_nonfinite_f64(int isa, int R, int K, const double* A, int lda)
    long eq_step_delta_f32(int isa, size_t n, const float* s, float* prev, float* delta)
    long eq_step_delta_f64(int isa, size_t n, const double* s, double* prev, double* delta)

cdef extern from "sync.h" nogil:
    int eq_take_next(int* counter)
    void eq_signal(int* flag)
    void eq_wait(int* flag)

cdef extern from "state_update.h" nogil:
    void eq_euler_f32(int isa, float* s, const float* h, const float* d, const float* b, const float* t,
                      int rows, int n, float eps, float beta, int clip)
    void eq_euler_f64(int isa, double* s, const double* h, const double* d, const double* b, const double* t,
                      int rows, int n, double eps, double beta, int clip)
    void eq_exact_f32(int isa, float* s, const float* h, const float* d, const float* b, const float* t,
                      int rows, int n, float beta, int clip)
    void eq_exact_f64(int isa, double* s, const double* h, const double* d, const double* b, const double* t,
                      int rows, int n, double beta, int clip)
    int EQ_TOP_DOWN_MAX_K
    void eq_euler_td_f32(int isa, float* s, const float* h, const float* d, const float* b, const float* a,
                         int lda, int K, const float* wt, int rows, int n, float eps, int clip)
    void eq_euler_td_f64(int isa, double* s, const double* h, const double* d, const double* b,
                         const double* a, int lda, int K, const double* wt, int rows, int n, double eps,
                         int clip)
    void eq_exact_td_f32(int isa, float* s, const float* h, const float* d, const float* b, const float* a,
                         int lda, int K, const float* wt, int rows, int n, int clip)
    void eq_exact_td_f64(int isa, double* s, const double* h, const double* d, const double* b,
                         const double* a, int lda, int K, const double* wt, int rows, int n, int clip)

cdef extern from "conv_kernels.h" nogil:
    void eq_max_weight_update_f32(int isa, const float* src, int c, int h, int w, int k, int pad,
                                  const float* values, const int* win, int c_out, int ho, int wo, int wc,
                                  int ci0, int ci1, float* weights, float* scratch)
    void eq_max_weight_update_f64(int isa, const double* src, int c, int h, int w, int k, int pad,
                                  const double* values, const int* win, int c_out, int ho, int wo, int wc,
                                  int ci0, int ci1, double* weights, double* scratch)
    void eq_im2row_f32(int isa, const float* src, int c, int h, int w, int k, int pad,
                       int hc, int wc, float* rows, size_t ld)
    void eq_im2row_f64(int isa, const double* src, int c, int h, int w, int k, int pad,
                       int hc, int wc, double* rows, size_t ld)
    void eq_unpool_max_f32(int isa, const float* above, const int* win, int c, int hc, int wc,
                           float* g)
    void eq_unpool_max_f64(int isa, const double* above, const int* win, int c, int hc, int wc,
                           double* g)
    void eq_unpool_avg_f32(int isa, const float* above, int c, int hc, int wc, float* g)
    void eq_unpool_avg_f64(int isa, const double* above, int c, int hc, int wc, double* g)
    void eq_pad_map_f32(int isa, const float* src, int c, int h, int w, int pad, float* padded)
    void eq_pad_map_f64(int isa, const double* src, int c, int h, int w, int pad, double* padded)
    void eq_transpose_f32(int isa, const float* src, int rows, int cols, int acc, float* dst)
    void eq_transpose_f64(int isa, const double* src, int rows, int cols, int acc, double* dst)
    void eq_transpose_block_f32(int isa, const float* src, int rows, int cols, size_t lds, float* dst, size_t ldd)
    void eq_transpose_block_f64(int isa, const double* src, int rows, int cols, size_t lds, double* dst,
                                size_t ldd)
    void eq_transpose_add_block_f32(int isa, const float* src, int rows, int cols, size_t lds, float* dst,
                                    size_t ldd)
    void eq_transpose_add_block_f64(int isa, const double* src, int rows, int cols, size_t lds, double* dst,
                                    size_t ldd)
    void eq_pool_max_cl_f32(int isa, const float* conv, int c, int hc, int wc, float* out, int* win)
    void eq_pool_max_cl_f64(int isa, const double* conv, int c, int hc, int wc, double* out, int* win)
    void eq_pool_avg_cl_f32(int isa, const float* conv, int c, int hc, int wc, float* out)
    void eq_pool_avg_cl_f64(int isa, const double* conv, int c, int hc, int wc, double* out)
    void eq_unpool_avg_cl_f32(int isa, const float* above, int c, int hc, int wc, float* g)
    void eq_unpool_avg_cl_f64(int isa, const double* above, int c, int hc, int wc, double* g)
    void eq_max_transposed_f32(int isa, const float* above, const int* win, const float* taps,
                               int c_out, int ho, int wo, int hc, int wc, int c_in, int h_in, int w_in,
                               int k, int pad, float* work, float* out_cl)
    void eq_max_transposed_f64(int isa, const double* above, const int* win, const double* taps,
                               int c_out, int ho, int wo, int hc, int wc, int c_in, int h_in, int w_in,
                               int k, int pad, double* work, double* out_cl)

cdef extern from "winograd.h" nogil:
    int eq_wino_tile(int k)
    void eq_wino_matrices(int m, int k, double* at, double* g, double* bt)
    size_t eq_wino_scratch(int c_in, int c_out, int k, int hc, int wc)
    void eq_wino_weights_f32(int isa, const float* wt, int c_in, int c_out, int k, int alpha,
                             const float* g, int flip, float* u, float* tmp)
    void eq_wino_weights_f64(int isa, const double* wt, int c_in, int c_out, int k, int alpha,
                             const double* g, int flip, double* u, double* tmp)
    int eq_wino_paired_float(const float* mats, int m, int k)
    int eq_wino_paired_double(const double* mats, int m, int k)
    void eq_wino_input_f32(int isa, const float* src, int c, int h, int w, int pad, int k, int m,
                           const float* bt, int paired, int hc, int wc, float* cl, unsigned char* any,
                           unsigned char* field, float* v)
    void eq_wino_input_f64(int isa, const double* src, int c, int h, int w, int pad, int k, int m,
                           const double* bt, int paired, int hc, int wc, double* cl, unsigned char* any,
                           unsigned char* field, double* v)
    void eq_wino_output_f32(int isa, const float* mm, int c, int k, int m, const float* at, int paired,
                            int hc, int wc, const unsigned char* field, float* conv)
    void eq_wino_output_f64(int isa, const double* mm, int c, int k, int m, const double* at, int paired,
                            int hc, int wc, const unsigned char* field, double* conv)
