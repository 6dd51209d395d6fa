/*
 * One core, one thread's columns (argv[1]: 256 of 500, or 500) of 784 x 500 W_0, 20 MNIST-like
 * examples: the fused update-and-drive kernel of fused-input-update-trial.patch against the update
 * and the drive it replaces (docs/performance.md, "Tried: the update of W_0 fused with the next drive").
 *
 *   git apply --include=src/eqcore/input_update.h docs/data/perf/fused-input-update-trial.patch
 *   gcc -O3 -ffp-contract=fast -Isrc/eqcore -o /tmp/bench docs/data/perf/fused-input-update-bench.c
 *   /tmp/bench 256; /tmp/bench 500
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "input_update.h"
static double now(void){struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+1e-9*t.tv_nsec;}
int main(int argc, char**argv){
  int n_in=784, n_out=500, m=20, reps=2000;
  int c1 = argc>1 ? atoi(argv[1]) : 500;
  float *xt=calloc(n_in*m,4), *xt1=calloc(n_in*m,4), *B=malloc(m*n_out*4), *W=malloc(n_in*n_out*4), *drive=malloc(m*n_out*4), *part=malloc(m*n_out*4), *val=malloc(64*4), *x=calloc(m*n_in,4);
  int *idx=malloc(64*4); unsigned char dense[13];
  srand(1);
  for(int i=0;i<n_in;i++){int row=i/28,col=i%28; float p=(row>4&&row<23&&col>4&&col<23)?0.35:0.02; for(int r=0;r<m;r++){ if(rand()<p*RAND_MAX){xt[i*m+r]=0.5f; x[r*n_in+i]=0.5f;} if(rand()<p*RAND_MAX) xt1[i*m+r]=0.7f;}}
  for(int t=0;t<13;t++){int cnt=0,rows=(t*64+64<=n_in?64:n_in-t*64); for(int i=t*64;i<t*64+rows;i++) for(int r=0;r<m;r++) cnt+=xt[i*m+r]!=0; dense[t]=!(cnt<=0.3*rows*m);}
  for(int i=0;i<m*n_out;i++) B[i]=1e-7f*(i%7);
  for(int i=0;i<n_in*n_out;i++) W[i]=0.01f*((i*37)%11-5);
  long nonzero = 0, listed = 0;  /* the drive's multiply-add terms: non-zero, and as the listed product sums them */
  for (int g = 0; g < 2; g++)
    for (int i = 0; i < n_in; i++) {
      int any = 0;
      for (int r = g * 10; r < g * 10 + 10; r++) { nonzero += x[r * n_in + i] != 0; any |= x[r * n_in + i] != 0; }
      listed += any ? 10 : 0;
    }
  int vectors = (c1 + 15) / 16;
  printf("drive terms: %ld non-zero, %ld listed (%.2fx); %ld and %ld 16-wide multiply-adds for %d columns\n",
         nonzero, listed, (double)listed / nonzero, nonzero * vectors, listed * vectors, c1);
  double best=1e9;
  for(int k=0;k<5;k++){double t0=now(); for(int r=0;r<reps;r++) eq_input_update_f32_avx512(n_in,n_out,0,c1,xt,m,B,dense,64,W,xt1,m,1,drive,part,idx,val); double t=(now()-t0)/reps; if(t<best)best=t;}
  printf("fused cols %d: %.1f us\n", c1, best*1e6);
  best=1e9; for(int k=0;k<5;k++){double t0=now(); for(int r=0;r<reps;r++) eq_input_update_f32_avx512(n_in,n_out,0,c1,xt,m,B,dense,64,W,xt1,0,1,drive,part,idx,val); double t=(now()-t0)/reps; if(t<best)best=t;}
  printf("fused, update only, cols %d: %.1f us\n", c1, best*1e6);
  best=1e9; int kidx[1000];
  for(int k=0;k<5;k++){double t0=now(); for(int r=0;r<reps;r++){ for(int t=0;t<13;t++){int rows=(t*64+64<=n_in?64:n_in-t*64); if(dense[t]) eq_gemm_any_f32_avx512(rows,c1,m,xt+t*64*m,m,B,n_out,1,W+t*64*n_out,n_out,12,NULL); else eq_sparse_f32_avx512(rows,c1,m,xt+t*64*m,m,B,n_out,1,W+t*64*n_out,n_out,idx,val);} } double t=(now()-t0)/reps; if(t<best)best=t;}
  printf("old update cols %d: %.1f us\n", c1, best*1e6);
  best=1e9;
  for(int k=0;k<5;k++){double t0=now(); for(int r=0;r<reps;r++) eq_listed_f32_avx512(m,c1,n_in,x,n_in,W,n_out,0,drive,n_out,12,kidx); double t=(now()-t0)/reps; if(t<best)best=t;}
  printf("old drive cols %d: %.1f us\n", c1, best*1e6);
}
