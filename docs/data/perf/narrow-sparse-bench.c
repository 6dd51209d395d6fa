#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "dense_kernels.h"
#include "sparse_rows.h"
EQ_TARGET_AVX512 static int cmp_only(const float*a,int K){int idx[512]; float val[512]; int n=eq_compact_f32_avx512(a,K,idx,val); return n+idx[n/2];}
static double now(void){struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t); return t.tv_sec+1e-9*t.tv_nsec;}
int main(int argc, char **argv){
  int R=20,K=500,N=10; double dens=argc>1?atof(argv[1]):0.26;
  float *A=aligned_alloc(64,R*K*4),*B=aligned_alloc(64,K*N*4+64),*BT=aligned_alloc(64,K*N*4),*C=aligned_alloc(64,R*N*4);
  srand(1);
  for(int i=0;i<R*K;i++) A[i]= (rand()/(double)RAND_MAX)<dens ? rand()/(double)RAND_MAX : 0;
  for(int i=0;i<K*N;i++) B[i]=rand()/(double)RAND_MAX-0.5;
  for(int k=0;k<K;k++) for(int n=0;n<N;n++) BT[n*K+k]=B[k*N+n];
  for (int rep=0; rep<3; rep++) {
  double t0=now(); for(int it=0;it<100000;it++){ eq_dot_f32(2,R,N,K,A,K,BT,K,0,C,N);} double t1=now();
  for(int it=0;it<100000;it++){ for(int r=0;r<R;r++) eq_narrow_row_f32(2,N,K,A+r*K,B,N,0,C+r*N,K);} double t2=now();
  long tot=0;
  for(int it=0;it<100000;it++){ for(int r=0;r<R;r++) tot+=cmp_only(A+r*K,K);} double t3=now();
  printf("dens %.2f: dot %.3f us, narrow %.3f us, compact only %.3f us (per 20 rows) %ld\n",dens,(t1-t0)*10,(t2-t1)*10,(t3-t2)*10, tot);
  }
}
