/*
 * eq_strips against the listed product it replaced for the drive (sparse_rows.h, dense_kernels.h):
 * 13 rows of a 20%-dense A, K = 300, every instruction set, 9 widths of C, with and without
 * accumulation; every element of C must be bitwise equal (columns outside the product untouched).
 *
 *   gcc -O3 -Isrc/eqcore docs/data/perf/strips-vs-listed-check.c -o /tmp/strips_check && /tmp/strips_check
 */
#include <stdio.h>
#include <stdlib.h>
#include "dense_kernels.h"
#include "sparse_rows.h"
int main(void){
  int R=13, K=300, Ns[] = {500, 250, 150, 128, 77, 37, 5, 16, 3};
  float *A = malloc(sizeof(float)*R*K), *B = malloc(sizeof(float)*K*500), *C1 = malloc(sizeof(float)*R*500), *C2 = malloc(sizeof(float)*R*500);
  int *kidx = malloc(sizeof(int)*K), *idx = malloc(sizeof(int)*EQ_STRIP_ROWS*(K+2)); float *val = malloc(sizeof(float)*EQ_STRIP_ROWS*(K+EQ_STRIP_TAIL));
  srand(1); for(int i=0;i<R*K;i++) A[i] = rand()%5==0 ? (float)rand()/RAND_MAX : 0; for(int i=0;i<K*500;i++) B[i]=(float)rand()/RAND_MAX-0.5f;
  int bad = 0;
  for (int isa=0; isa<3; isa++) for (int ni=0; ni<9; ni++) for (int acc=0; acc<2; acc++) {
    int N = Ns[ni];
    for(int i=0;i<R*500;i++) C1[i]=C2[i]=(float)i/100;
    eq_listed_f32(isa, R, N, K, A, K, B, 500, acc, C1, 500, kidx);
    eq_strips_f32(isa, R, N, K, A, K, B, 500, acc, C2, 500, idx, val);
    int d=0; for(int i=0;i<R*500;i++) d += C1[i]!=C2[i];
    if (d) { printf("isa %d N %d acc %d: %d differ\n", isa, N, acc, d); bad++; }
  }
  printf(bad ? "FAIL\n" : "strips == listed bitwise\n");
  return bad;
}
