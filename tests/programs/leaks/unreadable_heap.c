/* 32. Heap memory made unreadable (after valgrind's leak-segv-jmp.c): a
 * 40,000-byte block full of pointers to itself, one of its words pointing
 * to a 1,000-byte block, then two mprotect(PROT_NONE) calls: two pages
 * around that word, then the whole block but its last page. The program
 * exits normally with status 0, and so must it under leakhunt: the scan
 * must not fault. memcheck ignores pointers to unreadable memory, so the
 * global's pointer does not reach the block:
 *   definitely lost: 41,000 bytes in 2 blocks */
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

char **b10;

int main(void) {
    long page = sysconf(_SC_PAGE_SIZE);
    const int n = 40000 / sizeof(char *);
    b10 = calloc(n * sizeof(char *), 1);
    for (int i = 0; i < n; i++)
        b10[i] = (char *)b10;
    b10[4000] = malloc(1000);
#define DOWN(a) ((long)(a) & ~(page - 1))
    if (mprotect((void *)DOWN(&b10[4000]), 2 * page, PROT_NONE) != 0)
        return 2;
    if (mprotect((void *)DOWN(&b10[0]), DOWN(&b10[n - 1]) - DOWN(&b10[0]), PROT_NONE) != 0)
        return 2;
    return 0;
}
