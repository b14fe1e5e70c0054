/* A second library for dl_main.c, loaded after the first was dlclose()d
 * (often at the same address): its frames must not be named after the
 * first library's. */
#include <stdlib.h>

static int unused_padding(int x) { return x * 3; }

__attribute__((noinline)) void *lib_alloc(size_t n) {
    void *p = malloc(n + (size_t)unused_padding(0)); /* @site:lib2_alloc */
    return p;
}
