/* The dependency of dlopen_dep.so (see there): loaded at start-up, last. */
int dep2_value(void) { return 2; }
