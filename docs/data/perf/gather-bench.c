/*
 * The compiled loop's gather of one 784-500-10 mini-batch from memory: 20 random rows of x
 * (20,000 x 784 floats, 62 MB) and of the particles (20,000 x 510 floats, 40 MB), after 32 MB
 * of other writes have evicted them from the caches; wall time per gather, three ways: memcpy
 * row by row, every line prefetched first, or the lines of the row two ahead prefetched.
 *
 *   gcc -O2 docs/data/perf/gather-bench.c -o /tmp/gather && /tmp/gather
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <immintrin.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
#define N 20000
#define NIN 784
#define NP 510
#define M 20
static void pf_row(const void *p, size_t bytes){ const char *c=p; for(size_t o=0;o<bytes;o+=64) _mm_prefetch(c+o,_MM_HINT_T0);}
int main(){
  float *x=malloc(sizeof(float)*N*NIN), *part=malloc(sizeof(float)*N*NP), *xb=malloc(4*M*NIN), *pb=malloc(4*M*NP);
  float *junk=malloc(64<<20);
  for(size_t i=0;i<(size_t)N*NIN;i++)x[i]=i%3; for(size_t i=0;i<(size_t)N*NP;i++)part[i]=i%5;
  long idx[M]; srand(3);
  for(int mode=0;mode<3;mode++){ double tot=0; int reps=300;
    for(int rep=0;rep<reps;rep++){
      for(int i=0;i<M;i++) idx[i]=rand()%N;
      memset(junk,rep,32<<20); /* evict */
      double t0=now();
      if(mode==1){ for(int i=0;i<M;i++){ pf_row(x+idx[i]*NIN,NIN*4); pf_row(part+idx[i]*NP,NP*4);} }
      for(int i=0;i<M;i++){
        if(mode==2 && i+2<M){ pf_row(x+idx[i+2]*NIN,NIN*4); pf_row(part+idx[i+2]*NP,NP*4); }
        memcpy(xb+i*NIN,x+idx[i]*NIN,NIN*4); memcpy(pb+i*NP,part+idx[i]*NP,NP*4);}
      tot+=now()-t0;}
    printf("mode %d (%s): %.1f us per gather\n",mode, mode==0?"memcpy":mode==1?"all prefetched first":"2 rows ahead", 1e6*tot/reps);}
  return 0;}
