/* A list whose length is the first argument, kept in a global: run it twice
 * with different lengths and `leakhunt diff` sees make_list live in both
 * runs with a change, other() live in both unchanged, and only_long() live
 * in the longer run only. */
#include <stdlib.h>

struct node {
    struct node *next;
    char pad[48];
};

struct node *volatile head;
char *volatile kept, *volatile extra;

__attribute__((noinline)) static struct node *make_list(int n) {
    struct node *h = NULL;
    for (int i = 0; i < n; i++) {
        struct node *x = malloc(sizeof *x); /* @site:make_list */
        x->next = h;
        h = x;
    }
    return h;
}

__attribute__((noinline)) static char *other(void) {
    return malloc(1000); /* @site:other */
}

__attribute__((noinline)) static char *only_long(void) {
    return malloc(5000); /* @site:only_long */
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 100;
    head = make_list(n);
    kept = other();
    if (n > 150)
        extra = only_long();
    return 0;
}
