/*
 * listen.h: the listening sockets the master holds for its workers,
 * reused across reloads, and the ones systemd passes (socket activation).
 */
#ifndef SOCK_LISTEN_H
#define SOCK_LISTEN_H

#include <stddef.h>

struct config;
struct generation;
struct master;

/*
 * Opens what cfg needs that is not open yet (nworkers sockets for a
 * reuseport listener) and marks what it uses. 0, or a negative errno
 * with "file:line: cannot listen on ADDR: why" in err.
 */
int listen_prepare(struct master *m, const struct config *cfg, int nworkers,
                   char *err, size_t errlen);
/* Closes sockets the newest config no longer uses (old workers keep
   their own copies until they exit). */
void listen_prune(struct master *m);
/* Closes every socket: the master is stopping. */
void listen_close_all(struct master *m);
/* The listening fds a worker of g in slot uses, in config order, then the
   admin one, into out (n_listeners + 1 at most); returns how many. */
size_t listen_fds_for_slot(struct master *m, const struct generation *g,
                           int slot, int *out);
/* Takes the sockets systemd passed (LISTEN_PID, LISTEN_FDS), if any. */
void listen_take_activated(struct master *m);
/* Closes the passed sockets no [listen] matched, with a warning. */
void listen_drop_unused_activated(struct master *m);

#endif
