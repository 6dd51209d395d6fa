#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
__attribute__((target("avx512f,avx512vl"))) int comp_full(int n,int A,const float*src,int ld,const int*groups,float*dst,int ldd){
  int at=0; for(int a=0;a<A;a++){ at=0; for(int i=0,h=0;i<n;i+=16,h++){ __mmask16 m=groups[h]; _mm512_storeu_ps(dst+a*ldd+at,_mm512_maskz_compress_ps(m,_mm512_loadu_ps(src+a*ld+i))); at+=__builtin_popcount(m);} } return at;}
__attribute__((target("avx512f,avx512vl"))) int comp_mask(int n,int A,const float*src,int ld,const int*groups,float*dst,int ldd){
  int at=0; for(int a=0;a<A;a++){ at=0; for(int i=0,h=0;i<n;i+=16,h++){ __mmask16 m=groups[h]; int c=__builtin_popcount(m); _mm512_mask_storeu_ps(dst+a*ldd+at,(__mmask16)((1u<<c)-1),_mm512_maskz_compress_ps(m,_mm512_loadu_ps(src+a*ld+i))); at+=c;} } return at;}
// precomputed offsets, group-major inner loop over arrays
__attribute__((target("avx512f,avx512vl"))) int comp_gm(int n,int A,const float*src,int ld,const int*groups,float*dst,int ldd){
  int at=0; for(int i=0,h=0;i<n;i+=16,h++){ __mmask16 m=groups[h]; for(int a=0;a<A;a++) _mm512_storeu_ps(dst+a*ldd+at,_mm512_maskz_compress_ps(m,_mm512_loadu_ps(src+a*ld+i))); at+=__builtin_popcount(m);} return at;}
// permutexvar with LUT of 8-bit halves
static unsigned long long lut[256]; // 8 nibble indices
__attribute__((target("avx512f,avx512vl"))) int comp_perm(int n,int A,const float*src,int ld,const int*groups,float*dst,int ldd){
  int at=0; for(int a=0;a<A;a++){ at=0; for(int i=0,h=0;i<n;i+=16,h++){ unsigned m=groups[h]; 
    __m512i ix=_mm512_maskz_compress_epi32((__mmask16)m,_mm512_setr_epi32(0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15));
    _mm512_storeu_ps(dst+a*ldd+at,_mm512_permutexvar_ps(ix,_mm512_loadu_ps(src+a*ld+i))); at+=__builtin_popcount(m);} } return at;}
__attribute__((target("avx512f,avx512vl"))) int comp_gmperm(int n,int A,const float*src,int ld,const int*groups,float*dst,int ldd){
  int at=0; const __m512i io=_mm512_setr_epi32(0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15);
  for(int i=0,h=0;i<n;i+=16,h++){ __mmask16 m=groups[h]; __m512i ix=_mm512_maskz_compress_epi32(m,io);
    for(int a=0;a<A;a++) _mm512_storeu_ps(dst+a*ldd+at,_mm512_permutexvar_ps(ix,_mm512_loadu_ps(src+a*ld+i))); at+=__builtin_popcount(m);} return at;}
__attribute__((target("avx512f,avx512vl"))) int copy_only(int n,int A,const float*src,int ld,const int*groups,float*dst,int ldd){
  int at=0;
  for(int i=0,h=0;i<n;i+=16,h++){ __mmask16 m=groups[h];
    for(int a=0;a<A;a++) _mm512_storeu_ps(dst+a*ldd+at,_mm512_loadu_ps(src+a*ld+i)); at+=__builtin_popcount(m);} return at;}
__attribute__((target("avx512f,avx512vl"))) int comp_gmperm_mask(int n,int A,const float*src,int ld,const int*groups,float*dst,int ldd){
  int at=0; const __m512i io=_mm512_setr_epi32(0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15);
  for(int i=0,h=0;i<n;i+=16,h++){ __mmask16 m=groups[h]; __m512i ix=_mm512_maskz_compress_epi32(m,io); int c=__builtin_popcount(m); __mmask16 head=(__mmask16)((1u<<c)-1);
    for(int a=0;a<A;a++) _mm512_mask_storeu_ps(dst+a*ldd+at,head,_mm512_permutexvar_ps(ix,_mm512_loadu_ps(src+a*ld+i))); at+=c;} return at;}
int main(){ int n=512,A=13; static float src[13*512], dst[13*600+32]; static int groups[32]; srand(2);
  for(int i=0;i<13*512;i++) src[i]=i; for(int h=0;h<32;h++){ unsigned m=0; for(int l=0;l<16;l++) if(rand()%100<53) m|=1u<<l; groups[h]=m;}
  int R=100000; double t; int s=0;
  t=now(); for(int r=0;r<R;r++) s+=comp_full(n,A,src,512,groups,dst,600); printf("full storeu %.1f ns\n",(now()-t)/R*1e9);
  t=now(); for(int r=0;r<R;r++) s+=comp_mask(n,A,src,512,groups,dst,600); printf("mask storeu %.1f ns\n",(now()-t)/R*1e9);
  t=now(); for(int r=0;r<R;r++) s+=comp_gm(n,A,src,512,groups,dst,600); printf("group-major %.1f ns\n",(now()-t)/R*1e9);
  t=now(); for(int r=0;r<R;r++) s+=comp_perm(n,A,src,512,groups,dst,600); printf("permutexvar %.1f ns\n",(now()-t)/R*1e9);
  t=now(); for(int r=0;r<R;r++) s+=comp_gmperm(n,A,src,512,groups,dst,600); printf("group-major permutexvar %.1f ns\n",(now()-t)/R*1e9);
  t=now(); for(int r=0;r<R;r++) s+=copy_only(n,A,src,512,groups,dst,600); printf("copy only (unaligned stores) %.1f ns\n",(now()-t)/R*1e9);
  t=now(); for(int r=0;r<R;r++) s+=comp_gmperm_mask(n,A,src,512,groups,dst,600); printf("group-major permutexvar masked %.1f ns\n",(now()-t)/R*1e9);
  return s==1;}
