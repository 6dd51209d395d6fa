/*
 * Winograd's transforms for the conv preset's second layer (F(4x4, 5x5),
 * alpha = 8), one example, one core, process CPU time: the input transform
 * (32 channels of 12 x 12) with B^T's pair structure (eq_wino_paired8: 32
 * multiply-adds per column) against the dense 8 x 8 product, and the output
 * transform (64 channels of 8 x 8) with A^T's (eq_wino_out_paired8) against
 * the dense 4 x 8 one. The dense runs get a matrix with one coefficient
 * perturbed so that the check fails: their values are then wrong, only their
 * time counts.
 *
 *   gcc -O3 -ffp-contract=fast -Isrc/eqcore tools/wino_transform_bench.c -o /tmp/wino_transform_bench -lm
 *   /tmp/wino_transform_bench
 *
 * Needs AVX-512. Results: docs/performance.md, "The max-pooled transposed convolution by windows".
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "winograd.h"
static double cpu(void){struct timespec t;clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t);return t.tv_sec+1e-9*t.tv_nsec;}
int main(){ int k=5,m=4,al=8,c=32,h=12,w=12,hc=8,wc=8,pad=0; double at[64],g[64],bt[64]; float bf[64], bg[64];
 eq_wino_matrices(m,k,at,g,bt); for(int i=0;i<64;i++) bg[i]=bf[i]=(float)bt[i]; bg[1]=1e-3f;
 float *in=malloc(4*c*h*w), *cl=malloc(4*64*64*c), *v=malloc(4*64*16*c); unsigned char any[4096], field[4096];
 for(int i=0;i<c*h*w;i++) in[i]=(float)rand()/RAND_MAX;
 for (int r=0;r<3;r++){ for (int which=0; which<2; which++){ int n=20000; double t0=cpu();
   for(int i=0;i<n;i++) eq_wino_input_f32_avx512(in,c,h,w,pad,k,m,which?bg:bf,hc,wc,cl,any,field,v);
   printf("input  %s %.2f us\n", which?"dense  ":"paired ", 1e6*(cpu()-t0)/n);} }
 float af[64], ag[64], *mm=malloc(4*64*4*64), *conv=malloc(4*64*64); unsigned char fl[64];
 for(int i=0;i<32;i++) ag[i]=af[i]=(float)at[i]; ag[8]=1e-3f;
 for(int i=0;i<64*4*64;i++) mm[i]=(float)rand()/RAND_MAX;
 for(int i=0;i<64;i++) fl[i]=1;
 for (int r=0;r<3;r++){ for (int which=0; which<2; which++){ int n=20000; double t0=cpu();
   for(int i=0;i<n;i++) eq_wino_output_f32_avx512(mm,64,k,m,which?ag:af,hc,wc,fl,conv);
   printf("output %s %.2f us\n", which?"dense  ":"paired ", 1e6*(cpu()-t0)/n);} }
}
