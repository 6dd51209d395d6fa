/*
 * The update of one half of W_0 and the next mini-batch's drive over it, unfused (eq_sparse, eq_strips)
 * against fused (eq_update_drive), on one core, bit for bit. The fused kernel is in the trial patch only:
 *   git apply docs/data/perf/fused-update-drive-trial.patch   (on 539e73a)
 *   gcc -O3 -Isrc/eqcore [-DLDW=528] docs/data/perf/fused-update-drive-bench.c -o /tmp/fused && taskset -c 1 /tmp/fused 0
 * x from /tmp/fb/x.bin (docs/data/perf/eighth-session-zen4.txt, part 7).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "sparse_rows.h"
#define NB 100
#define B 20
#define NIN 784
#define N 512
#ifndef LDW
#define LDW 512
#endif
#define HALF 392
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
static void transpose(const float*x,int rows,int k0,int kk,float*xt){for(int k=0;k<kk;k++)for(int r=0;r<rows;r++)xt[k*rows+r]=x[r*NIN+k0+k];}
int main(int argc,char**argv){
  int half=argc>1?atoi(argv[1]):0; int isa=2;
  float*X=malloc(sizeof(float)*NB*B*NIN); FILE*f=fopen("/tmp/fb/x.bin","rb"); fread(X,sizeof(float),NB*B*NIN,f); fclose(f);
  float*W=aligned_alloc(64,sizeof(float)*NIN*LDW),*W2=aligned_alloc(64,sizeof(float)*NIN*LDW);
  for(int i=0;i<NIN*LDW;i++)W[i]=W2[i]=(rand()/(float)RAND_MAX-0.5f)*0.1f;
  float*D=aligned_alloc(64,sizeof(float)*B*LDW); for(int i=0;i<B*LDW;i++)D[i]=(rand()%4==0)?(rand()/(float)RAND_MAX-0.5f)*1e-3f:0;
  float*out=aligned_alloc(64,sizeof(float)*B*N),*out2=aligned_alloc(64,sizeof(float)*B*N);
  int*idx=malloc(sizeof(int)*200000); float*val=aligned_alloc(64,sizeof(float)*200000);
  float*xt=malloc(sizeof(float)*64*B); int unnz[64],uidx[64*B]; float uval[64*B];
  int dnnz[B],didx[B*NIN],dpos[B],dend[B]; float dval[B*NIN];
  int k0=half?HALF:0, k1=half?NIN:HALF;
  double ta=0,tb=0,tu=0,tx=0; int mism=0;
  for(int rep=0;rep<40;rep++){
   for(int it=0;it<NB-1;it++){
    const float*xc=X+(size_t)it*B*NIN,*xn=X+(size_t)(it+1)*B*NIN;
    double t0=now();
    for(int r0=k0;r0<k1;r0+=64){int rows=k1-r0<64?k1-r0:64; transpose(xc,B,r0,rows,xt);
      long nz=eq_count_nonzero_f32(isa,rows,B,xt,B); (void)nz;
      eq_sparse_f32(isa,rows,N,B,xt,B,D,LDW,1,W+(size_t)r0*LDW,LDW,idx,val);}
    double tm=now(); tu+=tm-t0;
    long nz=eq_count_nonzero_f32(isa,B,k1-k0,xn+k0,NIN); (void)nz;
    eq_strips_f32(isa,B,N,k1-k0,xn+k0,NIN,W+(size_t)k0*LDW,LDW,0,out,N,idx,val);
    double t1=now();
    eq_compact_rows_f32(isa,B,k1-k0,xn+k0,NIN,dnnz,didx,dval);
    for(int e=0;e<B;e++)if(!dnnz[e])memset(out2+e*N,0,sizeof(float)*N); for(int e=0;e<B;e++)dpos[e]=0;
    for(int r0=k0;r0<k1;r0+=64){int rows=k1-r0<64?k1-r0:64; double q0=now(); transpose(xc,B,r0,rows,xt); tx+=now()-q0;
      q0=now(); eq_compact_rows_f32(isa,rows,B,xt,B,unnz,uidx,uval); tx+=now()-q0;
      eq_update_drive_f32(isa,rows,N,W2+(size_t)r0*LDW,LDW,B,unnz,uidx,uval,D,LDW,B,k1-k0,dnnz,didx,dval,dpos,dend,r0-k0,out2,N);}
    double t2=now();
    if(rep>0){ta+=t1-t0;tb+=t2-t1;}
    if(memcmp(out,out2,sizeof(float)*B*N)||memcmp(W+(size_t)k0*LDW,W2+(size_t)k0*LDW,sizeof(float)*(k1-k0)*LDW))mism++;
   }}
  int n=39*(NB-1);
  printf("update %.2f, fused's transpose+compact %.2f\n", tu/n*1e6*39/40, tx/n*1e6*39/40);
  printf("half %d: unfused %.2f us, fused %.2f us, mismatches %d\n",half,ta/n*1e6,tb/n*1e6,mism);
}
