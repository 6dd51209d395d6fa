/* Built with gcc -O3 -ffp-contract=fast -Isrc/eqcore; run with taskset -c 1 (docs/data/perf/ninth-session-zen4.txt, part 12). */
/* Winograd's 64 per-position products of conv 2 (tiles x 32 @ 32 x 64, U 512 KB): one example at a time
   (4 tile rows) against 4 or 10 examples at once (16 or 40 rows), same work. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "dense_kernels.h"
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
int main(void){
  int A2=64, CI=32, CO=64, T=4, EX=10;
  float *U=aligned_alloc(64,sizeof(float)*A2*CI*CO), *V=aligned_alloc(64,sizeof(float)*A2*EX*T*CI), *M=aligned_alloc(64,sizeof(float)*A2*EX*T*CO);
  for(int i=0;i<A2*CI*CO;i++)U[i]=(rand()%100)*0.01f; for(int i=0;i<A2*EX*T*CI;i++)V[i]=(rand()%100)*0.01f;
  for(int g=1; g<=EX; g = g==1?2:(g==2?5:(g==5?10:11))){
    double best=1e9;
    for(int rep=0;rep<30;rep++){double t0=now();
      for(int e0=0;e0<EX;e0+=g)               /* groups of g examples: V laid out [pos][example][tile][ci] */
        for(int p=0;p<A2;p++) eq_gemm_f32(2, g*T, CO, CI, V+((size_t)p*EX+e0)*T*CI, CI, U+(size_t)p*CI*CO, CO, 0, M+((size_t)p*EX+e0)*T*CO, CO);
      double t=now()-t0; if(t<best)best=t;}
    printf("examples per product %2d: %.2f us for 10 examples (%.1f GFLOP/s)\n", g, best*1e6, 2.0*A2*EX*T*CI*CO/best*1e-9);
  }
}
