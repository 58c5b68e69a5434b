#ifndef SUDOSOS_PROCESS_SPAWN_H
#define SUDOSOS_PROCESS_SPAWN_H
/* Spawning isolated children: fork + async-signal-safe set-up + exec (see Supervisor). */
int sudosos_spawn_placeholder(void);
#endif
