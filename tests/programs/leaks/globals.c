/* 5. Blocks held by globals: all still reachable.
 *   one 10-byte block in a pointer global, three 20-byte blocks in a
 *   global array, and a chain global -> 30 bytes -> 40 bytes in .data.
 * Still reachable: 10 + 60 + 30 + 40 = 140 bytes in 6 blocks. */
#include "common.h"

void *one;                 /* .bss */
void *three[3];            /* .bss */
struct holder { int tag; void **chain; } held = {7, NULL}; /* .data */

__attribute__((noinline)) static void make(void) {
    one = zalloc(10);
    for (int i = 0; i < 3; i++) three[i] = zalloc(20);
    held.chain = zalloc(30);
    held.chain[0] = zalloc(40);
}

int main(void) {
    make();
    FORGET();
    return 0;
}
