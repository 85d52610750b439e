/*
 * conn_recv.c: a connection's input side: reads (into the worker's one
 * buffer), input kept while the app paused or an upgrade decision waits,
 * the session (ws_session.c) fed with it, and its events handed on:
 * messages to handle_in, pings and pongs to handle_control, the peer's
 * close to the close handshake, errors to a close code. Also the limits
 * on unfinished input (max_partial_bytes, message_timeout).
 */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conn_impl.h"
#include "conn_upgrade.h"
#include "log.h"
#include "pending.h"
#include "tls.h"
#include "ws_session.h"
#include "wstate.h"

/* Inbound bytes: the only thing that resets the idle timeout. */
static void
conn_touch(struct conn *c)
{
    if (c->state != CONN_OPEN)
        return;
    if (c->awaiting_pong) {
        c->awaiting_pong = false;
        tlist_arm(c->w->timers, &c->tn, open_timeout_ms(c));
    } else {
        tlist_touch(c->w->timers, &c->tn);
    }
}

/* ---- Unfinished input: max_partial_bytes and message_timeout ----------- */

/* c held `before` bytes until a change: the worker's total follows. */
static void
conn_account(struct conn *c, size_t before)
{
    c->w->stats->partial_bytes += (uint64_t)conn_held(c) - before;
}

void
conn_drop_input(struct conn *c)
{
    size_t before = conn_held(c);

    if (c->x != NULL) {
        tlist_disarm(&c->x->mtn);
        free(c->x->stash);
        c->x->stash = NULL;
        c->x->stash_len = 0;
    }
    if (before == 0)
        return;
    ws_session_drop(&c->ws);
    conn_account(c, before);
}

/*
 * Keeps what the worker holds of unfinished input under max_partial_bytes
 * (anything a client can make it hold for as long as it likes): while
 * over, the connection holding the most is failed with 1009 and its input
 * dropped. Called after c grew; false if c itself was failed. A scan of
 * the connections, but only when over, and each one frees a holder.
 */
static bool
conn_within_budget(struct conn *c)
{
    struct worker *w = c->w;
    uint64_t budget = w->cfg->server.max_partial_bytes;
    bool self = false;

    while (w->stats->partial_bytes > budget) {
        struct conn *v = NULL;
        size_t most = 0;

        for (struct list *l = w->conns.next; l != &w->conns; l = l->next) {
            struct conn *o = container_of(l, struct conn, link);

            if ((o->state == CONN_OPEN || o->state == CONN_CLOSING) &&
                conn_held(o) > most) {
                v = o;
                most = conn_held(o);
            }
        }
        if (v == NULL)
            break;
        log_info("event=partial_budget_close conn=%llx peer=%s held=%zu "
                 "worker_held=%llu", (unsigned long long)v->id, PEER(v),
                 most, (unsigned long long)w->stats->partial_bytes);
        w->stats->partial_closes++;
        conn_fail(v, 1009, SOCK_ERR_TOO_BIG);
        conn_drop_input(v);
        self = self || v == c;
    }
    return !self;
}

/* A frame or message is under way: started and not complete. */
static bool
conn_unfinished(const struct conn *c)
{
    return ws_session_unfinished(&c->ws);
}

/*
 * After input was handled: message_timeout runs from the read that began
 * an unfinished frame or message until one completes (conn_unit_done),
 * while the connection is open and reading (a paused app's client is not
 * to blame for a message we do not read).
 */
void
conn_track_unfinished(struct conn *c)
{
    uint32_t ms = c->route != NULL ? conn_opts(c)->message_timeout_ms : 0;
    struct conn_cold *x;

    if (ms == 0 || c->state != CONN_OPEN || !conn_takes_input(c) ||
        !conn_unfinished(c)) {
        if (c->x != NULL)
            tlist_disarm(&c->x->mtn);
        return;
    }
    x = conn_cold(c);
    if (x != NULL && x->mtn.owner == NULL)
        tlist_arm(c->w->msg_timers, &x->mtn, ms);
}

/* A frame ended outside a message, or a message ended: the next one gets
   its own message_timeout. */
static void
conn_unit_done(struct conn *c)
{
    if (c->x != NULL && !ws_session_in_msg(&c->ws))
        tlist_disarm(&c->x->mtn);
}

/* ---- The fan-out backlog ----------------------------------------------- */

/*
 * One client's publishes can queue far more than it sends: a 70-byte
 * publish to 1000 subscribers is 70 KB, and a read of 256 KiB of them
 * hundreds of megabytes, faster than the worker can write it. So a
 * message that fanned out while the worker's backlog of unwritten fan-out
 * is over max_fanout_backlog is its sender's last until the worker has
 * written the backlog down to half: the rest of the read is kept (as for
 * a paused app) and the socket is not read. The publisher slows to what
 * the subscribers get; nobody's output is dropped or closed for it.
 */
static void
conn_fan_pause(struct conn *c)
{
    struct conn_cold *x = conn_cold(c);

    if (x == NULL || c->fan_paused || c->state != CONN_OPEN)
        return;
    c->fan_paused = true;
    list_insert_tail(&c->w->paused, &x->palink);
    c->w->stats->fanout_pauses++;
    conn_io_update(c);
    if (c->active)
        tlist_disarm(&c->tn); /* no idle timeout while we do not read */
    conn_track_unfinished(c);
}

void
conn_fan_unpause(struct conn *c)
{
    if (!c->fan_paused)
        return;
    c->fan_paused = false;
    list_remove(&c->x->palink);
    conn_io_update(c);
    if (!c->active)
        return; /* the app paused it too: it resumes it */
    if (c->state == CONN_OPEN) { /* closing: tn is the close timeout */
        c->awaiting_pong = false;
        tlist_arm(c->w->timers, &c->tn, open_timeout_ms(c));
        conn_track_unfinished(c);
    }
    /* What was kept (maybe the peer's close) goes before newer input. */
    if (STASHED(c) || (c->tls != NULL && tls_pending(c->tls) > 0))
        conn_want_pending(c);
}

void
conn_fan_resume(struct worker *w)
{
    if (!worker_fanout_drained(w))
        return;
    while (!list_empty(&w->paused))
        conn_fan_unpause(container_of(w->paused.next, struct conn_cold,
                                      palink)->box.c);
}

/* After a handler: pause c if what it published took the backlog over. */
static void
conn_fan_check(struct conn *c, uint32_t fanouts)
{
    if (c->w->fanouts != fanouts && worker_fanout_over(c->w))
        conn_fan_pause(c);
}

/* ---- Receiving frames -------------------------------------------------- */

static void
conn_session_opts(const struct conn *c, struct ws_session_opts *o)
{
    o->max_frame = conn_opts(c)->max_frame_size;
    o->max_message = c->max_message;
    o->max_inflate_ratio = conn_opts(c)->max_inflate_ratio;
    o->deflate = c->deflate;
    o->closing = c->state != CONN_OPEN;
}

static void
conn_deliver(struct conn *c, uint8_t op, const void *data, size_t len)
{
    sock_msg m = { .opcode = (sock_opcode)op, .data = data, .len = len };
    uint32_t fanouts = c->w->fanouts;
    sock_ret ret;

    c->w->stats->msgs_in++;
    conn_route_stats(c)->msgs_in++;
    cb_enter(c);
    ret = c->route->app->handle_in(&c->base, &m, &c->app_state);
    cb_leave(c);
    conn_after_app(c, ret);
    conn_fan_check(c, fanouts);
}

static void
conn_deliver_control(struct conn *c, uint8_t op, const void *data,
                     size_t len)
{
    sock_msg m = { .opcode = (sock_opcode)op, .data = data, .len = len };
    uint32_t fanouts = c->w->fanouts;
    sock_ret ret;

    if (c->route->app->handle_control == NULL)
        return;
    cb_enter(c);
    ret = c->route->app->handle_control(&c->base, &m, &c->app_state);
    cb_leave(c);
    conn_after_app(c, ret);
    conn_fan_check(c, fanouts);
}

static void
conn_on_close_frame(struct conn *c, const struct ws_event *ev)
{
    struct conn_cold *x;

    c->peer_code = ev->code;
    if (ev->len > 0 && (x = conn_cold(c)) != NULL) {
        free(x->peer_reason);
        x->peer_reason_len = 0;
        x->peer_reason = malloc(ev->len + 1);
        if (x->peer_reason != NULL) {
            memcpy(x->peer_reason, ev->data, ev->len);
            x->peer_reason[ev->len] = '\0';
            x->peer_reason_len = ev->len;
        }
    }
    if (c->state == CONN_OPEN) {
        /* Echo the peer's code (§5.5.1); an empty close gets an empty one. */
        c->close_kind = SOCK_CLOSE_REMOTE;
        conn_queue_close(c, ev->code, NULL, 0);
    }
    conn_finish(c);
}

static void
conn_on_control(struct conn *c, uint8_t op, const uint8_t *p, size_t len)
{
    if (c->state != CONN_OPEN)
        return;
    if (op == WS_OP_PING)
        conn_answer_ping(c, p, len);
    if (c->state != CONN_OPEN)
        return; /* the pong took the queue over its limit */
    conn_deliver_control(c, op, p, len);
}

/* What a session error costs the connection. */
static void
conn_on_session_error(struct conn *c, const struct ws_event *ev)
{
    static const sock_close_error errs[] = {
        [WS_ERR_NONE] = SOCK_ERR_NONE,
        [WS_ERR_PROTOCOL] = SOCK_ERR_PROTOCOL,
        [WS_ERR_UTF8] = SOCK_ERR_UTF8,
        [WS_ERR_TOO_BIG] = SOCK_ERR_TOO_BIG,
        [WS_ERR_INFLATE] = SOCK_ERR_INFLATE,
        [WS_ERR_INTERNAL] = SOCK_ERR_IO,
    };

    if (ev->err == WS_ERR_NOMEM) {
        c->want_teardown = true;
        return;
    }
    conn_fail(c, ev->code, errs[ev->err]);
}

/* Hands one session event to the app or the close handling. */
static void
conn_on_event(struct conn *c, const struct ws_event *ev)
{
    switch (ev->type) {
    case WS_EV_MESSAGE:
        conn_deliver(c, ev->opcode, ev->data, ev->len);
        break;
    case WS_EV_PING:
        conn_on_control(c, WS_OP_PING, ev->data, ev->len);
        break;
    case WS_EV_PONG:
        conn_on_control(c, WS_OP_PONG, ev->data, ev->len);
        break;
    case WS_EV_CLOSE:
        conn_on_close_frame(c, ev);
        break;
    case WS_EV_ERROR:
        conn_on_session_error(c, ev);
        break;
    case WS_EV_NONE:
        break;
    }
}

static bool
conn_can_read_frames(const struct conn *c)
{
    return (c->state == CONN_OPEN && conn_takes_input(c)) ||
           c->state == CONN_CLOSING;
}

/* Feeds frames to the session while the connection reads them. */
static size_t
conn_frames(struct conn *c, uint8_t *p, size_t n)
{
    size_t off = 0;

    while (off < n && conn_can_read_frames(c) && !c->want_teardown) {
        struct ws_session_opts o;
        struct ws_event ev;
        size_t before = conn_held(c), s_before = ws_session_held(&c->ws);

        conn_session_opts(c, &o);
        off += ws_session_feed(&c->ws, &o, p + off, n - off, &ev);
        if (ws_session_held(&c->ws) != s_before) {
            conn_account(c, before);
            if (ws_session_held(&c->ws) > s_before &&
                !conn_within_budget(c))
                return n;
        }
        conn_on_event(c, &ev);
        if (ev.type == WS_EV_ERROR)
            return n;
        before = conn_held(c);
        ws_session_release(&c->ws);
        conn_account(c, before);
        if (ev.frame_end)
            conn_unit_done(c);
    }
    return off;
}

/* ---- Reading ----------------------------------------------------------- */

/*
 * While the app decides the upgrade, input is kept unprocessed (0 used:
 * conn_keep stashes it), up to max_request_head: a client may not send
 * frames before the 101 (RFC 6455 §4.1), so more is refused.
 */
static size_t
conn_hold_input(struct conn *c, size_t n)
{
    if (n == 0 || c->x->stash_len + n <= c->w->cfg->server.max_request_head)
        return 0;
    pending_release(c->x->pending);
    conn_http_error(c, 400, "data sent before the upgrade response");
    return n;
}

/* Feeds input to whichever stage the connection is in; returns bytes used. */
static size_t
conn_process(struct conn *c, uint8_t *p, size_t n)
{
    size_t off = 0;

    if (c->x != NULL && c->x->pending != NULL)
        return conn_hold_input(c, n);
    if (c->state == CONN_HANDSHAKE)
        off = conn_handshake(c, p, n);
    if (c->x != NULL && c->x->pending != NULL)
        return off + conn_hold_input(c, n - off);
    if (c->state == CONN_FINISH || c->state == CONN_HANDSHAKE)
        return n; /* after FIN or a refusal, input is drained unread */
    if (off < n)
        off += conn_frames(c, p + off, n - off);
    conn_track_unfinished(c);
    if (c->state == CONN_FINISH)
        return n;
    return off;
}

/* Keeps input that could not be handled now (the app paused reading). */
static void
conn_keep(struct conn *c, const uint8_t *p, size_t n)
{
    struct conn_cold *x = conn_cold(c);
    uint8_t *s = x ? realloc(x->stash, x->stash_len + n) : NULL;
    size_t before = conn_held(c);

    if (s == NULL) {
        c->want_teardown = true;
        return;
    }
    memcpy(s + x->stash_len, p, n);
    x->stash = s;
    x->stash_len += n;
    conn_account(c, before);
    conn_within_budget(c);
}

static void
conn_on_eof(struct conn *c)
{
    if (c->state == CONN_OPEN || c->state == CONN_CLOSING) {
        if (c->close_kind == 0 || c->state == CONN_OPEN) {
            c->close_kind = SOCK_CLOSE_ERROR;
            c->close_err = SOCK_ERR_NO_CLOSE;
        }
    }
    c->want_teardown = true;
}

void
conn_read(struct conn *c)
{
    struct worker *w = c->w;

    /* Input kept while paused is older than the socket's: it goes first
       (the idle watcher may not have run it yet), or frames would be
       spliced out of order. */
    if (STASHED(c) && c->state != CONN_HANDSHAKE) {
        conn_run_stash(c);
        if (STASHED(c) || c->want_teardown || !conn_takes_input(c))
            return;
    }
    for (int i = 0; i < CONN_READS_PER_WAKEUP; i++) {
        ssize_t n;
        size_t used;
        int want = 0;

        if (c->tls != NULL) {
            n = tls_read(c->tls, w->rbuf, w->rbuf_size, &want);
            if (n == -EAGAIN && want == TLS_WANT_WRITE) {
                c->tls_read_wants_write = true;
                conn_want_write(c, true);
            }
            if (n < 0) {
                errno = n == -EAGAIN ? EAGAIN : -(int)n;
                n = -1;
            }
        } else {
            n = recv(c->fd, w->rbuf, w->rbuf_size, 0);
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                if (c->close_kind == 0 || c->state == CONN_OPEN) {
                    c->close_kind = SOCK_CLOSE_ERROR;
                    c->close_err = SOCK_ERR_IO;
                }
                c->want_teardown = true;
            }
            return;
        }
        if (n == 0) {
            conn_on_eof(c);
            return;
        }
        w->stats->bytes_in += (uint64_t)n;
        conn_touch(c);
        used = conn_process(c, w->rbuf, (size_t)n);
        if (used < (size_t)n) {
            conn_keep(c, w->rbuf + used, (size_t)n - used);
            return;
        }
        if (c->want_teardown || !conn_takes_input(c))
            return;
        if ((size_t)n < w->rbuf_size && (c->tls == NULL ||
                                         tls_pending(c->tls) == 0))
            return;
    }
    /* Budget spent with bytes still decrypted inside OpenSSL: epoll will
       not report them, so come back from the idle watcher. */
    if (c->tls != NULL && tls_pending(c->tls) > 0)
        conn_want_pending(c);
}

void
conn_run_stash(struct conn *c)
{
    uint8_t *s = c->x->stash;
    size_t n = c->x->stash_len, used, before = conn_held(c);

    c->x->stash = NULL;
    c->x->stash_len = 0;
    conn_account(c, before);
    used = conn_process(c, s, n);
    if (used < n)
        conn_keep(c, s + used, n - used);
    free(s);
}
