#include "process_spawn.h"
int sudosos_spawn_placeholder(void) { return 0; }
