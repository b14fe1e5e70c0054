/* 30. Written the ordinary way: no block is zeroed. 160 messages formatted
 * into malloc(64) buffers (snprintf writes only the text), one in 16 freed,
 * the rest leaked; then a 50-node list whose nodes have padding and a name
 * field written only in part, lost by its head.
 *   definitely lost: 150 x 64 + 40 = 9,640 bytes in 151 blocks
 *   indirectly lost: 49 x 40 = 1,960 bytes in 49 blocks
 * Before it exits, a probe counts the words of the leaked messages that
 * point into another block of the program (the block addresses are kept
 * masked, so the probe itself holds no pointer). Run bare it prints
 * "probe: 0"; so must it under leakhunt: a recorder whose own data lands in
 * the program's heap leaves addresses in the bytes snprintf never wrote. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MESSAGES 160
#define NODES 50
#define MASK 0x5a5a5a5a5a5a5a5aULL

struct node {
    char tag; /* 7 bytes of padding follow */
    struct node *next;
    int value;
    char name[20];
};

static uint64_t masked[MESSAGES + NODES];
static size_t sizes[MESSAGES + NODES];
static int nblocks;
static uint64_t leaked_msgs[MESSAGES];
static int nleaked;

static void track(void *p, size_t n) {
    masked[nblocks] = (uint64_t)(uintptr_t)p ^ MASK;
    sizes[nblocks++] = n;
}

__attribute__((noinline)) static void messages(const char *who) {
    for (int i = 0; i < MESSAGES; i++) {
        char *m = malloc(64);
        snprintf(m, 64, "request %d from %s", i, who);
        track(m, 64);
        if (i % 16 == 0)
            free(m), nblocks--;
        else
            leaked_msgs[nleaked++] = (uint64_t)(uintptr_t)m ^ MASK;
    }
}

__attribute__((noinline)) static void list(void) {
    struct node *head = NULL;
    for (int i = 0; i < NODES; i++) {
        struct node *n = malloc(sizeof *n);
        n->tag = 'n';
        n->next = head;
        n->value = i;
        strcpy(n->name, "node"); /* 15 bytes never written */
        track(n, sizeof *n);
        head = n;
    }
}

__attribute__((noinline)) static int probe(void) {
    int hits = 0;
    for (int i = 0; i < nleaked; i++) {
        const uint64_t *w = (const uint64_t *)(uintptr_t)(leaked_msgs[i] ^ MASK);
        for (int k = 0; k < 8; k++)
            for (int j = 0; j < nblocks; j++) {
                uint64_t b = masked[j] ^ MASK;
                if (w[k] >= b && w[k] < b + sizes[j])
                    hits++;
            }
    }
    return hits;
}

__attribute__((noinline)) static void scrub(void) {
    volatile char junk[16384];
    memset((char *)junk, 0, sizeof junk);
}

int main(int argc, char **argv) {
    messages(argc > 1 ? argv[1] : "a client");
    list();
    char line[32];
    int n = snprintf(line, sizeof line, "probe: %d\n", probe());
    if (write(1, line, n) != n)
        return 1;
    scrub();
    return 0;
}
