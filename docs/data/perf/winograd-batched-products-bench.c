#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "dense_kernels.h"
static double now(void){struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t); return t.tv_sec+1e-9*t.tv_nsec;}
int main(){ int P=64, CI=32, CO=64, T=4, E=10;
 float *U=aligned_alloc(64,(size_t)P*CI*CO*4), *V=aligned_alloc(64,(size_t)P*E*T*CI*4), *M=aligned_alloc(64,(size_t)P*E*T*CO*4);
 for(size_t i=0;i<(size_t)P*CI*CO;i++) U[i]=rand()/(float)RAND_MAX; for(size_t i=0;i<(size_t)P*E*T*CI;i++) V[i]=rand()/(float)RAND_MAX;
 for(int rep=0;rep<3;rep++){
  double t0=now();
  for(int it=0;it<2000;it++) for(int e=0;e<E;e++) for(int p=0;p<P;p++)
     eq_gemm_f32(2,T,CO,CI,V+((size_t)p*E*T+e*T)*CI,CI,U+(size_t)p*CI*CO,CO,0,M+((size_t)p*E*T+e*T)*CO,CO);
  double t1=now();
  for(int it=0;it<2000;it++) for(int p=0;p<P;p++)
     eq_gemm_f32(2,E*T,CO,CI,V+(size_t)p*E*T*CI,CI,U+(size_t)p*CI*CO,CO,0,M+(size_t)p*E*T*CO,CO);
  double t2=now();
  double fl=2.0*P*T*CI*CO*E*2000;
  printf("per example (M=4): %.2f us/example %.1f GFLOP/s; batched (M=40): %.2f us/example %.1f GFLOP/s\n",(t1-t0)/2000/E*1e6,fl/(t1-t0)/1e9,(t2-t1)/2000/E*1e6,fl/(t2-t1)/1e9);
 }}
