/* 11. A block pointed to only from an anonymous mmap'd region of the
 * program: still reachable, 33 bytes in 1 block. A lost 7-byte block for
 * contrast (definitely lost). */
#include "common.h"
#include <sys/mman.h>

void **volatile region;

__attribute__((noinline)) static void make(void) {
    void *m = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) abort();
    /* the region's own address stays in a global, but points at no block */
    region = m;
    region[4096 / sizeof(void *) + 1] = zalloc(33);
    escape = zalloc(7);
    escape = NULL;
}

int main(void) {
    make();
    FORGET();
    return 0;
}
