/*
 * One thread's half of the drive x W_0 (20 MNIST rows of /tmp/nb/batches.bin, see
 * update-strips-bench.c; 392 inputs, 500 columns) through eq_strips, with W_0's rows LD floats
 * apart (500: the network's own layout; 512, 528, 544: padded to whole cache lines), in process
 * CPU time. The strips' chunk size is EQ_STRIP_BYTES (sparse_rows.h).
 *
 *   gcc -O3 -DLD=500 -Isrc/eqcore docs/data/perf/drive-ld-bench.c -o /tmp/drv && /tmp/drv
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "sparse_rows.h"
static double now(void){struct timespec t;clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t);return t.tv_sec+1e-9*t.tv_nsec;}
#define K 784
#define R 20
#define H 392
int main(){
  int nb=50; float *X=malloc(4*1000*K); FILE*f=fopen("/tmp/nb/batches.bin","rb"); fread(X,4,1000*K,f); fclose(f);
  float *W=aligned_alloc(64,4*K*LD); for(int i=0;i<K*LD;i++)W[i]=(float)rand()/RAND_MAX-0.5f;
  float *D=aligned_alloc(64,4*R*LD);
  int *idx=malloc(sizeof(int)*EQ_STRIP_ROWS*(K+2)); float *val=malloc(sizeof(float)*EQ_STRIP_ROWS*(K+EQ_STRIP_TAIL));
  for(int half=0;half<2;half++){ int k0=half?H:0;
   for(int round=0;round<3;round++){ double t=now();
    for(int rep=0;rep<20;rep++) for(int b=0;b<nb;b++)
      eq_strips_f32(2,R,500,K-H,X+(size_t)b*R*K+k0,K,W+(size_t)k0*LD,LD,0,D,LD,idx,val);
    printf("LD %d half %d: %.1f us\n",LD,half,(now()-t)/(20*nb)*1e6);}}
  return 0;}
