/* Program 8b: a worker that blocks every signal (the sigwait pattern, so it
 * never takes the scan's stop signal) and holds a block only on its own stack
 * and another in its TLS while it waits in read() when main returns: both
 * still reachable, as memcheck says. leakhunt scans such a thread's stack from the stack pointer the
 * kernel shows for it. */
#include "common.h"
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

static int fds[2];
static volatile int ready;
__thread void *volatile in_tls; /* found through the thread's TCB */

__attribute__((noinline)) static void *holder(void *arg) {
    (void)arg;
    void *volatile mine = malloc(77);
    memset(mine, 1, 77);
    in_tls = malloc(33);
    ready = 1;
    char c;
    if (read(fds[0], &c, 1) < 0) /* blocks until the process exits */
        return 0;
    free(mine);
    return 0;
}

int main(void) {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, 0); /* the worker inherits it */
    if (pipe(fds) != 0)
        return 1;
    pthread_t t;
    pthread_create(&t, 0, holder, 0);
    while (!ready)
        usleep(1000);
    usleep(20000);
    return 0;
}
