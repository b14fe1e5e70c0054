/* 3. An unreachable cycle of three 32-byte blocks, a -> b -> c -> a.
 * memcheck makes the first one it meets the clique leader (definitely lost,
 * 32 bytes in 1 block) and the other two indirectly lost (64 bytes in 2
 * blocks). The blocks have one size, so which one leads does not matter. */
#include "common.h"

__attribute__((noinline)) static void lose_cycle(void) {
    void **a = zalloc(32), **b = zalloc(32), **c = zalloc(32);
    a[0] = b;
    b[0] = c;
    c[0] = a;
    escape = a;
    escape = NULL;
}

int main(void) {
    lose_cycle();
    FORGET();
    return 0;
}
