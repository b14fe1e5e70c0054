/* Every allocation entry point, used the way programs use them; the blocks
 * made in the leak_* functions are never freed. Each marked line (@site:NAME)
 * is where a test expects the never-freed record's stack to point. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include "counts.h"

#define NOINLINE __attribute__((noinline, noclone))

/* volatile: the compiler may not drop a malloc/free pair it can see through */
void *volatile keep[32];
static void *volatile slot;
static volatile size_t huge = (size_t)-1;

static void check_align(const void *p, size_t a) {
    if ((uintptr_t)p % a != 0) c_bad++;
}

NOINLINE void leak_malloc(void) {
    for (int i = 0; i < 5; i++) {
        keep[i] = malloc(101); /* @site:leak_malloc */
        got(keep[i], 101);
    }
}
NOINLINE void leak_calloc(void) {
    keep[5] = calloc(3, 41); /* @site:leak_calloc */
    got(keep[5], 123);
}
NOINLINE void leak_realloc(void) {
    void *p = malloc(10);
    got(p, 10);
    keep[6] = realloc(p, 1234); /* @site:leak_realloc */
    moved(10, keep[6], 1234);
}
NOINLINE void leak_reallocarray(void) {
    keep[7] = reallocarray(NULL, 7, 11); /* @site:leak_reallocarray */
    got(keep[7], 77);
}
NOINLINE void leak_posix_memalign(void) {
    void *p = NULL;
    if (posix_memalign(&p, 64, 999) != 0) c_bad++; /* @site:leak_posix_memalign */
    keep[8] = p;
    got(p, 999);
    check_align(p, 64);
}
NOINLINE void leak_aligned_alloc(void) {
    keep[9] = aligned_alloc(256, 512); /* @site:leak_aligned_alloc */
    got(keep[9], 512);
    check_align(keep[9], 256);
}
NOINLINE void leak_memalign(void) {
    keep[10] = memalign(128, 333); /* @site:leak_memalign */
    got(keep[10], 333);
    check_align(keep[10], 128);
}
NOINLINE void leak_valloc(void) {
    keep[11] = valloc(777); /* @site:leak_valloc */
    got(keep[11], 777);
    check_align(keep[11], 4096);
}
NOINLINE void leak_pvalloc(void) {
#ifndef NO_PVALLOC /* valgrind aborts on pvalloc */
    keep[12] = pvalloc(555); /* @site:leak_pvalloc */
    got(keep[12], 555);
    check_align(keep[12], 4096);
#endif
}
NOINLINE void leak_strdup(void) {
    keep[13] = strdup("leakhunt!"); /* @site:leak_strdup */
    got(keep[13], 10);
}

/* Everything here is freed again. */
NOINLINE void freed(void) {
    void *p;

    slot = malloc(1000);
    got(slot, 1000);
    if (malloc_usable_size(slot) < 1000) c_bad++;
    free(slot);
    gone(1000);

    slot = calloc(10, 100);
    got(slot, 1000);
    for (int i = 0; i < 1000; i++)
        if (((volatile char *)slot)[i] != 0) { c_bad++; break; }
    free(slot);
    gone(1000);

    /* realloc: grow, shrink, from NULL, to 0 */
    slot = malloc(100);
    got(slot, 100);
    memset(slot, 7, 100);
    p = realloc(slot, 5000);
    moved(100, p, 5000);
    if (((char *)p)[99] != 7) c_bad++;
    slot = p;
    p = realloc(slot, 50);
    moved(5000, p, 50);
    slot = p;
    free(slot);
    gone(50);
    slot = realloc(NULL, 200);
    got(slot, 200);
    p = realloc(slot, 0); /* glibc: frees and returns NULL */
    if (p == NULL) {
        gone(200);
    } else {
        moved(200, p, 0);
        free(p);
        gone(0);
    }

    /* reallocarray: from NULL, grow, overflow (fails, nothing recorded) */
    slot = reallocarray(NULL, 10, 30);
    got(slot, 300);
    p = reallocarray(slot, 20, 30);
    moved(300, p, 600);
    slot = p;
    errno = 0;
    if (reallocarray(NULL, huge / 2, 4) != NULL || errno != ENOMEM) c_bad++;
    free(slot);
    gone(600);

    if (posix_memalign(&p, 64, 1000) != 0) c_bad++;
    got(p, 1000);
    check_align(p, 64);
    slot = p;
    free(slot);
    gone(1000);
    if (posix_memalign(&p, 3, 1000) != EINVAL) c_bad++; /* bad alignment: nothing allocated */

    slot = aligned_alloc(128, 1024);
    got(slot, 1024);
    check_align(slot, 128);
    free(slot);
    gone(1024);

    slot = memalign(256, 700);
    got(slot, 700);
    check_align(slot, 256);
    free(slot);
    gone(700);

    slot = valloc(3000);
    got(slot, 3000);
    check_align(slot, 4096);
    free(slot);
    gone(3000);

#ifndef NO_PVALLOC
    slot = pvalloc(5000);
    got(slot, 5000);
    check_align(slot, 4096);
    free(slot);
    gone(5000);
#endif

    slot = strdup("hello world");
    got(slot, 12);
    free(slot);
    gone(12);

    slot = strndup("hello world", 5);
    got(slot, 6);
    free(slot);
    gone(6);

    slot = malloc(0); /* a unique pointer of 0 bytes */
    got(slot, 0);
    free(slot);
    gone(0);

    free(NULL); /* nothing */

    if (malloc(huge) != NULL) c_bad++; /* fails: nothing recorded */
    errno = 0;
    if (calloc(huge / 2, 4) != NULL || errno != ENOMEM) c_bad++;

    /* the peak: 1 MiB on top of everything leaked so far */
    slot = malloc(1 << 20);
    got(slot, 1 << 20);
    memset(slot, 1, 1 << 20);
    free(slot);
    gone(1 << 20);
}

int main(void) {
    leak_malloc();
    leak_calloc();
    leak_realloc();
    leak_reallocarray();
    leak_posix_memalign();
    leak_aligned_alloc();
    leak_memalign();
    leak_valloc();
    leak_pvalloc();
    leak_strdup();
    freed();
    print_counts();
    return c_bad ? 1 : 0;
}
