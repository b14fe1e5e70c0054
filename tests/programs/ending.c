/* Allocates 3 blocks, then ends as argv[1] says: "exit" (exit(4)), "_exit"
 * (_exit(3)), "abort", "return" (return 0), "segv" (a null write at once),
 * "late-segv" (a null write after 300 ms, when the recorder has flushed). */
#include <stdlib.h>
#include "counts.h"

void *volatile keep[8];
int *volatile nowhere;

int main(int argc, char **argv) {
    for (int i = 0; i < 3; i++) {
        keep[i] = malloc(48);
        got(keep[i], 48);
    }
    print_counts();
    const char *how = argc > 1 ? argv[1] : "return";
    if (strcmp(how, "exit") == 0) exit(4);
    if (strcmp(how, "_exit") == 0) _exit(3);
    if (strcmp(how, "abort") == 0) abort();
    if (strcmp(how, "segv") == 0) *nowhere = 1;
    if (strcmp(how, "late-segv") == 0) {
        usleep(300000);
        *nowhere = 1;
    }
    return 0;
}
