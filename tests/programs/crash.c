/* Allocates 10 x 10 bytes (kept), then crashes: with the argument "segv" by
 * writing through a null pointer, with "overflow" by unbounded recursion,
 * with "kill" by sending itself SIGBUS. Nothing it recorded may be lost. */
#include <signal.h>
#include <stdlib.h>
#include "counts.h"

void *volatile keep[10];
volatile int *volatile nowhere;

__attribute__((noinline)) static int deep(int n) {
    volatile char pad[512];
    pad[0] = (char)n;
    return deep(n + 1) + pad[0];
}

int main(int argc, char **argv) {
    for (int i = 0; i < 10; i++) {
        keep[i] = malloc(10);
        got(keep[i], 10);
    }
    print_counts();
    if (argc > 1 && strcmp(argv[1], "overflow") == 0) return deep(0);
    if (argc > 1 && strcmp(argv[1], "kill") == 0) raise(SIGBUS);
    *nowhere = 1;
    return 0;
}
