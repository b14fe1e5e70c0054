/* 4. Blocks reached only through interior pointers: possibly lost.
 *   - 100 bytes, a global points 16 bytes into it;
 *   - 200 bytes, a reachable 50-byte block points 40 bytes into it.
 * Possibly lost: 300 bytes in 2 blocks; still reachable: 50 bytes in 1.
 * (Offsets 16 and 40 with zeroed contents match none of memcheck's
 * heuristics: those look at offsets 8 and 24, or at vtable pointers.) */
#include "common.h"

char *volatile into_first;
void **volatile holder;

__attribute__((noinline)) static void make(void) {
    into_first = (char *)zalloc(100) + 16;
    holder = zalloc(50);
    holder[1] = (char *)zalloc(200) + 40;
}

int main(void) {
    make();
    FORGET();
    return 0;
}
