/* 17. Many blocks: a lost list of 100,000 32-byte nodes (the head
 * definitely lost, 99,999 nodes indirectly lost) and 50,000 lone lost
 * 16-byte blocks.
 *   definitely lost: 32 + 50,000 * 16 = 800,032 bytes in 50,001 blocks;
 *   indirectly lost: 99,999 * 32 = 3,199,968 bytes in 99,999 blocks. */
#include "common.h"

struct node { struct node *next; char pad[24]; };

__attribute__((noinline)) static void lose_list(void) {
    struct node *head = NULL;
    for (int i = 0; i < 100000; i++) {
        struct node *n = malloc(sizeof *n);
        if (!n) abort();
        memset(n, 0, sizeof *n);
        n->next = head;
        head = n;
    }
    escape = head;
    escape = NULL;
}

__attribute__((noinline)) static void lose_lone(void) {
    for (int i = 0; i < 50000; i++) {
        void *p = malloc(16);
        if (!p) abort();
        memset(p, 0, 16);
        escape = p;
    }
    escape = NULL;
}

int main(void) {
    lose_list();
    lose_lone();
    FORGET();
    return 0;
}
