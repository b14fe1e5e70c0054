/* A toy request loop for the growth analysis: each request allocates a
 * temporary working buffer (the sawtooth) and, in "leaky" mode, appends its
 * request line to a global history that is only freed at shutdown; in
 * "cache" mode it keeps the last 64 requests in a bounded cache.
 * usage: service leaky|cache [requests] [usec between requests] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct entry { struct entry *next; char *line; };
static struct entry *history;          /* grows with every request */
static char *cache[64];                 /* bounded */

static void remember(const char *line) {
    struct entry *e = malloc(sizeof *e);
    e->line = strdup(line);
    e->next = history;
    history = e;
}

static void cache_put(long i, const char *line) {
    free(cache[i % 64]);
    cache[i % 64] = strdup(line);
}

static void handle(long i, int leaky) {
    char *work = malloc(16384);          /* per-request scratch */
    snprintf(work, 16384, "GET /item/%ld HTTP/1.1 with some padding to make it longer", i);
    if (leaky) remember(work); else cache_put(i, work);
    free(work);
}

int main(int argc, char **argv) {
    int leaky = argc > 1 && strcmp(argv[1], "leaky") == 0;
    long n = argc > 2 ? atol(argv[2]) : 4000;
    long pause = argc > 3 ? atol(argv[3]) : 500;
    for (long i = 0; i < n; i++) {
        handle(i, leaky);
        usleep(pause);
    }
    while (history) { struct entry *e = history; history = e->next; free(e->line); free(e); }
    for (int i = 0; i < 64; i++) free(cache[i]);
    return 0;
}
