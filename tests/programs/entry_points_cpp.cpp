// C++'s allocation entry points: new/delete, new[]/delete[], aligned new,
// nothrow new. The blocks made in the leak_* functions are never freed.
#include <cstdint>
#include <cstdlib>
#include <new>
extern "C" {
#include "counts.h"
}

#define NOINLINE __attribute__((noinline, noclone))

struct alignas(64) Aligned {
    char c[192];
};
struct Widget {
    int a[10];
};

// volatile: the compiler may not elide a new/delete pair it can see through
void *volatile keep[8];
static int *volatile one;
static char *volatile chars;
static Aligned *volatile al;
static Aligned *volatile als;
static int *volatile ints;

NOINLINE void leak_new() {
    keep[0] = new Widget(); // @site:leak_new
    got(keep[0], sizeof(Widget));
}
NOINLINE void leak_new_array() {
    keep[1] = new int[25](); // @site:leak_new_array
    got(keep[1], 25 * sizeof(int));
}
NOINLINE void leak_aligned_new() {
    keep[2] = new Aligned(); // @site:leak_aligned_new
    got(keep[2], sizeof(Aligned));
    if (reinterpret_cast<std::uintptr_t>(keep[2]) % 64 != 0) c_bad++;
}

NOINLINE void freed() {
    one = new int(5);
    got(one, sizeof(int));
    delete one;
    gone(sizeof(int));

    chars = new char[100];
    got(chars, 100);
    delete[] chars;
    gone(100);

    al = new Aligned();
    got(al, sizeof(Aligned));
    if (reinterpret_cast<std::uintptr_t>(al) % 64 != 0) c_bad++;
    delete al;
    gone(sizeof(Aligned));

    als = new Aligned[2];
    got(als, 2 * sizeof(Aligned));
    if (reinterpret_cast<std::uintptr_t>(als) % 64 != 0) c_bad++;
    delete[] als;
    gone(2 * sizeof(Aligned));

    ints = new (std::nothrow) int[3];
    got(ints, 3 * sizeof(int));
    delete[] ints;
    gone(3 * sizeof(int));
}

int main() {
    leak_new();
    leak_new_array();
    leak_aligned_new();
    freed();
    print_counts();
    return c_bad ? 1 : 0;
}
