/*
 * conn_impl.h: what the parts of a connection share and nobody else uses:
 * conn.c (set-up, the watcher, closing, timeouts, teardown), conn_send.c
 * (output), conn_recv.c (input), conn_ops.c (the app's calls and info
 * delivery) and conn_upgrade.c (the HTTP upgrade). Others include conn.h.
 * The helpers every frame goes through are static inline here, so the
 * split into files costs no call on the hot path.
 */
#ifndef SOCK_CONN_IMPL_H
#define SOCK_CONN_IMPL_H

#include <stddef.h>

#include "conn.h"
#include "messaging.h"
#include "wstate.h"

struct route_opts;

/* The peer for a log line: formatted on the caller's stack. */
#define PEER(c) conn_peer_str((c), (char[CONN_PEER_MAX]){ 0 }, CONN_PEER_MAX)
/* Input kept back while the app paused reading. */
#define STASHED(c) ((c)->x != NULL && (c)->x->stash_len > 0)
/* Reads per wakeup of one connection, so no client starves the rest. */
#define CONN_READS_PER_WAKEUP 4

/* The sock_conn operations (conn_ops.c), what the app's handle points at. */
extern const struct sock_conn_ops conn_ops;

/* ---- conn.c ------------------------------------------------------------ */

/* Enters FINISH: what is queued, then FIN, then the peer's EOF. */
void conn_finish(struct conn *c);
/* Fails the connection (§7.1.7) with code: a close frame, then FINISH
   without waiting for the peer's close. Safe inside callbacks. */
void conn_fail(struct conn *c, uint16_t code, sock_close_error err);
/* Starts our side of the closing handshake and waits for the peer's
   (open connections only). */
void conn_close(struct conn *c, uint16_t code, const char *reason,
                size_t len, sock_close_kind kind, sock_close_error err);
/* End of a top-level event: tear down if due, else keep watching. */
void conn_settle(struct conn *c);
/* Runs c's pending work (infos, stashed input) from the worker's idle. */
void conn_want_pending(struct conn *c);
/*
 * The 101 is on its way: the connection is open. Applies u's options over
 * the route's, runs the app's init, and takes u's contents (not u).
 */
void conn_opened(struct conn *c, struct sock_upgrade *u);

/* ---- conn_send.c ------------------------------------------------------- */

/* Writes p now if nothing is queued ahead, else queues it: 0 or -ENOMEM. */
int conn_send_now(struct conn *c, const void *p, size_t len);
/* Queues one whole data or control frame (compressed where c compresses
   op, unless flags has SOCK_PUSH_NO_COMPRESS), by reference when b is
   given, and counts it out: 0 or -errno. No limit is checked. */
int conn_queue_frame_ex(struct conn *c, uint8_t op, const void *data,
                        size_t len, sock_buf *b, unsigned flags);
/* Queues a close frame with code (1005 or 0: an empty one) and records
   the code sent. */
void conn_queue_close(struct conn *c, uint16_t code, const char *reason,
                      size_t len);
/* Whether len more bytes fit under send_hard_limit; if not, c is failed
   with 1008 and false returned. */
bool conn_fits(struct conn *c, size_t len);
/* A pong or ping of the server's own, within the send limits: 0, or
   -ENOBUFS (c failed) or -ENOMEM. */
int conn_queue_own(struct conn *c, uint8_t op, const void *data, size_t len);
/* Answers a ping (§5.5.2), now or, under a flood, with a later pong. */
void conn_answer_ping(struct conn *c, const uint8_t *p, size_t len);

/* ---- conn_recv.c ------------------------------------------------------- */

/* Reads and handles up to CONN_READS_PER_WAKEUP buffers of input. */
void conn_read(struct conn *c);
/* Handles the input kept while c could not (the app paused reading). */
void conn_run_stash(struct conn *c);
/* Forgets the input c holds unhandled (failed, or torn down). */
void conn_drop_input(struct conn *c);
/* (Dis)arms message_timeout after a change of input or of reading. */
void conn_track_unfinished(struct conn *c);

/* ---- conn_ops.c -------------------------------------------------------- */

/* After a handler returned: continue, stop as recorded, or 1011. */
void conn_after_app(struct conn *c, sock_ret ret);

/* ---- Shared helpers (inline: every frame goes through them) ------------ */

/* The options of c's route; c->route must be set. */
static inline const struct route_opts *
conn_opts(const struct conn *c)
{
    return &c->route->cfg->opts;
}

static inline uint32_t
open_timeout_ms(const struct conn *c)
{
    uint32_t ping = conn_opts(c)->ping_interval_ms;

    return ping != 0 ? ping : c->idle_ms;
}

/* The /metrics entry of c's route (an open connection always has one). */
static inline struct worker_route_stats *
conn_route_stats(const struct conn *c)
{
    return &c->w->stats->route[c->route->stat];
}

/* What c holds of input not yet handled: the message being assembled (or
   inflated) and input kept while its app paused reading. */
static inline size_t
conn_held(const struct conn *c)
{
    return ws_session_held(&c->ws) + (c->x != NULL ? c->x->stash_len : 0);
}

/* Around every app callback: no nesting (c->in_cb), and c is the "from"
   of the infos it sends. */
static inline void
cb_enter(struct conn *c)
{
    c->in_cb = true;
    messaging_set_current(c->w, c->id);
}

static inline void
cb_leave(struct conn *c)
{
    messaging_set_current(c->w, 0);
    c->in_cb = false;
}

/*
 * The connection's one watcher waits for what c->reading and c->writing
 * ask. Two watchers on the same fd would cost 48 more bytes per
 * connection, and libev makes one epoll change of either.
 */
static inline void
conn_io_update(struct conn *c)
{
    int ev = (c->reading && !c->fan_paused ? EV_READ : 0) |
             (c->writing ? EV_WRITE : 0);

    if (ev_is_active(&c->io)) {
        if ((c->io.events & (EV_READ | EV_WRITE)) == ev)
            return;
        ev_io_stop(c->w->loop, &c->io);
    }
    if (ev == 0)
        return;
    ev_io_modify(&c->io, ev);
    ev_io_start(c->w->loop, &c->io);
}

static inline void
conn_want_read(struct conn *c, bool on)
{
    c->reading = on;
    conn_io_update(c);
}

static inline void
conn_want_write(struct conn *c, bool on)
{
    c->writing = on;
    conn_io_update(c);
}

/* Puts c on the worker's flush list; it is written before the next poll.
   Held fan-out (flush_later) comes along. */
static inline void
conn_want_flush(struct conn *c)
{
    if (c->flush_later) {
        list_remove(&c->flink);
        c->flush_later = false;
    }
    if (list_empty(&c->flink) && !c->writing)
        list_insert_tail(&c->w->flush, &c->flink);
}

/* ---- The fan-out backlog (max_fanout_backlog) ---------------------------- */

/* Whether c's input is taken now: neither the app (sock_set_active) nor
   the fan-out backlog (conn_fan_pause) has paused it. */
static inline bool
conn_takes_input(const struct conn *c)
{
    return c->active && !c->fan_paused;
}

#define CONN_FAN_MAX ((1u << 24) - 1) /* c->fan_unsent's width */

/*
 * n bytes of a publish or broadcast queued to c. Counted only while c
 * waits for the worker to write them: a client that does not read keeps
 * its queue under send_hard_limit, and must not slow the publishers of
 * everyone else.
 */
static inline void
conn_fan_add(struct conn *c, size_t n)
{
    uint32_t room = CONN_FAN_MAX - c->fan_unsent;

    if (c->writing)
        return;
    if (n > room)
        n = room;
    c->fan_unsent += (uint32_t)n;
    c->w->stats->fanout_backlog += n;
}

/* c is being written (or is gone): its part is no longer the worker's. */
static inline void
conn_fan_clear(struct conn *c)
{
    c->w->stats->fanout_backlog -= c->fan_unsent;
    c->fan_unsent = 0;
}

/* conn_recv.c: reading again after a pause for the backlog. */
void conn_fan_unpause(struct conn *c);

#endif
