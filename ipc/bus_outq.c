/*
 * bus_outq.c: a peer's outbound queue as a list of segments, each either
 * an owned chunk packed with whole frames or a reference to one shared
 * frame. Frames start at offset 0 of their segment and follow each other
 * back to back, so their boundaries can be found again from the length
 * prefixes when a connection breaks.
 */
#include "bus_outq.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define BUS_OUTQ_CHUNK 65536 /* packing chunk; larger frames get their own */

struct bus_frame {
    uint32_t refs;
    uint32_t len;
    uint8_t data[];
};

struct bus_outq_seg {
    struct bus_outq_seg *next;
    struct bus_frame *shared; /* the bytes, or NULL: data[] is ours */
    size_t off;               /* bytes already written */
    size_t len;               /* bytes in the segment */
    size_t cap;               /* capacity of data[] */
    size_t nframes;           /* frames in the segment */
    uint8_t data[];
};

struct bus_frame *
bus_frame_new(const struct bus_msg *m)
{
    size_t len = (size_t)bus_wire_size(m);
    struct bus_frame *f = malloc(sizeof(*f) + len);

    if (f == NULL)
        return NULL;
    f->refs = 1;
    f->len = (uint32_t)len;
    bus_wire_encode(f->data, m);
    return f;
}

void
bus_frame_unref(struct bus_frame *f)
{
    if (f != NULL && --f->refs == 0)
        free(f);
}

size_t
bus_frame_len(const struct bus_frame *f)
{
    return f->len;
}

const uint8_t *
bus_frame_data(const struct bus_frame *f)
{
    return f->data;
}

void
bus_outq_init(struct bus_outq *q)
{
    q->head = q->tail = NULL;
    q->bytes = 0;
}

static const uint8_t *
seg_bytes(const struct bus_outq_seg *s)
{
    return s->shared != NULL ? s->shared->data : s->data;
}

/*
 * The first frame boundary at or after off, and in *whole the number of
 * frames that end at or before off.
 */
static size_t
seg_boundary(const struct bus_outq_seg *s, size_t off, size_t *whole)
{
    const uint8_t *p = seg_bytes(s);
    size_t pos = 0, n = 0;

    while (pos < off) {
        size_t flen = bus_wire_frame_len(p + pos, s->len - pos);

        assert(flen >= BUS_WIRE_HEADER && flen <= s->len - pos);
        pos += flen;
        n++;
    }
    *whole = pos > off ? n - 1 : n;
    return pos;
}

static void
seg_link(struct bus_outq *q, struct bus_outq_seg *s)
{
    s->next = NULL;
    if (q->tail != NULL)
        q->tail->next = s;
    else
        q->head = s;
    q->tail = s;
}

static void
seg_pop(struct bus_outq *q)
{
    struct bus_outq_seg *s = q->head;

    q->head = s->next;
    if (q->head == NULL)
        q->tail = NULL;
    bus_frame_unref(s->shared);
    free(s);
}

size_t
bus_outq_clear(struct bus_outq *q)
{
    size_t frames = 0, written = 0;

    if (q->head != NULL)
        seg_boundary(q->head, q->head->off, &written);
    while (q->head != NULL) {
        frames += q->head->nframes;
        seg_pop(q);
    }
    bus_outq_init(q);
    return frames - written;
}

/* A segment with room for len more bytes at its end: the tail or a new one. */
static struct bus_outq_seg *
seg_room(struct bus_outq *q, size_t len)
{
    struct bus_outq_seg *t = q->tail;
    size_t cap = len > BUS_OUTQ_CHUNK ? len : BUS_OUTQ_CHUNK;

    if (t != NULL && t->shared == NULL && t->cap - t->len >= len)
        return t;
    t = malloc(sizeof(*t) + cap);
    if (t == NULL)
        return NULL;
    t->shared = NULL;
    t->off = t->len = t->nframes = 0;
    t->cap = cap;
    seg_link(q, t);
    return t;
}

int
bus_outq_append_msg(struct bus_outq *q, const struct bus_msg *m)
{
    size_t len = (size_t)bus_wire_size(m);
    struct bus_outq_seg *s = seg_room(q, len);

    if (s == NULL)
        return -ENOMEM;
    bus_wire_encode(s->data + s->len, m);
    s->len += len;
    s->nframes++;
    q->bytes += len;
    return 0;
}

int
bus_outq_append_bytes(struct bus_outq *q, const uint8_t *frame, size_t len)
{
    struct bus_outq_seg *s = seg_room(q, len);

    if (s == NULL)
        return -ENOMEM;
    memcpy(s->data + s->len, frame, len);
    s->len += len;
    s->nframes++;
    q->bytes += len;
    return 0;
}

int
bus_outq_append_frame(struct bus_outq *q, struct bus_frame *f)
{
    struct bus_outq_seg *s = malloc(sizeof(*s));

    if (s == NULL)
        return -ENOMEM;
    f->refs++;
    s->shared = f;
    s->off = 0;
    s->len = f->len;
    s->cap = 0;
    s->nframes = 1;
    seg_link(q, s);
    q->bytes += f->len;
    return 0;
}

int
bus_outq_iov(const struct bus_outq *q, struct iovec *iov, int max)
{
    int n = 0;

    for (const struct bus_outq_seg *s = q->head; s != NULL && n < max;
         s = s->next) {
        iov[n].iov_base = (void *)(seg_bytes(s) + s->off);
        iov[n].iov_len = s->len - s->off;
        n++;
    }
    return n;
}

void
bus_outq_consume(struct bus_outq *q, size_t n)
{
    assert(n <= q->bytes);
    q->bytes -= n;
    while (n > 0) {
        struct bus_outq_seg *s = q->head;
        size_t k = MIN(n, s->len - s->off);

        s->off += k;
        n -= k;
        if (s->off == s->len)
            seg_pop(q);
    }
}

bool
bus_outq_trim(struct bus_outq *q)
{
    struct bus_outq_seg *s = q->head;
    size_t pos, whole;

    if (s == NULL || s->off == 0)
        return false;
    pos = seg_boundary(s, s->off, &whole);
    if (pos == s->off)
        return false;
    q->bytes -= pos - s->off;
    s->off = pos;
    if (s->off == s->len)
        seg_pop(q);
    return true;
}
