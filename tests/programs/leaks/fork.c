/* 15. A forking program: after fork, parent and child leak different
 * things (before fork, both share one reachable 5-byte block).
 *   parent: definitely lost 96 bytes in 1 block; still reachable
 *           5 + 10 = 15 bytes in 2 blocks.
 *   child:  a lost list of 3 32-byte nodes (definitely lost 32 in 1,
 *           indirectly lost 64 in 2), possibly lost 300 bytes in 1 block,
 *           still reachable 5 bytes in 1 block.
 * Each says its pid: "parent pid=P" and "child pid=C". */
#include "common.h"
#include <stdio.h>
#include <sys/wait.h>

void *volatile shared;
void *volatile parent_kept;
char *volatile child_interior;

__attribute__((noinline)) static void parent_work(void) {
    parent_kept = zalloc(10);
    escape = zalloc(96);
    escape = NULL;
}

__attribute__((noinline)) static void child_work(void) {
    void **a = zalloc(32), **b = zalloc(32), **c = zalloc(32);
    a[0] = b;
    b[0] = c;
    escape = a;
    escape = NULL;
    child_interior = (char *)zalloc(300) + 16;
}

static void say_pid(const char *who) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s pid=%d\n", who, (int)getpid());
    say(buf);
}

int main(void) {
    shared = zalloc(5);
    pid_t pid = fork();
    if (pid < 0) return 2;
    if (pid == 0) {
        say_pid("child");
        child_work();
        FORGET();
        exit(0);
    }
    say_pid("parent");
    parent_work();
    FORGET();
    int status;
    if (waitpid(pid, &status, 0) != pid) return 2;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
