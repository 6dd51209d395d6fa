#include "state_update.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
volatile int KK=10, NN=512, ROWS=10;
static float s[64*512],dd[64*512+4096],b[512],wt[10*512],so[64*10];
int main(int argc,char**argv){ int off=argc>3?atoi(argv[3]):0; float *d=dd+off; int nz=argc>1?atoi(argv[1]):1; int rowsv=argc>2?atoi(argv[2]):10;

 srand(1); for(int i=0;i<64*512;i++){s[i]=rand()%3==0?0.3f:0; d[i]=(rand()%100-55)/10.f;} for(int i=0;i<512;i++) b[i]=(rand()%10-5)/100.f;
 for(int i=0;i<10*512;i++) wt[i]=(rand()%100-50)/100.f;
 for(int r=0;r<64;r++) for(int k=0;k<10;k++) so[r*10+k]= (k<nz)?0.5f:0;
 int K=KK,n=NN,rows=rowsv; int R=200000/rows*10; double t=now();
 for(int it=0;it<R;it++) eq_euler_td_f32(2,s,NULL,d,b,so,K,K,wt,rows,n,0.5f,1);
 double dt=(now()-t)/R/rows; printf("nonzero outputs %d, rows %d: %.1f ns per row (%.1f cycles/vector at 3.6 GHz)\n",nz,rows,dt*1e9,dt*3.6e9/32);
 return 0;}
