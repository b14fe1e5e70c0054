/* An exec chain through the variadic entry points: image 0 execs image 1
 * with execl (eight arguments, so that some are passed on the stack), 1 goes
 * on with execlp, 2 with execle (its environment after the NULL), 3 with
 * execv; image 4 exits with status 4. Each image allocates 10 x 100 bytes
 * (kept) and checks that it got all its arguments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;
void *volatile keep[10];

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 0;
    if (n == 1 && (argc != 9 || strcmp(argv[8], "h") != 0))
        return 100;
    if (n == 3 && getenv("LEAKHUNT_EXECLE") == NULL)
        return 103;
    for (int i = 0; i < 10; i++)
        keep[i] = malloc(100);
    char next[16];
    snprintf(next, sizeof next, "%d", n + 1);
    switch (n) {
    case 0:
        execl(argv[0], argv[0], next, "b", "c", "d", "e", "f", "g", "h", (char *)0);
        return 10;
    case 1:
        execlp(argv[0], argv[0], next, (char *)0);
        return 11;
    case 2: {
        /* execle replaces the environment: pass the recorder's on. */
        char *envp[8] = {"LEAKHUNT_EXECLE=1"};
        int k = 1;
        for (char **e = environ; *e && k < 7; e++)
            if (strncmp(*e, "LD_PRELOAD=", 11) == 0 || strncmp(*e, "LEAKHUNT_", 9) == 0)
                envp[k++] = *e;
        envp[k] = NULL;
        execle(argv[0], argv[0], next, (char *)0, envp);
        return 12;
    }
    case 3: {
        char *a[] = {argv[0], next, NULL};
        execv(argv[0], a);
        return 13;
    }
    }
    return 4;
}
