/* The update of one half of W_0 (eq_sparse_f32, AVX-512, blocks of 64 rows) on one core; x from /tmp/fb/x.bin (docs/data/perf/eighth-session-zen4.txt, part 7). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "sparse_rows.h"
#define NB 100
#define B 20
#define NIN 784
#define N 512
#define LDW 528
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
int main(int argc,char**argv){
  int isa=2;
  float*X=malloc(sizeof(float)*NB*B*NIN); FILE*f=fopen("/tmp/fb/x.bin","rb"); if(fread(X,sizeof(float),NB*B*NIN,f)){} fclose(f);
  float*W=aligned_alloc(64,sizeof(float)*NIN*LDW); for(int i=0;i<NIN*LDW;i++)W[i]=(rand()/(float)RAND_MAX-0.5f)*0.1f;
  float*D=aligned_alloc(64,sizeof(float)*B*LDW); for(int i=0;i<B*LDW;i++)D[i]=(rand()%4==0)?(rand()/(float)RAND_MAX-0.5f)*1e-3f:0;
  float*xt=malloc(sizeof(float)*64*B*NB*13); int*idx=malloc(sizeof(int)*64*B); float*val=aligned_alloc(64,sizeof(float)*64*B);
  /* x^T blocks of every mini-batch, built once (not timed) */
  for(int it=0;it<NB;it++) for(int k=0;k<392;k++) for(int r=0;r<B;r++) xt[(size_t)it*392*B+k*B+r]=X[(size_t)it*B*NIN+r*NIN+k];
  double t=0;
  for(int rep=0;rep<40;rep++) for(int it=0;it<NB;it++){
    double t0=now();
    for(int r0=0;r0<392;r0+=64){int rows=392-r0<64?392-r0:64;
      eq_sparse_f32(isa,rows,N,B,xt+(size_t)it*392*B+r0*B,B,D,LDW,1,W+(size_t)r0*LDW,LDW,idx,val);}
    if(rep>0)t+=now()-t0;}
  printf("update of half 0: %.2f us (%g)\n",t/(39*NB)*1e6,W[1000]);
}
