/* Built with gcc -O3 -ffp-contract=fast -Isrc/eqcore; reads /tmp/n9/h.bin (2,000 rows of trained mnist-1h hidden particles, 500 floats) and /tmp/n9/w1.bin (W_1, 500 x 10) (docs/data/perf/ninth-session-zen4.txt, part 7). */
/* 10 rows of trained hidden states (500 live of 512) @ W_1 (512 x 10): eq_dot (W_1^T) against a
   sparse-left product over each row's non-zero states (W_1 rows, masked 10-lane vectors). */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "dense_kernels.h"
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
#define NR 2000
#define K 512
#define N 10
__attribute__((target("avx512f,avx512vl,fma"))) static void sparse_narrow(int R, int n, int k, const float *A, int lda, const float *B, int ldb, float *C, int ldc) {
    __mmask16 live = (__mmask16)((1u << n) - 1);
    __m512i k16 = _mm512_setr_epi32(0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15);
    int idx[K] __attribute__((aligned(64))); float val[K] __attribute__((aligned(64)));
    for (int r = 0; r < R; r++) {
        const float *a = A + (size_t)r * lda;
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (int k0 = 0; k0 < k; k0 += K) {
            int nnz = 0;
            __m512i kk = _mm512_add_epi32(k16, _mm512_set1_epi32(k0));
            for (int j = k0; j < k0 + K && j < k; j += 16, kk = _mm512_add_epi32(kk, _mm512_set1_epi32(16))) {
                __mmask16 in = k - j >= 16 ? 0xFFFF : (__mmask16)((1u << (k - j)) - 1);
                __m512 v = _mm512_maskz_loadu_ps(in, a + j);
                __mmask16 nz = _mm512_mask_cmp_ps_mask(in, v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
                int cnt = __builtin_popcount(nz);
                __mmask16 head = (__mmask16)((1u << cnt) - 1);
                _mm512_mask_storeu_epi32(idx + nnz, head, _mm512_maskz_compress_epi32(nz, kk));
                _mm512_mask_storeu_ps(val + nnz, head, _mm512_maskz_compress_ps(nz, v));
                nnz += cnt;
            }
            int q = 0;
            for (; q + 4 <= nnz; q += 4) {
                s0 = _mm512_fmadd_ps(_mm512_set1_ps(val[q]), _mm512_maskz_loadu_ps(live, B + (size_t)idx[q] * ldb), s0);
                s1 = _mm512_fmadd_ps(_mm512_set1_ps(val[q + 1]), _mm512_maskz_loadu_ps(live, B + (size_t)idx[q + 1] * ldb), s1);
                s2 = _mm512_fmadd_ps(_mm512_set1_ps(val[q + 2]), _mm512_maskz_loadu_ps(live, B + (size_t)idx[q + 2] * ldb), s2);
                s3 = _mm512_fmadd_ps(_mm512_set1_ps(val[q + 3]), _mm512_maskz_loadu_ps(live, B + (size_t)idx[q + 3] * ldb), s3);
            }
            for (; q < nnz; q++)
                s0 = _mm512_fmadd_ps(_mm512_set1_ps(val[q]), _mm512_maskz_loadu_ps(live, B + (size_t)idx[q] * ldb), s0);
        }
        _mm512_mask_storeu_ps(C + (size_t)r * ldc, live, _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
    }
}
int main(int argc, char **argv) {
    int compress_mode = argc > 1 ? atoi(argv[1]) : 0; (void)compress_mode;
    float *H = aligned_alloc(64, sizeof(float) * NR * K); memset(H, 0, sizeof(float) * NR * K);
    float *h500 = malloc(sizeof(float) * NR * 500); FILE *f = fopen("/tmp/n9/h.bin", "rb"); if (fread(h500, 4, NR * 500, f)) {} fclose(f);
    for (int r = 0; r < NR; r++) memcpy(H + (size_t)r * K, h500 + (size_t)r * 500, 500 * 4);
    float *W = aligned_alloc(64, sizeof(float) * K * N); memset(W, 0, sizeof(float) * K * N);
    f = fopen("/tmp/n9/w1.bin", "rb"); if (fread(W, 4, 500 * N, f)) {} fclose(f);
    float *WT = aligned_alloc(64, sizeof(float) * N * K);
    for (int i = 0; i < K; i++) for (int j = 0; j < N; j++) WT[j * K + i] = W[i * N + j];
    float *C1 = malloc(sizeof(float) * NR * N), *C2 = malloc(sizeof(float) * NR * N);
    double td = 1e9, ts = 1e9;
    for (int rep = 0; rep < 50; rep++) {
        double t0 = now();
        for (int r = 0; r < NR; r += 10) eq_dot_f32(2, 10, N, K, H + (size_t)r * K, K, WT, K, 0, C1 + r * N, N);
        double t1 = now();
        for (int r = 0; r < NR; r += 10) sparse_narrow(10, N, K, H + (size_t)r * K, K, W, N, C2 + r * N, N);
        double t2 = now();
        if (t1 - t0 < td) td = t1 - t0;
        if (t2 - t1 < ts) ts = t2 - t1;
    }
    double err = 0; for (int i = 0; i < NR * N; i++) { double d = C1[i] - C2[i]; if (d < 0) d = -d; if (d > err) err = d; }
    long nnz = 0; for (int i = 0; i < NR * K; i++) nnz += H[i] != 0;
    printf("per 10 rows: dense eq_dot %.3f us, sparse %.3f us (max diff %.2e, %.1f%% non-zero)\n", td / (NR / 10) * 1e6, ts / (NR / 10) * 1e6, err, 100.0 * nnz / (NR * 500));
}
