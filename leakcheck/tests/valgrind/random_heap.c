/* A random heap for the valgrind differential test (tests/valgrind_diff.rs).
 *
 * usage: random_heap DUMP SEED
 *
 * Allocates NB blocks of random sizes (some 0, some odd), fills them with a
 * random mix of start pointers, interior pointers (some at +8 and +24, where
 * the heuristics look), small integers, junk and zeros, gives some blocks the
 * headers memcheck's stdstring/length64/newarray heuristics recognise, and
 * keeps NR random pointers to them in the global g_roots, the only root that
 * refers to the heap. Then it writes DUMP (see valgrind_diff.rs), frees its
 * bookkeeping, scrubs the stack and exits, and memcheck's leak check runs.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NB 3000
#define NR 64

void *g_roots[NR];

static uint64_t rs;
static uint64_t rnd(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return rs; }
static uint64_t below(uint64_t n) { return rnd() % n; }
static void wr(int fd, const void *p, size_t n) { if (write(fd, p, n) != (ssize_t)n) _exit(3); }

static uintptr_t random_pointer(uintptr_t base, size_t size) {
    uint64_t how = below(10);
    if (how < 6 || size <= 1) return base;
    if (how == 6 && size > 8) return base + 8;
    if (how == 7 && size > 24) return base + 24;
    return base + 1 + below(size - 1);
}

__attribute__((noinline)) static void build(const char *out) {
    uintptr_t **b = malloc(NB * sizeof *b);
    size_t *sz = malloc(NB * sizeof *sz);
    for (int i = 0; i < NB; i++) {
        size_t s;
        switch (below(10)) {
        case 0: s = 0; break;
        case 1: s = 8 * below(8) + 1 + below(7); break;
        default: s = 8 + 8 * below(24);
        }
        sz[i] = s;
        b[i] = malloc(s);
        memset(b[i], 0, s); /* everything defined, as memcheck requires */
    }
    for (int i = 0; i < NB; i++) {
        size_t nw = sz[i] / 8;
        uintptr_t *w = b[i];
        for (size_t k = 0; k < nw; k++) {
            uint64_t r = below(100);
            if (r < 22) {
                int t = below(4) == 0 ? (int)below(NB) : (int)((i + NB - 20 + below(40)) % NB);
                w[k] = random_pointer((uintptr_t)b[t], sz[t]);
            } else if (r < 30) {
                w[k] = below(6);
            } else if (r < 40) {
                w[k] = rnd() | (1ull << 63);
            }
        }
        switch (below(8)) {
        case 0: if (nw >= 2) w[0] = sz[i] - 8; break;          /* length64 */
        case 1: if (nw >= 2) w[0] = 1 + below(4); break;       /* new[] cookie */
        case 2: if (sz[i] > 25) {                              /* COW std::string */
                    w[1] = sz[i] - 25;                         /* capacity */
                    w[0] = below(sz[i] - 24);                  /* length, sometimes > capacity */
                }
                break;
        }
    }
    for (int r = 0; r < NR; r++) {
        int t = below(NB);
        g_roots[r] = below(10) < 3 ? 0 : (void *)random_pointer((uintptr_t)b[t], sz[t]);
    }

    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    uint64_t n = NB, nr = NR, ra = (uintptr_t)g_roots, zero = 0;
    wr(fd, &n, 8);
    for (int i = 0; i < NB; i++) {
        uint64_t a = (uintptr_t)b[i], s = sz[i];
        wr(fd, &a, 8);
        wr(fd, &s, 8);
        wr(fd, b[i], s);
    }
    wr(fd, &nr, 8);
    wr(fd, &ra, 8);
    wr(fd, g_roots, sizeof g_roots);
    wr(fd, &zero, 8); /* no mappings */
    wr(fd, &zero, 8); /* no mapping contents */
    wr(fd, &zero, 8);
    close(fd);
    free(b);
    free(sz);
}

/* Overwrite the dead stack frames, so that no stale pointer stays there. */
__attribute__((noinline)) static void scrub(void) {
    volatile char buf[65536];
    memset((char *)buf, 0, sizeof buf);
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    rs = strtoull(argv[2], 0, 0) | 1;
    build(argv[1]);
    scrub();
    return 0;
}
