/* glibc malloc's own bookkeeping is no root (memcheck, with its own
 * allocator, never sees it).
 *
 * 32 lost blocks of 100 bytes: each is a 112-byte glibc chunk whose last 8
 * bytes are lent to the next chunk as its `prev_size` field, so the next
 * chunk's header lies 96 bytes *into* the lost block. Behind each lost block
 * a 120-byte block is freed (its tcache bin filled first, so it goes to a
 * fastbin, later to a small bin), kept apart from its neighbours by a
 * reachable 16-byte guard. glibc's main_arena (fastbinsY, bins, top,
 * last_remainder: in libc's .data) then holds pointers to some of those
 * headers: interior pointers into lost blocks.
 *
 * memcheck: definitely lost 3,200 bytes in 32 blocks; still reachable 512
 * bytes in 32 blocks (the guards). */
#include "common.h"

#define N 32
void *guards[N];

__attribute__((noinline)) static void make(void) {
    void *traps[N], *fill[7];
    for (int i = 0; i < N; i++) {
        escape = zalloc(100);
        traps[i] = zalloc(120);
        guards[i] = zalloc(16);
    }
    escape = NULL;
    for (int i = 0; i < 7; i++) fill[i] = zalloc(120);
    for (int i = 0; i < 7; i++) free(fill[i]); /* the tcache bin is full */
    for (int i = 0; i < N; i++) free(traps[i]); /* to the fastbin */
}

int main(void) {
    make();
    FORGET();
    return 0;
}
