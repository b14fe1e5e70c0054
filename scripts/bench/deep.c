/* Benchmark: malloc+free of small blocks at the bottom of a deep call chain. */
#include <stdlib.h>
#include <stdio.h>
__attribute__((noinline)) void* d(int n, size_t sz){ if(n==0) return malloc(sz); void* p = d(n-1, sz); __asm__ volatile(""); return p; }
int main(int argc,char**argv){ long N = argc>1?atol(argv[1]):1000000; int depth = argc>2?atoi(argv[2]):20; long s=0;
 for(long i=0;i<N;i++){ void*p=d(depth, 16+(i&255)); s+=(long)p&1; free(p);} printf("%ld\n",s); return 0;}
