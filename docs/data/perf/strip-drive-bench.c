/*
 * One thread's drive x W_0 (20 MNIST rows, its 256 of 500 columns), three ways, in process
 * CPU time: the listed product (dense_kernels.h, what the drive runs), and the "strip"
 * products: every row compacted first, then column tiles of 4 (drive_blocks4) or 8
 * (drive_blocks8, run with an argument) vectors, the k in chunks, each row adding its
 * non-zero terms of the chunk, so that the chunk's lines of W_0 serve all 20 rows from L1.
 * The last line checks that the strips give the listed product's bits.
 *
 *   python -c "import numpy as np; from eqprop.datasets import load_dataset; d = load_dataset('mnist');
 *       x = d.x_train[np.random.default_rng(0).permutation(len(d.x_train))[:1000]];
 *       x.astype(np.float32).tofile('/tmp/nb/batches.bin')"
 *   gcc -O3 -Isrc/eqcore docs/data/perf/strip-drive-bench.c -o /tmp/strips && /tmp/strips && /tmp/strips 8
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <immintrin.h>
#include "dense_kernels.h"
#include "sparse_rows.h"
static double now(void){struct timespec t;clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t);return t.tv_sec+1e-9*t.tv_nsec;}
#define K 784
#define NW 500
#define R 20
/* column blocks of 16 outer, rows inner over each row's listed non-zeros, k in chunks */
EQ_TARGET_AVX512
static void drive_blocks(int rows, int c0, int c1, const float *x, const float *W, float *D,
                         int *idx, float *val, int *nnz, int chunk) {
    for (int r = 0; r < rows; r++) nnz[r] = eq_compact_f32_avx512(x + (size_t)r * K, K, idx + (size_t)r * K, val + (size_t)r * K);
    int starts[R];
    for (int c = c0; c < c1; c += 16) {
        __mmask16 m = c1 - c >= 16 ? 0xFFFF : (__mmask16)((1u << (c1 - c)) - 1);
        for (int r = 0; r < rows; r++) starts[r] = 0;
        __m512 acc[R];
        for (int r = 0; r < rows; r++) acc[r] = _mm512_setzero_ps();
        for (int k0 = 0; k0 < K; k0 += chunk) {
            int k1 = k0 + chunk;
            for (int r = 0; r < rows; r++) {
                const int *ir = idx + (size_t)r * K; const float *vr = val + (size_t)r * K;
                int q = starts[r], n = nnz[r];
                __m512 a = acc[r];
                for (; q < n && ir[q] < k1; q++)
                    a = _mm512_fmadd_ps(_mm512_set1_ps(vr[q]), _mm512_maskz_loadu_ps(m, W + (size_t)ir[q] * NW + c), a);
                acc[r] = a; starts[r] = q;
            }
        }
        for (int r = 0; r < rows; r++) _mm512_mask_storeu_ps(D + (size_t)r * NW + c, m, acc[r]);
    }
}

EQ_TARGET_AVX512
static void drive_blocks4(int rows, int c0, int c1, const float *x, const float *W, float *D,
                         int *idx, float *val, int *nnz, int chunk) {
    for (int r = 0; r < rows; r++) nnz[r] = eq_compact_f32_avx512(x + (size_t)r * K, K, idx + (size_t)r * K, val + (size_t)r * K);
    int starts[R];
    for (int c = c0; c < c1; c += 64) {  /* assumes c1 - c0 multiple of 64 */
        for (int r = 0; r < rows; r++) starts[r] = 0;
        __m512 acc[R][4];
        for (int r = 0; r < rows; r++) for (int j = 0; j < 4; j++) acc[r][j] = _mm512_setzero_ps();
        for (int k0 = 0; k0 < K; k0 += chunk) {
            int k1 = k0 + chunk;
            for (int r = 0; r < rows; r++) {
                const int *ir = idx + (size_t)r * K; const float *vr = val + (size_t)r * K;
                int q = starts[r], n = nnz[r];
                __m512 a0 = acc[r][0], a1 = acc[r][1], a2 = acc[r][2], a3 = acc[r][3];
                for (; q < n && ir[q] < k1; q++) {
                    const float *w = W + (size_t)ir[q] * NW + c;
                    __m512 v = _mm512_set1_ps(vr[q]);
                    a0 = _mm512_fmadd_ps(v, _mm512_loadu_ps(w), a0);
                    a1 = _mm512_fmadd_ps(v, _mm512_loadu_ps(w + 16), a1);
                    a2 = _mm512_fmadd_ps(v, _mm512_loadu_ps(w + 32), a2);
                    a3 = _mm512_fmadd_ps(v, _mm512_loadu_ps(w + 48), a3);
                }
                acc[r][0] = a0; acc[r][1] = a1; acc[r][2] = a2; acc[r][3] = a3; starts[r] = q;
            }
        }
        for (int r = 0; r < rows; r++) for (int j = 0; j < 4; j++) _mm512_storeu_ps(D + (size_t)r * NW + c + 16 * j, acc[r][j]);
    }
}

EQ_TARGET_AVX512
static void drive_blocks8(int rows, int c0, int c1, const float *x, const float *W, float *D,
                         int *idx, float *val, int *nnz, int chunk) {
    for (int r = 0; r < rows; r++) nnz[r] = eq_compact_f32_avx512(x + (size_t)r * K, K, idx + (size_t)r * K, val + (size_t)r * K);
    int starts[R];
    for (int c = c0; c < c1; c += 128) {
        for (int r = 0; r < rows; r++) starts[r] = 0;
        __m512 acc[R][8];
        for (int r = 0; r < rows; r++) for (int j = 0; j < 8; j++) acc[r][j] = _mm512_setzero_ps();
        for (int k0 = 0; k0 < K; k0 += chunk) {
            int k1 = k0 + chunk;
            for (int r = 0; r < rows; r++) {
                const int *ir = idx + (size_t)r * K; const float *vr = val + (size_t)r * K;
                int q = starts[r], n = nnz[r];
                __m512 a[8];
                for (int j = 0; j < 8; j++) a[j] = acc[r][j];
                for (; q < n && ir[q] < k1; q++) {
                    const float *w = W + (size_t)ir[q] * NW + c;
                    __m512 v = _mm512_set1_ps(vr[q]);
                    for (int j = 0; j < 8; j++) a[j] = _mm512_fmadd_ps(v, _mm512_loadu_ps(w + 16 * j), a[j]);
                }
                for (int j = 0; j < 8; j++) acc[r][j] = a[j];
                starts[r] = q;
            }
        }
        for (int r = 0; r < rows; r++) for (int j = 0; j < 8; j++) _mm512_storeu_ps(D + (size_t)r * NW + c + 16 * j, acc[r][j]);
    }
}
int main(int argc, char **argv){
  int nb = 50; float *X = malloc(sizeof(float)*nb*R*K);
  FILE *f=fopen("/tmp/nb/batches.bin","rb"); fread(X,sizeof(float),nb*R*K,f); fclose(f);
  float *W = aligned_alloc(64, sizeof(float)*K*NW); for(int i=0;i<K*NW;i++) W[i]=(float)rand()/RAND_MAX-0.5f;
  float *D1 = aligned_alloc(64, sizeof(float)*R*NW), *D2 = aligned_alloc(64, sizeof(float)*R*NW);
  int *kidx = malloc(sizeof(int)*K), *idx = malloc(sizeof(int)*R*K), nnz[R]; float *val = malloc(sizeof(float)*R*K);
  int c0 = 0, c1 = 256;
  int chunks[] = {16, 32, 64, 128};
  for (int round=0; round<3; round++) {
    double t=now();
    for(int rep=0;rep<20;rep++) for(int b=0;b<nb;b++)
      eq_listed_f32(2, R, c1-c0, K, X+(size_t)b*R*K, K, W+c0, NW, 0, D1+c0, NW, kidx);
    double tl=(now()-t)/(20*nb)*1e6;
    printf("listed: %.1f us", tl);
    for (int ci=0; ci<4; ci++) {
      t=now();
      for(int rep=0;rep<20;rep++) for(int b=0;b<nb;b++)
        if (argc > 1) drive_blocks8(R, c0, c1, X+(size_t)b*R*K, W, D2, idx, val, nnz, chunks[ci]); else drive_blocks4(R, c0, c1, X+(size_t)b*R*K, W, D2, idx, val, nnz, chunks[ci]);
      printf(" | blocks chunk %d: %.1f us", chunks[ci], (now()-t)/(20*nb)*1e6);
    }
    printf("\n");
  }
  /* check equality on last batch */
  int b = nb-1; eq_listed_f32(2, R, c1-c0, K, X+(size_t)b*R*K, K, W+c0, NW, 0, D1+c0, NW, kidx);
  drive_blocks4(R, c0, c1, X+(size_t)b*R*K, W, D2, idx, val, nnz, 64);
  int diff=0; for(int r=0;r<R;r++) for(int c=c0;c<c1;c++) diff += D1[r*NW+c]!=D2[r*NW+c];
  printf("bitwise differences: %d of %d\n", diff, R*(c1-c0));
}
