/* 1,000,000 live blocks of 1000 bytes (about 1 GB): half in a list held by a
 * global (still reachable), half in a list whose head is dropped (one block
 * definitely lost, the rest indirectly lost). For timing the exit scan:
 *   gcc -O1 -g scripts/bench/bigheap.c -o bigheap
 *   leakhunt run -o big.trace -- ./bigheap; leakhunt report --format json big.trace  (leaks.scan.duration_ms) */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
struct n { struct n *next; char pad[1000 - sizeof(void*)]; };
struct n *head;
int main(int argc, char **argv) {
  long N = argc > 1 ? atol(argv[1]) : 1000000;
  struct n *lost = 0;
  for (long i = 0; i < N; i++) {
    struct n *x = malloc(sizeof *x);
    memset(x->pad, 0, sizeof x->pad);
    if (i & 1) { x->next = head; head = x; } else { x->next = lost; lost = x; }
  }
  lost = 0;
  printf("done\n");
  return 0;
}
