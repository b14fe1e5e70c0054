/* Shared helpers for the growth-verdict corpus (scripts/growth/).
 *
 * Every program here has a fixed allocation pattern: the same calls with the
 * same sizes in the same order on every run. Time only paces the work (a
 * short sleep per tick), so a loaded machine stretches the run but does not
 * change what is allocated. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Sleep for `ms` milliseconds (the pace of a tick). */
static __attribute__((unused)) void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static __attribute__((unused)) void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* A fixed pseudo-random sequence (the same on every run). */
static uint32_t lcg_state = 12345;
static uint32_t lcg(void) {
    lcg_state = lcg_state * 1103515245u + 12345u;
    return lcg_state >> 8;
}

/* Touch a block so it is really used (one write per page is enough). */
static void touch(char *p, size_t n) {
    for (size_t i = 0; i < n; i += 4096)
        p[i] = (char)i;
    if (n)
        p[n - 1] = 1;
}

/* Temporary work that leaves nothing behind: a request's buffers. `n`
 * blocks of 32..2080 bytes, all freed before it returns. */
static __attribute__((noinline, unused)) void churn(int n) {
    void *tmp[64];
    if (n > 64)
        n = 64;
    for (int i = 0; i < n; i++) {
        size_t sz = 32 + lcg() % 2048;
        tmp[i] = malloc(sz);
        touch(tmp[i], sz);
    }
    for (int i = n - 1; i >= 0; i--)
        free(tmp[i]);
}

/* One sawtooth tooth: fill a batch up to `bytes` in blocks of `block`
 * bytes over `steps` paced steps of `step_ms`, then free it all. */
static __attribute__((noinline, unused)) void tooth(size_t bytes, size_t block, int steps, long step_ms) {
    size_t n = bytes / block;
    void **batch = malloc(n * sizeof *batch);
    size_t done = 0;
    for (int s = 0; s < steps; s++) {
        size_t upto = n * (size_t)(s + 1) / (size_t)steps;
        for (; done < upto; done++) {
            batch[done] = malloc(block);
            touch(batch[done], block);
        }
        sleep_ms(step_ms);
    }
    for (size_t i = 0; i < n; i++)
        free(batch[i]);
    free(batch);
}
