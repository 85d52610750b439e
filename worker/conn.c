/*
 * conn.c: a client connection's life: accept and set-up, its one libev
 * watcher (and the TLS handshake it drives), the close handshake's state
 * changes (§7), timeouts, server stop and teardown. The HTTP upgrade is
 * left to conn_upgrade.c, the output side (frames queued, compressed,
 * written) to conn_send.c, the input side (reading, frames handed to the
 * app) to conn_recv.c, the sock_conn operations and info delivery to
 * conn_ops.c; parsing to ws_handshake.c and ws_frame.c, queueing to
 * sendq.c, infos to messaging.c. What each event costs the connection
 * (close code after the upgrade) is decided in these files.
 *
 * Rules that keep it safe: app callbacks never nest (c->in_cb); nothing
 * inside a callback chain tears a connection down, it only changes state;
 * teardown happens at the end of a top-level event (conn_settle), and the
 * memory is freed by the worker before the next poll.
 */
#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn_impl.h"
#include "conn_upgrade.h"
#include "log.h"
#include "messaging.h"
#include "pending.h"
#include "tls.h"
#include "ws_deflate.h"
#include "ws_session.h"
#include "wctl.h"
#include "wstate.h"

static void conn_on_io(struct ev_loop *loop, ev_io *io, int revents);

static uint32_t
close_timeout_ms(const struct conn *c)
{
    if (c->route != NULL)
        return conn_opts(c)->close_timeout_ms;
    return c->w->cfg->defaults.close_timeout_ms;
}

void
conn_want_pending(struct conn *c)
{
    if (list_empty(&c->plink)) {
        list_insert_tail(&c->w->pending, &c->plink);
        worker_wake(c->w);
    }
}

/* ---- Creation ---------------------------------------------------------- */

const char *
conn_peer_str(const struct conn *c, char *buf, size_t size)
{
    worker_format_addr(&c->addr.sa, buf, size);
    return buf;
}

struct conn_cold *
conn_cold(struct conn *c)
{
    struct conn_cold *x = c->x;

    if (x != NULL)
        return x;
    x = calloc(1, sizeof(*x));
    if (x == NULL)
        return NULL;
    messaging_box_init(&x->box, c->w, c);
    tnode_init(&x->mtn);
    list_init(&x->palink);
    c->x = x;
    return x;
}

struct conn *
conn_new(struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
         struct tls_ctx *tls)
{
    struct conn *c = calloc(1, sizeof(*c));
    int one = 1;

    if (c == NULL)
        return NULL;
    if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)
        memcpy(&c->addr, sa, MIN((size_t)salen, sizeof(c->addr)));
    else
        c->addr.sa.sa_family = sa->sa_family;
    if (tls != NULL) {
        c->tls = tls_conn_new(tls, fd);
        c->tls_handshaking = true;
        if (c->tls == NULL) {
            free(c);
            return NULL;
        }
    }
    c->base.ops = &conn_ops;
    c->w = w;
    c->fd = fd;
    c->state = CONN_HANDSHAKE;
    c->active = true;
    c->peer_code = 1006;
    tnode_init(&c->tn);
    list_init(&c->flink);
    list_init(&c->plink);
    sendq_init(&c->sq);
    /* We coalesce writes ourselves; Nagle would only add latency. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ev_io_init(&c->io, conn_on_io, fd, EV_READ);
    c->reading = true;
    ev_io_start(w->loop, &c->io);
    tlist_arm(w->timers, &c->tn, w->cfg->server.handshake_timeout_ms);
    list_insert_tail(&w->conns, &c->link);
    w->n_conns++;
    w->stats->accepted++;
    wctl_conns_changed(w);
    return c;
}

/* ---- Teardown ---------------------------------------------------------- */

static void
conn_terminate_app(struct conn *c)
{
    sock_close_info why = {
        .kind = c->close_kind ? c->close_kind : SOCK_CLOSE_ERROR,
        .error = c->close_err,
        .code_sent = c->code_sent,
        .peer_code = c->peer_code,
        .peer_reason = c->x && c->x->peer_reason ? c->x->peer_reason : "",
        .peer_reason_len = c->x ? c->x->peer_reason_len : 0,
    };

    if (c->route->app->terminate == NULL)
        return;
    cb_enter(c);
    c->route->app->terminate(&c->base, &why, c->app_state);
    cb_leave(c);
}

/* Closes the socket and runs terminate; the memory waits for conn_free. */
static void
conn_teardown(struct conn *c)
{
    struct worker *w = c->w;
    bool was_open = c->inited;

    if (c->state == CONN_DEAD)
        return;
    c->state = CONN_DEAD;
    ev_io_stop(w->loop, &c->io);
    c->reading = c->writing = false;
    tlist_disarm(&c->tn);
    conn_drop_input(c);
    list_remove(&c->flink);
    c->flush_later = false;
    conn_fan_clear(c);
    if (c->fan_paused) {
        c->fan_paused = false;
        list_remove(&c->x->palink);
    }
    list_remove(&c->plink);
    list_remove(&c->link);
    tls_conn_free(c->tls);
    c->tls = NULL;
    close(c->fd);
    c->fd = -1;
    if (c->id != 0)
        idmap_del(&w->ids, SOCK_ID_SERIAL(c->id));
    if (c->x != NULL)
        pending_release(c->x->pending); /* the app's decision: -EPIPE */
    messaging_box_cleanup(c->x != NULL ? &c->x->box : NULL);
    sendq_clear(&c->sq);
    if (was_open) {
        w->stats->closed++;
        w->stats->closed_kind[c->close_kind < WORKER_CLOSE_KINDS ?
                              c->close_kind : 0]++;
        w->stats->closed_error[c->close_err < WORKER_CLOSE_ERRORS ?
                               c->close_err : 0]++;
        w->stats->open--;
        conn_route_stats(c)->closed++;
        conn_route_stats(c)->open--;
        log_debug("event=close conn=%llx peer=%s kind=%d error=%d sent=%u "
                  "peer_code=%u", (unsigned long long)c->id, PEER(c),
                  (int)c->close_kind, (int)c->close_err, c->code_sent,
                  c->peer_code);
        conn_terminate_app(c);
    }
    list_insert_tail(&w->dead, &c->link);
    w->n_conns--;
    wctl_conns_changed(w);
    worker_conn_gone(w);
}

void
conn_free(struct conn *c)
{
    struct conn_cold *x = c->x;

    ws_session_free(&c->ws);
    if (x != NULL) {
        free(x->head);
        free(x->stash);
        free(x->peer);
        free(x->subprotocol);
        free(x->peer_reason);
        free(x->stop_reason);
        free(x->pong);
        free(x);
    }
    ws_deflate_free(c->deflate);
    free(c);
}

/* End of every top-level event: tear down if due, else keep watching. */
void
conn_settle(struct conn *c)
{
    if (c->state == CONN_DEAD)
        return;
    if (c->want_teardown) {
        conn_teardown(c);
        return;
    }
    /* Failed: input is drained unread from now on, so what was held of
       it goes (here, where no handler can still be reading it). */
    if (c->state == CONN_FINISH)
        conn_drop_input(c);
    if (c->state == CONN_FINISH && !c->shut_wr)
        conn_want_flush(c);
    else if (c->sq.bytes > 0 && !c->flush_later) /* held stays held */
        conn_want_flush(c);
}

void
conn_abort(struct conn *c)
{
    if (c->state != CONN_DEAD && c->close_kind == 0)
        c->close_kind = SOCK_CLOSE_SHUTDOWN;
    conn_teardown(c);
}

/* ---- Closing ----------------------------------------------------------- */

/* Enters FINISH: after what is queued, FIN, then wait for the peer's EOF,
   so unread input never turns our last frames into a reset. */
void
conn_finish(struct conn *c)
{
    c->state = CONN_FINISH;
    tlist_arm(c->w->timers, &c->tn, close_timeout_ms(c));
    conn_want_flush(c);
}

/*
 * Fails the connection (§7.1.7) with code: a close frame, then FINISH
 * without waiting for the peer's close. Safe inside callbacks.
 */
void
conn_fail(struct conn *c, uint16_t code, sock_close_error err)
{
    if (c->state == CONN_OPEN) {
        c->close_kind = err == SOCK_ERR_NONE ? SOCK_CLOSE_NORMAL
                                             : SOCK_CLOSE_ERROR;
        c->close_err = err;
        conn_queue_close(c, code, NULL, 0);
        conn_finish(c);
    } else if (c->state == CONN_CLOSING) {
        conn_finish(c);
    }
    ws_session_abort(&c->ws);
}

/* Starts our side of the closing handshake and waits for the peer's. */
void
conn_close(struct conn *c, uint16_t code, const char *reason, size_t len,
           sock_close_kind kind, sock_close_error err)
{
    if (c->state != CONN_OPEN)
        return;
    c->close_kind = kind;
    c->close_err = err;
    conn_queue_close(c, code, reason, len);
    c->state = CONN_CLOSING;
    tlist_arm(c->w->timers, &c->tn, close_timeout_ms(c));
    /* The peer's close can only be seen if we read. */
    conn_fan_unpause(c);
    if (!c->active) {
        c->active = true;
        conn_want_read(c, true);
    }
}

/* ---- Opening ----------------------------------------------------------- */

/*
 * The 101 is on its way (conn_upgrade.c): the connection is open. Applies
 * u's options over the route's, runs the app's init, and takes u's
 * contents.
 */
void
conn_opened(struct conn *c, struct sock_upgrade *u)
{
    const struct route_opts *o = conn_opts(c);
    sock_ret ret;

    c->idle_ms = u->has_idle_timeout ? u->idle_timeout_ms : o->idle_timeout_ms;
    c->max_message = u->has_max_message_size ? u->max_message_size
                                             : o->max_message_size;
    c->state = CONN_OPEN;
    c->inited = true;
    c->w->stats->opened++;
    c->opened_at = ev_now(c->w->loop);
    c->w->stats->open++;
    conn_route_stats(c)->opened++;
    conn_route_stats(c)->open++;
    tlist_arm(c->w->timers, &c->tn, open_timeout_ms(c));
    cb_enter(c);
    ret = c->route->app->init ? c->route->app->init(&c->base, u->arg,
                                                    &c->app_state)
                              : SOCK_CONTINUE;
    cb_leave(c);
    sock_upgrade_destroy(u, true);
    conn_after_app(c, ret);
}

/* ---- The watcher ------------------------------------------------------- */

/* Drives the TLS handshake; the HTTP upgrade follows on the same bytes. */
static void
conn_tls_handshake(struct conn *c)
{
    int want = 0;
    int rc = tls_handshake(c->tls, &want);

    if (rc == 0) {
        conn_want_write(c, want == TLS_WANT_WRITE);
        return;
    }
    if (rc < 0) {
        c->w->stats->handshake_failed++;
        log_debug("event=tls_handshake_failed peer=%s error=\"%s\"",
                  PEER(c), tls_conn_error(c->tls));
        if (tls_conn_is_plain_http(c->tls)) {
            static const char resp[] =
                "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n"
                "Content-Length: 35\r\n\r\n"
                "This port speaks TLS: use wss://.\r\n";
            ssize_t n = send(c->fd, resp, sizeof(resp) - 1, MSG_NOSIGNAL);

            (void)n;
            /* FIN, then read the rest of the request before closing: unread
               bytes would turn the close into a reset that can destroy the
               400 in flight (RFC 9112 §9.6). Bounded by close_timeout. */
            shutdown(c->fd, SHUT_WR);
            c->raw_drain = true;
            c->tls_handshaking = false;
            c->shut_wr = true;
            conn_want_write(c, false);
            conn_finish(c);
            return;
        }
        c->want_teardown = true;
        return;
    }
    c->tls_handshaking = false;
    conn_want_write(c, false);
    log_debug("event=tls_ready peer=%s version=%s resumed=%d", PEER(c),
              tls_conn_version(c->tls), (int)tls_session_reused(c->tls));
    conn_read(c);
}

static void
conn_on_write(struct conn *c)
{
    if (c->tls_handshaking) {
        conn_tls_handshake(c);
        conn_settle(c);
        return;
    }
    if (c->tls_read_wants_write) {
        c->tls_read_wants_write = false;
        conn_read(c);
        conn_settle(c);
        if (c->state == CONN_DEAD)
            return;
    }
    conn_flush(c);
}

static void
conn_on_read(struct conn *c)
{
    if (c->raw_drain) {
        for (int i = 0; i < CONN_READS_PER_WAKEUP; i++) {
            ssize_t n = recv(c->fd, c->w->rbuf, c->w->rbuf_size, 0);

            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                c->want_teardown = true;
                break;
            }
            if (n < 0)
                break;
        }
    } else if (c->tls_handshaking) {
        conn_tls_handshake(c);
    } else {
        conn_read(c);
        if (c->tls_write_wants_read && c->state != CONN_DEAD &&
            !c->want_teardown) {
            c->tls_write_wants_read = false;
            conn_flush(c);
            if (c->state == CONN_DEAD)
                return;
        }
    }
    conn_settle(c);
}

static void
conn_on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    struct conn *c = container_of(io, struct conn, io);

    (void)loop;
    if (revents & EV_WRITE) {
        conn_on_write(c);
        if (c->state == CONN_DEAD)
            return;
    }
    if ((revents & EV_READ) && c->reading)
        conn_on_read(c);
}

/* ---- Timeouts and server stop ------------------------------------------ */

void
conn_on_message_timeout(struct tnode *n, void *ctx)
{
    struct conn_cold *x = container_of(n, struct conn_cold, mtn);
    struct conn *c = x->box.c;

    (void)ctx;
    if (c->state != CONN_OPEN)
        return;
    log_info("event=message_timeout conn=%llx peer=%s held=%zu",
             (unsigned long long)c->id, PEER(c), conn_held(c));
    c->w->stats->message_timeouts++;
    conn_fail(c, 1008, SOCK_ERR_NONE);
    c->close_kind = SOCK_CLOSE_TIMEOUT;
    conn_settle(c);
}

void
conn_on_timeout(struct tnode *n, void *ctx)
{
    struct conn *c = container_of(n, struct conn, tn);
    const struct route_opts *o;

    (void)ctx;
    switch (c->state) {
    case CONN_OPEN:
        o = conn_opts(c);
        if (o->ping_interval_ms != 0 && !c->awaiting_pong) {
            if (conn_queue_own(c, WS_OP_PING, NULL, 0) != 0)
                break; /* over send_hard_limit: failed with 1008 */
            c->awaiting_pong = true;
            tlist_arm(c->w->timers, &c->tn, o->pong_timeout_ms);
            break;
        }
        conn_close(c, o->idle_close_code, NULL, 0, SOCK_CLOSE_TIMEOUT,
                   SOCK_ERR_NONE);
        break;
    case CONN_HANDSHAKE:
        log_debug("event=handshake_timeout peer=%s pending=%d", PEER(c),
                  c->x != NULL && c->x->pending != NULL);
        if (c->x != NULL && c->x->pending != NULL) {
            /* The app did not decide in time: its decision gets -EPIPE. */
            pending_release(c->x->pending);
            conn_http_error(c, 503, "upgrade decision timed out");
            break;
        }
        c->want_teardown = true;
        break;
    case CONN_CLOSING:
    case CONN_FINISH:
        if (c->close_kind == 0)
            c->close_kind = SOCK_CLOSE_TIMEOUT;
        c->want_teardown = true;
        break;
    case CONN_DEAD:
        return;
    }
    conn_settle(c);
}

void
conn_shutdown(struct conn *c, uint16_t code)
{
    if (code == 0 && c->route != NULL)
        code = conn_opts(c)->shutdown_close_code;
    if (c->state == CONN_OPEN)
        conn_close(c, code, NULL, 0, SOCK_CLOSE_SHUTDOWN, SOCK_ERR_NONE);
    else if (c->state == CONN_HANDSHAKE)
        c->want_teardown = true;
    conn_settle(c);
}
