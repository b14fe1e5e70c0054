/* Starts /bin/true with posix_spawn() and with vfork()+exec, allocating
 * before, between and after; prints "spawned=<pid> vforked=<pid>" and its
 * counts on stderr. A vfork child shares the parent's memory and must not
 * end (or write into) the parent's trace. */
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include "counts.h"

extern char **environ;
void *volatile keep[64];

int main(void) {
    for (int i = 0; i < 10; i++) {
        keep[i] = malloc(100);
        got(keep[i], 100);
    }
    pid_t spawned;
    char *argv[] = {"/bin/true", NULL};
    if (posix_spawn(&spawned, "/bin/true", NULL, NULL, argv, environ) != 0) return 1;
    int st;
    if (waitpid(spawned, &st, 0) != spawned || !WIFEXITED(st) || WEXITSTATUS(st) != 0) c_bad++;
    for (int i = 10; i < 20; i++) {
        keep[i] = malloc(200);
        got(keep[i], 200);
    }
    pid_t vforked = vfork();
    if (vforked == 0) {
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    if (waitpid(vforked, &st, 0) != vforked || !WIFEXITED(st) || WEXITSTATUS(st) != 0) c_bad++;
    for (int i = 20; i < 30; i++) {
        keep[i] = malloc(300);
        got(keep[i], 300);
    }
    char line[96];
    snprintf(line, sizeof line, "spawned=%d vforked=%d\n", (int)spawned, (int)vforked);
    say(line);
    print_counts();
    return c_bad ? 1 : 0;
}
