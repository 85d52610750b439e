/*
 * pending.h: deferred upgrade decisions (sock_upgrade_defer): the handle
 * the app keeps, the request and sock_upgrade the worker keeps meanwhile,
 * and the one rule that makes it safe from any thread: a handle whose
 * request died (handshake timeout, client gone, worker stopping) answers
 * -EPIPE, and a decision is applied on the loop only if the request is
 * still there. The connection (conn_upgrade.c) decides what the client
 * sees, in the callback it holds the request with; it is opaque here.
 */
#ifndef SOCK_PENDING_H
#define SOCK_PENDING_H

#include "sock_impl.h"

struct conn;
struct worker;
struct wpending;

/* The host's defer call (host: the worker). NULL on ENOMEM. */
sock_pending *pending_new(void *host, struct sock_upgrade *u);
/*
 * Applies the app's decision to c, on the loop, outside any callback
 * (conn_upgrade_decided's contract): takes u's contents, not u; r stays
 * pending.c's.
 */
typedef void pending_decided_fn(struct conn *c, const struct sock_request *r,
                                struct sock_upgrade *u, int status,
                                const char *body);
/*
 * The hook answered LATER: keeps r and u (moved: the caller must not
 * destroy them) for c until the decision, which goes to decided. *slot
 * (c's, NULL when c could not make one: -ENOMEM) holds the handle until
 * the server gives it up or the decision applies, and is cleared then.
 * 0, or -ENOMEM (then r and u are still the caller's, and u->pending is
 * released).
 */
int pending_hold(struct conn *c, sock_pending **slot,
                 pending_decided_fn *decided, struct sock_request *r,
                 struct sock_upgrade *u);
/* The server side gives p up (c went away, timed out, or the hook did not
   answer LATER): a later decision gets -EPIPE. Loop thread. */
void pending_release(sock_pending *p);
/* On the loop: applies a queued decision (from appio.c). Consumes the
   queue's reference and, unless the request is still there, frees arg. */
void pending_apply(struct wpending *p, int status, const char *body,
                   void *arg, void (*free_arg)(void *));

#endif
