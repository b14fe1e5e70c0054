/* Early explosion: 8 MB allocated in the first ~5% of the run (~100 ms) and
 * kept, then ~2 s of sawtooth churn (1 MB teeth) on top of it: early-growth. */
#include "growth_common.h"

static void *working_set[2048];

static __attribute__((noinline)) void load_working_set(void) {
    for (int i = 0; i < 2048; i++) { /* 2048 x 4 KiB = 8 MiB */
        working_set[i] = malloc(4096);
        touch(working_set[i], 4096);
        if (i % 32 == 31)
            sleep_ms(1); /* 64 steps: ~70-100 ms */
    }
}

int main(void) {
    load_working_set();
    for (int cycle = 0; cycle < 100; cycle++)
        tooth(1 << 20, 4096, 16, 1);
    for (int i = 0; i < 2048; i++)
        free(working_set[i]);
    return 0;
}
