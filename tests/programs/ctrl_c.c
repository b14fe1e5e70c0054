/* Allocates and frees in a loop until SIGINT; prints "ready" on stdout after
 * the first 1000 allocations; on SIGINT frees everything, prints its counts
 * and exits 0. */
#include <signal.h>
#include <stdlib.h>
#include "counts.h"

#define RING 256
static volatile sig_atomic_t stop;
void *volatile ring[RING];
static size_t sizes[RING];

static void on_int(int sig) {
    (void)sig;
    stop = 1;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_int;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) != 0) return 1;
    long i = 0;
    for (; !stop; i++) {
        size_t sz = 32 + (size_t)(i % 16) * 16;
        long k = i % RING;
        if (ring[k]) {
            free(ring[k]);
            gone(sizes[k]);
        }
        ring[k] = malloc(sz);
        sizes[k] = sz;
        got(ring[k], sz);
        if (i == 1000 && write(1, "ready\n", 6) < 0) return 1;
        if (i % 100 == 0) usleep(1000);
        if (i > 20000000) return 2; /* never got the signal */
    }
    for (long k = 0; k < RING; k++)
        if (ring[k]) {
            free(ring[k]);
            gone(sizes[k]);
        }
    print_counts();
    return 0;
}
