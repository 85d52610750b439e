/*
 * sock_api.c: the public calls of sock.h that are not tied to a loop:
 * dispatch through the connection's operations, shared buffers, the stop
 * helpers and small validators. The worker and the test harness provide
 * the operations.
 */
#include "sock_impl.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "utf8.h"

static const struct sock_host_ops *host_ops;
static void *host_ctx;
/* Held while the host changes and around sock_post, the one host call
   made from other threads. */
static pthread_mutex_t host_lock = PTHREAD_MUTEX_INITIALIZER;

void
sock_host_set(const struct sock_host_ops *ops, void *host)
{
    pthread_mutex_lock(&host_lock);
    host_ops = ops;
    host_ctx = host;
    pthread_mutex_unlock(&host_lock);
}

int
sock_push(sock_conn *c, sock_opcode op, const void *data, size_t len)
{
    return c->ops->push(c, op, data, len, NULL, 0);
}

int
sock_push_ex(sock_conn *c, sock_opcode op, const void *data, size_t len,
             unsigned flags)
{
    return c->ops->push(c, op, data, len, NULL, flags);
}

int
sock_push_buf(sock_conn *c, sock_opcode op, sock_buf *b)
{
    if (b == NULL)
        return -EINVAL;
    return c->ops->push(c, op, b->data, b->len, b, 0);
}

sock_buf *
sock_buf_alloc(size_t len)
{
    sock_buf *b;

    if (len > SIZE_MAX - sizeof(*b))
        return NULL;
    b = malloc(sizeof(*b) + len);
    if (b == NULL)
        return NULL;
    b->refs = 1;
    b->len = len;
    return b;
}

sock_buf *
sock_buf_new(const void *data, size_t len)
{
    sock_buf *b = sock_buf_alloc(len);

    if (b != NULL && len > 0)
        memcpy(b->data, data, len);
    return b;
}

sock_buf *
sock_buf_ref(sock_buf *b)
{
    b->refs++;
    return b;
}

void
sock_buf_unref(sock_buf *b)
{
    if (b != NULL && --b->refs == 0)
        free(b);
}

const void *
sock_buf_data(const sock_buf *b)
{
    return b->data;
}

size_t
sock_buf_len(const sock_buf *b)
{
    return b->len;
}

bool
sock_close_code_is_valid(uint16_t code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

bool
sock_utf8_valid(const void *buf, size_t len)
{
    return utf8_validate(UTF8_ACCEPT, buf, len) == UTF8_ACCEPT;
}

sock_ret
sock_stop(sock_conn *c)
{
    c->ops->stop(c, 1000, NULL, 0, SOCK_ERR_NONE);
    return SOCK_STOP;
}

sock_ret
sock_stop_code(sock_conn *c, uint16_t code, const char *reason, size_t len)
{
    /* One rule for every backend (DESIGN §3.4): a code an app may send and
       at most 123 bytes of UTF-8, else 1011 and a log line. */
    if (reason == NULL)
        len = 0;
    if (!sock_close_code_is_valid(code) || len > 123 ||
        (len > 0 && !sock_utf8_valid(reason, len))) {
        log_warn("event=app_bad_close conn=%llx code=%u reason_len=%zu "
                 "sent=1011", (unsigned long long)c->ops->self(c), code,
                 len);
        code = 1011;
        reason = NULL;
        len = 0;
    }
    c->ops->stop(c, code, reason, len, SOCK_ERR_NONE);
    return SOCK_STOP;
}

sock_ret
sock_stop_restart(sock_conn *c)
{
    c->ops->stop(c, 1012, NULL, 0, SOCK_ERR_NONE);
    return SOCK_STOP;
}

sock_ret
sock_stop_error(sock_conn *c, int app_err)
{
    log_warn("event=app_error conn=%llx app_err=%d",
             (unsigned long long)c->ops->self(c), app_err);
    c->ops->stop(c, 1011, NULL, 0, SOCK_ERR_APP);
    return SOCK_STOP;
}

bool
sock_writable(const sock_conn *c)
{
    return c->ops->writable(c);
}

size_t
sock_send_queued(const sock_conn *c)
{
    return c->ops->queued(c);
}

int
sock_set_active(sock_conn *c, bool active)
{
    return c->ops->set_active(c, active);
}

int
sock_set_idle_timeout(sock_conn *c, uint32_t ms)
{
    return c->ops->set_option(c, SOCK_OPT_IDLE_TIMEOUT, ms);
}

int
sock_set_max_message_size(sock_conn *c, size_t bytes)
{
    return c->ops->set_option(c, SOCK_OPT_MAX_MESSAGE, bytes);
}

int
sock_set_compress(sock_conn *c, bool on)
{
    return c->ops->set_option(c, SOCK_OPT_COMPRESS, on);
}

sock_id
sock_self(const sock_conn *c)
{
    return c->ops->self(c);
}

const char *
sock_peer(const sock_conn *c)
{
    return c->ops->peer(c);
}

const char *
sock_subprotocol(const sock_conn *c)
{
    return c->ops->subprotocol(c);
}

const char *
sock_route(const sock_conn *c)
{
    return c->ops->route(c);
}

static bool
topic_is_valid(const char *topic)
{
    size_t n;

    if (topic == NULL)
        return false;
    n = strnlen(topic, 256);
    return n >= 1 && n <= 255;
}

int
sock_subscribe(sock_conn *c, const char *topic)
{
    if (!topic_is_valid(topic))
        return -EINVAL;
    return c->ops->subscribe(c, topic, true);
}

int
sock_unsubscribe(sock_conn *c, const char *topic)
{
    if (!topic_is_valid(topic))
        return -EINVAL;
    return c->ops->subscribe(c, topic, false);
}

int
sock_subscribe_frames(sock_conn *c, const char *topic, sock_opcode op)
{
    if (!topic_is_valid(topic) || (op != SOCK_TEXT && op != SOCK_BINARY))
        return -EINVAL;
    return c->ops->subscribe_frames(c, topic, op);
}

int
sock_send_after(sock_conn *c, uint32_t ms, uint32_t type, const void *data,
                size_t len)
{
    return c->ops->send_after(c, ms, type, data, len);
}

int
sock_send_info(sock_id to, uint32_t type, const void *data, size_t len)
{
    if (host_ops == NULL)
        return -ENOTCONN;
    return host_ops->send_info(host_ctx, to, type, data, len);
}

int
sock_publish(const char *topic, uint32_t type, const void *data, size_t len)
{
    if (!topic_is_valid(topic))
        return -EINVAL;
    if (host_ops == NULL)
        return -ENOTCONN;
    return host_ops->publish(host_ctx, topic, type, data, len);
}

int
sock_broadcast(uint32_t type, const void *data, size_t len)
{
    if (host_ops == NULL)
        return -ENOTCONN;
    return host_ops->broadcast(host_ctx, type, data, len);
}

/* ---- Route options ------------------------------------------------------ */

const char *
sock_options_find(const struct sock_options *o, const char *name)
{
    if (o == NULL || o->kv == NULL || name == NULL)
        return NULL;
    for (char **kv = o->kv; kv[0] != NULL && kv[1] != NULL; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

const char *
sock_option(const sock_conn *c, const char *name)
{
    return sock_options_find(c->ops->options(c), name);
}

const char *
sock_options_get(const sock_options *o, const char *name)
{
    return sock_options_find(o, name);
}

const char *
sock_options_route(const sock_options *o)
{
    return o != NULL ? o->route : NULL;
}

/* ---- Loop integration --------------------------------------------------- */

sock_watch *
sock_watch_fd(int fd, unsigned events, sock_watch_fn cb, void *arg)
{
    if (host_ops == NULL || host_ops->watch_fd == NULL || fd < 0 ||
        cb == NULL || (events & ~(SOCK_READ | SOCK_WRITE)) != 0)
        return NULL;
    return host_ops->watch_fd(host_ctx, fd, events, cb, arg);
}

int
sock_watch_set(sock_watch *w, unsigned events)
{
    if (w == NULL || (events & ~(SOCK_READ | SOCK_WRITE)) != 0 ||
        host_ops == NULL)
        return -EINVAL;
    return host_ops->watch_set(host_ctx, w, events);
}

void
sock_watch_stop(sock_watch *w)
{
    if (w != NULL && host_ops != NULL)
        host_ops->watch_stop(host_ctx, w);
}

sock_timer *
sock_timer_start(uint32_t ms, uint32_t repeat_ms, sock_timer_fn cb,
                 void *arg)
{
    if (host_ops == NULL || host_ops->timer_start == NULL || cb == NULL)
        return NULL;
    return host_ops->timer_start(host_ctx, ms, repeat_ms, cb, arg);
}

void
sock_timer_stop(sock_timer *t)
{
    if (t != NULL && host_ops != NULL)
        host_ops->timer_stop(host_ctx, t);
}

int
sock_post(sock_id to, uint32_t type, const void *data, size_t len)
{
    int rc = -ENOTCONN;

    if (data == NULL && len > 0)
        return -EINVAL;
    pthread_mutex_lock(&host_lock);
    if (host_ops != NULL && host_ops->post != NULL)
        rc = host_ops->post(host_ctx, to, type, data, len);
    pthread_mutex_unlock(&host_lock);
    return rc;
}

/* ---- Deferred upgrades -------------------------------------------------- */

sock_pending *
sock_upgrade_defer(sock_upgrade *u)
{
    if (u == NULL || u->req == NULL)
        return NULL; /* only inside the hook */
    if (u->pending != NULL)
        return NULL; /* one handle per request */
    if (host_ops == NULL || host_ops->defer == NULL)
        return NULL;
    u->pending = host_ops->defer(host_ctx, u);
    return u->pending;
}

int
sock_pending_accept(sock_pending *p, void *arg, void (*free_arg)(void *))
{
    if (p == NULL)
        return -EINVAL;
    return p->ops->decide(p, 0, NULL, arg, free_arg);
}

int
sock_pending_refuse(sock_pending *p, int status, const char *body)
{
    if (p == NULL)
        return -EINVAL;
    if (status < 400 || status > 599)
        status = 500;
    return p->ops->decide(p, status, body, NULL, NULL);
}
