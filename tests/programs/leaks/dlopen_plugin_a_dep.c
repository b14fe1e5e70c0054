/* The dependency of dlopen_plugin_a.so, loaded by dlopen(). */
int plugin_a_dep_value(void) { return 21; }
