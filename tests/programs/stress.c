/* 4 threads each make N allocations; every third block is handed to the next
 * thread, which frees it. Prints its own counts for comparison. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>

#define THREADS 4
static long N = 1000000;
#define RING 4096
static _Atomic(void *) ring[THREADS][RING];
static atomic_long allocs, frees, bytes;

static void *worker(void *arg) {
    long id = (long)arg;
    void *keep[64] = {0};
    for (long i = 0; i < N; i++) {
        size_t sz = 16 + (i % 64) * 8;
        void *p = malloc(sz);
        atomic_fetch_add(&allocs, 1);
        atomic_fetch_add(&bytes, sz);
        if (i % 3 == 0) {
            /* hand over to the next thread's ring; free whatever was there */
            void *old = atomic_exchange(&ring[(id + 1) % THREADS][i % RING], p);
            if (old) { free(old); atomic_fetch_add(&frees, 1); }
        } else {
            void **slot = &keep[i % 64];
            if (*slot) { free(*slot); atomic_fetch_add(&frees, 1); }
            *slot = p;
        }
        /* frees of blocks another thread put in our ring */
        if (i % 7 == 0) {
            void *q = atomic_exchange(&ring[id][(i * 13) % RING], NULL);
            if (q) { free(q); atomic_fetch_add(&frees, 1); }
        }
    }
    for (int k = 0; k < 64; k++) if (keep[k]) { free(keep[k]); atomic_fetch_add(&frees, 1); }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1) N = atol(argv[1]);
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    long left = 0;
    for (int i = 0; i < THREADS; i++)
        for (int j = 0; j < RING; j++) {
            void *q = atomic_exchange(&ring[i][j], NULL);
            if (q) { free(q); atomic_fetch_add(&frees, 1); left++; }
        }
    printf("allocs=%ld frees=%ld bytes=%ld\n", (long)allocs, (long)frees, (long)bytes);
    return 0;
}
