/* One block of each leak kind, as valgrind memcheck defines them:
 *   still reachable: 100 bytes, pointed to by a global
 *   definitely lost: 200 bytes, no pointer left
 *   indirectly lost: 300 bytes, pointed to only by a lost block (the 200)
 *   possibly lost:   400 bytes, only an interior pointer left */
#include <stdlib.h>
#include <string.h>

void *volatile reachable;
char *volatile interior;
void *volatile escape; /* makes each block observable, then forgets it */

__attribute__((noinline)) static void lose(void) {
    void **lost = malloc(200);
    memset(lost, 0, 200);
    lost[0] = malloc(300);
    memset(lost[0], 0, 300);
    escape = lost;
    escape = NULL;
    char *p = malloc(400);
    interior = p + 16;
    reachable = malloc(100);
}

/* overwrites the stack where lose() kept its pointers */
__attribute__((noinline)) static void scrub(void) {
    volatile char junk[4096];
    memset((char *)junk, 0, sizeof junk);
}

int main(void) {
    lose();
    scrub();
    return 0;
}
