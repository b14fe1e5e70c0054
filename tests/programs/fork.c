/* The parent allocates, forks; the child allocates, frees (one of its own
 * blocks and one inherited), leaks, and exits with status 3; the parent waits
 * and allocates a little more. Both print their counts (the child's cover
 * only what it did after the fork). */
#include <stdlib.h>
#include <sys/wait.h>
#include "counts.h"

void *volatile keep[64];

int main(void) {
    for (int i = 0; i < 10; i++) {
        keep[i] = malloc(100);
        got(keep[i], 100);
    }
    free(keep[0]);
    gone(100);
    char line[128];
    snprintf(line, sizeof line, "held_at_fork blocks=%ld bytes=%ld\n", c_live_blocks, c_live_bytes);
    say(line);

    pid_t child = fork();
    if (child < 0) return 1;
    if (child == 0) {
        c_allocs = c_frees = c_bytes = c_peak = c_live_blocks = c_live_bytes = 0;
        for (int i = 20; i < 25; i++) {
            keep[i] = malloc(1000);
            got(keep[i], 1000);
        }
        free(keep[20]);
        gone(1000);
        free(keep[1]); /* inherited from the parent */
        c_frees++;
        print_counts_as("child: ");
        exit(3);
    }
    snprintf(line, sizeof line, "child=%d parent=%d\n", (int)child, (int)getpid());
    say(line);
    int status = 0;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 3) c_bad++;
    for (int i = 30; i < 33; i++) {
        keep[i] = malloc(7);
        got(keep[i], 7);
    }
    print_counts_as("parent: ");
    return c_bad ? 1 : 0;
}
