/*
 * bus.c: the local bus (see bus.h): the listening socket and the inbound
 * connections it accepts (credentials, hello, resumable reading), the
 * peers with their outbound connection (lazy connect, backoff, bounded
 * queue) and the per-iteration flush that coalesces writes. Framing is
 * bus_wire.c's, queue layout bus_outq.c's; what a message means is the
 * caller's.
 *
 * Writes: a send only appends to the peer's queue and puts the peer on
 * the dirty list; one ev_prepare watcher gives each dirty peer one
 * sendmsg (a writev with MSG_NOSIGNAL) per iteration. What the kernel
 * does not take waits for EV_WRITE. The watcher stays started (unref'd,
 * so it keeps no loop alive) and has the lowest priority: libev only
 * invokes prepare watchers that were active when the prepare phase
 * began, in priority order, so this way sends made by other prepare
 * callbacks still go out before the loop blocks.
 *
 * Reads: one buffer per bus; an inbound connection keeps only the bytes
 * of an incomplete frame, and a frame larger than the buffer is read
 * straight into a buffer of its own size, so no payload is copied twice.
 */
#include "bus.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bus_outq.h"
#include "common.h"
#include "log.h"

#define BUS_RBUF_SIZE 65536
#define BUS_READS_PER_WAKEUP 4
#define BUS_ACCEPTS_PER_WAKEUP 16
#define BUS_ACCEPT_PAUSE 0.1       /* s, after EMFILE and the like */
#define BUS_IOV 256                /* iovecs per sendmsg */
#define BUS_SHARE_MIN 256          /* smaller fan-out frames are copied */
#define BUS_BACKOFF_MIN_MS 100
#define BUS_BACKOFF_MAX_MS 2000
#define BUS_PATH_MAX sizeof(((struct sockaddr_un *)NULL)->sun_path)

_Static_assert(BUS_IOV <= IOV_MAX, "BUS_IOV over IOV_MAX");

/* Peer keys print as generation.slot. */
#define KEY_FMT "%" PRIu32 ".%" PRIu32
#define KEY_ARGS(k) (uint32_t)(k) >> 8, (uint32_t)(k) & 0xff

enum peer_state {
    PEER_IDLE,        /* no connection; one is made on the next send */
    PEER_CONNECTING,  /* connect in progress, waiting for EV_WRITE */
    PEER_BACKOFF,     /* retry timer running; sends only queue */
    PEER_UP,          /* connected: the hello, then the queue */
};

struct peer {
    struct bus *b;
    struct peer *hnext;       /* hash chain */
    struct list link;         /* in b->peers */
    struct list dlink;        /* in b->dirty; self-linked when clean */
    uint32_t key;
    pid_t pid;                /* expected SO_PEERCRED pid, 0: any */
    char path[BUS_PATH_MAX];
    enum peer_state state;
    int fd;
    ev_io io;
    ev_timer retry;
    unsigned backoff_ms;      /* the next retry's delay */
    ev_tstamp up_since;
    bool failing;             /* failure logged; quiet until connected */
    uint8_t hello[BUS_WIRE_HEADER];
    uint8_t hello_off;        /* written; BUS_WIRE_HEADER when done */
    struct bus_outq q;
};

struct inconn {
    struct bus *b;
    struct list link;         /* in b->inconns */
    int fd;
    ev_io io;
    pid_t pid;                /* from SO_PEERCRED */
    bool has_hello;
    bool closing;             /* freed when its callback unwinds */
    uint32_t key;             /* from the hello */
    uint8_t *part;            /* start of an incomplete frame */
    size_t part_len, part_cap;
};

struct bus {
    struct ev_loop *loop;
    uint32_t self_key;
    char path[BUS_PATH_MAX];
    struct bus_ops ops;
    void *ctx;
    int lfd;
    ev_io lio;
    ev_timer accept_pause;
    ev_prepare flush;
    struct peer **buckets;    /* peers by key; nbuckets is a power of 2 */
    size_t nbuckets, npeers;
    struct list peers, dirty, inconns;
    size_t peer_cap, max_frame;
    uint8_t *rbuf;            /* BUS_RBUF_SIZE */
    struct bus_stats st;
    ev_tstamp log_at;         /* rate limit for per-connection warnings */
    unsigned log_quiet;       /* warnings suppressed since log_at */
};

static void peer_on_io(struct ev_loop *loop, ev_io *w, int revents);
static void peer_on_retry(struct ev_loop *loop, ev_timer *w, int revents);
static void inconn_on_read(struct ev_loop *loop, ev_io *w, int revents);

static void __attribute__((format(printf, 3, 4)))
set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/*
 * At most one warning a second about misbehaving connections, so that a
 * process hammering our socket cannot flood the log.
 */
static bool
bus_log_ok(struct bus *b)
{
    ev_tstamp now = ev_now(b->loop);

    if (now - b->log_at < 1.0) {
        b->log_quiet++;
        return false;
    }
    b->log_at = now;
    return true;
}

/* ---- Peer table -------------------------------------------------------- */

static size_t
key_slot(uint32_t key, size_t nbuckets)
{
    return (size_t)(key * 2654435761u) & (nbuckets - 1);
}

static struct peer *
peer_find(const struct bus *b, uint32_t key)
{
    struct peer *p = b->buckets[key_slot(key, b->nbuckets)];

    while (p != NULL && p->key != key)
        p = p->hnext;
    return p;
}

static int
peers_grow(struct bus *b)
{
    size_t n = b->nbuckets * 2;
    struct peer **nb = calloc(n, sizeof(*nb));

    if (nb == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < b->nbuckets; i++) {
        struct peer *p, *next;

        for (p = b->buckets[i]; p != NULL; p = next) {
            size_t s = key_slot(p->key, n);

            next = p->hnext;
            p->hnext = nb[s];
            nb[s] = p;
        }
    }
    free(b->buckets);
    b->buckets = nb;
    b->nbuckets = n;
    return 0;
}

static void
peers_unhash(struct bus *b, struct peer *p)
{
    struct peer **pp = &b->buckets[key_slot(p->key, b->nbuckets)];

    while (*pp != p)
        pp = &(*pp)->hnext;
    *pp = p->hnext;
}

/* ---- Outbound: one connection per peer --------------------------------- */

static bool
peer_wants_write(const struct peer *p)
{
    return ev_is_active(&p->io) && (p->io.events & EV_WRITE);
}

static void
peer_set_events(struct peer *p, int events)
{
    if (ev_is_active(&p->io) && (p->io.events & (EV_READ | EV_WRITE)) ==
        events)
        return;
    ev_io_stop(p->b->loop, &p->io);
    ev_io_set(&p->io, p->fd, events);
    ev_io_start(p->b->loop, &p->io);
}

static void
peer_close_fd(struct peer *p)
{
    ev_io_stop(p->b->loop, &p->io);
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
}

static void
peer_dirty(struct peer *p)
{
    if (list_empty(&p->dlink))
        list_insert_tail(&p->b->dirty, &p->dlink);
}

/* Into PEER_BACKOFF: retry after the current delay, then double it. */
static void
peer_retry_later(struct peer *p)
{
    p->state = PEER_BACKOFF;
    ev_timer_set(&p->retry, p->backoff_ms / 1000.0, 0.);
    ev_timer_start(p->b->loop, &p->retry);
    p->backoff_ms = MIN(p->backoff_ms * 2, BUS_BACKOFF_MAX_MS);
}

/* A connect failed (err): logged once per streak of failures. */
static void
peer_backoff(struct peer *p, int err)
{
    if (!p->failing)
        log_info("bus connect failed peer=" KEY_FMT " path=%s err=\"%s\" retry_ms=%u",
                 KEY_ARGS(p->key), p->path, strerror(err), p->backoff_ms);
    else
        log_debug("bus connect failed peer=" KEY_FMT " err=\"%s\" retry_ms=%u",
                  KEY_ARGS(p->key), strerror(err), p->backoff_ms);
    p->failing = true;
    peer_retry_later(p);
}

/* Connected: the hello goes first, so the receiver knows who we are. */
static void
peer_up(struct peer *p)
{
    struct bus *b = p->b;
    const struct bus_msg hello = {
        .type = BUS_HELLO, .to = p->key, .from = b->self_key,
    };

    bus_wire_header(p->hello, &hello);
    p->hello_off = 0;
    p->state = PEER_UP;
    p->up_since = ev_now(b->loop);
    b->st.connects++;
    peer_set_events(p, EV_READ);
    if (p->failing)
        log_info("bus connected peer=" KEY_FMT " path=%s",
                 KEY_ARGS(p->key), p->path);
    else
        log_debug("bus connected peer=" KEY_FMT, KEY_ARGS(p->key));
    p->failing = false;
}

static void
peer_connect(struct peer *p)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd, err;

    memcpy(sa.sun_path, p->path, sizeof(sa.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        peer_backoff(p, errno);
        return;
    }
    p->fd = fd;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        peer_up(p);
        return;
    }
    err = errno;
    if (err == EINPROGRESS) {
        p->state = PEER_CONNECTING;
        peer_set_events(p, EV_WRITE);
        return;
    }
    /* AF_UNIX says EAGAIN, not EINPROGRESS, when the backlog is full:
       nothing is pending then, so it is a failure like ECONNREFUSED. */
    peer_close_fd(p);
    peer_backoff(p, err);
}

/*
 * The connection is gone (err 0: closed by the peer). Only the frame that
 * was half written is lost with it (the receiver could not resync); the
 * rest stays queued for the next connection, made after a backoff so
 * that a peer which keeps refusing us costs little. A connection that
 * lasted resets the backoff.
 */
static void
peer_broken(struct peer *p, int err)
{
    struct bus *b = p->b;

    if (err != 0) {
        b->st.errors++;
        log_warn("bus connection lost peer=" KEY_FMT " path=%s err=\"%s\"",
                 KEY_ARGS(p->key), p->path, strerror(err));
    } else {
        log_info("bus connection closed by peer peer=" KEY_FMT " path=%s",
                 KEY_ARGS(p->key), p->path);
    }
    peer_close_fd(p);
    if (bus_outq_trim(&p->q))
        b->st.dropped_closed++;
    p->hello_off = BUS_WIRE_HEADER;
    if (ev_now(b->loop) - p->up_since >= BUS_BACKOFF_MAX_MS / 1000.0)
        p->backoff_ms = BUS_BACKOFF_MIN_MS;
    p->failing = true;    /* logged above; log the reconnect */
    peer_retry_later(p);
}

/*
 * One gathered write of the hello remainder and as much of the queue as
 * BUS_IOV iovecs hold. Leftovers wait for EV_WRITE.
 */
static void
peer_write(struct peer *p)
{
    struct bus *b = p->b;
    struct iovec iov[BUS_IOV];
    struct msghdr mh = { .msg_iov = iov };
    size_t hello_left = BUS_WIRE_HEADER - p->hello_off, h;
    int n = 0;
    ssize_t w;

    if (hello_left > 0) {
        iov[0].iov_base = p->hello + p->hello_off;
        iov[0].iov_len = hello_left;
        n = 1;
    }
    n += bus_outq_iov(&p->q, iov + n, BUS_IOV - n);
    if (n == 0) {
        peer_set_events(p, EV_READ);
        return;
    }
    mh.msg_iovlen = (size_t)n;
    w = sendmsg(p->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    b->st.writevs++;
    if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            peer_set_events(p, EV_READ | EV_WRITE);
        else
            peer_broken(p, errno);
        return;
    }
    b->st.bytes_out += (uint64_t)w;
    h = MIN((size_t)w, hello_left);
    p->hello_off += (uint8_t)h;
    bus_outq_consume(&p->q, (size_t)w - h);
    if (p->hello_off < BUS_WIRE_HEADER || p->q.bytes > 0)
        peer_set_events(p, EV_READ | EV_WRITE);
    else
        peer_set_events(p, EV_READ);
}

/*
 * Peers never write on our outbound connection, so readable means closed
 * (or a peer breaking the protocol). Returns false if the connection is
 * gone.
 */
static bool
peer_check_open(struct peer *p)
{
    uint8_t tmp[64];
    ssize_t n = recv(p->fd, tmp, sizeof(tmp), MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return true;
    peer_broken(p, n == 0 ? 0 : n > 0 ? EPROTO : errno);
    return false;
}

static void
peer_connected(struct peer *p)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        peer_close_fd(p);
        peer_backoff(p, err);
        return;
    }
    peer_up(p);
    peer_write(p);
}

static void
peer_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct peer *p = container_of(w, struct peer, io);

    (void)loop;
    if (p->state == PEER_CONNECTING) {
        peer_connected(p);
        return;
    }
    if ((revents & EV_READ) && !peer_check_open(p))
        return;
    if (revents & EV_WRITE)
        peer_write(p);
}

static void
peer_on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct peer *p = container_of(w, struct peer, retry);

    (void)loop;
    (void)revents;
    p->state = PEER_IDLE;
    if (p->q.bytes == 0)
        return;           /* lazy: the next send connects */
    peer_connect(p);
    if (p->state == PEER_UP)
        peer_dirty(p);
}

/* From the flush: connect if needed, then write unless the socket is full. */
static void
peer_kick(struct peer *p)
{
    if (p->state == PEER_IDLE)
        peer_connect(p);
    if (p->state == PEER_UP && !peer_wants_write(p))
        peer_write(p);
}

static void
bus_on_flush(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct bus *b = container_of(w, struct bus, flush);

    (void)loop;
    (void)revents;
    while (!list_empty(&b->dirty)) {
        struct peer *p = container_of(b->dirty.next, struct peer, dlink);

        list_remove(&p->dlink);
        peer_kick(p);
    }
}

static void
peer_free(struct bus *b, struct peer *p)
{
    b->st.dropped_closed += bus_outq_clear(&p->q);
    ev_timer_stop(b->loop, &p->retry);
    peer_close_fd(p);
    list_remove(&p->link);
    list_remove(&p->dlink);
    free(p);
}

/* ---- Inbound connections ----------------------------------------------- */

static void
inconn_free(struct inconn *c)
{
    ev_io_stop(c->b->loop, &c->io);
    close(c->fd);
    list_remove(&c->link);
    free(c->part);
    free(c);
}

/* Refused: wrong credentials or hello. Counted, logged (rate-limited). */
static void
inconn_reject(struct inconn *c, const char *why, uint64_t claimed)
{
    struct bus *b = c->b;

    b->st.rejects++;
    c->closing = true;
    if (bus_log_ok(b)) {
        log_warn("bus connection rejected reason=\"%s\" pid=%d claimed=%" PRIu64 " suppressed=%u",
                 why, (int)c->pid, claimed, b->log_quiet);
        b->log_quiet = 0;
    }
}

static void
inconn_fail(struct inconn *c, const char *why, int err)
{
    struct bus *b = c->b;

    b->st.errors++;
    c->closing = true;
    if (bus_log_ok(b)) {
        log_warn("bus connection error reason=\"%s\" peer=" KEY_FMT " pid=%d err=\"%s\" suppressed=%u",
                 why, KEY_ARGS(c->key), (int)c->pid, strerror(err),
                 b->log_quiet);
        b->log_quiet = 0;
    }
}

/*
 * The first frame names the sender. It must be addressed to us, and when
 * the sender is registered with a pid, come from that process: this is
 * what ties an inbound connection to a member of the mesh. A key we do
 * not know yet is accepted (the uid was checked): membership
 * announcements reach the workers in no particular order.
 */
static void
inconn_hello(struct inconn *c, const struct bus_msg *m)
{
    struct bus *b = c->b;
    const struct peer *p;

    if (m->type != BUS_HELLO || m->topic_len != 0 || m->len != 0 ||
        m->from > UINT32_MAX) {
        inconn_reject(c, "bad hello", m->from);
        return;
    }
    if (m->to != b->self_key) {
        inconn_reject(c, "hello for another peer", m->from);
        return;
    }
    p = peer_find(b, (uint32_t)m->from);
    if (p != NULL && p->pid != 0 && p->pid != c->pid) {
        inconn_reject(c, "pid does not match the peer's", m->from);
        return;
    }
    c->has_hello = true;
    c->key = (uint32_t)m->from;
    log_debug("bus accepted peer=" KEY_FMT " pid=%d known=%d",
              KEY_ARGS(c->key), (int)c->pid, p != NULL);
}

/* Decodes and delivers the whole frames in p[0..n); returns bytes used. */
static size_t
inconn_frames(struct inconn *c, const uint8_t *p, size_t n)
{
    struct bus *b = c->b;
    size_t used = 0;

    while (!c->closing) {
        struct bus_msg m;
        ssize_t r = bus_wire_decode(&m, p + used, n - used, b->max_frame);

        if (r == 0)
            break;
        if (r < 0) {
            inconn_fail(c, "bad frame", EPROTO);
            break;
        }
        used += (size_t)r;
        if (!c->has_hello) {
            inconn_hello(c, &m);
        } else if (m.type == BUS_HELLO) {
            inconn_fail(c, "second hello", EPROTO);
        } else {
            b->st.received++;
            b->ops.deliver(b->ctx, &m);
        }
    }
    return used;
}

/* Keeps the start of an incomplete frame, sized for all of it if large. */
static void
inconn_keep(struct inconn *c, const uint8_t *p, size_t len)
{
    size_t total = bus_wire_frame_len(p, len);
    size_t cap = total > BUS_RBUF_SIZE ? total : len;

    c->part = malloc(cap);
    if (c->part == NULL) {
        inconn_fail(c, "out of memory", ENOMEM);
        return;
    }
    memcpy(c->part, p, len);
    c->part_len = len;
    c->part_cap = cap;
}

/* recv, counted. Returns bytes, or 0 for would-block, EOF or error. */
static size_t
inconn_recv(struct inconn *c, uint8_t *p, size_t len)
{
    ssize_t n = recv(c->fd, p, len, 0);

    if (n > 0) {
        c->b->st.bytes_in += (uint64_t)n;
        return (size_t)n;
    }
    if (n == 0) {
        if (c->part_len > 0)
            inconn_fail(c, "closed inside a frame", EPIPE);
        c->closing = true;
        log_debug("bus connection closed peer=" KEY_FMT " pid=%d",
                  KEY_ARGS(c->key), (int)c->pid);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        inconn_fail(c, "read", errno);
    }
    return 0;
}

/* A frame too big for the shared buffer: read straight into its own. */
static bool
inconn_read_big(struct inconn *c)
{
    size_t want = c->part_cap - c->part_len;
    size_t n = inconn_recv(c, c->part + c->part_len, want);

    if (n == 0)
        return false;
    c->part_len += n;
    if (c->part_len == c->part_cap) {
        uint8_t *p = c->part;
        size_t len = c->part_len;

        c->part = NULL;
        c->part_len = c->part_cap = 0;
        inconn_frames(c, p, len);
        free(p);
    }
    return n == want;
}

/*
 * Into the shared buffer, behind the kept bytes of an incomplete frame
 * (which fits: frames larger than the buffer go to inconn_read_big).
 */
static bool
inconn_read_small(struct inconn *c)
{
    struct bus *b = c->b;
    size_t off = c->part_len, n, used;

    if (off > 0)
        memcpy(b->rbuf, c->part, off);
    n = inconn_recv(c, b->rbuf + off, BUS_RBUF_SIZE - off);
    if (n == 0)
        return false;
    free(c->part);
    c->part = NULL;
    c->part_len = c->part_cap = 0;
    used = inconn_frames(c, b->rbuf, off + n);
    if (!c->closing && used < off + n)
        inconn_keep(c, b->rbuf + used, off + n - used);
    return n == BUS_RBUF_SIZE - off;
}

static void
inconn_on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    struct inconn *c = container_of(w, struct inconn, io);

    (void)loop;
    (void)revents;
    for (int i = 0; i < BUS_READS_PER_WAKEUP && !c->closing; i++) {
        bool more = c->part_cap > BUS_RBUF_SIZE ? inconn_read_big(c)
                                                : inconn_read_small(c);

        if (!more)
            break;
    }
    if (c->closing)
        inconn_free(c);
}

/* Only processes of our own user may talk to us. */
static void
inconn_new(struct bus *b, int fd)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    struct inconn *c;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
        log_warn("bus SO_PEERCRED failed err=\"%s\"", strerror(errno));
        close(fd);
        b->st.errors++;
        return;
    }
    if (cr.uid != geteuid()) {
        b->st.rejects++;
        if (bus_log_ok(b)) {
            log_warn("bus connection rejected reason=\"uid\" uid=%u pid=%d suppressed=%u",
                     (unsigned)cr.uid, (int)cr.pid, b->log_quiet);
            b->log_quiet = 0;
        }
        close(fd);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        log_err("bus accept: out of memory");
        close(fd);
        return;
    }
    c->b = b;
    c->fd = fd;
    c->pid = cr.pid;
    ev_io_init(&c->io, inconn_on_read, fd, EV_READ);
    ev_io_start(b->loop, &c->io);
    list_insert_tail(&b->inconns, &c->link);
}

static void
bus_on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    struct bus *b = container_of(w, struct bus, lio);

    (void)revents;
    for (int i = 0; i < BUS_ACCEPTS_PER_WAKEUP; i++) {
        int fd = accept4(b->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd >= 0) {
            inconn_new(b, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        /* Out of descriptors or memory: pause instead of spinning. */
        log_warn("bus accept failed err=\"%s\" pause_ms=%d",
                 strerror(errno), (int)(BUS_ACCEPT_PAUSE * 1000));
        ev_io_stop(loop, &b->lio);
        ev_timer_set(&b->accept_pause, BUS_ACCEPT_PAUSE, 0.);
        ev_timer_start(loop, &b->accept_pause);
        return;
    }
}

static void
bus_on_accept_pause(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct bus *b = container_of(w, struct bus, accept_pause);

    (void)revents;
    ev_io_start(loop, &b->lio);
}

/* ---- Setup and teardown ------------------------------------------------ */

/*
 * A socket file left by a dead process is removed; one somebody still
 * listens on (another sockd with the same runtime dir) is not ours to
 * take, nor is anything that is not a socket.
 */
static int
clear_stale(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat st;
    int fd, rc, e;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        set_err(err, errlen, "bus: %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        set_err(err, errlen, "bus: %s exists and is not a socket", path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_err(err, errlen, "bus: socket: %s", strerror(errno));
        return -1;
    }
    rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    e = errno;
    close(fd);
    if (rc == 0 || e == EAGAIN) {
        set_err(err, errlen, "bus: %s is in use by a live process", path);
        return -1;
    }
    if (e != ECONNREFUSED) {
        set_err(err, errlen, "bus: probing %s: %s", path, strerror(e));
        return -1;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        set_err(err, errlen, "bus: unlink %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int
bus_listen(struct bus *b, char *err, size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (clear_stale(b->path, err, errlen) < 0)
        return -1;
    memcpy(sa.sun_path, b->path, sizeof(sa.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_err(err, errlen, "bus: socket: %s", strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        set_err(err, errlen, "bus: bind %s: %s", b->path, strerror(errno));
        goto fail_close;
    }
    /* The uid check on accept is the real gate; this keeps others from
       even connecting. */
    if (chmod(b->path, 0600) < 0) {
        set_err(err, errlen, "bus: chmod %s: %s", b->path, strerror(errno));
        goto fail_unlink;
    }
    if (listen(fd, SOMAXCONN) < 0) {
        set_err(err, errlen, "bus: listen %s: %s", b->path, strerror(errno));
        goto fail_unlink;
    }
    b->lfd = fd;
    return 0;

fail_unlink:
    unlink(b->path);
fail_close:
    close(fd);
    return -1;
}

struct bus *
bus_new(struct ev_loop *loop, uint32_t self_key, const char *path,
        const struct bus_ops *ops, void *ctx, char *err, size_t errlen)
{
    struct bus *b;

    if (strlen(path) >= BUS_PATH_MAX) {
        set_err(err, errlen, "bus: path too long: %s", path);
        return NULL;
    }
    b = calloc(1, sizeof(*b));
    if (b == NULL)
        goto fail_nomem;
    b->rbuf = malloc(BUS_RBUF_SIZE);
    b->nbuckets = 16;
    b->buckets = calloc(b->nbuckets, sizeof(*b->buckets));
    if (b->rbuf == NULL || b->buckets == NULL)
        goto fail_free;
    b->loop = loop;
    b->self_key = self_key;
    memcpy(b->path, path, strlen(path) + 1);
    b->ops = *ops;
    b->ctx = ctx;
    b->peer_cap = BUS_PEER_CAP_DEFAULT;
    b->max_frame = BUS_MAX_FRAME_DEFAULT;
    list_init(&b->peers);
    list_init(&b->dirty);
    list_init(&b->inconns);
    if (bus_listen(b, err, errlen) < 0)
        goto fail_free_quiet;
    ev_io_init(&b->lio, bus_on_accept, b->lfd, EV_READ);
    ev_io_start(loop, &b->lio);
    ev_timer_init(&b->accept_pause, bus_on_accept_pause, 0., 0.);
    ev_prepare_init(&b->flush, bus_on_flush);
    ev_set_priority(&b->flush, EV_MINPRI);
    ev_prepare_start(loop, &b->flush);
    ev_unref(loop);
    log_info("bus listening self=" KEY_FMT " path=%s", KEY_ARGS(self_key),
             path);
    return b;

fail_free:
    set_err(err, errlen, "bus: out of memory");
fail_free_quiet:
    free(b->buckets);
    free(b->rbuf);
    free(b);
    return NULL;
fail_nomem:
    set_err(err, errlen, "bus: out of memory");
    return NULL;
}

void
bus_free(struct bus *b)
{
    if (b == NULL)
        return;
    while (!list_empty(&b->inconns))
        inconn_free(container_of(b->inconns.next, struct inconn, link));
    while (!list_empty(&b->peers))
        peer_free(b, container_of(b->peers.next, struct peer, link));
    ev_io_stop(b->loop, &b->lio);
    ev_timer_stop(b->loop, &b->accept_pause);
    ev_ref(b->loop);
    ev_prepare_stop(b->loop, &b->flush);
    close(b->lfd);
    unlink(b->path);
    free(b->buckets);
    free(b->rbuf);
    free(b);
}

/* ---- Peers and sending ------------------------------------------------- */

/*
 * Connections that named key in their hello before it was registered
 * skipped the pid check: they get it now. The failing ones are freed by
 * their own callback (fed an event here), since this may run inside
 * their deliver call.
 */
static void
inconns_recheck(struct bus *b, uint32_t key, pid_t pid)
{
    for (struct list *l = b->inconns.next; l != &b->inconns; l = l->next) {
        struct inconn *c = container_of(l, struct inconn, link);

        if (c->has_hello && c->key == key && c->pid != pid && !c->closing) {
            inconn_reject(c, "pid does not match the peer's", key);
            ev_feed_event(b->loop, &c->io, EV_READ);
        }
    }
}

int
bus_peer_add(struct bus *b, uint32_t peer_key, pid_t pid, const char *path)
{
    size_t plen = strlen(path);
    struct peer *p;

    if (peer_key == b->self_key)
        return -EINVAL;
    if (plen >= BUS_PATH_MAX)
        return -ENAMETOOLONG;
    p = peer_find(b, peer_key);
    if (p != NULL)
        return p->pid == pid && strcmp(p->path, path) == 0 ? 0 : -EEXIST;
    if (b->npeers >= b->nbuckets && peers_grow(b) < 0)
        return -ENOMEM;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->b = b;
    p->key = peer_key;
    p->pid = pid;
    memcpy(p->path, path, plen + 1);
    p->state = PEER_IDLE;
    p->fd = -1;
    p->backoff_ms = BUS_BACKOFF_MIN_MS;
    p->hello_off = BUS_WIRE_HEADER;
    bus_outq_init(&p->q);
    list_init(&p->dlink);
    ev_io_init(&p->io, peer_on_io, -1, 0);
    ev_timer_init(&p->retry, peer_on_retry, 0., 0.);
    p->hnext = b->buckets[key_slot(peer_key, b->nbuckets)];
    b->buckets[key_slot(peer_key, b->nbuckets)] = p;
    list_insert_tail(&b->peers, &p->link);
    b->npeers++;
    if (pid != 0)
        inconns_recheck(b, peer_key, pid);
    log_info("bus peer added peer=" KEY_FMT " pid=%d path=%s",
             KEY_ARGS(peer_key), (int)pid, path);
    return 0;
}

void
bus_peer_remove(struct bus *b, uint32_t peer_key)
{
    struct peer *p = peer_find(b, peer_key);

    if (p == NULL)
        return;
    log_info("bus peer removed peer=" KEY_FMT " queued_bytes=%zu",
             KEY_ARGS(peer_key), p->q.bytes);
    peers_unhash(b, p);
    b->npeers--;
    peer_free(b, p);
}

static int
check_msg(const struct bus *b, const struct bus_msg *m)
{
    if (m->type < BUS_SEND || m->type > BUS_BROADCAST)
        return -EINVAL;
    if (bus_wire_size(m) > b->max_frame)
        return -EMSGSIZE;
    return 0;
}

static bool
peer_has_room(const struct peer *p, size_t len)
{
    size_t cap = p->b->peer_cap;

    return len <= cap && p->q.bytes <= cap - len;
}

int
bus_send(struct bus *b, uint32_t peer_key, const struct bus_msg *m)
{
    struct peer *p;
    int rc = check_msg(b, m);

    if (rc < 0)
        return rc;
    p = peer_find(b, peer_key);
    if (p == NULL) {
        b->st.dropped_unknown++;
        return -ENOENT;
    }
    if (!peer_has_room(p, (size_t)bus_wire_size(m))) {
        b->st.dropped_full++;
        return -ENOBUFS;
    }
    rc = bus_outq_append_msg(&p->q, m);
    if (rc < 0)
        return rc;
    b->st.sent++;
    peer_dirty(p);
    return 0;
}

int
bus_send_all(struct bus *b, const struct bus_msg *m)
{
    uint8_t small[BUS_SHARE_MIN];
    struct bus_frame *f = NULL;
    size_t len;
    int rc = check_msg(b, m), result = 0;

    if (rc < 0 || b->npeers == 0)
        return rc;
    len = (size_t)bus_wire_size(m);
    if (len < BUS_SHARE_MIN)
        bus_wire_encode(small, m);
    else if ((f = bus_frame_new(m)) == NULL)
        return -ENOMEM;
    for (struct list *l = b->peers.next; l != &b->peers; l = l->next) {
        struct peer *p = container_of(l, struct peer, link);

        if (!peer_has_room(p, len)) {
            b->st.dropped_full++;
            if (result == 0)
                result = -ENOBUFS;
            continue;
        }
        rc = f != NULL ? bus_outq_append_frame(&p->q, f)
                       : bus_outq_append_bytes(&p->q, small, len);
        if (rc < 0) {
            result = rc;
            continue;
        }
        b->st.sent++;
        peer_dirty(p);
    }
    bus_frame_unref(f);
    return result;
}

void
bus_set_peer_cap(struct bus *b, size_t cap)
{
    b->peer_cap = cap;
}

void
bus_set_max_frame(struct bus *b, size_t max_frame)
{
    b->max_frame = MAX(MIN(max_frame, UINT32_MAX), BUS_WIRE_HEADER);
}

ssize_t
bus_peer_queued(const struct bus *b, uint32_t peer_key)
{
    const struct peer *p = peer_find(b, peer_key);

    return p != NULL ? (ssize_t)p->q.bytes : -ENOENT;
}

struct bus_stats
bus_stats(const struct bus *b)
{
    return b->st;
}
