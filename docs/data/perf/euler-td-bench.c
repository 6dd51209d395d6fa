/*
 * The hidden layer's fused Euler step of 784-500-10 on one thread's 10 rows (eq_euler_td_f32, AVX-512:
 * the output's top-down input over its nk non-zero units, the drive, the bias, the step and the clip),
 * for rows of NN floats (500: the network's own rows, 3 in 4 of them starting inside a cache line; 496,
 * 512, 528: whole lines), buffers 64-byte aligned, in process CPU time; per vector of 16 units.
 *
 *   gcc -O3 -DNN=500 -Isrc/eqcore docs/data/perf/euler-td-bench.c -o /tmp/td && /tmp/td
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "state_update.h"
static double now(void){struct timespec t;clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t);return t.tv_sec+1e-9*t.tv_nsec;}
int main(){
  int rows=10,n=NN,K=10;
  float *s=aligned_alloc(64,4*rows*n+64),*d=aligned_alloc(64,4*rows*n+64),*b=aligned_alloc(64,4*n+64),*a=malloc(4*rows*K),*wt=aligned_alloc(64,4*K*n+64);
  for(int i=0;i<rows*n;i++){s[i]=(i%5)*0.2f;d[i]=((i%7)-3)*0.1f;} for(int i=0;i<n;i++)b[i]=0.01f*(i%3);
  for(int i=0;i<K*n;i++)wt[i]=((i%11)-5)*0.01f;
  int nks[]={1,2,3,10};
  for(int t=0;t<4;t++){ int nk=nks[t];
    for(int r=0;r<rows;r++)for(int k=0;k<K;k++)a[r*K+k]= k<nk ? 0.3f+0.1f*k : 0.0f;
    double best=1e9;
    for(int round=0;round<5;round++){double t0=now(); int N=100000;
      for(int it=0;it<N;it++) eq_euler_td_f32(2,s,NULL,d,b,a,K,K,wt,rows,n,0.5f,1);
      double e=(now()-t0)/N; if(e<best)best=e;}
    printf("nk %d: %.3f us per 10 rows x NN (per vector: %.2f ns)\n",nk,best*1e6,best*1e9/(rows*(n/16)));}
  return 0;}
