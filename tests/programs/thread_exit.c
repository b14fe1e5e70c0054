/* A secondary thread calls exit(42) while main is blocked: in pthread_join
 * (no argument) or in pause() (argument "pause"). */
#include <pthread.h>
#include <stdlib.h>
#include "counts.h"

void *volatile keep[100];

static void *worker(void *arg) {
    (void)arg;
    for (int i = 0; i < 100; i++) {
        keep[i] = malloc(10 + i);
        got(keep[i], 10 + i);
    }
    for (int i = 0; i < 50; i++) {
        free(keep[i]);
        gone(10 + i);
    }
    print_counts();
    usleep(20000); /* main is blocked by now */
    exit(42);
}

int main(int argc, char **argv) {
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0) return 1;
    if (argc > 1 && strcmp(argv[1], "pause") == 0)
        for (;;) pause();
    pthread_join(t, NULL);
    return 0;
}
