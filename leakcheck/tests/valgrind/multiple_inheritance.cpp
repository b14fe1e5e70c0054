// Objects with two polymorphic bases, held through a pointer to the second
// base (an interior pointer memcheck's multipleinheritance heuristic accepts),
// and three that it must refuse. For tests/valgrind_diff.rs.
//
// usage: multiple_inheritance DUMP
//
// DUMP is in the format of random_heap.c, with the process's /proc/self/maps
// and the contents of the executable's readable, non-executable mappings
// (where its vtables are), which the vtable check reads.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <new>
#include <unistd.h>

struct A { virtual ~A() {} virtual void f() {} long a = 1; };
struct B { virtual ~B() {} virtual void g() {} long b = 2; };
struct C : A, B { long c = 3; };
struct D : A, B { long d[5] = {0}; };

void *g_roots[16];

static void wr(int fd, const void *p, size_t n) { if (write(fd, p, n) != (ssize_t)n) _exit(3); }

// Bookkeeping lives on the heap and is freed before exit: a global array of
// block pointers would be a root.
static void **blocks;
static uint64_t *sizes;
static int nb;

template <class T> T *mk() {
    void *m = malloc(sizeof(T));
    blocks[nb] = m;
    sizes[nb++] = sizeof(T);
    return new (m) T;
}

__attribute__((noinline)) static void build(const char *out) {
    blocks = (void **)malloc(16 * sizeof(void *));
    sizes = (uint64_t *)malloc(16 * sizeof(uint64_t));
    C *c1 = mk<C>(); g_roots[0] = static_cast<B *>(c1);           // accepted
    D *d1 = mk<D>(); g_roots[1] = static_cast<B *>(d1);           // accepted
    C *c2 = mk<C>(); g_roots[2] = (char *)c2 + 8;                 // A::a is not a vptr
    C *c3 = mk<C>(); g_roots[3] = static_cast<B *>(c3);
    *(uintptr_t *)c3 = 0x1000;                                    // first word: not a vtable
    D *d2 = mk<D>(); g_roots[4] = static_cast<B *>(d2);
    *(uintptr_t *)static_cast<B *>(d2) = (uintptr_t)&g_roots[8]; // inner word: writable data

    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    uint64_t n = nb, nr = 16, ra = (uintptr_t)g_roots, zero = 0;
    wr(fd, &n, 8);
    for (int i = 0; i < nb; i++) {
        uint64_t a = (uintptr_t)blocks[i];
        wr(fd, &a, 8);
        wr(fd, &sizes[i], 8);
        wr(fd, blocks[i], sizes[i]);
    }
    wr(fd, &nr, 8);
    wr(fd, &ra, 8);
    wr(fd, g_roots, sizeof g_roots);

    static char maps[1 << 16];
    int mfd = open("/proc/self/maps", O_RDONLY);
    ssize_t len = 0, r;
    while ((r = read(mfd, maps + len, sizeof maps - 1 - len)) > 0) len += r;
    close(mfd);
    maps[len] = 0;
    uint64_t ml = len;
    wr(fd, &ml, 8);
    wr(fd, maps, len);
    char exe[4096];
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[el > 0 ? el : 0] = 0;
    for (char *line = strtok(maps, "\n"); line; line = strtok(nullptr, "\n")) {
        unsigned long s, e;
        char perms[8], path[4096] = "";
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %4095s", &s, &e, perms, path) < 3) continue;
        if (perms[0] == 'r' && perms[2] != 'x' && strcmp(path, exe) == 0) {
            uint64_t S = s, E = e;
            wr(fd, &S, 8);
            wr(fd, &E, 8);
            wr(fd, (void *)s, e - s);
        }
    }
    wr(fd, &zero, 8);
    wr(fd, &zero, 8);
    close(fd);
    free(blocks);
    free(sizes);
    blocks = nullptr;
    sizes = nullptr;
}

__attribute__((noinline)) static void scrub() {
    volatile char buf[65536];
    memset((char *)buf, 0, sizeof buf);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    build(argv[1]);
    scrub();
    return 0;
}
