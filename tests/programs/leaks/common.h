/* Shared by the leak-kind programs (tests/tests/leak_kinds.rs).
 *
 * Every program is built with -O0 and must be deterministic under both
 * leakhunt and valgrind memcheck: a block meant to be "lost" must leave no
 * copy of its address in a register, a live stack slot or a stale part of
 * the stack that either tool scans. So blocks are made and forgotten in
 * noinline helpers, every block is zeroed (memcheck ignores undefined words,
 * leakhunt cannot tell them apart: a stale allocator pointer in fresh memory
 * would be a root for one tool only), and the stack those helpers used is
 * overwritten by `scrub()` before the program goes on. Output goes through
 * write(2): stdio would allocate buffers.
 *
 * The size of a block meant to be lost never ends in the 8 bytes that glibc's
 * malloc lends to the next chunk's header (n > 8 with n % 16 in 1..8, e.g.
 * 24, 40, 100): glibc's own bookkeeping may point at that header, an
 * interior pointer memcheck never sees (arena_bookkeeping.c shows it). */
#ifndef LEAKHUNT_LEAKS_COMMON_H
#define LEAKHUNT_LEAKS_COMMON_H
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Makes a block observable to the compiler, then forgets it. */
static void *volatile escape;

/* A zeroed block of `n` bytes. */
__attribute__((noinline, unused)) static void *zalloc(size_t n) {
    void *p = malloc(n);
    if (!p) abort();
    memset(p, 0, n);
    return p;
}

/* Overwrites the stack below the caller (where helpers kept pointers). */
__attribute__((noinline, unused)) static void scrub(void) {
    volatile char junk[16384];
    memset((char *)junk, 0, sizeof junk);
}

/* Clears the caller-saved registers that may still hold a pointer. */
__attribute__((noinline, unused)) static void clear_regs(void) {
#if defined(__x86_64__)
    __asm__ volatile("xor %%eax, %%eax\n\txor %%ecx, %%ecx\n\txor %%edx, %%edx\n\t"
                     "xor %%esi, %%esi\n\txor %%edi, %%edi\n\txor %%r8d, %%r8d\n\t"
                     "xor %%r9d, %%r9d\n\txor %%r10d, %%r10d\n\txor %%r11d, %%r11d"
                     ::: "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11",
                     "memory");
#endif
}

/* scrub(), then clear_regs(): after this, only what the program keeps on
 * purpose points at its blocks. */
#define FORGET() do { scrub(); clear_regs(); } while (0)

__attribute__((unused)) static inline void say(const char *s) {
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

#endif
