/*
 * wsl_conn.c: the connection machinery of wsl_conn.h. A connection owns
 * no buffer while idle: reads go to the worker's rbuf and the frame parser
 * keeps only its header bytes; the handshake buffer lives for the
 * handshake, the control-frame buffer for one control frame, the write
 * buffer until it drains (unless the owner keeps it), an inflate stream
 * for one compressed message (wsl_deflate.c's pool lends it).
 */
#include "wsl_conn.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "wsl_common.h"
#include "wsl_deflate.h"
#include "wsl_handshake.h"
#include "wsl_tls.h"

#define RBUF_SIZE (256u * 1024)
#define READS_PER_WAKEUP 4      /* bounded, so no connection starves others */
#define OUT_MIN 4096

struct wsl_hs {
    size_t len;
    char accept[WSL_ACCEPT_LEN + 1];
    char buf[WSL_RESPONSE_MAX];
};

static void conn_on_readable(struct ev_loop *loop, ev_io *w, int revents);
static void conn_on_writable(struct ev_loop *loop, ev_io *w, int revents);

/* The only two places that move bytes: over TLS for wss://. */
static ssize_t
conn_recv(struct wsl_conn *c, void *buf, size_t len)
{
    if (c->tls != NULL)
        return wsl_tls_read(c->net->tls, c->tls, buf, len);
    return recv(c->fd, buf, len, 0);
}

static ssize_t
conn_send(struct wsl_conn *c, const void *buf, size_t len)
{
    if (c->tls != NULL)
        return wsl_tls_write(c->net->tls, c->tls, buf, len);
    return send(c->fd, buf, len, MSG_NOSIGNAL);
}

void
wsl_net_count(struct wsl_net *n, enum wsl_err why, int errnum,
              const char *what)
{
    if (why == WSL_ERR_NONE)
        return;
    n->err[why]++;
    if (n->first_errno[why] == 0)
        n->first_errno[why] = errnum;
    if (what != NULL && n->first_failure[0] == '\0')
        snprintf(n->first_failure, sizeof(n->first_failure), "%s", what);
}

/* Closes the fd, frees what c holds and queues it for on_dead. */
static void
conn_finish(struct wsl_conn *c, enum wsl_err why, int errnum,
            const char *what)
{
    struct wsl_net *n = c->net;

    if (c->state == WSL_CS_DEAD)
        return;
    wsl_net_count(n, why, errnum, what);
    c->why = (uint8_t)why;
    if (c->fd >= 0) {
        ev_io_stop(n->loop, &c->rio);
        ev_io_stop(n->loop, &c->wio);
        wsl_tls_conn_free(n->tls, c->tls);
        c->tls = NULL;
        close(c->fd);
        c->fd = -1;
    }
    free(c->hs);
    free(c->ctl);
    free(c->out);
    wsl_inflater_put(n->dfl, c->inf);
    c->inf = NULL;
    c->hs = NULL;
    c->ctl = NULL;
    c->out = NULL;
    c->out_off = c->out_len = c->out_cap = 0;
    c->state = WSL_CS_DEAD;
    c->next_dead = n->dead;
    n->dead = c;
    ev_idle_start(n->loop, &n->kick);
}

void
wsl_conn_abort(struct wsl_conn *c, enum wsl_err why)
{
    conn_finish(c, why, 0, NULL);
}

/* Room for need more bytes at c->out + c->out_len, or NULL. */
static uint8_t *
conn_reserve(struct wsl_conn *c, size_t need)
{
    size_t cap;
    uint8_t *p;

    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_cap - c->out_len >= need)
        return c->out + c->out_len;
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_cap - c->out_len >= need)
            return c->out + c->out_len;
    }
    cap = MAX(MAX(c->out_cap * 2, (size_t)OUT_MIN), c->out_len + need);
    p = realloc(c->out, cap);
    if (p == NULL)
        return NULL;
    c->out = p;
    c->out_cap = cap;
    return c->out + c->out_len;
}

/* Corking: the frame is written by the prepare watcher, together with
   whatever else this iteration queues, in one send(). */
static void
conn_mark_dirty(struct wsl_conn *c)
{
    struct wsl_net *n = c->net;

    /* An active wio means a send is already waiting for room. */
    if (c->in_dirty || ev_is_active(&c->wio))
        return;
    assert(n->n_dirty < n->dirty_cap);
    n->dirty[n->n_dirty++] = c;
    c->in_dirty = true;
}

/* Raw TCP: the payload as it is, no frame. */
static int
conn_queue_raw(struct wsl_conn *c, const struct iovec *iov, int iovcnt)
{
    size_t len = 0;
    uint8_t *dst;

    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    dst = conn_reserve(c, len);
    if (dst == NULL)
        return -ENOMEM;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(dst, iov[i].iov_base, iov[i].iov_len);
        dst += iov[i].iov_len;
    }
    c->out_len += len;
    conn_mark_dirty(c);
    return 0;
}

static int
conn_queue_frame(struct wsl_conn *c, uint8_t opcode,
                 const struct iovec *iov, int iovcnt)
{
    uint64_t r = wsl_rand(&c->net->rng);
    uint8_t mask[4], rsv = 0;
    size_t len = 0, hlen;
    uint64_t pos = 0;
    uint8_t *dst;
    struct iovec z;

    if (c->net->target->raw_msg_size > 0)
        return conn_queue_raw(c, iov, iovcnt);
    /* RFC 7692 §6.1: data messages only, RSV1 on the (only) frame. */
    if (c->deflate && (opcode & 0x8) == 0) {
        const uint8_t *zp;

        if (wsl_deflate_message(c->net->dfl, iov, iovcnt, &zp,
                                &z.iov_len) != 0)
            return -ENOMEM;
        z.iov_base = (void *)zp;
        iov = &z;
        iovcnt = 1;
        rsv = WSL_RSV1;
    }
    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    memcpy(mask, &r, sizeof(mask));
    dst = conn_reserve(c, WSL_FRAME_HDR_MAX + len);
    if (dst == NULL)
        return -ENOMEM;
    hlen = wsl_frame_header(dst, opcode, rsv, len, mask);
    for (int i = 0; i < iovcnt; i++) {
        wsl_frame_mask_copy(dst + hlen + pos, iov[i].iov_base,
                            iov[i].iov_len, mask, pos);
        pos += iov[i].iov_len;
    }
    c->out_len += hlen + len;
    conn_mark_dirty(c);
    return 0;
}

static int
conn_queue_control(struct wsl_conn *c, uint8_t opcode, const void *p,
                   size_t len)
{
    struct iovec iov = { (void *)p, len };

    return conn_queue_frame(c, opcode, &iov, 1);
}

int
wsl_conn_sendv(struct wsl_conn *c, uint8_t opcode, const struct iovec *iov,
               int iovcnt)
{
    if (c->state != WSL_CS_OPEN)
        return -EPIPE;
    return conn_queue_frame(c, opcode, iov, iovcnt);
}

void
wsl_conn_close(struct wsl_conn *c, uint16_t code)
{
    uint8_t body[2] = { (uint8_t)(code >> 8), (uint8_t)code };

    /* Raw TCP has no close handshake: the FIN is all. */
    if (c->net->target->raw_msg_size > 0 && c->state == WSL_CS_OPEN) {
        conn_finish(c, WSL_ERR_NONE, 0, NULL);
        return;
    }
    switch (c->state) {
    case WSL_CS_CONNECTING:
    case WSL_CS_HANDSHAKE:
        conn_finish(c, WSL_ERR_NONE, 0, NULL);
        break;
    case WSL_CS_OPEN:
        if (conn_queue_control(c, WSL_OP_CLOSE, body, sizeof(body)) != 0) {
            conn_finish(c, WSL_ERR_NONE, 0, NULL);
            break;
        }
        c->state = WSL_CS_CLOSE_SENT;
        c->t_close_ns = wsl_now_ns();
        break;
    default:
        break;
    }
}

/* One send() of what is queued; wio takes over if it does not all go. */
static void
conn_flush(struct wsl_conn *c)
{
    struct wsl_net *n = c->net;
    size_t len = c->out_len - c->out_off;
    ssize_t w;

    if (len == 0)
        return;
    n->now_ns = wsl_now_ns();
    if (n->ops->before_flush != NULL)
        n->ops->before_flush(c, n->now_ns);
    w = conn_send(c, c->out + c->out_off, len);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            /* During our close the peer may reset first: not an error. */
            conn_finish(c, c->state >= WSL_CS_CLOSE_SENT ? WSL_ERR_NONE :
                        WSL_ERR_CLOSED, errno, NULL);
            return;
        }
        w = 0;
    }
    n->bytes_out += (uint64_t)w;
    c->out_off += (size_t)w;
    if (c->out_off < c->out_len) {
        ev_io_start(n->loop, &c->wio);
        return;
    }
    ev_io_stop(n->loop, &c->wio);
    c->out_off = c->out_len = 0;
    if (!c->keep_out) {
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
}

static int
conn_queue_request(struct wsl_conn *c)
{
    struct wsl_net *n = c->net;
    const struct wsl_target *t = n->target;
    uint64_t r[2] = { wsl_rand(&n->rng), wsl_rand(&n->rng) };
    uint8_t key[16];
    char req[1536];
    ssize_t len;
    uint8_t *dst;

    c->hs = malloc(sizeof(*c->hs));
    if (c->hs == NULL)
        return -ENOMEM;
    c->hs->len = 0;
    memcpy(key, r, sizeof(key));
    len = wsl_handshake_request(req, sizeof(req), t->host, t->path, key,
                                t->extensions, c->hs->accept);
    if (len < 0)
        return (int)len;
    dst = conn_reserve(c, (size_t)len);
    if (dst == NULL)
        return -ENOMEM;
    memcpy(dst, req, (size_t)len);
    c->out_len += (size_t)len;
    return 0;
}

/* A step of the TLS handshake; once it is done, the upgrade request. */
static void
conn_tls_step(struct wsl_conn *c)
{
    struct wsl_net *n = c->net;
    const char *what = NULL;
    int rc = wsl_tls_handshake(n->tls, c->tls, &what);

    if (rc < 0) {
        conn_finish(c, WSL_ERR_HANDSHAKE, 0, what);
        return;
    }
    if (rc == WSL_TLS_WANT_WRITE) {
        ev_io_start(n->loop, &c->wio);
        return;
    }
    ev_io_stop(n->loop, &c->wio);
    if (rc == WSL_TLS_WANT_READ)
        return;
    c->tls_hs = false;
    c->state = WSL_CS_HANDSHAKE;
    conn_flush(c);
}

/* The TCP connection is up: send the request, start reading. */
static void
conn_connected(struct wsl_conn *c)
{
    struct wsl_net *n = c->net;
    int err = 0;
    socklen_t elen = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
        err = errno;
    if (err != 0) {
        conn_finish(c, WSL_ERR_CONNECT, err, NULL);
        return;
    }
    ev_io_stop(n->loop, &c->wio);
    ev_io_start(n->loop, &c->rio);
    if (n->tls != NULL) {
        c->tls = wsl_tls_conn_new(n->tls, c->fd);
        if (c->tls == NULL) {
            conn_finish(c, WSL_ERR_CONNECT, ENOMEM, NULL);
            return;
        }
        c->tls_hs = true;
        conn_tls_step(c);
        return;
    }
    if (n->target->raw_msg_size > 0) {
        c->state = WSL_CS_OPEN;
        c->t_open_ns = n->now_ns = wsl_now_ns();
        n->ops->on_open(c);
        return;
    }
    c->state = WSL_CS_HANDSHAKE;
    conn_flush(c);
}

/* Binds to one of several loopback sources, so more than one ephemeral
   port range is available towards a single server address. */
static int
conn_bind_source(int fd, const struct wsl_target *t, uint32_t index)
{
    struct sockaddr_in src;
    int one = 1;

    if (t->src_ips <= 1 || t->addr.ss_family != AF_INET)
        return 0;
    memset(&src, 0, sizeof(src));
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7f000001u + index % t->src_ips);
    /* Let connect() pick the port, per (source, destination) pair. */
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                     sizeof(one));
    return bind(fd, (struct sockaddr *)&src, sizeof(src));
}

void
wsl_conn_start(struct wsl_net *n, struct wsl_conn *c, uint32_t index)
{
    const struct wsl_target *t = n->target;
    int one = 1, fd;

    memset(c, 0, sizeof(*c));
    c->net = n;
    c->fd = -1;
    c->state = WSL_CS_CONNECTING;
    c->t_start_ns = wsl_now_ns();
    wsl_rx_init(&c->rx, 0);
    if (t->raw_msg_size == 0 && conn_queue_request(c) != 0) {
        conn_finish(c, WSL_ERR_CONNECT, ENOMEM, NULL);
        return;
    }
    fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    if (fd < 0) {
        conn_finish(c, WSL_ERR_CONNECT, errno, NULL);
        return;
    }
    c->fd = fd;
    ev_io_init(&c->rio, conn_on_readable, fd, EV_READ);
    ev_io_init(&c->wio, conn_on_writable, fd, EV_WRITE);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (conn_bind_source(fd, t, index) != 0) {
        conn_finish(c, WSL_ERR_CONNECT, errno, NULL);
        return;
    }
    if (connect(fd, (const struct sockaddr *)&t->addr, t->addrlen) == 0) {
        conn_connected(c);
    } else if (errno == EINPROGRESS) {
        ev_io_start(n->loop, &c->wio);
    } else {
        conn_finish(c, WSL_ERR_CONNECT, errno, NULL);
    }
}

/* Keeps the response's first line for the report. */
static void
note_bad_response(struct wsl_net *n, const char *p, size_t len)
{
    const char *eol = memchr(p, '\r', len);
    char what[100];

    if (n->first_failure[0] != '\0')
        return;
    snprintf(what, sizeof(what), "handshake: %.*s",
             (int)MIN(eol != NULL ? (size_t)(eol - p) : len, (size_t)80), p);
    snprintf(n->first_failure, sizeof(n->first_failure), "%s", what);
}

/* Takes up permessage-deflate if the 101 (hdr[0..len)) agreed to it.
   Returns 0, or -EPROTO for an answer our offer does not allow. */
static int
conn_negotiate(struct wsl_conn *c, const char *hdr, size_t len)
{
    struct wsl_pmd_params pp;
    int rc = wsl_deflate_response(hdr, len, &pp);

    if (rc <= 0)
        return rc;
    c->deflate = true;
    c->srv_takeover = !pp.server_no_context_takeover;
    c->rx.rsv_allowed = WSL_RSV1;
    return 0;
}

/*
 * Feeds response bytes to the handshake. Returns how many of p's bytes
 * belonged to the response (the rest are frames), or -1 if c was closed.
 */
static ssize_t
conn_handshake_input(struct wsl_conn *c, const uint8_t *p, size_t len)
{
    struct wsl_hs *hs = c->hs;
    size_t old = hs->len, take = MIN(len, sizeof(hs->buf) - hs->len);
    ssize_t r;

    memcpy(hs->buf + hs->len, p, take);
    hs->len += take;
    r = wsl_handshake_response(hs->buf, hs->len, hs->accept,
                               c->net->target->extensions != NULL);
    if (r == 0)
        return (ssize_t)len;
    if (r < 0) {
        note_bad_response(c->net, hs->buf, hs->len);
        conn_finish(c, WSL_ERR_HANDSHAKE, 0, NULL);
        return -1;
    }
    if (c->net->dfl != NULL && conn_negotiate(c, hs->buf, (size_t)r) != 0) {
        conn_finish(c, WSL_ERR_HANDSHAKE, 0,
                    "handshake: a permessage-deflate answer not offered");
        return -1;
    }
    free(c->hs);
    c->hs = NULL;
    c->state = WSL_CS_OPEN;
    c->t_open_ns = c->net->now_ns;
    c->net->ops->on_open(c);
    return r - (ssize_t)old;
}

static void
conn_on_close_frame(struct wsl_conn *c, const uint8_t *p, size_t len)
{
    char what[64];

    c->t_close_ns = c->net->now_ns;
    if (c->state == WSL_CS_CLOSE_SENT) {
        c->state = WSL_CS_CLOSE_WAIT;
        return;
    }
    if (c->state != WSL_CS_OPEN)
        return;
    snprintf(what, sizeof(what), "server closed with code %u",
             len >= 2 ? (unsigned)(p[0] << 8 | p[1]) : 1005u);
    if (c->net->first_failure[0] == '\0')
        snprintf(c->net->first_failure, sizeof(c->net->first_failure),
                 "%s", what);
    /* §5.5.1: answer with a close frame, echoing the status code; then
       §7.1.1: the server closes TCP first. */
    c->server_closed = true;
    (void)conn_queue_control(c, WSL_OP_CLOSE, p, len >= 2 ? 2 : 0);
    c->state = WSL_CS_CLOSE_WAIT;
}

/* A piece of a control frame; acts on its last piece. */
static void
conn_control(struct wsl_conn *c, const struct wsl_rx_event *ev)
{
    size_t len = (size_t)ev->offset + ev->len;

    if (ev->len > 0) {
        if (c->ctl == NULL && (c->ctl = malloc(WSL_CONTROL_MAX)) == NULL) {
            conn_finish(c, WSL_ERR_CLOSED, ENOMEM, NULL);
            return;
        }
        /* The parser bounds control frames to 125 bytes. */
        memcpy(c->ctl + ev->offset, ev->data, ev->len);
    }
    if (!ev->end)
        return;
    if (ev->opcode == WSL_OP_PING && c->state == WSL_CS_OPEN)
        (void)conn_queue_control(c, WSL_OP_PONG, c->ctl, len);
    else if (ev->opcode == WSL_OP_CLOSE)
        conn_on_close_frame(c, c->ctl, len);
    free(c->ctl);
    c->ctl = NULL;
}

struct inflate_ctx {
    struct wsl_conn *c;
    uint8_t opcode;
};

/* Hands an inflated piece to the owner as if it had come uncompressed. */
static bool
conn_inflated(void *arg, const uint8_t *p, size_t len, uint64_t offset,
              bool end)
{
    struct inflate_ctx *x = arg;
    struct wsl_rx_event ev = {
        .data = p, .len = len, .offset = offset, .opcode = x->opcode,
        .end = end, .has_data = true,
    };

    x->c->net->ops->on_data(x->c, &ev);
    return x->c->state != WSL_CS_DEAD;
}

/* A piece of a data message: inflated first if it is compressed. */
static void
conn_data(struct wsl_conn *c, const struct wsl_rx_event *ev)
{
    struct wsl_net *n = c->net;
    struct inflate_ctx x = { c, ev->opcode };
    int rc;

    if (!ev->compressed) {
        n->ops->on_data(c, ev);
        return;
    }
    if (c->inf == NULL && (c->inf = wsl_inflater_get(n->dfl)) == NULL) {
        conn_finish(c, WSL_ERR_CLOSED, ENOMEM, NULL);
        return;
    }
    rc = wsl_inflate(n->dfl, c->inf, ev->data, ev->len, ev->end,
                     conn_inflated, &x);
    if (rc == 1)
        return;     /* c ended while the owner read it */
    if (rc < 0) {
        conn_finish(c, WSL_ERR_PROTOCOL, 0, rc == -EMSGSIZE ?
                    "protocol: inflated message too large" :
                    "protocol: bad deflate data");
        return;
    }
    if (!ev->end)
        return;
    n->inflated++;
    /* server_no_context_takeover: the stream goes back to the pool. */
    if (!c->srv_takeover) {
        wsl_inflater_put(n->dfl, c->inf);
        c->inf = NULL;
    }
}

/* Raw TCP: the stream cut into messages of raw_msg_size bytes. */
static void
conn_raw_input(struct wsl_conn *c, const uint8_t *p, size_t len)
{
    const struct wsl_target *t = c->net->target;

    while (len > 0 && c->state == WSL_CS_OPEN) {
        size_t take = MIN(len, (size_t)(t->raw_msg_size - c->rx.msg_off));
        struct wsl_rx_event ev = {
            .data = p, .len = take, .offset = c->rx.msg_off,
            .opcode = t->raw_opcode, .has_data = true,
        };

        /* The frame parser is idle here: its message offset serves. */
        c->rx.msg_off += take;
        ev.end = c->rx.msg_off == t->raw_msg_size;
        if (ev.end)
            c->rx.msg_off = 0;
        p += take;
        len -= take;
        c->net->ops->on_data(c, &ev);
    }
}

static void
conn_frames(struct wsl_conn *c, const uint8_t *p, size_t len)
{
    /* §5.5.1: nothing is read after the server's close frame. */
    while (len > 0 && c->state != WSL_CS_DEAD &&
           c->state != WSL_CS_CLOSE_WAIT) {
        struct wsl_rx_event ev;
        ssize_t r = wsl_rx_parse(&c->rx, p, len, &ev);

        if (r < 0) {
            conn_finish(c, WSL_ERR_PROTOCOL, 0, "protocol: bad frame");
            return;
        }
        p += r;
        len -= (size_t)r;
        if (!ev.has_data)
            continue;
        if (ev.control)
            conn_control(c, &ev);
        else
            conn_data(c, &ev);
    }
}

static void
conn_input(struct wsl_conn *c, const uint8_t *p, size_t len)
{
    if (c->net->target->raw_msg_size > 0) {
        conn_raw_input(c, p, len);
        return;
    }
    if (c->state == WSL_CS_HANDSHAKE) {
        ssize_t used = conn_handshake_input(c, p, len);

        if (used < 0 || c->state == WSL_CS_HANDSHAKE)
            return;
        p += used;
        len -= (size_t)used;
    }
    conn_frames(c, p, len);
}

static void
conn_eof(struct wsl_conn *c)
{
    switch (c->state) {
    case WSL_CS_CLOSE_WAIT:
        conn_finish(c, c->server_closed ? WSL_ERR_CLOSED : WSL_ERR_NONE, 0,
                    NULL);
        break;
    case WSL_CS_CLOSE_SENT:
        /* Closed without answering our close: tolerated, we were done. */
        conn_finish(c, WSL_ERR_NONE, 0, NULL);
        break;
    case WSL_CS_HANDSHAKE:
        conn_finish(c, WSL_ERR_HANDSHAKE, 0, "handshake: server closed");
        break;
    default:
        conn_finish(c, WSL_ERR_CLOSED, 0, "server closed TCP, no close frame");
        break;
    }
}

static void
conn_on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    struct wsl_conn *c = container_of(w, struct wsl_conn, rio);
    struct wsl_net *n = c->net;

    (void)loop;
    (void)revents;
    if (c->tls_hs) {
        conn_tls_step(c);
        return;
    }
    for (int i = 0; i < READS_PER_WAKEUP; i++) {
        ssize_t r = conn_recv(c, n->rbuf, n->rbuf_cap);

        if (r > 0) {
            n->now_ns = wsl_now_ns();
            n->bytes_in += (uint64_t)r;
            conn_input(c, n->rbuf, (size_t)r);
            /* A short read emptied the socket; over TLS it is one record
               and more may wait: read on (within the bound). */
            if (c->state == WSL_CS_DEAD ||
                ((size_t)r < n->rbuf_cap && c->tls == NULL))
                break;
            continue;
        }
        if (r == 0)
            conn_eof(c);
        else if (errno != EAGAIN && errno != EINTR)
            conn_finish(c, c->state >= WSL_CS_CLOSE_SENT ? WSL_ERR_NONE :
                        WSL_ERR_CLOSED, errno, NULL);
        break;
    }
}

static void
conn_on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    struct wsl_conn *c = container_of(w, struct wsl_conn, wio);

    (void)loop;
    (void)revents;
    if (c->tls_hs)
        conn_tls_step(c);
    else if (c->state == WSL_CS_CONNECTING)
        conn_connected(c);
    else
        conn_flush(c);
}

/*
 * Before the loop blocks: one send() per connection that queued frames
 * this iteration, then the dead are handed back to their owner. In that
 * order: a dead connection may sit in dirty[], and on_dead may reuse it.
 */
static void
net_on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct wsl_net *n = container_of(w, struct wsl_net, prepare);
    struct wsl_conn *d;

    (void)revents;
    for (size_t i = 0; i < n->n_dirty; i++) {
        struct wsl_conn *c = n->dirty[i];

        if (c->state != WSL_CS_DEAD && !ev_is_active(&c->wio))
            conn_flush(c);
        c->in_dirty = false;
    }
    n->n_dirty = 0;
    d = n->dead;
    n->dead = NULL;
    while (d != NULL) {
        struct wsl_conn *next = d->next_dead;

        d->next_dead = NULL;
        n->ops->on_dead(d);
        d = next;
    }
    /* Released connections restarted and failed at once wait for the
       next iteration, which kick keeps from blocking. */
    if (n->dead == NULL)
        ev_idle_stop(loop, &n->kick);
}

static void
net_on_kick(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

int
wsl_net_init(struct wsl_net *n, struct ev_loop *loop,
             const struct wsl_target *t, const struct wsl_conn_ops *ops,
             size_t max_conns)
{
    memset(n, 0, sizeof(*n));
    n->loop = loop;
    n->target = t;
    n->ops = ops;
    n->rbuf_cap = RBUF_SIZE;
    n->rbuf = malloc(n->rbuf_cap);
    if (n->rbuf == NULL)
        return -ENOMEM;
    n->dirty_cap = max_conns > 0 ? max_conns : 1;
    n->dirty = calloc(n->dirty_cap, sizeof(*n->dirty));
    if (n->dirty == NULL) {
        free(n->rbuf);
        return -ENOMEM;
    }
    if (t->extensions != NULL || t->tls) {
        int err = 0;

        if (t->extensions != NULL)
            n->dfl = wsl_deflate_new(t->deflate_level, &err);
        if (err == 0 && t->tls)
            n->tls = wsl_tls_new(&err);
        if (err != 0) {
            wsl_deflate_free(n->dfl);
            free(n->dirty);
            free(n->rbuf);
            return err;
        }
    }
    if (getrandom(&n->rng, sizeof(n->rng), 0) != sizeof(n->rng) ||
        n->rng == 0)
        n->rng = wsl_now_ns() | 1;
    ev_prepare_init(&n->prepare, net_on_prepare);
    ev_prepare_start(loop, &n->prepare);
    ev_idle_init(&n->kick, net_on_kick);
    return 0;
}

void
wsl_net_destroy(struct wsl_net *n)
{
    ev_prepare_stop(n->loop, &n->prepare);
    ev_idle_stop(n->loop, &n->kick);
    free(n->dirty);
    free(n->rbuf);
    wsl_deflate_free(n->dfl);
    wsl_tls_free(n->tls);
    n->dirty = NULL;
    n->rbuf = NULL;
    n->dfl = NULL;
    n->tls = NULL;
}
