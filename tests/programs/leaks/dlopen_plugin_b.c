/* dlopen()ed by dlopen_kept and never closed. plugin_b_init() keeps a
 * 48-byte block in this library's .bss (still reachable: the library is
 * still loaded) and forgets a 32-byte one (definitely lost). */
#include "common.h"

void *plugin_b_held;

__attribute__((noinline)) static void lose(void) {
    escape = zalloc(32);
    escape = NULL;
}

void plugin_b_init(void) {
    plugin_b_held = zalloc(48);
    lose();
}
