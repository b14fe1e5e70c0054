/* 10. Thread-local storage holding blocks: `__thread void *tls_block`, set
 * in main (24 bytes) and in a second thread (56 bytes) that is still alive,
 * blocked in read(2), when main returns. Both still reachable. */
#include "common.h"
#include <pthread.h>

__thread void *tls_block;
static int pipe_fds[2];
static volatile int ready;

__attribute__((noinline)) static void set_tls(size_t n) {
    tls_block = zalloc(n);
}

static void *second(void *arg) {
    (void)arg;
    set_tls(56);
    FORGET();
    ready = 1;
    char c;
    while (read(pipe_fds[0], &c, 1) != 0) {
    }
    return NULL;
}

int main(void) {
    if (pipe(pipe_fds) != 0) return 2;
    set_tls(24);
    pthread_t t;
    if (pthread_create(&t, NULL, second, NULL) != 0) return 2;
    while (!ready) usleep(1000);
    usleep(50 * 1000);
    FORGET();
    return 0;
}
