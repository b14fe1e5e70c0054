/* 8. Blocks held only by the stacks of threads that are blocked in a system
 * call when main returns: still reachable (those frames are live).
 *   - a thread blocked in read(2) on a pipe nobody writes: 64 bytes;
 *   - a thread blocked in pthread_cond_wait: 96 bytes.
 * Plus whatever the C library keeps per live thread (its TLS vectors). */
#include "common.h"
#include <pthread.h>

static int pipe_fds[2];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t never_cv = PTHREAD_COND_INITIALIZER;
static int ready;

static void announce(void) {
    pthread_mutex_lock(&mu);
    ready++;
    pthread_cond_broadcast(&ready_cv);
    pthread_mutex_unlock(&mu);
}

static void *reader(void *arg) {
    (void)arg;
    void *volatile mine = zalloc(64);
    FORGET();
    announce();
    char c;
    while (read(pipe_fds[0], &c, 1) != 0) {
    }
    return mine;
}

static void *waiter(void *arg) {
    (void)arg;
    void *volatile mine = zalloc(96);
    FORGET();
    pthread_mutex_lock(&mu);
    ready++;
    pthread_cond_broadcast(&ready_cv);
    for (;;) pthread_cond_wait(&never_cv, &mu);
    return mine;
}

int main(void) {
    if (pipe(pipe_fds) != 0) return 2;
    pthread_t t;
    if (pthread_create(&t, NULL, reader, NULL) != 0) return 2;
    if (pthread_create(&t, NULL, waiter, NULL) != 0) return 2;
    pthread_mutex_lock(&mu);
    while (ready < 2) pthread_cond_wait(&ready_cv, &mu);
    pthread_mutex_unlock(&mu);
    /* let both threads reach their blocking call */
    usleep(100 * 1000);
    FORGET();
    return 0;
}
