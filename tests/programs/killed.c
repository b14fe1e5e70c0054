/* Makes N (argv[1]) allocations of 64 bytes, prints "ready <pid>" on stdout,
 * then sleeps until killed. */
#include <stdlib.h>
#include "counts.h"

void *volatile keep[100000];

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000;
    if (n > 100000) n = 100000;
    for (long i = 0; i < n; i++) {
        keep[i] = malloc(64);
        got(keep[i], 64);
    }
    char line[64];
    snprintf(line, sizeof line, "ready %d\n", (int)getpid());
    if (write(1, line, strlen(line)) < 0) return 1;
    for (;;) pause();
}
