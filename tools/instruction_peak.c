/*
 * The cores' arithmetic peak: 16 independent chains of _mm512_fmadd_ps, then of
 * _mm512_dpbf16_ps, timed in process CPU time (so another process on the other core does not
 * count). Needs AVX-512 F and BF16.
 *
 *   gcc -O2 tools/instruction_peak.c -o /tmp/instruction_peak && /tmp/instruction_peak
 */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
static double cpu(void){struct timespec t;clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t);return t.tv_sec+1e-9*t.tv_nsec;}
__attribute__((target("avx512f,avx512bf16"))) int main(void){
  enum{A=16}; long n=200000000L/A;
  __m512 s[A]; for(int i=0;i<A;i++) s[i]=_mm512_set1_ps(0.f);
  __m512 x=_mm512_set1_ps(1e-9f), y=_mm512_set1_ps(1.0f);
  double t=cpu();
  for(long k=0;k<n;k++){
#pragma GCC unroll 16
    for(int i=0;i<A;i++) s[i]=_mm512_fmadd_ps(x,y,s[i]);
    __asm__ volatile("" : "+v"(x));
  }
  t=cpu()-t; float r=0; for(int i=0;i<A;i++) r+=_mm512_reduce_add_ps(s[i]);
  printf("fmadd_ps: %.1f GFLOP/s (one core, process CPU time) %g\n", 2.0*16*n*A/t/1e9, r);
  __m512bh bx=(__m512bh)_mm512_set1_epi32(0x3f803f80), by=bx;
  for(int i=0;i<A;i++) s[i]=_mm512_set1_ps(0.f);
  t=cpu();
  for(long k=0;k<n;k++){
#pragma GCC unroll 16
    for(int i=0;i<A;i++) s[i]=_mm512_dpbf16_ps(s[i],bx,by);
    __asm__ volatile("" : "+v"(bx));
  }
  t=cpu()-t; r=0; for(int i=0;i<A;i++) r+=_mm512_reduce_add_ps(s[i]);
  printf("dpbf16_ps: %.1f GFLOP/s (one core, process CPU time) %g\n", 4.0*16*n*A/t/1e9, r);
}
