/* Allocation from a signal handler while the main thread is inside malloc:
 * SIGALRM every 100 us; each handler call allocates and frees a 200-byte
 * block, and the first 64 also keep a 300-byte block. The main loop
 * allocates and frees 16-40-byte blocks until 2000 handler calls have run.
 * (Sizes in separate tcache bins, so that the handler never touches a bin
 * the interrupted malloc may be changing: glibc's malloc is not
 * async-signal-safe, but this much holds in practice.) Prints its counts;
 * the handler keeps its own, merged at the end. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include "counts.h"

static volatile sig_atomic_t handled;
static volatile long h_allocs, h_frees, h_bytes, h_live_blocks, h_live_bytes;
static void *volatile kept[64];

static void on_alarm(int sig) {
    (void)sig;
    void *p = malloc(200);
    h_allocs++, h_bytes += 200;
    if (handled < 64) {
        kept[handled] = malloc(300);
        h_allocs++, h_bytes += 300, h_live_blocks++, h_live_bytes += 300;
    }
    free(p);
    h_frees++;
    handled++;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, 0);
    struct itimerval t = {{0, 100}, {0, 100}};
    setitimer(ITIMER_REAL, &t, 0);
    long n = 0;
    while (handled < 2000) {
        size_t size = 16 + (size_t)(n % 25);
        void *p = malloc(size);
        got(p, size);
        free(p);
        gone(size);
        n++;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, 0);
    c_allocs += h_allocs, c_frees += h_frees, c_bytes += h_bytes;
    c_live_blocks += h_live_blocks, c_live_bytes += h_live_bytes;
    print_counts();
    return 0;
}
