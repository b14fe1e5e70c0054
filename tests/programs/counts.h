/* Shared by the test programs: each program keeps its own tally of what it
 * asked the allocator for, the way leakhunt's JSON `totals` defines it, and
 * prints it with write(2) (no stdio buffer, so nothing extra is allocated):
 *
 *   allocs=A frees=F bytes=B peak=P live_blocks=L live_bytes=M bad=X
 *
 * A realloc of a live block counts as one free plus one allocation; peak is
 * the largest sum of live requested sizes. `bad` counts results that were
 * wrong (misaligned, NULL where memory was expected, ...). */
#ifndef LEAKHUNT_TEST_COUNTS_H
#define LEAKHUNT_TEST_COUNTS_H
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static long c_allocs, c_frees, c_bytes, c_peak, c_live_blocks, c_live_bytes, c_bad;

static inline void got(const void *p, size_t n) {
    if (!p) { c_bad++; return; }
    c_allocs++;
    c_bytes += (long)n;
    c_live_blocks++;
    c_live_bytes += (long)n;
    if (c_live_bytes > c_peak) c_peak = c_live_bytes;
}

static inline void gone(size_t n) {
    c_frees++;
    c_live_blocks--;
    c_live_bytes -= (long)n;
}

/* realloc of a live block of `old` bytes into `p` of `n` bytes */
static inline void moved(size_t old, const void *p, size_t n) {
    gone(old);
    got(p, n);
}

static inline void say(const char *s) {
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

/* one write(2), so that lines of two processes never interleave */
static inline void print_counts_as(const char *prefix) {
    char line[320];
    snprintf(line, sizeof line,
             "%sallocs=%ld frees=%ld bytes=%ld peak=%ld live_blocks=%ld live_bytes=%ld bad=%ld\n",
             prefix, c_allocs, c_frees, c_bytes, c_peak, c_live_blocks, c_live_bytes, c_bad);
    say(line);
}

static inline void print_counts(void) { print_counts_as(""); }
#endif
