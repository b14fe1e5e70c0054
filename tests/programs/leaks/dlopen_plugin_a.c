/* dlopen()ed by dlopen_kept and never closed; allocates nothing itself. It
 * needs dlopen_plugin_a_dep.so, which ld.so then loads for it (one more link
 * map, in the heap). */
int plugin_a_dep_value(void);
int plugin_a_value(void) { return plugin_a_dep_value() * 2; }
