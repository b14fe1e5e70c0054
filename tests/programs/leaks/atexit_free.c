/* 14. Everything is still held at the end of main and freed by the
 * program's own exit handlers (an atexit handler and a destructor
 * function) before the leak scan: every kind zero. */
#include "common.h"

struct node { struct node *next; char pad[24]; };

static struct node *list;
static void *table[8];

static void free_list(void) {
    while (list) {
        struct node *n = list->next;
        free(list);
        list = n;
    }
}

__attribute__((destructor)) static void free_table(void) {
    for (int i = 0; i < 8; i++) {
        free(table[i]);
        table[i] = NULL;
    }
}

int main(void) {
    if (atexit(free_list) != 0) return 2;
    for (int i = 0; i < 20; i++) {
        struct node *n = zalloc(sizeof *n);
        n->next = list;
        list = n;
    }
    for (int i = 0; i < 8; i++) table[i] = zalloc(100);
    return 0;
}
