/*
 * process.h: forking a worker and setting the child up (DESIGN §4.4),
 * after nginx's ngx_process.c. (Not spawn.h: that would shadow <spawn.h>
 * on the include path.)
 */
#ifndef SOCK_PROCESS_H
#define SOCK_PROCESS_H

#include <stddef.h>

struct generation;
struct master;
struct wproc;

/*
 * Forks the worker of w's slot with a fresh channel; in the parent w
 * gets the pid and the channel (watched by wchan_on_read) and starts
 * over as W_STARTING. 0 or a negative errno (nothing forked).
 */
int process_spawn_worker(struct master *m, struct wproc *w);
/* The bus socket path of slot in g (in the runtime dir). */
void process_bus_path(const struct generation *g, int slot, char *buf,
                    size_t size);

#endif
