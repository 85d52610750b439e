/*
 * test_sendq.c: unit tests for worker/sendq.c. A fake writev checks that
 * every byte it is offered is the next one the stream owes (against a
 * model of everything appended), takes a scripted amount per call (all,
 * some, none: -EAGAIN, or an error) and records what it took. Checked at
 * every step: byte order across any pattern of partial writes, q->bytes,
 * flush returns and call budgets, packing of small frames, zero-copy
 * buffers and the exact reference count of each one.
 */
#include "sendq.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define ACCEPT_ALL SSIZE_MAX
#define MAX_SCRIPT 16
#define MAX_PENDING 4096
/* Mirrors sendq.c: shared buffers shorter than this are copied. */
#define COPY_BELOW 256
/* Mirrors sendq.c: the packing chunk; larger payloads get their own. */
#define CHUNK 16384

/* A queued reference to a held buffer, released once `end` is written. */
struct pending {
    int buf;
    uint64_t end; /* absolute stream offset just past its bytes */
};

/* Everything appended, in order; the fake consumes it from the front. */
struct model {
    uint8_t *exp;
    size_t len, cap;  /* bytes in exp */
    size_t off;       /* of those, written */
    uint64_t base;    /* absolute stream offset of exp[0] */
    struct pending pend[MAX_PENDING];
    size_t npend;
};

struct fake {
    struct model *m;
    const struct sendq *q;
    ssize_t script[MAX_SCRIPT]; /* > 0 take up to, 0 -EAGAIN, < 0 error */
    int nscript;
    ssize_t dflt;               /* once the script is used up */
    int calls;
    ssize_t last;               /* what the last call returned */
    /* The first call's iovecs, for shape checks. */
    int first_cnt;
    size_t first_len[8];
    const void *first_base[8];
    /* Bytes taken, when out != NULL. */
    uint8_t *out;
    size_t out_len, out_cap;
};

static void
model_init(struct model *m)
{
    memset(m, 0, sizeof(*m));
}

static void
model_destroy(struct model *m)
{
    free(m->exp);
    model_init(m);
}

static void
model_add(struct model *m, const void *p, size_t len)
{
    if (m->len + len > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;

        while (cap < m->len + len)
            cap *= 2;
        m->exp = realloc(m->exp, cap);
        ck_assert_ptr_nonnull(m->exp);
        m->cap = cap;
    }
    if (len > 0)
        memcpy(m->exp + m->len, p, len);
    m->len += len;
}

static size_t
model_left(const struct model *m)
{
    return m->len - m->off;
}

/* Drops what is written from the model's memory (offsets stay absolute). */
static void
model_compact(struct model *m)
{
    memmove(m->exp, m->exp + m->off, m->len - m->off);
    m->base += m->off;
    m->len -= m->off;
    m->off = 0;
}

/* The queue was cleared: nothing more is owed, no reference is held. */
static void
model_discard(struct model *m)
{
    m->off = m->len;
    m->npend = 0;
    model_compact(m);
}

/* Forgets the references whose bytes are all written. */
static void
model_release(struct model *m)
{
    size_t i = 0;

    while (i < m->npend && m->pend[i].end <= m->base + m->off)
        i++;
    memmove(m->pend, m->pend + i, (m->npend - i) * sizeof(m->pend[0]));
    m->npend -= i;
}

static uint32_t
model_refs(const struct model *m, int buf)
{
    uint32_t refs = 1; /* the test's own */

    for (size_t i = 0; i < m->npend; i++)
        refs += m->pend[i].buf == buf;
    return refs;
}

static ssize_t
fake_writev(void *ctx, const struct iovec *iov, int iovcnt)
{
    struct fake *f = ctx;
    struct model *m = f->m;
    ssize_t act = f->calls < f->nscript ? f->script[f->calls] : f->dflt;
    size_t total = 0, take;

    /* Nothing was consumed behind our back, and there is something owed. */
    ck_assert_uint_eq(f->q->bytes, model_left(m));
    ck_assert_uint_gt(model_left(m), 0);
    ck_assert_int_gt(iovcnt, 0);
    ck_assert_int_le(iovcnt, IOV_MAX);
    if (f->calls == 0) {
        f->first_cnt = iovcnt;
        for (int i = 0; i < iovcnt && i < 8; i++) {
            f->first_len[i] = iov[i].iov_len;
            f->first_base[i] = iov[i].iov_base;
        }
    }
    f->calls++;
    /* Every byte offered is the next one owed, in order. (Plain tests:
       in fork mode each passing ck_assert messages the parent.) */
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len == 0 ||
            total + iov[i].iov_len > model_left(m))
            ck_abort_msg("iov %d of %d: %zu bytes, %zu owed after %zu", i,
                         iovcnt, iov[i].iov_len, model_left(m), total);
        if (memcmp(iov[i].iov_base, m->exp + m->off + total,
                   iov[i].iov_len) != 0)
            ck_abort_msg("iov %d differs at stream offset %llu", i,
                         (unsigned long long)(m->base + m->off + total));
        total += iov[i].iov_len;
    }
    if (act <= 0) {
        f->last = act == 0 ? -EAGAIN : act;
        return f->last;
    }
    take = (size_t)act < total ? (size_t)act : total;
    if (f->out != NULL) {
        size_t left = take;

        ck_assert_uint_le(f->out_len + take, f->out_cap);
        for (int i = 0; left > 0; i++) {
            size_t n = iov[i].iov_len < left ? iov[i].iov_len : left;

            memcpy(f->out + f->out_len, iov[i].iov_base, n);
            f->out_len += n;
            left -= n;
        }
    }
    m->off += take;
    f->last = (ssize_t)take;
    return f->last;
}

/* Sets the per-call script for the next flush; dflt once it runs out. */
static void
fake_script(struct fake *f, const ssize_t *script, int n, ssize_t dflt)
{
    ck_assert_int_le(n, MAX_SCRIPT);
    for (int i = 0; i < n; i++)
        f->script[i] = script[i];
    f->nscript = n;
    f->dflt = dflt;
    f->calls = 0;
    f->last = 0;
    f->first_cnt = 0;
}

static void
fake_init(struct fake *f, struct model *m, const struct sendq *q,
          uint8_t *out, size_t out_cap)
{
    memset(f, 0, sizeof(*f));
    f->m = m;
    f->q = q;
    f->out = out;
    f->out_cap = out_cap;
    f->dflt = ACCEPT_ALL;
}

/*
 * Flushes and checks the return against what the fake did: an error is
 * returned as is, -EAGAIN gives 1, otherwise 0 exactly when the queue is
 * empty, and a queue left non-empty means the call budget was spent.
 */
static int
flush_checked(struct sendq *q, struct fake *f, int max_calls)
{
    size_t before = model_left(f->m);
    int rc = sendq_flush(q, fake_writev, f, max_calls);

    ck_assert_int_le(f->calls, max_calls);
    if (before > 0 && max_calls > 0)
        ck_assert_int_ge(f->calls, 1);
    if (f->calls > 0 && f->last < 0 && f->last != -EAGAIN) {
        ck_assert_int_eq(rc, (int)f->last);
    } else if (f->calls > 0 && f->last == -EAGAIN) {
        ck_assert_int_eq(rc, 1);
    } else {
        ck_assert_int_eq(rc, model_left(f->m) == 0 ? 0 : 1);
        if (rc == 1)
            ck_assert_int_eq(f->calls, max_calls);
    }
    model_release(f->m);
    ck_assert_uint_eq(q->bytes, model_left(f->m));
    if (q->bytes == 0) {
        /* A flushed queue owns nothing. */
        ck_assert_ptr_null(q->head);
        ck_assert_ptr_null(q->tail);
    }
    return rc;
}

static void
fill_rand(uint64_t *rs, uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(test_rand(rs) >> 56);
}

static void
push(struct sendq *q, struct model *m, const void *hdr, size_t hlen,
     const void *data, size_t len)
{
    ck_assert_int_eq(sendq_append(q, hdr, hlen, data, len), 0);
    model_add(m, hdr, hlen);
    model_add(m, data, len);
    ck_assert_uint_eq(q->bytes, model_left(m));
}

static void
push_buf(struct sendq *q, struct model *m, const void *hdr, size_t hlen,
         sock_buf *b, int idx)
{
    ck_assert_int_eq(sendq_append_buf(q, hdr, hlen, b), 0);
    model_add(m, hdr, hlen);
    model_add(m, b->data, b->len);
    if (b->len >= COPY_BELOW) {
        ck_assert_uint_lt(m->npend, MAX_PENDING);
        m->pend[m->npend].buf = idx;
        m->pend[m->npend].end = m->base + m->len;
        m->npend++;
    }
    ck_assert_uint_eq(q->bytes, model_left(m));
}

static sock_buf *
buf_rand(uint64_t *rs, size_t len)
{
    sock_buf *b = sock_buf_alloc(len);

    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(b->refs, 1);
    fill_rand(rs, b->data, len);
    return b;
}

/* ---- Basics ------------------------------------------------------------ */

START_TEST(test_empty)
{
    struct sendq q;
    struct model m;
    struct fake f;
    uint8_t byte = 0x42;

    sendq_init(&q);
    model_init(&m);
    fake_init(&f, &m, &q, NULL, 0);
    ck_assert_ptr_null(q.head);
    ck_assert_ptr_null(q.tail);
    ck_assert_uint_eq(q.bytes, 0);
    /* Nothing to write: no call at all. */
    fake_script(&f, NULL, 0, ACCEPT_ALL);
    ck_assert_int_eq(flush_checked(&q, &f, 4), 0);
    ck_assert_int_eq(f.calls, 0);
    sendq_clear(&q);
    ck_assert_uint_eq(q.bytes, 0);
    /* A zero budget writes nothing and reports bytes left. */
    push(&q, &m, NULL, 0, &byte, 1);
    fake_script(&f, NULL, 0, ACCEPT_ALL);
    ck_assert_int_eq(sendq_flush(&q, fake_writev, &f, 0), 1);
    ck_assert_int_eq(f.calls, 0);
    ck_assert_uint_eq(q.bytes, 1);
    /* An empty append adds nothing. */
    push(&q, &m, NULL, 0, NULL, 0);
    ck_assert_uint_eq(q.bytes, 1);
    sendq_clear(&q);
    ck_assert_ptr_null(q.head);
    ck_assert_ptr_null(q.tail);
    ck_assert_uint_eq(q.bytes, 0);
    model_destroy(&m);
}
END_TEST

START_TEST(test_small_frames_pack)
{
    static uint8_t out[2048], want[2048];
    struct sendq q;
    struct model m;
    struct fake f;
    size_t n = 0;

    sendq_init(&q);
    model_init(&m);
    fake_init(&f, &m, &q, out, sizeof(out));
    for (int i = 0; i < 90; i++) {
        uint8_t hdr[2] = { 0x81, 8 };
        uint8_t pay[8];

        memset(pay, i, sizeof(pay));
        push(&q, &m, hdr, 2, pay, 8);
        memcpy(want + n, hdr, 2);
        memcpy(want + n + 2, pay, 8);
        n += 10;
    }
    ck_assert_uint_eq(q.bytes, 900);
    /* Corking: all of it leaves in one call, from one chunk (the first
       chunk holds 1 KiB less its header). */
    fake_script(&f, NULL, 0, ACCEPT_ALL);
    ck_assert_int_eq(flush_checked(&q, &f, 8), 0);
    ck_assert_int_eq(f.calls, 1);
    ck_assert_int_eq(f.first_cnt, 1);
    ck_assert_uint_eq(f.first_len[0], 900);
    ck_assert_uint_eq(f.out_len, 900);
    ck_assert_mem_eq(out, want, 900);
    ck_assert_ptr_null(q.head);
    model_destroy(&m);
}
END_TEST

START_TEST(test_large_frame_own_segment)
{
    struct sendq q;
    struct model m;
    struct fake f;
    uint64_t rs = 7;
    uint8_t hdr[4] = { 0x82, 126, 0x4e, 0x20 };
    uint8_t *big = malloc(20000);
    uint8_t small[8];

    ck_assert_ptr_nonnull(big);
    fill_rand(&rs, big, 20000);
    fill_rand(&rs, small, sizeof(small));
    sendq_init(&q);
    model_init(&m);
    fake_init(&f, &m, &q, NULL, 0);

    /* Header and payload contiguous in one exact segment. */
    push(&q, &m, hdr, 4, big, 20000);
    fake_script(&f, NULL, 0, ACCEPT_ALL);
    ck_assert_int_eq(flush_checked(&q, &f, 1), 0);
    ck_assert_int_eq(f.first_cnt, 1);
    ck_assert_uint_eq(f.first_len[0], 20004);

    /* small | large | small: the large one does not fit the chunk. */
    push(&q, &m, small, 2, small + 2, 6);
    push(&q, &m, hdr, 4, big, 20000);
    push(&q, &m, small, 2, small + 2, 6);
    ck_assert_uint_eq(q.bytes, 8 + 20004 + 8);
    fake_script(&f, NULL, 0, ACCEPT_ALL);
    ck_assert_int_eq(flush_checked(&q, &f, 1), 0);
    ck_assert_int_eq(f.first_cnt, 3);
    ck_assert_uint_eq(f.first_len[0], 8);
    ck_assert_uint_eq(f.first_len[1], 20004);
    ck_assert_uint_eq(f.first_len[2], 8);

    /* Exactly one chunk's worth is still packed, one byte more is not. */
    push(&q, &m, NULL, 0, big, CHUNK);
    push(&q, &m, NULL, 0, big, CHUNK + 1);
    fake_script(&f, NULL, 0, ACCEPT_ALL);
    ck_assert_int_eq(flush_checked(&q, &f, 1), 0);
    ck_assert_int_eq(f.first_cnt, 2);
    ck_assert_uint_eq(f.first_len[0], CHUNK);
    ck_assert_uint_eq(f.first_len[1], CHUNK + 1);
    model_destroy(&m);
    free(big);
}
END_TEST

/* A partly written tail chunk still takes later frames, after its rest. */
START_TEST(test_partial_tail_reused)
{
    static uint8_t out[64];
    static const uint8_t want[] = "0123456789abcdefghij";
    struct sendq q;
    struct model m;
    struct fake f;

    sendq_init(&q);
    model_init(&m);
    fake_init(&f, &m, &q, out, sizeof(out));
    push(&q, &m, "01", 2, "23456789", 8);
    fake_script(&f, (ssize_t[]){ 4 }, 1, 0);
    ck_assert_int_eq(flush_checked(&q, &f, 3), 1);
    ck_assert_int_eq(f.calls, 2);
    ck_assert_uint_eq(q.bytes, 6);
    push(&q, &m, "ab", 2, "cdefghij", 8);
    ck_assert_uint_eq(q.bytes, 16);
    fake_script(&f, NULL, 0, ACCEPT_ALL);
    ck_assert_int_eq(flush_checked(&q, &f, 3), 0);
    ck_assert_int_eq(f.first_cnt, 1);
    ck_assert_uint_eq(f.first_len[0], 16);
    ck_assert_uint_eq(f.out_len, 20);
    ck_assert_mem_eq(out, want, 20);
    model_destroy(&m);
}
END_TEST

/* Writes that end exactly on segment boundaries, then the queue is reused. */
START_TEST(test_boundary_writes)
{
    struct sendq q;
    struct model m;
    struct fake f;
    uint64_t rs = 11;
    uint8_t *big = malloc(20000);
    uint8_t hdr[4] = { 1, 2, 3, 4 };

    ck_assert_ptr_nonnull(big);
    fill_rand(&rs, big, 20000);
    sendq_init(&q);
    model_init(&m);
    fake_init(&f, &m, &q, NULL, 0);
    push(&q, &m, hdr, 4, big, 6);           /* chunk: 10 */
    push(&q, &m, hdr, 4, big, 20000);       /* own: 20004 */
    push(&q, &m, hdr, 2, big + 100, 8);     /* chunk: 10 */
    fake_script(&f, (ssize_t[]){ 10, 20004, 0 }, 3, 0);
    ck_assert_int_eq(flush_checked(&q, &f, 5), 1);
    ck_assert_int_eq(f.calls, 3);
    ck_assert_uint_eq(q.bytes, 10);
    ck_assert_ptr_nonnull(q.head);
    ck_assert_ptr_eq(q.head, q.tail);
    fake_script(&f, (ssize_t[]){ 10 }, 1, 0);
    ck_assert_int_eq(flush_checked(&q, &f, 5), 0);
    ck_assert_int_eq(f.calls, 1);
    /* The emptied queue's tail is gone too: appends start afresh. */
    push(&q, &m, hdr, 3, big, 5);
    fake_script(&f, NULL, 0, ACCEPT_ALL);
    ck_assert_int_eq(flush_checked(&q, &f, 1), 0);
    ck_assert_int_eq(f.first_cnt, 1);
    ck_assert_uint_eq(f.first_len[0], 8);
    model_destroy(&m);
    free(big);
}
END_TEST

/* ---- Would block, errors, budget ---------------------------------------- */

START_TEST(test_eagain_keeps_all)
{
    struct sendq q;
    struct model m;
    struct fake f;
    uint64_t rs = 3;
    sock_buf *b = buf_rand(&rs, 1000);
    uint8_t pay[300];

    fill_rand(&rs, pay, sizeof(pay));
    sendq_init(&q);
    model_init(&m);
    fake_init(&f, &m, &q, NULL, 0);
    push(&q, &m, "\x81\x7e\x01\x2c", 4, pay, 300);
    push_buf(&q, &m, "\x82\x7e\x03\xe8", 4, b, 0);
    ck_assert_uint_eq(b->refs, 2);
    fake_script(&f, (ssize_t[]){ 0 }, 1, ACCEPT_ALL);
    ck_assert_int_eq(flush_checked(&q, &f, 4), 1);
    ck_assert_int_eq(f.calls, 1);
    ck_assert_uint_eq(q.bytes, 1308);
    ck_assert_uint_eq(b->refs, 2);
    /* Some, then would block: exactly that much is gone. */
    fake_script(&f, (ssize_t[]){ 100, 0 }, 2, ACCEPT_ALL);
    ck_assert_int_eq(flush_checked(&q, &f, 4), 1);
    ck_assert_int_eq(f.calls, 2);
    ck_assert_uint_eq(q.bytes, 1208);
    ck_assert_uint_eq(b->refs, 2);
    fake_script(&f, NULL, 0, ACCEPT_ALL);
    ck_assert_int_eq(flush_checked(&q, &f, 4), 0);
    ck_assert_int_eq(f.calls, 1);
    ck_assert_uint_eq(b->refs, 1);
    sock_buf_unref(b);
    model_destroy(&m);
}
END_TEST

START_TEST(test_error_returned)
{
    struct sendq q;
    struct model m;
    struct fake f;
    uint8_t pay[500];

    memset(pay, 0x5a, sizeof(pay));
    sendq_init(&q);
    model_init(&m);
    fake_init(&f, &m, &q, NULL, 0);
    push(&q, &m, "\x81\x7e\x01\xf4", 4, pay, 500);
    fake_script(&f, (ssize_t[]){ -EPIPE }, 1, ACCEPT_ALL);
    ck_assert_int_eq(flush_checked(&q, &f, 4), -EPIPE);
    ck_assert_int_eq(f.calls, 1);
    ck_assert_uint_eq(q.bytes, 504);
    /* An error after a partial write: the written part is gone. */
    fake_script(&f, (ssize_t[]){ 50, -ECONNRESET }, 2, ACCEPT_ALL);
    ck_assert_int_eq(flush_checked(&q, &f, 4), -ECONNRESET);
    ck_assert_int_eq(f.calls, 2);
    ck_assert_uint_eq(q.bytes, 454);
    /* The queue is still whole for whoever retries or clears it. */
    fake_script(&f, NULL, 0, ACCEPT_ALL);
    ck_assert_int_eq(flush_checked(&q, &f, 4), 0);
    ck_assert_uint_eq(q.bytes, 0);
    model_destroy(&m);
}
END_TEST

START_TEST(test_max_calls_bound)
{
    static uint8_t out[16];
    struct sendq q;
    struct model m;
    struct fake f;
    uint8_t pay[1000];

    for (size_t i = 0; i < sizeof(pay); i++)
        pay[i] = (uint8_t)i;
    sendq_init(&q);
    model_init(&m);
    fake_init(&f, &m, &q, out, sizeof(out));
    push(&q, &m, NULL, 0, pay, sizeof(pay));
    fake_script(&f, NULL, 0, 1); /* one byte per call, forever */
    ck_assert_int_eq(flush_checked(&q, &f, 5), 1);
    ck_assert_int_eq(f.calls, 5);
    ck_assert_uint_eq(q.bytes, 995);
    ck_assert_uint_eq(f.out_len, 5);
    ck_assert_mem_eq(out, pay, 5);
    fake_script(&f, NULL, 0, 1);
    ck_assert_int_eq(flush_checked(&q, &f, 1), 1);
    ck_assert_int_eq(f.calls, 1);
    ck_assert_uint_eq(q.bytes, 994);
    /* The budget is a bound, not a quota: an emptied queue stops early. */
    fake_script(&f, NULL, 0, ACCEPT_ALL);
    f.out = NULL;
    ck_assert_int_eq(flush_checked(&q, &f, 1000), 0);
    ck_assert_int_eq(f.calls, 1);
    model_destroy(&m);
}
END_TEST

/* ---- Shared buffers ----------------------------------------------------- */

START_TEST(test_buf_by_reference)
{
    struct sendq q;
    struct model m;
    struct fake f;
    uint64_t rs = 5;
    sock_buf *b = buf_rand(&rs, 1000);

    sendq_init(&q);
    model_init(&m);
    fake_init(&f, &m, &q, NULL, 0);
    push_buf(&q, &m, "\x82\x7e\x03\xe8", 4, b, 0);
    ck_assert_uint_eq(b->refs, 2);
    ck_assert_uint_eq(q.bytes, 1004);
    /* Zero copy: the buffer's own bytes are handed to writev. */
    fake_script(&f, (ssize_t[]){ 500 }, 1, 0);
    ck_assert_int_eq(flush_checked(&q, &f, 4), 1);
    ck_assert_int_eq(f.first_cnt, 2);
    ck_assert_uint_eq(f.first_len[0], 4);
    ck_assert_uint_eq(f.first_len[1], 1000);
    ck_assert_ptr_eq(f.first_base[1], b->data);
    ck_assert_uint_eq(q.bytes, 504);
    ck_assert_uint_eq(b->refs, 2);
    /* One byte short of the end still holds it; the last byte drops it. */
    fake_script(&f, (ssize_t[]){ 503, 0 }, 2, 0);
    ck_assert_int_eq(flush_checked(&q, &f, 4), 1);
    ck_assert_uint_eq(q.bytes, 1);
    ck_assert_uint_eq(b->refs, 2);
    fake_script(&f, NULL, 0, ACCEPT_ALL);
    ck_assert_int_eq(flush_checked(&q, &f, 4), 0);
    ck_assert_uint_eq(b->refs, 1);
    ck_assert_ptr_null(q.head);
    sock_buf_unref(b);
    model_destroy(&m);
}
END_TEST

START_TEST(test_small_buf_copied)
{
    struct sendq q;
    struct model m;
    struct fake f;
    uint64_t rs = 9;
    sock_buf *b = buf_rand(&rs, COPY_BELOW - 1);

    sendq_init(&q);
    model_init(&m);
    fake_init(&f, &m, &q, NULL, 0);
    push_buf(&q, &m, "\x82\x7e\x00\xff", 4, b, 0);
    push_buf(&q, &m, "\x82\x7e\x00\xff", 4, b, 0);
    /* Copied, so no reference is held and both frames share a chunk. */
    ck_assert_uint_eq(b->refs, 1);
    ck_assert_uint_eq(q.bytes, 2 * (4 + COPY_BELOW - 1));
    fake_script(&f, NULL, 0, ACCEPT_ALL);
    ck_assert_int_eq(flush_checked(&q, &f, 4), 0);
    ck_assert_int_eq(f.first_cnt, 1);
    sock_buf_unref(b);
    model_destroy(&m);
}
END_TEST

START_TEST(test_buf_dropped_on_clear)
{
    struct sendq q;
    struct model m;
    struct fake f;
    uint64_t rs = 13;
    sock_buf *a = buf_rand(&rs, 300);
    sock_buf *big = buf_rand(&rs, 70000);
    sock_buf *b;
    uint8_t bytes[COPY_BELOW];

    fill_rand(&rs, bytes, sizeof(bytes));
    b = sock_buf_new(bytes, sizeof(bytes));
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(b->refs, 1);
    ck_assert_mem_eq(b->data, bytes, sizeof(bytes));
    sendq_init(&q);
    model_init(&m);
    fake_init(&f, &m, &q, NULL, 0);
    for (int i = 0; i < 3; i++) {
        push_buf(&q, &m, "\x82\x7e\x01\x2c", 4, a, 0);
        push_buf(&q, &m, "\x82\x7e\x01\x00", 4, b, 1);
        push_buf(&q, &m, NULL, 0, big, 2);
    }
    ck_assert_uint_eq(a->refs, 4);
    ck_assert_uint_eq(b->refs, 4);
    ck_assert_uint_eq(big->refs, 4);
    /* Into the second copy of big: two of a and b are released. */
    fake_script(&f, (ssize_t[]){ 304 + 260 + 70000 + 304 + 260 + 10, 0 },
                2, 0);
    ck_assert_int_eq(flush_checked(&q, &f, 4), 1);
    ck_assert_uint_eq(a->refs, 2);
    ck_assert_uint_eq(b->refs, 2);
    ck_assert_uint_eq(big->refs, 3);
    sendq_clear(&q);
    model_discard(&m);
    ck_assert_ptr_null(q.head);
    ck_assert_ptr_null(q.tail);
    ck_assert_uint_eq(q.bytes, 0);
    ck_assert_uint_eq(a->refs, 1);
    ck_assert_uint_eq(b->refs, 1);
    ck_assert_uint_eq(big->refs, 1);
    /* A cleared queue is an empty one, ready for reuse. */
    push_buf(&q, &m, NULL, 0, a, 0);
    ck_assert_uint_eq(a->refs, 2);
    fake_script(&f, NULL, 0, ACCEPT_ALL);
    ck_assert_int_eq(flush_checked(&q, &f, 1), 0);
    ck_assert_uint_eq(a->refs, 1);
    sock_buf_unref(a);
    sock_buf_unref(b);
    sock_buf_unref(big);
    model_destroy(&m);
}
END_TEST

/* More segments than one writev gathers: each call stays within IOV_MAX. */
START_TEST(test_many_segments)
{
    struct sendq q;
    struct model m;
    struct fake f;
    uint64_t rs = 17;
    sock_buf *b[2] = { buf_rand(&rs, 256), buf_rand(&rs, 257) };
    int rc, rounds = 0;

    sendq_init(&q);
    model_init(&m);
    fake_init(&f, &m, &q, NULL, 0);
    for (int i = 0; i < 2000; i++)
        push_buf(&q, &m, NULL, 0, b[i % 2], i % 2);
    ck_assert_uint_eq(q.bytes, 1000 * 256 + 1000 * 257);
    ck_assert_uint_eq(b[0]->refs, 1001);
    ck_assert_uint_eq(b[1]->refs, 1001);
    do {
        fake_script(&f, NULL, 0, ACCEPT_ALL);
        rc = flush_checked(&q, &f, 1);
        ck_assert_int_eq(f.calls, 1);
        ck_assert_uint_eq(b[0]->refs, model_refs(&m, 0));
        ck_assert_uint_eq(b[1]->refs, model_refs(&m, 1));
        rounds++;
    } while (rc == 1 && rounds <= 2000);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(b[0]->refs, 1);
    ck_assert_uint_eq(b[1]->refs, 1);
    sock_buf_unref(b[0]);
    sock_buf_unref(b[1]);
    model_destroy(&m);
}
END_TEST

/* ---- Random ------------------------------------------------------------- */

#define NBUFS 9

static const size_t buf_sizes[NBUFS] = {
    1, 100, COPY_BELOW - 1, COPY_BELOW, 300, 4000, CHUNK, CHUNK + 1, 70000,
};

/* A frame header of 0..14 bytes (hlen 0 as the handshake response has). */
static size_t
rand_hdr(uint64_t *rs, uint8_t *hdr)
{
    size_t hlen = test_rand(rs) % 8 == 0 ? 0 : 2 + test_rand(rs) % 13;

    fill_rand(rs, hdr, hlen);
    return hlen;
}

static void
rand_append(uint64_t *rs, struct sendq *q, struct model *m, sock_buf **bufs,
            const uint8_t *src)
{
    uint8_t hdr[14];
    size_t hlen = rand_hdr(rs, hdr);
    unsigned r = (unsigned)(test_rand(rs) % 100);
    size_t len, at;
    int i;

    if (r < 45) {
        len = test_rand(rs) % 300;              /* small, copied */
    } else if (r < 55) {
        len = test_rand(rs) % (CHUNK + 1);      /* up to a chunk */
    } else if (r < 65) {
        len = CHUNK + 1 + test_rand(rs) % 30000; /* large, own segment */
    } else {
        i = (int)(test_rand(rs) % NBUFS);
        push_buf(q, m, hdr, hlen, bufs[i], i);
        return;
    }
    at = test_rand(rs) % (65536 - len);
    push(q, m, hdr, hlen, src + at, len);
}

/* One call's take: none, an error, a few bytes, some, or all. */
static ssize_t
rand_take(uint64_t *rs)
{
    unsigned r = (unsigned)(test_rand(rs) % 100);

    if (r < 15)
        return 0;
    if (r < 17)
        return -EPIPE;
    if (r < 40)
        return 1 + (ssize_t)(test_rand(rs) % 16);
    if (r < 70)
        return 1 + (ssize_t)(test_rand(rs) % 40000);
    return ACCEPT_ALL;
}

START_TEST(test_random_partial_writes)
{
    struct sendq q;
    struct model m;
    struct fake f;
    uint64_t rs = 0x9e3779b97f4a7c15ULL + (uint64_t)_i;
    uint8_t *src = malloc(65536);
    sock_buf *bufs[NBUFS];
    int rcs[2] = { 0, 0 }, errors = 0;
    size_t others = sendq_total_bytes(); /* queues of earlier tests */

    ck_assert_ptr_nonnull(src);
    fill_rand(&rs, src, 65536);
    for (int i = 0; i < NBUFS; i++)
        bufs[i] = buf_rand(&rs, buf_sizes[i]);
    sendq_init(&q);
    model_init(&m);
    fake_init(&f, &m, &q, NULL, 0);
    for (int round = 0; round < 5000; round++) {
        int nops = (int)(test_rand(&rs) % 4);
        int max_calls = 1 + (int)(test_rand(&rs) % 4);
        ssize_t script[4];
        int rc;

        for (int i = 0; i < nops; i++)
            rand_append(&rs, &q, &m, bufs, src);
        /* The process-wide count (max_send_bytes) follows every change. */
        ck_assert_uint_eq(sendq_total_bytes(), others + q.bytes);
        for (int i = 0; i < 4; i++)
            script[i] = rand_take(&rs);
        fake_script(&f, script, 4, ACCEPT_ALL);
        rc = flush_checked(&q, &f, max_calls);
        if (rc < 0)
            errors++;
        else
            rcs[rc]++;
        for (int i = 0; i < NBUFS; i++)
            ck_assert_uint_eq(bufs[i]->refs, model_refs(&m, i));
        ck_assert_uint_eq(sendq_total_bytes(), others + q.bytes);
        if (test_rand(&rs) % 300 == 0) {
            sendq_clear(&q);
            ck_assert_uint_eq(sendq_total_bytes(), others);
            model_discard(&m);
            for (int i = 0; i < NBUFS; i++)
                ck_assert_uint_eq(bufs[i]->refs, 1);
        }
        /* Drain a queue that grew large, as a fast peer would. */
        if (q.bytes > (256u << 10) || m.npend > MAX_PENDING / 2) {
            fake_script(&f, NULL, 0, ACCEPT_ALL);
            ck_assert_int_eq(flush_checked(&q, &f, INT_MAX), 0);
        }
        if (m.off > (1u << 20))
            model_compact(&m);
    }
    /* Every outcome was seen, or the test proves less than it claims. */
    ck_assert_int_gt(rcs[0], 100);
    ck_assert_int_gt(rcs[1], 100);
    ck_assert_int_gt(errors, 10);
    fake_script(&f, NULL, 0, ACCEPT_ALL);
    ck_assert_int_eq(flush_checked(&q, &f, INT_MAX), 0);
    for (int i = 0; i < NBUFS; i++) {
        ck_assert_uint_eq(bufs[i]->refs, 1);
        sock_buf_unref(bufs[i]);
    }
    sendq_clear(&q);
    model_destroy(&m);
    free(src);
}
END_TEST

static Suite *
sendq_suite(void)
{
    Suite *s = suite_create("sendq");
    TCase *basic = tcase_create("basic");
    TCase *flow = tcase_create("flow");
    TCase *bufs = tcase_create("bufs");
    TCase *rnd = tcase_create("random");

    tcase_add_test(basic, test_empty);
    tcase_add_test(basic, test_small_frames_pack);
    tcase_add_test(basic, test_large_frame_own_segment);
    tcase_add_test(basic, test_partial_tail_reused);
    tcase_add_test(basic, test_boundary_writes);
    suite_add_tcase(s, basic);

    tcase_add_test(flow, test_eagain_keeps_all);
    tcase_add_test(flow, test_error_returned);
    tcase_add_test(flow, test_max_calls_bound);
    suite_add_tcase(s, flow);

    tcase_add_test(bufs, test_buf_by_reference);
    tcase_add_test(bufs, test_small_buf_copied);
    tcase_add_test(bufs, test_buf_dropped_on_clear);
    tcase_add_test(bufs, test_many_segments);
    suite_add_tcase(s, bufs);

    /* Four seeds, each 5000 rounds. */
    tcase_add_loop_test(rnd, test_random_partial_writes, 0, 4);
    tcase_set_timeout(rnd, 120);
    suite_add_tcase(s, rnd);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(sendq_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
