/* 1. One plain lost block: definitely lost 123 bytes in 1 block.
 * With the argument `none` it frees the block first (no leak at all).
 * Exits with status 3 either way, so that a test can tell the program's
 * own status from leakhunt's --error-exitcode. */
#include "common.h"

__attribute__((noinline)) static void lose(void) {
    escape = zalloc(123);
    escape = NULL;
}

__attribute__((noinline)) static void keep_and_free(void) {
    void *volatile p = zalloc(123);
    free(p);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "none") == 0)
        keep_and_free();
    else
        lose();
    FORGET();
    return 3;
}
