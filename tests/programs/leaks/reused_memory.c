/* 31. Reused memory written only in part, the ordinary way.
 *   - a table of 25 pointers to 32-byte blocks is freed (the blocks are
 *     lost), and its chunk comes back to `keep` (a global), into which only
 *     "hello" is written: the rest still holds the 25 old pointers;
 *   - 64 blocks of 24 bytes are lost the same way through a freed table,
 *     and a 2-pointer array (`grown`, a global) is grown by realloc to 64:
 *     its new tail was never written.
 * memcheck ignores bytes never written since allocation:
 *   definitely lost: 25 x 32 + 64 x 24 = 2,336 bytes in 89 blocks
 *   still reachable: 200 + 512 = 712 bytes in 2 blocks */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *keep;
static void **grown;

__attribute__((noinline)) static void lose_through_table(int n, size_t each) {
    void **table = malloc(n * sizeof(void *));
    for (int i = 0; i < n; i++)
        table[i] = malloc(each);
    free(table);
}

__attribute__((noinline)) static void scrub(void) {
    volatile char junk[16384];
    memset((char *)junk, 0, sizeof junk);
}

int main(void) {
    lose_through_table(25, 32);
    keep = malloc(25 * sizeof(void *));
    strcpy(keep, "hello");
    grown = malloc(2 * sizeof(void *));
    grown[0] = grown[1] = NULL;
    lose_through_table(64, 24);
    grown = realloc(grown, 64 * sizeof(void *));
    scrub();
    return write(1, keep, 5) == 5 ? 0 : 1;
}
