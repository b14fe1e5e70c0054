/* 9. A thread spinning in a busy loop when main returns, holding a block:
 *   `stack`:    in a live stack slot of the spinning thread (40 bytes);
 *   `register`: in callee-saved registers only (r12, rbx; 48 bytes),
 *               spinning in inline assembly that never touches memory.
 * Both: still reachable. Plus the C library's per-thread TLS vector. */
#include "common.h"
#include <pthread.h>

static volatile int ready;

static void *spin_stack(void *arg) {
    (void)arg;
    void *volatile mine = zalloc(40);
    FORGET();
    ready = 1;
    for (;;) {
        if (ready == 42) break;
    }
    return mine;
}

static void *spin_register(void *arg) {
    (void)arg;
#if defined(__x86_64__)
    /* The block's address arrives in a register and is moved to r12 and rbx;
     * the input register is then cleared (harmless: this never returns). */
    __asm__ volatile("mov %0, %%r12\n\t"
                     "mov %0, %%rbx\n\t"
                     "xor %0, %0\n\t"
                     "movl $1, %1\n\t"
                     "1: pause\n\t"
                     "jmp 1b"
                     :
                     : "r"(zalloc(48)), "m"(ready)
                     : "r12", "rbx", "memory");
#endif
    return NULL;
}

int main(int argc, char **argv) {
    int reg = argc > 1 && strcmp(argv[1], "register") == 0;
    pthread_t t;
    if (pthread_create(&t, NULL, reg ? spin_register : spin_stack, NULL) != 0) return 2;
    while (!ready) {
    }
    usleep(50 * 1000);
    FORGET();
    return 0;
}
