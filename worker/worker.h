/*
 * worker.h: one worker process: a libev loop with its listeners, routes
 * and apps, the shared read buffer, the connection table and the
 * per-iteration machinery (flush before poll, info delivery when idle,
 * deferred frees); its start, signals, reload drain and stop. Everything
 * here is per process; nothing is shared. The state itself (struct
 * worker) and what lower modules need of it are in wstate.h; worker.c is
 * the top of worker/ and may use every module.
 */
#ifndef SOCK_WORKER_H
#define SOCK_WORKER_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "wstate.h"

struct tls_ticket_keys;

/*
 * Creates a worker on loop for cfg, with listening sockets fds[i] matching
 * cfg->listeners[i] (already bound and listening), then the [admin] one if
 * configured (fds[n_listeners]). On success the worker owns those fds
 * (worker_free closes them). The apps come with worker_load_apps.
 * Returns NULL with a message in err on failure.
 */
struct worker *worker_new(struct ev_loop *loop, const struct config *cfg,
                          const int *fds, uint8_t generation, uint8_t slot,
                          char *err, size_t errlen);
/*
 * Loads every TLS listener's certificate and key into w (before dropping
 * privileges: key files are often root's). keys: session ticket keys
 * shared by every worker of the server, so any worker resumes any
 * other's sessions. 0, or -1 with "FILE:LINE: PATH: reason" in err.
 */
int worker_load_tls(struct worker *w, const struct tls_ticket_keys *keys,
                    char *err, size_t errlen);
/*
 * Loads every route's app (built-ins, or modules with dlopen). Under a
 * master this runs after the worker dropped privileges, so no module code
 * runs as root. 0, or -1 with "FILE:LINE: message" in err.
 */
int worker_load_apps(struct worker *w, char *err, size_t errlen);
void worker_free(struct worker *w);
/* Moves w's counters to all[mine] of a shared page of n slots. */
void worker_share_stats(struct worker *w, struct worker_stats *all, size_t n,
                        size_t mine);
/* Starts accepting and handling signals (TERM/QUIT graceful, INT fast),
   and with [redis] the bridge between machines, whose counters go to
   w->stats as it is then. First runs each route's app setup (a failure
   is logged and makes that route answer 503). */
void worker_start(struct worker *w);
/* Stops accepting on every listener (for good, or until resumed). */
void worker_stop_accepting(struct worker *w);
/* Stops accepting for good and closes this process's copies of the
   listening sockets. */
void worker_close_listeners(struct worker *w);
/* INT: drop every connection without a close frame and leave the loop. */
void worker_fast_stop(struct worker *w);
/* Graceful stop: stop accepting, close every connection with code (0: each
   route's shutdown_close_code). */
void worker_shutdown(struct worker *w, uint16_t code, uint32_t timeout_ms);

struct bus_msg;
/* The bus's and the Redis bridge's deliver callback (ctx: the worker):
   admin requests and replies to admin.c, infos to messaging.c. */
void worker_bus_deliver(void *ctx, const struct bus_msg *m);

/* Binds and listens for l (SOCK_CLOEXEC|SOCK_NONBLOCK). fd or -errno. */
int worker_listen(const struct listener_cfg *l);
/* Fills buf with "ADDR:PORT" of a bound socket. */
void worker_sockname(int fd, char *buf, size_t size);

#endif
