#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "simd.h"
static double now(void){struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t); return t.tv_sec+1e-9*t.tv_nsec;}
#define EQ_DEFINE_COUNT(NAME, T, ATTR) \
    ATTR static long NAME(int R, int K, const T *A, int lda) { \
        long n = 0; \
        for (int r = 0; r < R; r++) { \
            const T *a = A + (size_t)r * lda; int m = 0; \
            for (int k = 0; k < K; k++) m += a[k] != 0; \
            n += m; } \
        return n; }
EQ_DEFINE_COUNT(c_generic, float, )
EQ_DEFINE_COUNT(c_avx2, float, EQ_TARGET_AVX2)
EQ_DEFINE_COUNT(c_avx512, float, EQ_TARGET_AVX512)
int main(){ int R=20,K=784; float *A=malloc(R*K*4); srand(1); for(int i=0;i<R*K;i++) A[i]=rand()%5==0; long t=0;
 long (*f[3])(int,int,const float*,int)={c_generic,c_avx2,c_avx512}; const char*nm[3]={"generic","avx2","avx512"};
 for(int v=0;v<3;v++) for(int rep=0;rep<2;rep++){ double t0=now(); for(int it=0;it<20000;it++){ t+=f[v](R,K,A,K); A[it%100]+=0;} double t1=now(); printf("%s count 20x784: %.2f us (%ld)\n",nm[v],(t1-t0)/20000*1e6, f[v](R,K,A,K));} return t>0?0:1;}
