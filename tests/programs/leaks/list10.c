/* 2. A lost singly linked list of 10 nodes of 48 bytes: the head is
 * definitely lost (48 bytes, 1 block) and carries the other nine as its
 * indirect bytes (432 bytes, 9 blocks indirectly lost). */
#include "common.h"

struct node {
    struct node *next;
    char payload[40];
};

__attribute__((noinline)) static void lose_list(void) {
    struct node *head = NULL;
    for (int i = 0; i < 10; i++) {
        struct node *n = zalloc(sizeof *n);
        n->next = head;
        head = n;
    }
    escape = head;
    escape = NULL;
}

int main(void) {
    lose_list();
    FORGET();
    return 0;
}
