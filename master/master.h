/*
 * master.h: the preforking master (DESIGN §4.1-4.6).
 */
#ifndef SOCK_MASTER_H
#define SOCK_MASTER_H

#include "settings.h"

/*
 * Runs the master until it stops: binds (or takes systemd's sockets),
 * forks generation 1 from the file at cfg_path (first is that file,
 * already loaded and checked; it is used for the runtime dir), supervises,
 * reloads, stops. Returns the process exit status.
 */
int master_run(const char *cfg_path, const struct config *first);

#endif
