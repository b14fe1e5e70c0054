/* For tests/tests/folding.rs: two big leaks and twenty small ones, each
 * from its own line (its own stack), so a loss-record list has a long tail
 * worth a fraction of a percent. */
#include <stdlib.h>
#include <string.h>

static void *volatile sink;

/* A zeroed block of n bytes, forgotten at once. */
#define LEAK(n) sink = malloc(n); memset(sink, 0, n); sink = 0;

int main(void) {
    LEAK(50000) LEAK(40000)
    LEAK(24) LEAK(24) LEAK(24) LEAK(24) LEAK(24)
    LEAK(24) LEAK(24) LEAK(24) LEAK(24) LEAK(24)
    LEAK(24) LEAK(24) LEAK(24) LEAK(24) LEAK(24)
    LEAK(24) LEAK(24) LEAK(24) LEAK(24) LEAK(24)
    return 0;
}
