/*
 * sendq.c: the outbound queue: a list of segments, each either an owned
 * chunk that later small frames are packed into, or a reference to a
 * shared buffer. Flushing gathers up to IOV_MAX segments per writev.
 */
#include "sendq.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#define SENDQ_CHUNK 16384 /* packing chunk for small frames */
/* With the segment header, 1 KiB in all. */
#define SENDQ_FIRST_CHUNK (1024 - sizeof(struct sendq_seg))
/* First chunks kept for reuse: an echo or a broadcast opens and empties
   one per connection per loop iteration, more than malloc's per-size
   cache holds (the profile of a 1000-subscriber broadcast spent 10% of
   the worker in malloc). At most 512 KiB stay. The process is
   single-threaded (one worker). */
#define SENDQ_SPARES 2048
/* The second chunk of a queue: 4 KiB in all. A flush of four 512-byte
   echoes spills out of the first chunk into one; with 1000 connections
   x 4 in flight, 1000 are open at once each iteration, and the profile
   of that load (wsload echo -c 1000 -k 4 -s 512, one worker) spent ~4%
   of the worker in malloc/free when the spill opened 16 KiB chunks from
   a pool of 32. At most 1024 (4 MiB) stay. */
#define SENDQ_MID_CHUNK (4096 - sizeof(struct sendq_seg))
#define SENDQ_MID_SPARES 1024
/* And packing chunks past the second. At most 32 (512 KiB) stay. */
#define SENDQ_BIG_SPARES 32

struct sendq_seg {
    struct sendq_seg *next;
    sock_buf *buf;    /* shared bytes, or NULL: data[] is ours */
    size_t off;       /* bytes already written */
    size_t len;       /* bytes in the segment */
    size_t cap;       /* capacity of data[] (owned segments) */
    uint8_t data[];
};

static struct sendq_seg *spare[SENDQ_SPARES];
static unsigned n_spare;
static struct sendq_seg *mid_spare[SENDQ_MID_SPARES];
static unsigned n_mid_spare;
static struct sendq_seg *big_spare[SENDQ_BIG_SPARES];
static unsigned n_big_spare;
/* Bytes in every queue of the process (one worker): max_send_bytes. */
static size_t total;

size_t
sendq_total_bytes(void)
{
    return total;
}

void
sendq_init(struct sendq *q)
{
    q->head = q->tail = NULL;
    q->bytes = 0;
}

static void
seg_free(struct sendq_seg *s)
{
    if (s->buf == NULL && s->cap == SENDQ_FIRST_CHUNK &&
        n_spare < SENDQ_SPARES) {
        spare[n_spare++] = s;
        return;
    }
    if (s->buf == NULL && s->cap == SENDQ_MID_CHUNK &&
        n_mid_spare < SENDQ_MID_SPARES) {
        mid_spare[n_mid_spare++] = s;
        return;
    }
    if (s->buf == NULL && s->cap == SENDQ_CHUNK &&
        n_big_spare < SENDQ_BIG_SPARES) {
        big_spare[n_big_spare++] = s;
        return;
    }
    sock_buf_unref(s->buf);
    free(s);
}

void
sendq_clear(struct sendq *q)
{
    struct sendq_seg *s, *next;

    for (s = q->head; s != NULL; s = next) {
        next = s->next;
        seg_free(s);
    }
    total -= q->bytes;
    sendq_init(q);
}

static void
seg_link(struct sendq *q, struct sendq_seg *s)
{
    s->next = NULL;
    if (q->tail != NULL)
        q->tail->next = s;
    else
        q->head = s;
    q->tail = s;
}

static struct sendq_seg *
seg_new(size_t cap)
{
    struct sendq_seg *s;

    if (cap == SENDQ_FIRST_CHUNK && n_spare > 0)
        s = spare[--n_spare];
    else if (cap == SENDQ_MID_CHUNK && n_mid_spare > 0)
        s = mid_spare[--n_mid_spare];
    else if (cap == SENDQ_CHUNK && n_big_spare > 0)
        s = big_spare[--n_big_spare];
    else
        s = malloc(sizeof(*s) + cap);

    if (s == NULL)
        return NULL;
    s->buf = NULL;
    s->off = s->len = 0;
    s->cap = cap;
    return s;
}

/* Copies bytes into the tail chunk, opening new ones as needed. */
static int
copy_in(struct sendq *q, const uint8_t *p, size_t len)
{
    struct sendq_seg *t = q->tail;

    while (len > 0) {
        size_t room, n;

        if (t == NULL || t->buf != NULL || t->len == t->cap) {
            /* An empty queue starts small (a 101, a pong, one frame): a
               burst of handshakes must not hold 16 KiB each. */
            size_t want = q->head == NULL ? SENDQ_FIRST_CHUNK
                          : q->head == t ? SENDQ_MID_CHUNK
                                         : SENDQ_CHUNK;

            t = seg_new(len > want ? len : want);
            if (t == NULL)
                return -ENOMEM;
            seg_link(q, t);
        }
        room = t->cap - t->len;
        n = len < room ? len : room;
        memcpy(t->data + t->len, p, n);
        t->len += n;
        q->bytes += n;
        total += n;
        p += n;
        len -= n;
    }
    return 0;
}

/* Undoes appends after a failure so no half frame is ever queued. */
struct sendq_mark {
    struct sendq_seg *tail;
    size_t tail_len;
    size_t bytes;
};

static struct sendq_mark
mark(const struct sendq *q)
{
    struct sendq_mark m = { q->tail, q->tail ? q->tail->len : 0, q->bytes };

    return m;
}

static void
rollback(struct sendq *q, struct sendq_mark m)
{
    struct sendq_seg *s = m.tail ? m.tail->next : q->head;

    while (s != NULL) {
        struct sendq_seg *next = s->next;

        seg_free(s);
        s = next;
    }
    if (m.tail != NULL) {
        m.tail->next = NULL;
        m.tail->len = m.tail_len;
    } else {
        q->head = NULL;
    }
    q->tail = m.tail;
    total -= q->bytes - m.bytes;
    q->bytes = m.bytes;
}

int
sendq_append(struct sendq *q, const void *hdr, size_t hlen, const void *data,
             size_t len)
{
    struct sendq_mark m = mark(q);
    struct sendq_seg *t = q->tail;
    int rc;

    /* A large payload that does not fit gets one exact segment, so the
       header and payload stay contiguous and nothing is copied twice. */
    if (len > SENDQ_CHUNK &&
        (t == NULL || t->buf != NULL || t->cap - t->len < hlen + len)) {
        t = seg_new(hlen + len);
        if (t == NULL)
            return -ENOMEM;
        if (hlen > 0)
            memcpy(t->data, hdr, hlen);
        memcpy(t->data + hlen, data, len);
        t->len = hlen + len;
        seg_link(q, t);
        q->bytes += t->len;
        total += t->len;
        return 0;
    }
    rc = copy_in(q, hdr, hlen);
    if (rc == 0 && len > 0)
        rc = copy_in(q, data, len);
    if (rc != 0)
        rollback(q, m);
    return rc;
}

int
sendq_append_buf(struct sendq *q, const void *hdr, size_t hlen, sock_buf *b)
{
    struct sendq_mark m = mark(q);
    struct sendq_seg *s;
    int rc;

    if (b->len < 256) /* cheaper to copy than to reference */
        return sendq_append(q, hdr, hlen, b->data, b->len);
    rc = copy_in(q, hdr, hlen);
    if (rc != 0) {
        rollback(q, m);
        return rc;
    }
    s = seg_new(0);
    if (s == NULL) {
        rollback(q, m);
        return -ENOMEM;
    }
    s->buf = sock_buf_ref(b);
    s->len = b->len;
    seg_link(q, s);
    q->bytes += b->len;
    total += b->len;
    return 0;
}

static const uint8_t *
seg_bytes(const struct sendq_seg *s)
{
    return s->buf != NULL ? s->buf->data : s->data;
}

/* Drops n written bytes from the front of the queue. */
void
sendq_consume(struct sendq *q, size_t n)
{
    q->bytes -= n;
    total -= n;
    while (n > 0) {
        struct sendq_seg *s = q->head;
        size_t left = s->len - s->off;

        if (n < left) {
            s->off += n;
            return;
        }
        n -= left;
        q->head = s->next;
        if (q->head == NULL)
            q->tail = NULL;
        seg_free(s);
    }
}

int
sendq_peek(const struct sendq *q, struct iovec *iov, int max, size_t *bytes)
{
    const struct sendq_seg *s;
    int n = 0;

    *bytes = 0;
    for (s = q->head; s != NULL && n < max; s = s->next) {
        iov[n].iov_base = (void *)(seg_bytes(s) + s->off);
        iov[n].iov_len = s->len - s->off;
        *bytes += iov[n].iov_len;
        n++;
    }
    return n;
}

int
sendq_flush(struct sendq *q, sendq_writev_fn fn, void *ctx, int max_calls)
{
    struct iovec iov[SENDQ_IOV];

    for (int call = 0; call < max_calls; call++) {
        size_t bytes;
        int n;
        ssize_t w;

        if (q->head == NULL)
            return 0;
        n = sendq_peek(q, iov, SENDQ_IOV, &bytes);
        w = fn(ctx, iov, n);
        if (w == -EAGAIN)
            return 1;
        if (w < 0)
            return (int)w;
        sendq_consume(q, (size_t)w);
    }
    return q->head == NULL ? 0 : 1;
}
