/*
 * The output layer's bottom-up product of 784-500-10 on one thread's 10 rows: eq_dot_f32 (AVX-512),
 * C (10 x 10) = A (10 x 500) @ B (B^T given, 10 x 500), with A's and B^T's rows LDA and LDB floats
 * apart (500: unpadded; 528: padded, _engine.padded_rows), in process CPU time.
 *
 *   gcc -O3 -DLDA=500 -DLDB=500 -Isrc/eqcore docs/data/perf/dot-bench.c -o /tmp/dot && /tmp/dot
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "dense_kernels.h"
static double now(void){struct timespec t;clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t);return t.tv_sec+1e-9*t.tv_nsec;}
int main(){
  float *A=aligned_alloc(64,4*10*LDA), *BT=aligned_alloc(64,4*10*LDB), *C=malloc(4*100);
  for(int i=0;i<10*LDA;i++)A[i]=(i%3)*0.3f; for(int i=0;i<10*LDB;i++)BT[i]=(i%7)*0.01f;
  for(int round=0;round<3;round++){double t=now(); int n=200000;
    for(int it=0;it<n;it++) eq_dot_f32(2,10,10,500,A,LDA,BT,LDB,0,C,10);
    if(round==2) printf("A ld %d, B^T ld %d: %.3f us per 10 x 10 x 500\n",LDA,LDB,(now()-t)/n*1e6);}
  return 0;}
