/*
 * bus_in.c: the receiving half of the bus. Accepts on the listening
 * socket (bounded per wakeup, pausing on EMFILE rather than spinning),
 * lets only our own uid in, requires a hello first (addressed to us, and
 * from the registered pid when there is one), then decodes frames and
 * hands them to the owner.
 *
 * Reading: one buffer per bus; a connection keeps only the bytes of an
 * incomplete frame, and a frame larger than the buffer is read straight
 * into a buffer of its own size, so no payload is copied twice. Reads
 * are bounded per wakeup so that one busy peer cannot starve the loop.
 */
#include "bus_in.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus.h"
#include "log.h"

#define BUS_RBUF_SIZE 65536
#define BUS_READS_PER_WAKEUP 4
#define BUS_ACCEPTS_PER_WAKEUP 16
#define BUS_ACCEPT_PAUSE 0.1       /* s, after EMFILE and the like */

/* Peer keys print as generation.slot. */
#define KEY_FMT "%" PRIu32 ".%" PRIu32
#define KEY_ARGS(k) (uint32_t)(k) >> 8, (uint32_t)(k) & 0xff

struct inconn {
    struct bus_in *in;
    struct list link;         /* in in->conns */
    int fd;
    ev_io io;
    pid_t pid;                /* from SO_PEERCRED */
    bool has_hello;
    bool closing;             /* freed when its callback unwinds */
    uint32_t key;             /* from the hello */
    uint8_t *part;            /* start of an incomplete frame */
    size_t part_len, part_cap;
};

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
log_ok(struct bus_in *in)
{
    ev_tstamp now = ev_now(in->loop);

    if (now - in->log_at < 1.0) {
        in->log_quiet++;
        return false;
    }
    in->log_at = now;
    return true;
}

static void
inconn_free(struct inconn *c)
{
    ev_io_stop(c->in->loop, &c->io);
    close(c->fd);
    list_remove(&c->link);
    free(c->part);
    free(c);
}

/* Refused: wrong credentials or hello. Counted, logged (rate-limited). */
static void
inconn_reject(struct inconn *c, const char *why, uint64_t claimed)
{
    struct bus_in *in = c->in;

    in->rejects++;
    c->closing = true;
    if (log_ok(in)) {
        log_warn("event=bus_connection_rejected reason=\"%s\" pid=%d claimed=%" PRIu64 " suppressed=%u",
                 why, (int)c->pid, claimed, in->log_quiet);
        in->log_quiet = 0;
    }
}

static void
inconn_fail(struct inconn *c, const char *why, int err)
{
    struct bus_in *in = c->in;

    in->errors++;
    c->closing = true;
    if (log_ok(in)) {
        log_warn("event=bus_connection_error reason=\"%s\" peer=" KEY_FMT " pid=%d err=\"%s\" suppressed=%u",
                 why, KEY_ARGS(c->key), (int)c->pid, strerror(err),
                 in->log_quiet);
        in->log_quiet = 0;
    }
}

/*
 * The first frame names the sender. It must be addressed to us, and come
 * from the process the owner expects for that key: this is what ties an
 * inbound connection to a member of the mesh.
 */
static void
inconn_hello(struct inconn *c, const struct bus_msg *m)
{
    struct bus_in *in = c->in;

    if (m->type != BUS_HELLO || m->topic_len != 0 || m->len != 0 ||
        m->from > UINT32_MAX) {
        inconn_reject(c, "bad hello", m->from);
        return;
    }
    if (m->to != in->self_key) {
        inconn_reject(c, "hello for another peer", m->from);
        return;
    }
    if (!in->hooks->pid_ok(in, (uint32_t)m->from, c->pid)) {
        inconn_reject(c, "pid does not match the peer's", m->from);
        return;
    }
    c->has_hello = true;
    c->key = (uint32_t)m->from;
    log_debug("event=bus_accepted peer=" KEY_FMT " pid=%d", KEY_ARGS(c->key),
              (int)c->pid);
}

/* Decodes and delivers the whole frames in p[0..n); returns bytes used. */
static size_t
inconn_frames(struct inconn *c, const uint8_t *p, size_t n)
{
    struct bus_in *in = c->in;
    size_t used = 0;

    while (!c->closing) {
        struct bus_msg m;
        ssize_t r = bus_wire_decode(&m, p + used, n - used, in->max_frame);

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
            in->received++;
            in->hooks->deliver(in, &m);
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
        c->in->bytes_in += (uint64_t)n;
        return (size_t)n;
    }
    if (n == 0) {
        if (c->part_len > 0)
            inconn_fail(c, "closed inside a frame", EPIPE);
        c->closing = true;
        log_debug("event=bus_connection_closed peer=" KEY_FMT " pid=%d",
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
    uint8_t *rbuf = c->in->rbuf;
    size_t off = c->part_len, n, used;

    if (off > 0)
        memcpy(rbuf, c->part, off);
    n = inconn_recv(c, rbuf + off, BUS_RBUF_SIZE - off);
    if (n == 0)
        return false;
    free(c->part);
    c->part = NULL;
    c->part_len = c->part_cap = 0;
    used = inconn_frames(c, rbuf, off + n);
    if (!c->closing && used < off + n)
        inconn_keep(c, rbuf + used, off + n - used);
    return n == BUS_RBUF_SIZE - off;
}

static void
inconn_on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    struct inconn *c = container_of(w, struct inconn, io);

    (void)loop;
    (void)revents;
    for (int i = 0; i < BUS_READS_PER_WAKEUP && !c->closing && !c->in->paused;
         i++) {
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
inconn_new(struct bus_in *in, int fd)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    struct inconn *c;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
        log_warn("event=bus_peercred_failed err=\"%s\"", strerror(errno));
        close(fd);
        in->errors++;
        return;
    }
    if (cr.uid != geteuid()) {
        in->rejects++;
        if (log_ok(in)) {
            log_warn("event=bus_connection_rejected reason=\"uid\" uid=%u pid=%d suppressed=%u",
                     (unsigned)cr.uid, (int)cr.pid, in->log_quiet);
            in->log_quiet = 0;
        }
        close(fd);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        log_err("event=bus_accept_failed error=\"out of memory\"");
        close(fd);
        return;
    }
    c->in = in;
    c->fd = fd;
    c->pid = cr.pid;
    ev_io_init(&c->io, inconn_on_read, fd, EV_READ);
    if (!in->paused)
        ev_io_start(in->loop, &c->io);
    list_insert_tail(&in->conns, &c->link);
}

void
bus_in_pause(struct bus_in *in, bool paused)
{
    if (paused == in->paused)
        return;
    in->paused = paused;
    for (struct list *l = in->conns.next; l != &in->conns; l = l->next) {
        struct inconn *c = container_of(l, struct inconn, link);

        if (c->closing)
            continue;
        if (paused)
            ev_io_stop(in->loop, &c->io);
        else
            ev_io_start(in->loop, &c->io);
    }
}

static void
on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    struct bus_in *in = container_of(w, struct bus_in, lio);

    (void)revents;
    for (int i = 0; i < BUS_ACCEPTS_PER_WAKEUP; i++) {
        int fd = accept4(in->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd >= 0) {
            inconn_new(in, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        /* Out of descriptors or memory: pause instead of spinning. */
        log_warn("event=bus_accept_failed err=\"%s\" pause_ms=%d",
                 strerror(errno), (int)(BUS_ACCEPT_PAUSE * 1000));
        ev_io_stop(loop, &in->lio);
        ev_timer_set(&in->accept_pause, BUS_ACCEPT_PAUSE, 0.);
        ev_timer_start(loop, &in->accept_pause);
        return;
    }
}

static void
on_accept_pause(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct bus_in *in = container_of(w, struct bus_in, accept_pause);

    (void)revents;
    ev_io_start(loop, &in->lio);
}

void
bus_in_recheck(struct bus_in *in, uint32_t key)
{
    for (struct list *l = in->conns.next; l != &in->conns; l = l->next) {
        struct inconn *c = container_of(l, struct inconn, link);

        if (c->has_hello && c->key == key && !c->closing &&
            !in->hooks->pid_ok(in, key, c->pid)) {
            inconn_reject(c, "pid does not match the peer's", key);
            /* Freed by its own callback: this may run inside it. */
            ev_feed_event(in->loop, &c->io, EV_READ);
        }
    }
}

/* ---- The listening socket ---------------------------------------------- */

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
listen_at(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (clear_stale(path, err, errlen) < 0)
        return -1;
    memcpy(sa.sun_path, path, strlen(path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_err(err, errlen, "bus: socket: %s", strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        set_err(err, errlen, "bus: bind %s: %s", path, strerror(errno));
        goto fail_close;
    }
    /* The uid check on accept is the real gate; this keeps others from
       even connecting. */
    if (chmod(path, 0600) < 0) {
        set_err(err, errlen, "bus: chmod %s: %s", path, strerror(errno));
        goto fail_unlink;
    }
    if (listen(fd, SOMAXCONN) < 0) {
        set_err(err, errlen, "bus: listen %s: %s", path, strerror(errno));
        goto fail_unlink;
    }
    return fd;

fail_unlink:
    unlink(path);
fail_close:
    close(fd);
    return -1;
}

int
bus_in_init(struct bus_in *in, struct ev_loop *loop, uint32_t self_key,
            const char *path, const struct bus_in_hooks *hooks, char *err,
            size_t errlen)
{
    size_t plen = strlen(path);

    memset(in, 0, sizeof(*in));
    if (plen >= BUS_PATH_MAX) {
        set_err(err, errlen, "bus: path too long: %s", path);
        return -1;
    }
    in->rbuf = malloc(BUS_RBUF_SIZE);
    if (in->rbuf == NULL) {
        set_err(err, errlen, "bus: out of memory");
        return -1;
    }
    in->lfd = listen_at(path, err, errlen);
    if (in->lfd < 0) {
        free(in->rbuf);
        return -1;
    }
    in->loop = loop;
    in->hooks = hooks;
    in->self_key = self_key;
    in->max_frame = BUS_MAX_FRAME_DEFAULT;
    memcpy(in->path, path, plen + 1);
    list_init(&in->conns);
    ev_io_init(&in->lio, on_accept, in->lfd, EV_READ);
    ev_io_start(loop, &in->lio);
    ev_timer_init(&in->accept_pause, on_accept_pause, 0., 0.);
    return 0;
}

void
bus_in_destroy(struct bus_in *in)
{
    while (!list_empty(&in->conns))
        inconn_free(container_of(in->conns.next, struct inconn, link));
    ev_io_stop(in->loop, &in->lio);
    ev_timer_stop(in->loop, &in->accept_pause);
    close(in->lfd);
    unlink(in->path);
    free(in->rbuf);
}
