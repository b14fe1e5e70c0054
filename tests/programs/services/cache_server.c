/* The same request loop as leaky_server.c, but it remembers only the last
 * CACHE_SLOTS requests: a ring that evicts the oldest record when full. Its
 * heap is flat once the ring has filled. See server_common.c for the loop
 * and the usage. */
#include "server_common.c"

#define CACHE_SLOTS 32

static struct record *cache[CACHE_SLOTS];
static unsigned long cache_next;

static void record_free(struct record *r) {
    free(r->line);
    free(r);
}

static __attribute__((noinline)) void cache_put(const struct request *rq, int status, size_t bytes,
                                                const char *line) {
    struct record **slot = &cache[cache_next++ % CACHE_SLOTS];
    if (*slot) {
        record_free(*slot); /* evict the oldest */
        *slot = NULL;
    }
    struct record *r = malloc(sizeof *r); /* @site:cache_node */
    if (!r)
        return;
    r->next = NULL;
    r->id = rq->id;
    r->status = status;
    r->bytes = bytes;
    r->when_ms = now_ms();
    r->line = strdup(line); /* @site:cache_line */
    *slot = r;
}

static void keep(const struct request *rq, int status, size_t bytes, const char *line) {
    cache_put(rq, status, bytes, line);
}

static long store_size(void) {
    long n = 0;
    for (int i = 0; i < CACHE_SLOTS; i++)
        n += cache[i] != NULL;
    return n;
}

static void store_free(void) {
    for (int i = 0; i < CACHE_SLOTS; i++) {
        if (cache[i])
            record_free(cache[i]);
        cache[i] = NULL;
    }
}
