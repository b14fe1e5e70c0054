/* The demo: a tiny "server" that handles requests and leaks in three ways a
 * real program does: a lost buffer on an error path, a list whose head is
 * dropped, and a global cache that only grows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node { struct node *next; char payload[48]; };
struct entry { char *key; char *value; struct entry *next; };
static struct entry *cache; /* never evicted: reachable, but it only grows */

static char *read_request(int i) {
    char *buf = malloc(256);
    snprintf(buf, 256, "GET /item/%d", i);
    return buf;
}

static int parse(const char *req, int i) {
    char *copy = strdup(req);
    if (i % 10 == 0) return -1; /* error path forgets `copy` */
    free(copy);
    return 0;
}

static struct node *build_list(int n) {
    struct node *head = NULL;
    for (int i = 0; i < n; i++) {
        struct node *x = calloc(1, sizeof *x);
        x->next = head;
        head = x;
    }
    return head;
}

static void remember(const char *req) {
    struct entry *e = malloc(sizeof *e);
    e->key = strdup(req);
    e->value = malloc(128);
    e->next = cache;
    cache = e;
}

int main(void) {
    for (int i = 0; i < 100; i++) {
        char *req = read_request(i);
        if (parse(req, i) == 0) remember(req);
        free(req);
    }
    struct node *list = build_list(20);
    list = NULL; /* the whole list is lost */
    printf("served 100 requests, cache holds 90 entries\n");
    return 0;
}
