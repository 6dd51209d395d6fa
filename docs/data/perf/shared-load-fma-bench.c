/* Cycles per iteration of the sparse products' inner loop on one core: mode 0 one row (8 loads of B, 8 multiply-adds), mode 1 two rows sharing each load (16), mode 2 four rows x 4 vectors (16). Usage: il ROWS_OF_B MODE (docs/data/perf/ninth-session-zen4.txt, part 4). */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
#define LD 528
int main(int argc,char**argv){
  int rows_in_l1 = argc>1?atoi(argv[1]):8; int mode=argc>2?atoi(argv[2]):0;
  int n=4096; int*idx=malloc(n*4); float*val=malloc(n*4);
  for(int i=0;i<n;i++){idx[i]=rand()%rows_in_l1; val[i]=rand()/(float)RAND_MAX;}
  float*B=aligned_alloc(64,sizeof(float)*LD*784); for(int i=0;i<LD*784;i++)B[i]=0.001f*(i%7);
  __m512 s0=_mm512_setzero_ps(),s1=s0,s2=s0,s3=s0,s4=s0,s5=s0,s6=s0,s7=s0;
  __m512 t0=s0,t1=s0,t2=s0,t3=s0,t4=s0,t5=s0,t6=s0,t7=s0;
  double best=1e9;
  for(int rep=0;rep<200;rep++){ double t=now();
   if(mode==0){
    for(int q=0;q<n;q++){const float*bp=B+(size_t)idx[q]*LD; __m512 a=_mm512_set1_ps(val[q]);
      s0=_mm512_fmadd_ps(a,_mm512_load_ps(bp),s0); s1=_mm512_fmadd_ps(a,_mm512_load_ps(bp+16),s1);
      s2=_mm512_fmadd_ps(a,_mm512_load_ps(bp+32),s2); s3=_mm512_fmadd_ps(a,_mm512_load_ps(bp+48),s3);
      s4=_mm512_fmadd_ps(a,_mm512_load_ps(bp+64),s4); s5=_mm512_fmadd_ps(a,_mm512_load_ps(bp+80),s5);
      s6=_mm512_fmadd_ps(a,_mm512_load_ps(bp+96),s6); s7=_mm512_fmadd_ps(a,_mm512_load_ps(bp+112),s7);}
   } else if(mode==2){ /* 4 rows x 4 vectors: 4 loads shared by 16 FMAs */
    for(int q=0;q<n;q++){const float*bp=B+(size_t)idx[q]*LD; __m512 a=_mm512_set1_ps(val[q]); __m512 c=_mm512_set1_ps(val[n-1-q]);
      __m512 e=_mm512_set1_ps(val[(q+7)&(n-1)]), g=_mm512_set1_ps(val[(q+13)&(n-1)]);
      __m512 b;
      b=_mm512_load_ps(bp); s0=_mm512_fmadd_ps(a,b,s0); t0=_mm512_fmadd_ps(c,b,t0); s4=_mm512_fmadd_ps(e,b,s4); t4=_mm512_fmadd_ps(g,b,t4);
      b=_mm512_load_ps(bp+16); s1=_mm512_fmadd_ps(a,b,s1); t1=_mm512_fmadd_ps(c,b,t1); s5=_mm512_fmadd_ps(e,b,s5); t5=_mm512_fmadd_ps(g,b,t5);
      b=_mm512_load_ps(bp+32); s2=_mm512_fmadd_ps(a,b,s2); t2=_mm512_fmadd_ps(c,b,t2); s6=_mm512_fmadd_ps(e,b,s6); t6=_mm512_fmadd_ps(g,b,t6);
      b=_mm512_load_ps(bp+48); s3=_mm512_fmadd_ps(a,b,s3); t3=_mm512_fmadd_ps(c,b,t3); s7=_mm512_fmadd_ps(e,b,s7); t7=_mm512_fmadd_ps(g,b,t7);}
   } else { /* two rows share each B load: 16 FMAs per 8 loads */
    for(int q=0;q<n;q++){const float*bp=B+(size_t)idx[q]*LD; __m512 a=_mm512_set1_ps(val[q]); __m512 c=_mm512_set1_ps(val[n-1-q]);
      __m512 b;
      b=_mm512_load_ps(bp); s0=_mm512_fmadd_ps(a,b,s0); t0=_mm512_fmadd_ps(c,b,t0);
      b=_mm512_load_ps(bp+16); s1=_mm512_fmadd_ps(a,b,s1); t1=_mm512_fmadd_ps(c,b,t1);
      b=_mm512_load_ps(bp+32); s2=_mm512_fmadd_ps(a,b,s2); t2=_mm512_fmadd_ps(c,b,t2);
      b=_mm512_load_ps(bp+48); s3=_mm512_fmadd_ps(a,b,s3); t3=_mm512_fmadd_ps(c,b,t3);
      b=_mm512_load_ps(bp+64); s4=_mm512_fmadd_ps(a,b,s4); t4=_mm512_fmadd_ps(c,b,t4);
      b=_mm512_load_ps(bp+80); s5=_mm512_fmadd_ps(a,b,s5); t5=_mm512_fmadd_ps(c,b,t5);
      b=_mm512_load_ps(bp+96); s6=_mm512_fmadd_ps(a,b,s6); t6=_mm512_fmadd_ps(c,b,t6);
      b=_mm512_load_ps(bp+112); s7=_mm512_fmadd_ps(a,b,s7); t7=_mm512_fmadd_ps(c,b,t7);}
   }
   t=now()-t; if(t<best)best=t;}
  __m512 s=_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s0,s1),_mm512_add_ps(s2,s3)),_mm512_add_ps(_mm512_add_ps(s4,s5),_mm512_add_ps(s6,s7)));
  s=_mm512_add_ps(s,_mm512_add_ps(_mm512_add_ps(t0,t1),_mm512_add_ps(t6,t7)));
  double fmas = n*8.0*(mode==2?2:mode?2:1);
  printf("rows %d mode %d: %.2f cycles per iteration at 3.66 GHz, %.2f FMA/cycle (%g)\n", rows_in_l1, mode, best*3.66e9/n, fmas/(best*3.66e9), _mm512_reduce_add_ps(s));
}
