/* 20. Libraries dlopen()ed and never dlclose()d, as a plugin host or an
 * interpreter importing extension modules does. Linked with dlopen_dep.so
 * (which needs dlopen_dep2.so); argv[1] and argv[2] are the paths of
 * dlopen_plugin_a.so (which needs dlopen_plugin_a_dep.so) and
 * dlopen_plugin_b.so. The handles are dropped.
 *
 * What ld.so allocated for the two dlopen()s (link maps, scopes, search
 * lists, names) is still reachable: the loader's own lists point at it,
 * some of them from memory its start-up minimal malloc mapped (the l_next of
 * the last startup library's link map). memcheck scans that memory; so
 * must leakhunt. plugin_b's 48-byte block, held in its .bss, is still
 * reachable; its 32-byte block is definitely lost. */
#include "common.h"
#include <dlfcn.h>

int dep_value(void);

__attribute__((noinline)) static int load(const char *a, const char *b) {
    void *ha = dlopen(a, RTLD_NOW);
    void *hb = dlopen(b, RTLD_NOW);
    if (!ha || !hb) {
        say(dlerror());
        say("\n");
        return 3;
    }
    int (*value)(void) = (int (*)(void))dlsym(ha, "plugin_a_value");
    void (*init)(void) = (void (*)(void))dlsym(hb, "plugin_b_init");
    if (!value || !init || value() != 42) return 4;
    init();
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3 || dep_value() != 3) return 2;
    int r = load(argv[1], argv[2]);
    FORGET();
    return r;
}
