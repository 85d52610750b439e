/*
 * conn.c: a client connection's life: RFC 6455 frames in and out, the
 * close handshake (§7), timeouts and the calls into its app. The HTTP
 * upgrade is left to conn_upgrade.c, parsing to ws_handshake.c and
 * ws_frame.c, queueing to sendq.c, infos to messaging.c; this file decides
 * what each event costs the connection (close code after the upgrade).
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
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "conn_impl.h"
#include "conn_upgrade.h"
#include "log.h"
#include "messaging.h"
#include "pending.h"
#include "tls.h"
#include "utf8.h"
#include "ws_deflate.h"
#include "ws_session.h"
#include "wctl.h"
#include "worker.h"

#define CONN_READS_PER_WAKEUP 4
#define CONN_WRITES_PER_FLUSH 16
/*
 * Pongs that may sit unwritten in a send queue. A ping beyond them is
 * answered later by one pong carrying the latest ping's payload (RFC 6455
 * §5.5.3 allows answering only the most recent), so a ping flood costs a
 * client that never reads at most this many pongs, not one per ping,
 * while a burst of a few pings still gets every pong.
 */
#define CONN_PONGS_QUEUED 16

static const struct sock_conn_ops conn_ops;

static void conn_on_io(struct ev_loop *loop, ev_io *io, int revents);
static size_t conn_process(struct conn *c, uint8_t *p, size_t n);
static void conn_after_app(struct conn *c, sock_ret ret);
static void conn_drop_input(struct conn *c);

/* The reason an app stopped with, as (pointer, length). */
#define STOP_REASON(c) ((c)->x ? (c)->x->stop_reason : NULL), \
                       ((c)->x ? (c)->x->stop_reason_len : 0)

static inline struct conn *
conn_of(sock_conn *sc)
{
    return container_of(sc, struct conn, base);
}

const struct route_opts *
conn_opts(const struct conn *c)
{
    return &c->route->cfg->opts;
}

static uint32_t
close_timeout_ms(const struct conn *c)
{
    if (c->route != NULL)
        return conn_opts(c)->close_timeout_ms;
    return c->w->cfg->defaults.close_timeout_ms;
}

/*
 * The connection's one watcher waits for what c->reading and c->writing
 * ask. Two watchers on the same fd would cost 48 more bytes per
 * connection, and libev makes one epoll change of either.
 */
static void
conn_io_update(struct conn *c)
{
    int ev = (c->reading ? EV_READ : 0) | (c->writing ? EV_WRITE : 0);

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

static void
conn_want_read(struct conn *c, bool on)
{
    c->reading = on;
    conn_io_update(c);
}

static void
conn_want_write(struct conn *c, bool on)
{
    c->writing = on;
    conn_io_update(c);
}

/* Puts c on the worker's flush list; it is written before the next poll.
   Held fan-out (flush_later) comes along. */
static void
conn_want_flush(struct conn *c)
{
    if (c->flush_later) {
        list_remove(&c->flink);
        c->flush_later = false;
    }
    if (list_empty(&c->flink) && !c->writing)
        list_insert_tail(&c->w->flush, &c->flink);
}

void
conn_flush_soon(struct conn *c)
{
    conn_want_flush(c);
}

/* Output of a fan-out the worker holds for its next tick
   (worker_fanout_later): written then, or with c's next other output. */
static void
conn_want_flush_held(struct conn *c)
{
    if (!list_empty(&c->flink) || c->writing)
        return; /* already due, or waiting for the socket */
    list_insert_tail(&c->w->flush_later, &c->flink);
    c->flush_later = true;
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
    list_init(&x->inbox);
    list_init(&x->timers);
    list_init(&x->subs);
    tnode_init(&x->mtn);
    x->conn = c;
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

/* The /metrics entry of c's route (an open connection always has one). */
static struct worker_route_stats *
conn_route_stats(const struct conn *c)
{
    return &c->w->stats->route[c->route->stat];
}

/* One message queued to c: the worker's and the route's counters. */
static void
conn_count_out(struct conn *c)
{
    c->w->stats->msgs_out++;
    conn_route_stats(c)->msgs_out++;
}

/* ---- Calling the app ---------------------------------------------------- */

/* Around every app callback: no nesting (c->in_cb), and c is the "from"
   of the infos it sends. */
static void
cb_enter(struct conn *c)
{
    c->in_cb = true;
    messaging_set_current(c->w, c);
}

static void
cb_leave(struct conn *c)
{
    messaging_set_current(c->w, NULL);
    c->in_cb = false;
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
    messaging_conn_cleanup(c);
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

/* ---- Output ------------------------------------------------------------ */

/*
 * The compressed form of the info payload being delivered, made once per
 * worker and window for every connection that agreed
 * server_no_context_takeover (DESIGN §7, §8). NULL if it cannot be made.
 */
/*
 * The worker's compressor for c's window, level and memory level: a fresh
 * context per message, so under server_no_context_takeover one stream
 * serves every connection. Its ~256 KiB stay hot in the cache, where one
 * stream per connection (100 connections: 25 MiB) missed on every hash
 * lookup (perf: 25% of the worker on one load in deflate_fast). NULL if
 * it cannot be made.
 */
static struct ws_deflate_shared *
conn_worker_deflater(struct conn *c)
{
    struct worker *w = c->w;
    const struct route_opts *o = conn_opts(c);
    int wb = c->deflate_wbits, key = wb << 8 | o->compress_level << 4 |
                                     o->compress_mem_level;
    unsigned i;

    for (i = 0; i < ARRAY_SIZE(w->dshared); i++)
        if (w->dshared[i] == NULL || w->dshared_key[i] == key)
            break;
    if (i == ARRAY_SIZE(w->dshared))
        return NULL;
    if (w->dshared[i] == NULL) {
        w->dshared[i] = ws_deflate_shared_new(o->compress_level,
                                              o->compress_mem_level, wb);
        w->dshared_key[i] = key;
    }
    return w->dshared[i];
}

static sock_buf *
conn_shared_deflate(struct conn *c)
{
    struct worker *w = c->w;
    const struct route_opts *o = conn_opts(c);
    int wb = c->deflate_wbits;
    struct ws_deflate_shared *z;
    struct ws_dbuf out = { 0 };
    struct deflate_cache *e;
    unsigned i, slot = 0;

    for (i = 0; i < ARRAY_SIZE(w->dcache); i++) {
        e = &w->dcache[i];
        if (e->key == w->delivering && e->wbits == wb &&
            e->level == o->compress_level && e->mem_level ==
            o->compress_mem_level)
            return e->val;
    }
    z = conn_worker_deflater(c);
    if (z == NULL || ws_deflate_shared_compress(z, w->delivering->data,
                                                w->delivering->len,
                                                &out) != 0) {
        free(out.p);
        return NULL;
    }
    slot = w->dcache_next++ % ARRAY_SIZE(w->dcache);
    e = &w->dcache[slot];
    sock_buf_unref(e->key);
    sock_buf_unref(e->val);
    e->key = sock_buf_ref(w->delivering);
    e->val = sock_buf_new(out.p, out.len);
    e->wbits = wb;
    e->level = o->compress_level;
    e->mem_level = o->compress_mem_level;
    free(out.p);
    w->stats->deflate_msgs++;
    w->stats->deflate_shared++;
    w->stats->deflate_in += w->delivering->len;
    w->stats->deflate_out += e->val ? e->val->len : 0;
    return e->val;
}

static bool
conn_should_compress(const struct conn *c, uint8_t op, size_t len,
                     unsigned flags)
{
    return c->deflate != NULL && c->compress_on &&
           (op == WS_OP_TEXT || op == WS_OP_BINARY) &&
           !(flags & SOCK_PUSH_NO_COMPRESS) &&
           len >= conn_opts(c)->compress_threshold;
}

/* A data message with RSV1 (§6.1 of RFC 7692): compressed per connection,
   or shared when it is the info payload being fanned out. */
static int
conn_queue_compressed(struct conn *c, uint8_t op, const void *data,
                      size_t len)
{
    uint8_t hdr[WS_MAX_SERVER_HEADER];
    struct ws_dbuf out = { 0 };
    struct ws_deflate_shared *z = NULL;
    sock_buf *shared = NULL;
    size_t hlen;
    int rc;

    if (c->deflate_shared_ok && c->w->delivering != NULL &&
        data == c->w->delivering->data && len == c->w->delivering->len)
        shared = conn_shared_deflate(c);
    if (shared != NULL) {
        hlen = ws_frame_header_write(hdr, true, WS_RSV1, op, shared->len);
        return sendq_append_buf(&c->sq, hdr, hlen, shared);
    }
    if (c->deflate_shared_ok)
        z = conn_worker_deflater(c);
    rc = z != NULL ? ws_deflate_shared_compress(z, data, len, &out)
                   : ws_deflate_compress(c->deflate, data, len, &out);
    if (rc != 0) {
        free(out.p);
        return rc;
    }
    hlen = ws_frame_header_write(hdr, true, WS_RSV1, op, out.len);
    rc = sendq_append(&c->sq, hdr, hlen, out.p, out.len);
    if (rc != 0 && z == NULL) /* the client will never see it: forget it */
        ws_deflate_tx_reset(c->deflate);
    c->w->stats->deflate_msgs++;
    c->w->stats->deflate_in += len;
    c->w->stats->deflate_out += out.len;
    free(out.p);
    return rc;
}

static int
conn_queue_frame_ex(struct conn *c, uint8_t op, const void *data, size_t len,
                    sock_buf *b, unsigned flags)
{
    uint8_t hdr[WS_MAX_SERVER_HEADER];
    size_t hlen;
    int rc;

    if (conn_should_compress(c, op, len, flags)) {
        rc = conn_queue_compressed(c, op, data, len);
    } else {
        hlen = ws_frame_header_write(hdr, true, 0, op, len);
        rc = b != NULL ? sendq_append_buf(&c->sq, hdr, hlen, b)
                       : sendq_append(&c->sq, hdr, hlen, data, len);
    }
    if (rc != 0)
        return rc;
    conn_count_out(c);
    if (c->w->fanout_held)
        conn_want_flush_held(c); /* handle_info for a held publish */
    else
        conn_want_flush(c);
    return 0;
}

/* Control frames and our own frames: never compressed. */
static int
conn_queue_frame(struct conn *c, uint8_t op, const void *data, size_t len,
                 sock_buf *b)
{
    return conn_queue_frame_ex(c, op, data, len, b, SOCK_PUSH_NO_COMPRESS);
}

static void
conn_queue_close(struct conn *c, uint16_t code, const char *reason,
                 size_t len)
{
    uint8_t payload[WS_MAX_CONTROL];
    size_t plen = 0;

    /* 1005 means "no code": an empty close frame (§7.4.1). */
    if (code != 1005 && code != 0)
        plen = ws_close_payload_write(payload, code, reason, len);
    c->code_sent = code == 1005 ? 0 : code;
    conn_queue_frame(c, WS_OP_CLOSE, payload, plen, NULL);
}

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
static void
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
static void
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
    if (!c->active) { /* the peer's close can only be seen if we read */
        c->active = true;
        conn_want_read(c, true);
    }
}

/*
 * Whether len more bytes fit under send_hard_limit. If not, the
 * connection fails with 1008, as for an app push over it (DESIGN §3.4):
 * every frame counts, ours (pongs, pings) too. The close frame is the one
 * frame queued past the limit, once per connection.
 */
static bool
conn_fits(struct conn *c, size_t len)
{
    if (c->sq.bytes + len <= conn_opts(c)->send_hard_limit)
        return true;
    log_info("event=send_queue_full conn=%llx peer=%s queued=%zu",
             (unsigned long long)c->id, PEER(c), c->sq.bytes);
    conn_fail(c, 1008, SOCK_ERR_BACKPRESSURE);
    return false;
}

/* A pong or ping of the server's own, within the send limits. */
static int
conn_queue_own(struct conn *c, uint8_t op, const void *data, size_t len)
{
    if (!conn_fits(c, len))
        return -ENOBUFS;
    return conn_queue_frame(c, op, data, len, NULL);
}

/* n more bytes of the queue left: are the queued pongs all out? */
static void
conn_pongs_written(struct conn *c, size_t n)
{
    if (n < c->pong_left) {
        c->pong_left -= n;
        return;
    }
    c->pong_left = 0;
    c->pongs_queued = 0;
}

/*
 * Answers a ping (§5.5.2): at once while fewer than CONN_PONGS_QUEUED
 * pongs may be unwritten, else in x->pong, overwritten by any later ping
 * and queued when those have left (conn_queue_due_pong).
 */
static void
conn_answer_ping(struct conn *c, const uint8_t *p, size_t len)
{
    struct conn_cold *x;

    if (c->pongs_queued < CONN_PONGS_QUEUED) {
        if (conn_queue_own(c, WS_OP_PONG, p, len) == 0) {
            c->pongs_queued++;
            c->pong_left = c->sq.bytes;
        }
        return;
    }
    if ((x = conn_cold(c)) == NULL ||
        (x->pong == NULL && (x->pong = malloc(WS_MAX_CONTROL)) == NULL))
        return;
    if (c->pong_due)
        c->w->stats->pongs_coalesced++;
    memcpy(x->pong, p, len);
    x->pong_len = (uint8_t)len;
    c->pong_due = true;
}

/* After a write: the waiting pong goes once the queued ones have left. */
static void
conn_queue_due_pong(struct conn *c)
{
    if (!c->pong_due || c->pongs_queued >= CONN_PONGS_QUEUED)
        return;
    c->pong_due = false;
    if (c->state == CONN_OPEN)
        conn_answer_ping(c, c->x->pong, c->x->pong_len);
}

static ssize_t
conn_writev(void *ctx, const struct iovec *iov, int iovcnt)
{
    struct conn *c = ctx;
    ssize_t n;
    int want = 0;

    if (c->tls != NULL) {
        n = tls_writev(c->tls, iov, iovcnt, &want);
        /* A TLS write may need the peer's bytes first: the read side
           resumes it, so the write watcher must not spin meanwhile. */
        c->tls_write_wants_read = n == -EAGAIN && want == TLS_WANT_READ;
        if (n > 0)
            c->w->stats->bytes_out += (uint64_t)n;
        if (n > 0 && c->pongs_queued > 0)
            conn_pongs_written(c, (size_t)n);
        return n;
    }
    do {
        /* send(2) skips writev's iovec import: most flushes are one
           contiguous chunk. Several go by sendmsg(2), not writev(2):
           the socket call skips the VFS write path (vfs_writev and
           fdget_pos took ~6% of the worker's samples on pipelined
           echo). */
        if (iovcnt == 1) {
            n = send(c->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
        } else {
            struct msghdr mh = { .msg_iov = (struct iovec *)iov,
                                 .msg_iovlen = (size_t)iovcnt };

            n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        }
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    c->w->stats->bytes_out += (uint64_t)n;
    if (c->pongs_queued > 0)
        conn_pongs_written(c, (size_t)n);
    return n;
}

/*
 * Writes bytes at once when nothing is queued ahead of them (the 101):
 * no send chunk per handshake, and no wait for the end of the iteration.
 * What the socket does not take, or an error, goes through the queue,
 * where conn_flush deals with it as with any other write.
 */
int
conn_send_now(struct conn *c, const void *p, size_t len)
{
    struct iovec iov = { (void *)p, len };
    ssize_t n = 0;

    if (c->sq.bytes == 0 && !c->writing) {
        n = conn_writev(c, &iov, 1);
        if (n < 0)
            n = 0;
        if ((size_t)n == len)
            return 0;
    }
    conn_want_flush(c);
    return sendq_append(&c->sq, NULL, 0, (const uint8_t *)p + n,
                        len - (size_t)n);
}

static void
conn_call_writable(struct conn *c)
{
    const sock_app *app = c->route->app;
    sock_ret ret;

    if (app->handle_writable == NULL || c->state != CONN_OPEN)
        return;
    cb_enter(c);
    ret = app->handle_writable(&c->base, &c->app_state);
    cb_leave(c);
    conn_after_app(c, ret);
}

void
conn_flush(struct conn *c)
{
    int rc;

    list_remove(&c->flink);
    c->flush_later = false;
    if (c->state == CONN_DEAD)
        return;
    rc = sendq_flush(&c->sq, conn_writev, c, CONN_WRITES_PER_FLUSH);
    if (rc >= 0 && c->pong_due) {
        conn_queue_due_pong(c);
        rc = c->sq.bytes > 0 ? MAX(rc, 1) : rc; /* written on the next go */
    }
    if (rc < 0) {
        log_debug("event=write_error conn=%llx peer=%s error=\"%s\"",
                  (unsigned long long)c->id, PEER(c), strerror(-rc));
        if (c->close_kind == 0) {
            c->close_kind = SOCK_CLOSE_ERROR;
            c->close_err = SOCK_ERR_IO;
        }
        c->want_teardown = true;
        conn_settle(c);
        return;
    }
    if (rc > 0) {
        if (!c->tls_write_wants_read)
            conn_want_write(c, true);
        return;
    }
    if (!c->tls_read_wants_write && !c->tls_handshaking)
        conn_want_write(c, false);
    if (c->state == CONN_FINISH && !c->shut_wr) {
        if (c->tls != NULL)
            tls_shutdown(c->tls); /* close_notify, best effort */
        shutdown(c->fd, SHUT_WR);
        c->shut_wr = true;
    }
    if (c->above_high && c->route != NULL &&
        c->sq.bytes < conn_opts(c)->send_low_watermark) {
        c->above_high = false;
        conn_call_writable(c);
    }
    conn_settle(c);
}

static void conn_tls_handshake(struct conn *c);
static void conn_read(struct conn *c);

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

/* ---- Calling the app --------------------------------------------------- */

/* After a handler returned: continue, stop as recorded, or 1011. */
static void
conn_after_app(struct conn *c, sock_ret ret)
{
    if (ret == SOCK_CONTINUE || c->state != CONN_OPEN)
        return;
    if (ret != SOCK_STOP) {
        log_warn("event=app_bad_return conn=%llx app=%s value=%d",
                 (unsigned long long)c->id, c->route->app->name
                 ? c->route->app->name : "?", (int)ret);
        conn_close(c, 1011, NULL, 0, SOCK_CLOSE_ERROR, SOCK_ERR_APP);
        return;
    }
    if (!c->stop_recorded)
        conn_close(c, 1000, NULL, 0, SOCK_CLOSE_NORMAL, SOCK_ERR_NONE);
    else if (c->stop_code == 1011)
        conn_close(c, 1011, STOP_REASON(c), SOCK_CLOSE_ERROR, SOCK_ERR_APP);
    else
        conn_close(c, c->stop_code, STOP_REASON(c), SOCK_CLOSE_NORMAL,
                   SOCK_ERR_NONE);
}

static void
conn_deliver(struct conn *c, uint8_t op, const void *data, size_t len)
{
    sock_msg m = { .opcode = (sock_opcode)op, .data = data, .len = len };
    sock_ret ret;

    c->w->stats->msgs_in++;
    conn_route_stats(c)->msgs_in++;
    cb_enter(c);
    ret = c->route->app->handle_in(&c->base, &m, &c->app_state);
    cb_leave(c);
    conn_after_app(c, ret);
}

static void
conn_deliver_control(struct conn *c, uint8_t op, const void *data,
                     size_t len)
{
    sock_msg m = { .opcode = (sock_opcode)op, .data = data, .len = len };
    sock_ret ret;

    if (c->route->app->handle_control == NULL)
        return;
    cb_enter(c);
    ret = c->route->app->handle_control(&c->base, &m, &c->app_state);
    cb_leave(c);
    conn_after_app(c, ret);
}

static void
conn_deliver_info(struct conn *c, const struct info *i)
{
    sock_info in = {
        .kind = i->kind,
        .type = i->type,
        .from = i->from,
        .topic = i->topic ? (const char *)i->topic->data : NULL,
        .data = i->data ? i->data->data : (const void *)"",
        .len = i->data ? i->data->len : 0,
    };
    sock_ret ret;

    if (c->route->app->handle_info == NULL)
        return;
    c->w->delivering = i->data;
    c->w->fanout_held = i->held;
    cb_enter(c);
    ret = c->route->app->handle_info(&c->base, &in, &c->app_state);
    cb_leave(c);
    c->w->fanout_held = false;
    c->w->delivering = NULL;
    conn_after_app(c, ret);
}

/* ---- Receiving frames -------------------------------------------------- */

static uint32_t
open_timeout_ms(const struct conn *c)
{
    uint32_t ping = conn_opts(c)->ping_interval_ms;

    return ping != 0 ? ping : c->idle_ms;
}

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

/* ---- Unfinished input: max_partial_bytes and message_timeout ---------- */

/* What c holds of input not yet handled: the message being assembled (or
   inflated) and input kept while its app paused reading. */
static size_t
conn_held(const struct conn *c)
{
    return ws_session_held(&c->ws) + (c->x != NULL ? c->x->stash_len : 0);
}

/* c held `before` bytes until a change: the worker's total follows. */
static void
conn_account(struct conn *c, size_t before)
{
    c->w->stats->partial_bytes += (uint64_t)conn_held(c) - before;
}

static void
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
static void
conn_track_unfinished(struct conn *c)
{
    uint32_t ms = c->route != NULL ? conn_opts(c)->message_timeout_ms : 0;
    struct conn_cold *x;

    if (ms == 0 || c->state != CONN_OPEN || !c->active ||
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

void
conn_on_message_timeout(struct tnode *n, void *ctx)
{
    struct conn_cold *x = container_of(n, struct conn_cold, mtn);
    struct conn *c = x->conn;

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
    return (c->state == CONN_OPEN && c->active) || c->state == CONN_CLOSING;
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

/* ---- Opening ---------------------------------------------------------- */

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

static void
conn_read(struct conn *c)
{
    struct worker *w = c->w;

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
        if (c->want_teardown || !c->active)
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

/* ---- Pending work (from the worker's idle watcher) --------------------- */

static void
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

void
conn_run_pending(struct conn *c)
{
    struct info *i;

    list_remove(&c->plink);
    if (c->state == CONN_DEAD)
        return;
    if (STASHED(c) && c->active && c->state != CONN_HANDSHAKE)
        conn_run_stash(c);
    if (c->tls != NULL && !c->tls_handshaking && c->active &&
        !STASHED(c) && tls_pending(c->tls) > 0)
        conn_read(c);
    /* A bounded batch; the rest waits for the next turn. */
    for (int n = 0; n < 64 && c->state == CONN_OPEN; n++) {
        i = messaging_pop(c);
        if (i == NULL)
            break;
        conn_deliver_info(c, i);
        messaging_info_free(i);
    }
    if (c->state == CONN_OPEN && c->x != NULL &&
        (c->x->inbox_n > 0 || (c->x->stash_len > 0 && c->active)))
        conn_want_pending(c);
    conn_settle(c);
}

/* ---- Timeouts and server stop ----------------------------------------- */

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

/* ---- The sock_conn operations ---------------------------------------- */

static int
op_push(sock_conn *sc, sock_opcode op, const void *data, size_t len,
        sock_buf *b, unsigned flags)
{
    struct conn *c = conn_of(sc);
    const struct route_opts *o;
    int rc;

    if (c->state != CONN_OPEN)
        return -EPIPE;
    if (op != SOCK_TEXT && op != SOCK_BINARY && op != SOCK_PING &&
        op != SOCK_PONG)
        return -EINVAL;
    if ((op == SOCK_PING || op == SOCK_PONG) && len > WS_MAX_CONTROL)
        return -EINVAL;
    o = conn_opts(c);
    if (!conn_fits(c, len))
        return -ENOBUFS;
    rc = conn_queue_frame_ex(c, (uint8_t)op, data, len, b, flags);
    if (rc != 0)
        return rc;
    if (c->sq.bytes >= o->send_high_watermark)
        c->above_high = true;
    return 0;
}

static void
op_stop(sock_conn *sc, uint16_t code, const char *reason, size_t len,
        sock_close_error err)
{
    struct conn *c = conn_of(sc);

    if (c->state != CONN_OPEN || c->stop_recorded)
        return;
    if (reason == NULL)
        len = 0;
    (void)err; /* 1011 is what marks an app error; sock_stop_code checked
                  code and reason */
    c->stop_recorded = true;
    c->stop_code = code;
    if (len > 0 && conn_cold(c) != NULL &&
        (c->x->stop_reason = malloc(len)) != NULL) {
        memcpy(c->x->stop_reason, reason, len);
        c->x->stop_reason_len = (uint8_t)len;
    }
    if (!c->in_cb) {
        /* Outside a handler (a timer): close now, settle at the loop. */
        conn_after_app(c, SOCK_STOP);
        conn_want_flush(c);
    }
}

static bool
op_writable(const sock_conn *sc)
{
    const struct conn *c = container_of(sc, const struct conn, base);

    return c->state == CONN_OPEN &&
           c->sq.bytes < c->route->cfg->opts.send_high_watermark;
}

static size_t
op_queued(const sock_conn *sc)
{
    return container_of(sc, const struct conn, base)->sq.bytes;
}

static int
op_set_active(sock_conn *sc, bool active)
{
    struct conn *c = conn_of(sc);

    if (c->state != CONN_OPEN)
        return -EPIPE;
    if (active == c->active)
        return 0;
    c->active = active;
    if (!active) {
        conn_want_read(c, false);
        tlist_disarm(&c->tn); /* no idle timeout while paused */
        conn_track_unfinished(c); /* nor a message timeout */
        return 0;
    }
    conn_want_read(c, true);
    c->awaiting_pong = false;
    tlist_arm(c->w->timers, &c->tn, open_timeout_ms(c));
    conn_track_unfinished(c);
    if (STASHED(c) || (c->tls != NULL && tls_pending(c->tls) > 0))
        conn_want_pending(c); /* never re-entrant: delivered later */
    return 0;
}

static int
op_set_option(sock_conn *sc, int opt, uint64_t value)
{
    struct conn *c = conn_of(sc);

    if (c->state != CONN_OPEN)
        return -EPIPE;
    switch (opt) {
    case SOCK_OPT_IDLE_TIMEOUT:
        if (value > UINT32_MAX)
            return -EINVAL;
        c->idle_ms = (uint32_t)value;
        if (c->active && !c->awaiting_pong)
            tlist_arm(c->w->timers, &c->tn, open_timeout_ms(c));
        return 0;
    case SOCK_OPT_MAX_MESSAGE:
        if (value == 0)
            return -EINVAL;
        c->max_message = value;
        return 0;
    case SOCK_OPT_COMPRESS:
        if (c->deflate == NULL)
            return -ENOTSUP;
        c->compress_on = value != 0;
        return 0;
    }
    return -EINVAL;
}

static sock_id
op_self(const sock_conn *sc)
{
    return container_of(sc, const struct conn, base)->id;
}

/* Formatted on first call and kept, so it stays valid while c is. */
static const char *
op_peer(const sock_conn *sc)
{
    struct conn *c = container_of(sc, struct conn, base);
    char buf[CONN_PEER_MAX];

    if (conn_cold(c) == NULL)
        return "";
    if (c->x->peer == NULL)
        c->x->peer = strdup(conn_peer_str(c, buf, sizeof(buf)));
    return c->x->peer ? c->x->peer : "";
}

static const char *
op_subprotocol(const sock_conn *sc)
{
    const struct conn *c = container_of(sc, const struct conn, base);

    return c->x ? c->x->subprotocol : NULL;
}

static const char *
op_route(const sock_conn *sc)
{
    const struct conn *c = container_of(sc, const struct conn, base);

    return c->route ? c->route->cfg->path : "";
}

static int
op_subscribe(sock_conn *sc, const char *topic, bool on)
{
    struct conn *c = conn_of(sc);

    if (c->state != CONN_OPEN)
        return -EPIPE;
    return messaging_subscribe(c, topic, on, 0);
}

static int
op_subscribe_frames(sock_conn *sc, const char *topic, sock_opcode op)
{
    struct conn *c = conn_of(sc);

    if (c->state != CONN_OPEN)
        return -EPIPE;
    return messaging_subscribe(c, topic, true, (uint8_t)op);
}

static int
op_send_after(sock_conn *sc, uint32_t ms, uint32_t type, const void *data,
              size_t len)
{
    struct conn *c = conn_of(sc);

    if (c->state != CONN_OPEN)
        return -EPIPE;
    return messaging_send_after(c, ms, type, data, len);
}

static const struct sock_options *
op_options(const sock_conn *sc)
{
    static const struct sock_options none = { .route = "" };
    const struct conn *c = conn_of((sock_conn *)sc);

    return c->route != NULL ? &c->route->opts : &none;
}

static const struct sock_conn_ops conn_ops = {
    .push = op_push,
    .stop = op_stop,
    .writable = op_writable,
    .queued = op_queued,
    .set_active = op_set_active,
    .set_option = op_set_option,
    .self = op_self,
    .peer = op_peer,
    .subprotocol = op_subprotocol,
    .route = op_route,
    .subscribe = op_subscribe,
    .send_after = op_send_after,
    .options = op_options,
    .subscribe_frames = op_subscribe_frames,
};

int
conn_push_frame(struct conn *c, uint8_t op, sock_buf *payload,
                sock_buf *frame, bool held)
{
    struct worker *w = c->w;
    sock_buf *was;
    int rc;

    if (c->state != CONN_OPEN)
        return -EPIPE;
    if (!conn_fits(c, payload->len))
        return -ENOBUFS;
    if (conn_should_compress(c, op, payload->len, 0)) {
        was = w->delivering; /* a publish from inside handle_info */
        w->delivering = payload;
        rc = conn_queue_compressed(c, op, payload->data, payload->len);
        w->delivering = was;
    } else {
        rc = sendq_append_buf(&c->sq, NULL, 0, frame);
    }
    if (rc != 0)
        return rc;
    conn_count_out(c);
    if (held)
        conn_want_flush_held(c);
    else
        conn_want_flush(c);
    if (c->sq.bytes >= conn_opts(c)->send_high_watermark)
        c->above_high = true;
    return 0;
}

void
conn_info_arrived(struct conn *c)
{
    conn_want_pending(c);
}

void
conn_fail_inbox(struct conn *c)
{
    conn_fail(c, 1008, SOCK_ERR_INBOX);
    conn_want_flush(c);
}
