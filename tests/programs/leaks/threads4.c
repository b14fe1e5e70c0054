/* 16. Four threads; thread i (0..3) loses i + 1 blocks of 32 bytes and
 * keeps two blocks of 64 + 8i bytes in a global array. All joined.
 *   definitely lost: 32 * (1+2+3+4) = 320 bytes in 10 blocks;
 *   still reachable: 2 * (64+72+80+88) = 608 bytes in 8 blocks. */
#include "common.h"
#include <pthread.h>

void *held[4][2];

__attribute__((noinline)) static void work(long i) {
    for (long k = 0; k <= i; k++) {
        escape = zalloc(32);
        escape = NULL;
    }
    held[i][0] = zalloc((size_t)(64 + 8 * i));
    held[i][1] = zalloc((size_t)(64 + 8 * i));
}

static void *body(void *arg) {
    work((long)arg);
    FORGET();
    return NULL;
}

int main(void) {
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, body, (void *)i) != 0) return 2;
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    FORGET();
    return 0;
}
