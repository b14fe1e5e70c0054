/* 6. A function's static local holds a block: still reachable, 77 bytes in
 * 1 block (and one lost 5-byte block, for contrast). */
#include "common.h"

__attribute__((noinline)) static void *cache(void) {
    static void *cached;
    if (!cached) cached = zalloc(77);
    return cached;
}

__attribute__((noinline)) static void use(void) {
    escape = cache();
    escape = cache();
    escape = zalloc(5);
    escape = NULL;
}

int main(void) {
    use();
    FORGET();
    return 0;
}
