/* Allocates, tries to exec a program that does not exist (recording must go
 * on), allocates more, then execs itself (or /bin/true with "true") with the
 * argument "image2"; the second image allocates and exits with status 5. */
#include <errno.h>
#include <stdlib.h>
#include "counts.h"

void *volatile keep[64];

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "image2") == 0) {
        for (int i = 0; i < 7; i++) {
            keep[i] = malloc(33);
            got(keep[i], 33);
        }
        print_counts_as("image2: ");
        return 5;
    }
    for (int i = 0; i < 10; i++) {
        keep[i] = malloc(100);
        got(keep[i], 100);
    }
    char *missing[] = {"/nonexistent/leakhunt-test-program", NULL};
    execv(missing[0], missing);
    if (errno != ENOENT) c_bad++;
    for (int i = 10; i < 13; i++) {
        keep[i] = malloc(200);
        got(keep[i], 200);
    }
    char line[64];
    snprintf(line, sizeof line, "pid=%d\n", (int)getpid());
    say(line);
    print_counts_as("image1: ");
    if (argc > 1 && strcmp(argv[1], "true") == 0) {
        char *t[] = {"/bin/true", NULL};
        execv(t[0], t);
    } else {
        char *self[] = {argv[0], "image2", NULL};
        execv("/proc/self/exe", self);
    }
    say("exec failed\n");
    return 99;
}
