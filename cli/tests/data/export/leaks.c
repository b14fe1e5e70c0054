/* Leaks known amounts from two functions, for tests/export.rs.
 *
 * leak_small: 3 blocks of 100 bytes, lost.
 * leak_big:   2 blocks of 4096 bytes, lost; 1 block of 4096 kept reachable
 *             through a global (in use at the end, not leaked).
 * churn:      10 blocks of 1000 bytes, all freed (allocated, neither leaked
 *             nor in use).
 * Lines marked SITE_* are the allocation sites the test looks for, CALL_*
 * the calls in main that lead to them. */
#include <stdlib.h>
#include <string.h>

void *volatile keep;

__attribute__((noinline)) void leak_small(void) {
    for (int i = 0; i < 3; i++) {
        char *p = malloc(100); /* SITE_SMALL */
        memset(p, i, 100);
        p = NULL;
    }
}

__attribute__((noinline)) void leak_big(int kept) {
    char *p = malloc(4096); /* SITE_BIG */
    memset(p, 1, 4096);
    if (kept)
        keep = p;
}

__attribute__((noinline)) void churn(void) {
    for (int i = 0; i < 10; i++) {
        char *volatile p = malloc(1000); /* SITE_CHURN */
        free(p);
    }
}

int main(void) {
    leak_small(); /* CALL_SMALL */
    leak_big(0); /* CALL_BIG_1 */
    leak_big(0); /* CALL_BIG_2 */
    leak_big(1);
    churn();
    return 0;
}
