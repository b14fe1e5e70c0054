/* A request loop with the classic unbounded history: every request's
 * access-log record is appended to a global list that is never trimmed
 * (freed only at shutdown, so nothing leaks at exit, but the heap grows
 * with every request). See server_common.c for the loop and the usage. */
#include "server_common.c"

static struct record *history;        /* oldest first */
static struct record **history_tail = &history;
static long history_len;

static __attribute__((noinline)) void history_append(const struct request *rq, int status,
                                                     size_t bytes, const char *line) {
    struct record *r = malloc(sizeof *r); /* @site:history_node */
    if (!r)
        return;
    r->next = NULL;
    r->id = rq->id;
    r->status = status;
    r->bytes = bytes;
    r->when_ms = now_ms();
    r->line = strdup(line); /* @site:history_line */
    *history_tail = r;
    history_tail = &r->next;
    history_len++;
}

static void keep(const struct request *rq, int status, size_t bytes, const char *line) {
    history_append(rq, status, bytes, line);
}

static long store_size(void) {
    return history_len;
}

static void store_free(void) {
    while (history) {
        struct record *r = history;
        history = r->next;
        free(r->line);
        free(r);
    }
    history_tail = &history;
    history_len = 0;
}
