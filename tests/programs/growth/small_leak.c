/* A small steady leak: every iteration allocates four 16-byte blocks and
 * frees one, so 48 of every 64 bytes stay (never freed: definitely lost).
 * 4 iterations per ~10 ms tick, with request churn around each, for 240
 * ticks: 960 x 48 B = 46 KB leaked at ~19.2 KB/s over ~2.4 s: growing. */
#include "growth_common.h"

/* Where the blocks are handed, so the compiler cannot drop the calls; each
 * store overwrites the last, so nothing keeps the earlier ones. */
static char *volatile sink;

static __attribute__((noinline)) void leak_some(void) {
    char *a = malloc(16), *b = malloc(16), *c = malloc(16), *d = malloc(16); /* @site:small_leak */
    a[0] = b[0] = c[0] = d[0] = 1;
    sink = a;
    sink = b;
    sink = c;
    sink = d;
    free(c); /* a, b and d are dropped: 48 of 64 bytes leak */
    sink = NULL;
}

int main(void) {
    for (int tick = 0; tick < 240; tick++) {
        for (int i = 0; i < 4; i++) {
            churn(4);
            leak_some();
        }
        sleep_ms(10);
    }
    return 0;
}
