/* exit() from three threads at once (two new ones and main, released by a
 * barrier) after 1000 kept allocations. glibc before 2.41 lets them all run
 * the exit handlers; the recorder must still finish the trace. Exits 3.
 * With the argument "return", main returns 3 instead of calling exit (glibc
 * then calls exit itself, not through the PLT). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "counts.h"

static pthread_barrier_t go;
void *volatile keep[1000];

static void *run(void *arg) {
    (void)arg;
    pthread_barrier_wait(&go);
    exit(3);
}

int main(int argc, char **argv) {
    for (int i = 0; i < 1000; i++) {
        keep[i] = malloc(10);
        got(keep[i], 10);
    }
    print_counts();
    pthread_barrier_init(&go, NULL, 3);
    pthread_t a, b;
    pthread_create(&a, NULL, run, NULL);
    pthread_create(&b, NULL, run, NULL);
    pthread_barrier_wait(&go);
    if (argc > 1 && strcmp(argv[1], "return") == 0)
        return 3;
    exit(3);
}
