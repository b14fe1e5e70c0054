/* Few events: sleeps ~2 s in 10 steps of 200 ms and makes one 4 KiB
 * allocation per step (kept until exit): 10 allocations, too few samples
 * to judge (inconclusive). */
#include "growth_common.h"

int main(void) {
    void *kept[10];
    for (int i = 0; i < 10; i++) {
        kept[i] = malloc(4096);
        touch(kept[i], 4096);
        sleep_ms(200);
    }
    for (int i = 0; i < 10; i++)
        free(kept[i]);
    return 0;
}
