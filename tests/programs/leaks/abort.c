/* 19. Leaks, then dies by abort(): no normal exit, so no leak scan; the
 * never-freed blocks are still listed: 100 bytes (lost) and 200 bytes (held
 * by a global), 300 bytes in 2 blocks in use at the end. */
#include "common.h"

void *volatile kept;

__attribute__((noinline)) static void make(void) {
    kept = zalloc(200);
    escape = zalloc(100);
    escape = NULL;
}

int main(void) {
    make();
    FORGET();
    abort();
}
