/* Loses argv[1] blocks of 100 bytes (nothing points at them at exit: each
 * pointer is overwritten by the next) and exits with argv[2] (default 0).
 * Run by a shell or a shim in the tests of a run's child processes. */
#include <stdlib.h>

void *volatile sink;

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    for (int i = 0; i < n; i++)
        sink = malloc(100);
    sink = 0;
    return argc > 2 ? atoi(argv[2]) : 0;
}
