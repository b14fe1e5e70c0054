/* Closes every file descriptor above 2 (as daemons and some process
 * launchers do) -- the recorder's trace file among them --, changes to /
 * (as daemons do), then opens argv[1] (an absolute path; likely getting
 * the number the trace had), allocates, and writes "hello\n" into it. The
 * recorder must not write into the program's file, and must go on
 * recording into its own. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include "counts.h"

void *volatile keep[20000];

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    for (int i = 0; i < 100; i++) {
        keep[i] = malloc(10);
        got(keep[i], 10);
    }
    usleep(200000); /* the recorder has written its first chunks */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 3;
    for (long fd = 3; fd < (long)rl.rlim_cur && fd < 65536; fd++) close((int)fd);
    if (chdir("/") != 0) return 6;
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return 4;
    for (int i = 100; i < 20000; i++) {
        keep[i] = malloc(16);
        got(keep[i], 16);
    }
    usleep(300000); /* time for the recorder to try to write */
    if (write(fd, "hello\n", 6) != 6) return 5;
    close(fd);
    print_counts();
    return 0;
}
