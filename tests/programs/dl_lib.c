/* A library loaded with dlopen() by dl_main.c. */
#include <stdlib.h>

__attribute__((noinline)) void *lib_alloc(size_t n) {
    void *p = malloc(n); /* @site:lib_alloc */
    return p;
}
