/*
 * conn_impl.h: what the two halves of a connection share and nobody else
 * uses: conn.c (frames, closing, timeouts, the app) and conn_upgrade.c
 * (the HTTP upgrade). Others include conn.h.
 */
#ifndef SOCK_CONN_IMPL_H
#define SOCK_CONN_IMPL_H

#include <stddef.h>

#include "conn.h"

struct route_opts;

/* The peer for a log line: formatted on the caller's stack. */
#define PEER(c) conn_peer_str((c), (char[CONN_PEER_MAX]){ 0 }, CONN_PEER_MAX)
/* Input kept back while the app paused reading. */
#define STASHED(c) ((c)->x != NULL && (c)->x->stash_len > 0)

/* The options of c's route; c->route must be set. */
const struct route_opts *conn_opts(const struct conn *c);
/* Writes p now if nothing is queued ahead, else queues it: 0 or -ENOMEM. */
int conn_send_now(struct conn *c, const void *p, size_t len);
/* Enters FINISH: what is queued, then FIN, then the peer's EOF. */
void conn_finish(struct conn *c);
/* End of a top-level event: tear down if due, else keep watching. */
void conn_settle(struct conn *c);
/* Runs c's pending work (infos, stashed input) from the worker's idle. */
void conn_want_pending(struct conn *c);
/*
 * The 101 is on its way: the connection is open. Applies u's options over
 * the route's, runs the app's init, and takes u's contents (not u).
 */
void conn_opened(struct conn *c, struct sock_upgrade *u);

#endif
