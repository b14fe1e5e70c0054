/* Allocates 4 blocks of 256 bytes, frees 1, prints "pid=<pid>" and its
 * counts on stderr, writes "hello from small" on stdout and exits with the
 * status given as argv[1] (default 0). */
#include <stdlib.h>
#include "counts.h"

void *volatile keep[4];

int main(int argc, char **argv) {
    for (int i = 0; i < 4; i++) {
        keep[i] = malloc(256);
        got(keep[i], 256);
    }
    free(keep[0]);
    gone(256);
    char line[64];
    snprintf(line, sizeof line, "pid=%d\n", (int)getpid());
    say(line);
    print_counts();
    const char *hello = "hello from small\n";
    if (write(1, hello, strlen(hello)) < 0) return 100;
    return argc > 1 ? atoi(argv[1]) : 0;
}
