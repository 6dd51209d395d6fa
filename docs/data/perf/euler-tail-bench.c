#include "state_update.h"
#include <stdio.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
volatile int NN=10, RR=10;
static float s[200],h[200],b[16],t[200];
int main(){ for(int i=0;i<200;i++){s[i]=(i%7)/7.f; h[i]=(i%5-2)/3.f; t[i]=(i%10==3);} for(int i=0;i<16;i++) b[i]=0.01f*i;
 int R=1000000; double t0=now(); for(int i=0;i<R;i++) eq_euler_f32(2,s,h,NULL,b,NULL,RR,NN,0.5f,0.0f,1);
 printf("free: %.1f ns per 10x10\n",(now()-t0)/R*1e9);
 t0=now(); for(int i=0;i<R;i++) eq_euler_f32(2,s,h,NULL,b,t,RR,NN,0.5f,0.5f,1);
 printf("nudged: %.1f ns per 10x10\n",(now()-t0)/R*1e9); return 0;}
