/* Benchmark: malloc/free pairs at the bottom of call chains 12 to 15 frames
 * deep (from the thread's start), of varying sizes, each block kept for a
 * while (a ring of KEEP slots) before it is freed, so that stacks and
 * lifetimes look like a real program's rather than one hot site.
 *
 * usage: churn THREADS PAIRS_PER_THREAD
 * Every thread does PAIRS_PER_THREAD malloc+free pairs; run.py splits one
 * total over the threads, so the work is the same at 1, 2 and 4 threads. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define KEEP 64

struct job { long pairs; unsigned seed; long sum; };

__attribute__((noinline)) static void *ring_step(void **ring, long i, unsigned *seed) {
    *seed = *seed * 1103515245u + 12345u;
    /* mostly small blocks, now and then a larger one */
    size_t sz = (*seed >> 16) % 16 == 0 ? 1024 + (*seed >> 8) % 8192 : 16 + (*seed >> 12) % 240;
    void *p = malloc(sz);
    ((char *)p)[0] = (char)i;
    free(ring[i % KEEP]);  /* the block made KEEP steps ago */
    ring[i % KEEP] = p;
    return p;
}

/* Eleven distinct frames; the asm after each call keeps it from becoming
 * a tail call, so every frame stays on the stack. */
#define LEVEL(n, next) \
    __attribute__((noinline)) static void *f##n(void **r, long i, unsigned *s) { \
        void *p = next(r, i, s); __asm__ volatile("" ::: "memory"); return p; }
LEVEL(10, ring_step) LEVEL(9, f10) LEVEL(8, f9) LEVEL(7, f8) LEVEL(6, f7)
LEVEL(5, f6) LEVEL(4, f5) LEVEL(3, f4) LEVEL(2, f3) LEVEL(1, f2) LEVEL(0, f1)

/* Entry points at four depths: from clone3, start_thread and work down to
 * ring_step the chains are 12 to 15 frames (malloc's own below that). */
static void *(*const entry[4])(void **, long, unsigned *) = {f3, f2, f1, f0};

static void *work(void *arg) {
    struct job *j = arg;
    void *ring[KEEP] = {0};
    for (long i = 0; i < j->pairs; i++)
        j->sum += (long)entry[(i >> 3) & 3](ring, i, &j->seed) & 1;
    for (int k = 0; k < KEEP; k++)
        free(ring[k]);
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    long pairs = argc > 2 ? atol(argv[2]) : 2000000;
    if (threads < 1 || threads > 64) return 2;
    pthread_t tid[64];
    struct job jobs[64];
    long sum = 0;
    for (int t = 0; t < threads; t++) {
        jobs[t] = (struct job){pairs, 1u + (unsigned)t, 0};
        pthread_create(&tid[t], NULL, work, &jobs[t]);
    }
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        sum += jobs[t].sum;
    }
    printf("%ld\n", sum);
    return 0;
}
