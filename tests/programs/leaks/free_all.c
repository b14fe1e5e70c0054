/* 13. A leak-free program: everything it allocates (malloc, calloc,
 * realloc, posix_memalign, strdup) is freed before main returns. memcheck:
 * "All heap blocks were freed"; every kind zero. */
#include "common.h"

int main(void) {
    void *blocks[64];
    for (int i = 0; i < 64; i++) blocks[i] = zalloc((size_t)(i + 1) * 8);
    for (int i = 0; i < 64; i += 2) {
        void *p = realloc(blocks[i], (size_t)(i + 1) * 16);
        if (!p) return 2;
        blocks[i] = p;
    }
    void *c = calloc(10, 10);
    void *a = NULL;
    if (posix_memalign(&a, 64, 200) != 0) return 2;
    char *s = strdup("leak-free");
    free(s);
    free(a);
    free(c);
    for (int i = 63; i >= 0; i--) free(blocks[i]);
    return 0;
}
