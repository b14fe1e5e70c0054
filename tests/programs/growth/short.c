/* Short: ~35 ms, a few allocations per 1 ms tick, some kept: too short to
 * judge (inconclusive). */
#include "growth_common.h"

static void *kept[35];

int main(void) {
    for (int tick = 0; tick < 35; tick++) {
        churn(4);
        kept[tick] = malloc(1024);
        touch(kept[tick], 1024);
        sleep_ms(1);
    }
    for (int i = 0; i < 35; i++)
        free(kept[i]);
    return 0;
}
