/* dlopen()s the library argv[1], calls its lib_alloc(4321) (never freed) and
 * lib_alloc(10) (freed), then dlclose()s it unless argv[2] is "keep". With
 * argv[3], then dlopen()s that library too and calls its lib_alloc(5555)
 * (never freed). */
#include <dlfcn.h>
#include <stdlib.h>
#include "counts.h"

void *volatile keep[4];

static void *(*load(const char *path, void **h))(size_t) {
    *h = dlopen(path, RTLD_NOW);
    if (!*h) {
        say(dlerror());
        say("\n");
        exit(3);
    }
    void *(*f)(size_t) = (void *(*)(size_t))dlsym(*h, "lib_alloc");
    if (!f) exit(4);
    return f;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    void *h;
    void *(*lib_alloc)(size_t) = load(argv[1], &h);
    keep[0] = lib_alloc(4321);
    keep[1] = lib_alloc(10);
    free(keep[1]);
    if (argc < 3 || strcmp(argv[2], "keep") != 0)
        if (dlclose(h) != 0) return 5;
    if (argc > 3) {
        void *h2;
        void *(*second)(size_t) = load(argv[3], &h2);
        keep[2] = second(5555);
    }
    return 0;
}
