/*
 * conn_ops.c: what a connection's app sees of it beyond frames: the
 * sock_conn operations behind sock.h's connection calls (push, stop,
 * pause, options, topics, timers), what a handler's return value decides,
 * and the delivery of infos and stashed input from the worker's idle
 * watcher. The frames themselves are conn_send.c's and conn_recv.c's.
 */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conn_impl.h"
#include "log.h"
#include "messaging.h"
#include "tls.h"
#include "wstate.h"

/* The reason an app stopped with, as (pointer, length). */
#define STOP_REASON(c) ((c)->x ? (c)->x->stop_reason : NULL), \
                       ((c)->x ? (c)->x->stop_reason_len : 0)

static inline struct conn *
conn_of(sock_conn *sc)
{
    return container_of(sc, struct conn, base);
}

/* ---- Calling the app --------------------------------------------------- */

/* After a handler returned: continue, stop as recorded, or 1011. */
void
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

void
conn_run_pending(struct conn *c)
{
    struct info *i;

    list_remove(&c->plink);
    if (c->state == CONN_DEAD)
        return;
    if (STASHED(c) && conn_takes_input(c) && c->state != CONN_HANDSHAKE)
        conn_run_stash(c);
    if (c->tls != NULL && !c->tls_handshaking && conn_takes_input(c) &&
        !STASHED(c) && tls_pending(c->tls) > 0)
        conn_read(c);
    /* A bounded batch; the rest waits for the next turn. */
    for (int n = 0; n < 64 && c->state == CONN_OPEN; n++) {
        i = messaging_pop(c->x != NULL ? &c->x->box : NULL);
        if (i == NULL)
            break;
        conn_deliver_info(c, i);
        messaging_info_free(i);
    }
    if (list_empty(&c->flink))
        conn_fan_clear(c); /* handle_info pushed nothing to write */
    if (c->state == CONN_OPEN && c->x != NULL &&
        (c->x->box.n > 0 || (STASHED(c) && conn_takes_input(c))))
        conn_want_pending(c);
    conn_settle(c);
}

/* ---- Infos for the connection (messaging.c's callbacks) --------------- */

struct conn *
conn_find(struct worker *w, sock_id id)
{
    struct conn *c;

    if (!worker_id_is_local(w, id))
        return NULL;
    c = idmap_get(&w->ids, SOCK_ID_SERIAL(id));
    return c != NULL && conn_is_open(c) ? c : NULL;
}

int
conn_enqueue_info(struct conn *c, sock_info_kind kind, uint32_t type,
                  sock_id from, sock_buf *topic, sock_buf *data, bool held)
{
    struct conn_cold *x;
    int rc;

    if (c->state != CONN_OPEN)
        return -EPIPE;
    if ((x = conn_cold(c)) == NULL)
        return -ENOMEM;
    if (x->box.n >= conn_opts(c)->max_info_queue) {
        c->w->stats->infos_dropped++;
        if (conn_opts(c)->info_overflow_close) {
            conn_fail(c, 1008, SOCK_ERR_INBOX);
            conn_want_flush(c);
        }
        return -ENOBUFS;
    }
    rc = messaging_box_put(&x->box, kind, type, from, topic, data, held);
    if (rc == 0)
        conn_want_pending(c);
    if (rc == 0 && data != NULL &&
        (kind == SOCK_INFO_PUBLISH || kind == SOCK_INFO_BROADCAST))
        conn_fan_add(c, data->len); /* what handle_info will likely push */
    return rc;
}

void
conn_broadcast_info(struct worker *w, uint32_t type, sock_id from,
                    sock_buf *data, bool held)
{
    for (struct list *l = w->conns.next; l != &w->conns; l = l->next) {
        struct conn *c = container_of(l, struct conn, link);

        if (c->state == CONN_OPEN)
            conn_enqueue_info(c, SOCK_INFO_BROADCAST, type, from, NULL, data,
                              held);
    }
}

/* ---- The sock_conn operations ------------------------------------------ */

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

/* Joining needs the mailbox (made now); leaving one never made is done. */
static int
conn_subscribe(struct conn *c, const char *topic, bool on, uint8_t frame_op)
{
    struct conn_cold *x;

    if (c->state != CONN_OPEN)
        return -EPIPE;
    x = on ? conn_cold(c) : c->x;
    if (x == NULL)
        return on ? -ENOMEM : 0;
    return messaging_subscribe(&x->box, topic, on, frame_op);
}

static int
op_subscribe(sock_conn *sc, const char *topic, bool on)
{
    return conn_subscribe(conn_of(sc), topic, on, 0);
}

static int
op_subscribe_frames(sock_conn *sc, const char *topic, sock_opcode op)
{
    return conn_subscribe(conn_of(sc), topic, true, (uint8_t)op);
}

static int
op_send_after(sock_conn *sc, uint32_t ms, uint32_t type, const void *data,
              size_t len)
{
    struct conn *c = conn_of(sc);

    if (c->state != CONN_OPEN)
        return -EPIPE;
    if (conn_cold(c) == NULL)
        return -ENOMEM;
    return messaging_send_after(&c->x->box, ms, type, data, len);
}

static const struct sock_options *
op_options(const sock_conn *sc)
{
    static const struct sock_options none = { .route = "" };
    const struct conn *c = conn_of((sock_conn *)sc);

    return c->route != NULL ? &c->route->opts : &none;
}

const struct sock_conn_ops conn_ops = {
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
