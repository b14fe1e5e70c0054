/* 7. A block held only by main's stack frame while main calls exit() from
 * a nested function: main's frame is still live, so the block is still
 * reachable (55 bytes in 1 block). A lost 11-byte block for contrast. */
#include "common.h"

__attribute__((noinline)) static void lose(void) {
    escape = zalloc(11);
    escape = NULL;
}

__attribute__((noinline)) static void leave(int code) {
    FORGET();
    exit(code);
}

__attribute__((noinline)) static void nested(int code) {
    leave(code + 0);
}

int main(void) {
    void *volatile kept = zalloc(55);
    lose();
    FORGET();
    nested(0);
    return kept != NULL;
}
