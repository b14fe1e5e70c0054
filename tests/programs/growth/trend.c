/* Steady trend: request churn plus a global list that grows by 10 KB every
 * 10 ms tick (~1 MB/s) for 250 ticks (~2.5 s), freed at exit: growing. */
#include "growth_common.h"

struct node {
    struct node *next;
    char payload[1008];
};
static struct node *history;

static __attribute__((noinline)) void remember(void) {
    struct node *n = malloc(sizeof *n); /* @site:trend_node */
    touch((char *)n, sizeof *n);
    n->next = history;
    history = n;
}

int main(void) {
    for (int tick = 0; tick < 250; tick++) {
        for (int i = 0; i < 10; i++) {
            churn(8);
            remember();
        }
        sleep_ms(10);
    }
    while (history) {
        struct node *n = history;
        history = n->next;
        free(n);
    }
    return 0;
}
