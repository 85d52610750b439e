/*
 * bus.c: the local bus (see bus.h): the peers, each with its outbound
 * connection (lazy connect, backoff, hello) and bounded queue, the
 * per-iteration flush that coalesces writes, and the public calls.
 * Receiving is bus_in.c's, framing bus_wire.c's, queue layout
 * bus_outq.c's; what a message means is the caller's.
 *
 * Writes: a send only appends to the peer's queue and puts the peer on
 * the dirty list; one ev_prepare watcher gives each dirty peer one
 * sendmsg (a writev with MSG_NOSIGNAL) per iteration. What the kernel
 * does not take waits for EV_WRITE. The watcher stays started (unref'd,
 * so it keeps no loop alive) and has the lowest priority: libev only
 * invokes prepare watchers that were active when the prepare phase
 * began, in priority order, so this way sends made by other prepare
 * callbacks still go out before the loop blocks.
 */
#include "bus.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bus_in.h"
#include "bus_outq.h"
#include "common.h"
#include "log.h"

#define BUS_IOV 256                /* iovecs per sendmsg */
#define BUS_SHARE_MIN 256          /* smaller fan-out frames are copied */
#define BUS_BACKOFF_MIN_MS 100
#define BUS_BACKOFF_MAX_MS 2000

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

struct bus {
    struct ev_loop *loop;
    uint32_t self_key;
    struct bus_ops ops;
    void *ctx;
    struct bus_in in;         /* listener and inbound connections */
    ev_prepare flush;
    struct peer **buckets;    /* peers by key; nbuckets is a power of 2 */
    size_t nbuckets, npeers;
    struct list peers, dirty;
    size_t peer_cap, max_frame;
    struct bus_stats st;      /* the outbound counters; bus_in has its own */
};

static void peer_on_io(struct ev_loop *loop, ev_io *w, int revents);
static void peer_on_retry(struct ev_loop *loop, ev_timer *w, int revents);

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
        log_info("event=bus_connect_failed peer=" KEY_FMT " path=%s err=\"%s\" retry_ms=%u",
                 KEY_ARGS(p->key), p->path, strerror(err), p->backoff_ms);
    else
        log_debug("event=bus_connect_failed peer=" KEY_FMT " err=\"%s\" retry_ms=%u",
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
        log_info("event=bus_connected peer=" KEY_FMT " path=%s",
                 KEY_ARGS(p->key), p->path);
    else
        log_debug("event=bus_connected peer=" KEY_FMT, KEY_ARGS(p->key));
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
        log_warn("event=bus_connection_lost peer=" KEY_FMT " path=%s err=\"%s\"",
                 KEY_ARGS(p->key), p->path, strerror(err));
    } else {
        log_info("event=bus_connection_closed_by_peer peer=" KEY_FMT " path=%s",
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

/* ---- Setup and teardown ------------------------------------------------ */

static void
bus_on_deliver(struct bus_in *in, const struct bus_msg *m)
{
    struct bus *b = container_of(in, struct bus, in);

    b->ops.deliver(b->ctx, m);
}

/* Unknown keys pass: membership reaches the workers in no set order. */
static bool
bus_pid_ok(struct bus_in *in, uint32_t key, pid_t pid)
{
    const struct peer *p = peer_find(container_of(in, struct bus, in), key);

    return p == NULL || p->pid == 0 || p->pid == pid;
}

static const struct bus_in_hooks bus_in_hooks = {
    .deliver = bus_on_deliver,
    .pid_ok = bus_pid_ok,
};

struct bus *
bus_new(struct ev_loop *loop, uint32_t self_key, const char *path,
        const struct bus_ops *ops, void *ctx, char *err, size_t errlen)
{
    struct bus *b = calloc(1, sizeof(*b));

    if (b != NULL)
        b->buckets = calloc(16, sizeof(*b->buckets));
    if (b == NULL || b->buckets == NULL) {
        if (errlen > 0)
            snprintf(err, errlen, "bus: out of memory");
        goto fail_free;
    }
    b->nbuckets = 16;
    if (bus_in_init(&b->in, loop, self_key, path, &bus_in_hooks, err,
                    errlen) < 0)
        goto fail_free;
    b->loop = loop;
    b->self_key = self_key;
    b->ops = *ops;
    b->ctx = ctx;
    b->peer_cap = BUS_PEER_CAP_DEFAULT;
    b->max_frame = BUS_MAX_FRAME_DEFAULT;
    b->in.max_frame = b->max_frame;
    list_init(&b->peers);
    list_init(&b->dirty);
    ev_prepare_init(&b->flush, bus_on_flush);
    ev_set_priority(&b->flush, EV_MINPRI);
    ev_prepare_start(loop, &b->flush);
    ev_unref(loop);
    log_info("event=bus_listening self=" KEY_FMT " path=%s", KEY_ARGS(self_key),
             path);
    return b;

fail_free:
    if (b != NULL)
        free(b->buckets);
    free(b);
    return NULL;
}

void
bus_free(struct bus *b)
{
    if (b == NULL)
        return;
    bus_in_destroy(&b->in);
    while (!list_empty(&b->peers))
        peer_free(b, container_of(b->peers.next, struct peer, link));
    ev_ref(b->loop);
    ev_prepare_stop(b->loop, &b->flush);
    free(b->buckets);
    free(b);
}

/* ---- Peers and sending ------------------------------------------------- */

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
        bus_in_recheck(&b->in, peer_key);
    log_info("event=bus_peer_added peer=" KEY_FMT " pid=%d path=%s",
             KEY_ARGS(peer_key), (int)pid, path);
    return 0;
}

void
bus_peer_remove(struct bus *b, uint32_t peer_key)
{
    struct peer *p = peer_find(b, peer_key);

    if (p == NULL)
        return;
    log_info("event=bus_peer_removed peer=" KEY_FMT " queued_bytes=%zu",
             KEY_ARGS(peer_key), p->q.bytes);
    peers_unhash(b, p);
    b->npeers--;
    peer_free(b, p);
}

static int
check_msg(const struct bus *b, const struct bus_msg *m)
{
    if (m->type < BUS_SEND || m->type > BUS_ADMIN_REPLY)
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
    b->in.max_frame = b->max_frame;
}

void
bus_pause_input(struct bus *b, bool paused)
{
    bus_in_pause(&b->in, paused);
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
    struct bus_stats st = b->st;

    st.received = b->in.received;
    st.bytes_in = b->in.bytes_in;
    st.rejects = b->in.rejects;
    st.errors += b->in.errors;
    return st;
}
