/*
 * conn_send.c: a connection's output side: frames queued (the app's, our
 * pongs, pings and close), compressed per connection or once per worker
 * for fan-out, written with one write per flush (batched: sendbatch.c),
 * and the backpressure that follows (send_hard_limit fails the
 * connection, the low watermark calls handle_writable). Queueing itself is sendq.c's; when a write
 * happens (flush before the poll, held fan-out) is decided here and in
 * worker.c.
 */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "conn_impl.h"
#include "log.h"
#include "sendbatch.h"
#include "tls.h"
#include "ws_deflate.h"
#include "wstate.h"

#define CONN_WRITES_PER_FLUSH 16
/*
 * Pongs that may sit unwritten in a send queue. A ping beyond them is
 * answered later by one pong carrying the latest ping's payload (RFC 6455
 * §5.5.3 allows answering only the most recent), so a ping flood costs a
 * client that never reads at most this many pongs, not one per ping,
 * while a burst of a few pings still gets every pong.
 */
#define CONN_PONGS_QUEUED 16

void
conn_flush_soon(struct conn *c)
{
    conn_want_flush(c);
}

/* Output of a fan-out the worker holds for its next tick
   (worker_fanout_later): written then, or with c's next other output.
   The tick is armed here, not only by the publish: a callback subscriber
   pushes when its info is delivered, which under load can be after the
   tick the publish set has fired (or once auto has dropped the hold), and
   its frames would otherwise wait for the next fan-out or other output. */
static void
conn_want_flush_held(struct conn *c)
{
    if (!list_empty(&c->flink) || c->writing)
        return; /* already due, or waiting for the socket */
    list_insert_tail(&c->w->flush_later, &c->flink);
    c->flush_later = true;
    worker_fanout_arm(c->w);
}

/* One message queued to c: the worker's and the route's counters. */
static void
conn_count_out(struct conn *c)
{
    c->w->stats->msgs_out++;
    conn_route_stats(c)->msgs_out++;
}

/* ---- Compression ------------------------------------------------------- */

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

/*
 * The compressed form of the info payload being delivered, made once per
 * worker and window for every connection that agreed
 * server_no_context_takeover (DESIGN §7, §8). NULL if it cannot be made.
 */
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

/* ---- Queueing frames --------------------------------------------------- */

int
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

void
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

/* v goes for max_send_bytes: its queue now, the connection from the flush
   list (conn_within_send_budget). */
static void
conn_evict(struct conn *v)
{
    struct worker *w = v->w;

    log_info("event=send_budget_close conn=%llx peer=%s queued=%zu "
             "worker_queued=%zu", (unsigned long long)v->id, PEER(v),
             v->sq.bytes, sendq_total_bytes());
    w->stats->send_budget_closes++;
    sendq_clear(&v->sq);
    v->pong_left = 0;
    v->pongs_queued = 0;
    v->pong_due = false;
    conn_fan_clear(v);
    if (v->close_kind == 0 || v->state == CONN_OPEN) {
        v->close_kind = SOCK_CLOSE_ERROR;
        v->close_err = SOCK_ERR_BACKPRESSURE;
    }
    /* Nothing more is queued to it; torn down from the flush list, where
       no handler or fan-out loop is walking the connection's links. */
    v->state = CONN_FINISH;
    v->want_teardown = true;
    list_remove(&v->flink);
    v->flush_later = false;
    list_insert_tail(&w->flush, &v->flink);
}

/*
 * Keeps all the worker's send queues together under max_send_bytes (per
 * connection send_hard_limit bounds one client; this bounds many). While
 * len more bytes would go over, the connection holding the most, a client
 * that reads slower than it makes us write, loses its queue and is closed
 * without a close frame (which could not reach it past that queue). A
 * scan of the connections, but only when over, and each frees a holder.
 * false if c itself went.
 */
static bool
conn_within_send_budget(struct conn *c, size_t len)
{
    struct worker *w = c->w;
    uint64_t budget = w->cfg->server.max_send_bytes;

    while (sendq_total_bytes() + len > budget) {
        struct conn *v = NULL;
        size_t most = 0;

        for (struct list *l = w->conns.next; l != &w->conns; l = l->next) {
            struct conn *o = container_of(l, struct conn, link);

            if (!o->want_teardown && o->sq.bytes > most) {
                v = o;
                most = o->sq.bytes;
            }
        }
        if (v == NULL)
            break;
        conn_evict(v);
        if (v == c)
            return false;
    }
    return true;
}

/*
 * Whether len more bytes fit under send_hard_limit. If not, the
 * connection fails with 1008, as for an app push over it (DESIGN §3.4):
 * every frame counts, ours (pongs, pings) too. The close frame is the one
 * frame queued past the limit, once per connection. Then the worker's
 * max_send_bytes, which may cost another connection (or c) its queue.
 */
bool
conn_fits(struct conn *c, size_t len)
{
    if (c->sq.bytes + len > conn_opts(c)->send_hard_limit) {
        log_info("event=send_queue_full conn=%llx peer=%s queued=%zu",
                 (unsigned long long)c->id, PEER(c), c->sq.bytes);
        conn_fail(c, 1008, SOCK_ERR_BACKPRESSURE);
        return false;
    }
    return sendq_total_bytes() + len <= c->w->cfg->server.max_send_bytes ||
           conn_within_send_budget(c, len);
}

/* A pong or ping of the server's own, within the send limits. */
int
conn_queue_own(struct conn *c, uint8_t op, const void *data, size_t len)
{
    if (!conn_fits(c, len))
        return -ENOBUFS;
    return conn_queue_frame(c, op, data, len, NULL);
}

int
conn_push_frame(struct conn *c, uint8_t op, sock_buf *payload,
                sock_buf *frame, bool held)
{
    struct worker *w = c->w;
    size_t before = c->sq.bytes;
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
    conn_fan_add(c, c->sq.bytes - before);
    if (held)
        conn_want_flush_held(c);
    else
        conn_want_flush(c);
    if (c->sq.bytes >= conn_opts(c)->send_high_watermark)
        c->above_high = true;
    return 0;
}

/* ---- Pongs ------------------------------------------------------------- */

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
void
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

/* ---- Writing ----------------------------------------------------------- */

static void
conn_count_written(struct conn *c, size_t n)
{
    c->w->stats->bytes_out += (uint64_t)n;
    if (c->pongs_queued > 0)
        conn_pongs_written(c, n);
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
            conn_count_written(c, (size_t)n);
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
    conn_count_written(c, (size_t)n);
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

/*
 * Writes c's queue. `first` is the result of a first write already made
 * for it (conn_flush_batch), as sendq_flush returns: 1 the socket is
 * full, a negative errno, or 0 to go on writing here.
 */
static void
conn_flush_after(struct conn *c, int first)
{
    int rc;

    list_remove(&c->flink);
    c->flush_later = false;
    conn_fan_clear(c);
    if (c->state == CONN_DEAD)
        return;
    /* "Full" from the batch, but the queue was emptied since (the send
       budget dropped it): nothing to wait for, and the teardown that
       follows must not wait for a writable socket. */
    if (first == 1 && c->sq.head == NULL)
        first = 0;
    rc = first != 0 ? first
                    : sendq_flush(&c->sq, conn_writev, c,
                                  CONN_WRITES_PER_FLUSH);
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

void
conn_flush(struct conn *c)
{
    conn_flush_after(c, 0);
}

/* What a batched send did to c's queue, as sendq_flush's first call would
   have: the bytes written leave the queue. No app code runs here, so no
   other connection of the batch changes meanwhile. */
static int
conn_batch_written(struct conn *c, ssize_t n, size_t offered)
{
    if (n == -ECANCELED)
        return 0;                 /* not made: conn_flush_after writes */
    if (n == -EAGAIN)
        return 1;
    if (n < 0)
        return (int)n;
    conn_count_written(c, (size_t)n);
    sendq_consume(&c->sq, (size_t)n);
    return (size_t)n < offered ? 1 : 0;
}

/*
 * Flushes the first `max` connections of the flush list, their first
 * writes made together in one system call (sendbatch.h) when the worker
 * has a batch; TLS connections write through OpenSSL, one by one. The
 * results are all taken into the queues before any connection's flush
 * goes on (handle_writable, teardown), so app code never sees a queue
 * whose written bytes are still in it.
 */
void
conn_flush_batch(struct worker *w, int max)
{
    struct conn *batch[CONN_FLUSH_BATCH_MAX];
    int first[CONN_FLUSH_BATCH_MAX];
    int slot[CONN_FLUSH_BATCH_MAX];
    struct list *l;
    unsigned nsent;
    int n = 0;

    if (w->sendbatch == NULL) {
        for (int i = 0; i < max && !list_empty(&w->flush); i++)
            conn_flush(container_of(w->flush.next, struct conn, flink));
        return;
    }
    max = MIN(max, CONN_FLUSH_BATCH_MAX);
    for (l = w->flush.next; l != &w->flush && n < max; l = l->next) {
        struct conn *c = container_of(l, struct conn, flink);

        batch[n] = c;
        slot[n] = -1;
        if (c->tls == NULL && c->state != CONN_DEAD && c->sq.head != NULL)
            slot[n] = sendbatch_add(w->sendbatch, c->fd, &c->sq);
        n++;
    }
    if ((nsent = sendbatch_run(w->sendbatch)) > 0) {
        w->stats->send_batches++;
        w->stats->sends_batched += nsent;
    }
    for (int i = 0; i < n; i++) {
        size_t offered;
        ssize_t r;

        first[i] = 0;
        if (slot[i] < 0)
            continue;
        r = sendbatch_result(w->sendbatch, (unsigned)slot[i], &offered);
        first[i] = conn_batch_written(batch[i], r, offered);
    }
    for (int i = 0; i < n; i++) {
        /* Flushed meanwhile (another's callback or teardown), or held
           for the fan-out tick since: not now. */
        if (list_empty(&batch[i]->flink) || batch[i]->flush_later)
            continue;
        conn_flush_after(batch[i], first[i]);
    }
}
