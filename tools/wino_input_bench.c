/*
 * Winograd's input transform for the conv preset's second layer (F(4x4, 5x5),
 * alpha = 8, 32 channels of 12 x 12), one example, one core, process CPU time:
 * with B^T's pair structure (eq_wino_paired8: 32 multiply-adds per column)
 * against the dense 8 x 8 product (B^T with one coefficient perturbed so that
 * the check fails; its values are then wrong, only its time counts).
 *
 *   gcc -O3 -ffp-contract=fast -Isrc/eqcore tools/wino_input_bench.c -o /tmp/wino_input_bench -lm
 *   /tmp/wino_input_bench
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
   printf("%s %.2f us\n", which?"dense  ":"paired ", 1e6*(cpu()-t0)/n);} }
}
