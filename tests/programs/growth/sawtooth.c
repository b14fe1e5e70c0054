/* Sawtooth: fill a batch up to 2 MB, free it all, 100 times (~2 s).
 * The minima are flat at (nearly) zero: steady. */
#include "growth_common.h"

int main(void) {
    for (int cycle = 0; cycle < 100; cycle++)
        tooth(2 << 20, 8192, 16, 1); /* 256 blocks of 8 KiB over 16 ms */
    return 0;
}
