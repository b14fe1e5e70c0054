/* Surge under load that stays: ~1 s of flat churn (512 KB teeth), then a
 * step of +8 MB kept (allocated over ~50 ms), then ~1 s of the same flat
 * churn: burst. */
#include "growth_common.h"

static void *surge_set[1024];

static __attribute__((noinline)) void take_the_surge(void) {
    for (int i = 0; i < 1024; i++) { /* 1024 x 8 KiB = 8 MiB */
        surge_set[i] = malloc(8192);
        touch(surge_set[i], 8192);
        if (i % 32 == 31)
            sleep_ms(1);
    }
}

int main(void) {
    for (int cycle = 0; cycle < 60; cycle++)
        tooth(512 << 10, 2048, 16, 1);
    take_the_surge();
    for (int cycle = 0; cycle < 60; cycle++)
        tooth(512 << 10, 2048, 16, 1);
    for (int i = 0; i < 1024; i++)
        free(surge_set[i]);
    return 0;
}
