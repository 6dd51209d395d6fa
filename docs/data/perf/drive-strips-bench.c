/* One half of the MNIST drive x W_0 (20 examples, eq_strips_f32, AVX-512) on one core; x from /tmp/fb/x.bin (docs/data/perf/eighth-session-zen4.txt, part 7, says how to write it). */
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
  int half=argc>1?atoi(argv[1]):0; int isa=2;
  float*X=malloc(sizeof(float)*NB*B*NIN); FILE*f=fopen("/tmp/fb/x.bin","rb"); if(fread(X,sizeof(float),NB*B*NIN,f)){} fclose(f);
  float*W=aligned_alloc(64,sizeof(float)*NIN*LDW); for(int i=0;i<NIN*LDW;i++)W[i]=(rand()/(float)RAND_MAX-0.5f)*0.1f;
  float*out=aligned_alloc(64,sizeof(float)*B*N);
  int*idx=malloc(sizeof(int)*200000); float*val=aligned_alloc(64,sizeof(float)*200000);
  int k0=half?392:0, k1=half?NIN:392; double t=0; double sum=0;
  for(int rep=0;rep<40;rep++) for(int it=0;it<NB;it++){
    const float*xn=X+(size_t)it*B*NIN; double t0=now();
    eq_strips_f32(isa,B,N,k1-k0,xn+k0,NIN,W+(size_t)k0*LDW,LDW,0,out,N,idx,val);
    if(rep>0)t+=now()-t0; sum+=out[5];}
  printf("EQ_STRIP_BYTES %d half %d: drive %.2f us (%g)\n",EQ_STRIP_BYTES,half,t/(39*NB)*1e6,sum);
}
