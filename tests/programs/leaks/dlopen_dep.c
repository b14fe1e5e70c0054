/* A library the dlopen_kept program is linked with (a startup library). It
 * needs dlopen_dep2.so, so that under the preload the last link map of the
 * startup chain is dlopen_dep2's, which ld.so allocated with its minimal
 * malloc in an anonymous mapping (not the heap, not its own data segment):
 * the first dlopen()ed library's link map is pointed to from its l_next. */
int dep2_value(void);
int dep_value(void) { return dep2_value() + 1; }
