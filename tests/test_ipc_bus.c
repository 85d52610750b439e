/*
 * test_ipc_bus.c: tests for ipc/bus.c and ipc/bus_outq.c. The queue is
 * tested in memory. The bus is tested with real AF_UNIX sockets in a
 * mkdtemp directory and real libev loops, several buses in one process
 * (the module's own test; the mesh of real workers is the integration
 * tests'): order and exactly-once delivery, large frames, fan-out, a peer
 * that never reads, unknown and removed peers, lazy connect with retry,
 * rejected hellos and credentials, coalesced writes, the socket file's
 * life, and a throughput figure that is printed, not asserted. Every
 * loop run has a deadline.
 */
#include "bus.h"

#include <check.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus_outq.h"
#include "common.h"
#include "log.h"
#include "testutil.h"

#define KEY(gen, slot) ((uint32_t)(gen) << 8 | (slot))
#define KA KEY(1, 1)
#define KB KEY(1, 2)
#define KC KEY(1, 3)
#define KS KEY(1, 4)
#define MAX_SENDERS 8

/* ---- Fixtures ---------------------------------------------------------- */

struct env {
    char dir[64];
    struct ev_loop *loop;
};

/* What one bus received: per-sender sequence checks and the last message. */
struct rx {
    uint64_t n;
    uint32_t next[MAX_SENDERS];  /* next sequence number, by m->from */
    uint64_t bad;                /* out of order or corrupt */
    uint64_t bytes;
    uint8_t last_type;
    uint64_t last_to, last_from;
    uint32_t last_app_type;
    char last_topic[64];
    size_t last_topic_len;
};

static void
env_init(struct env *e)
{
    strcpy(e->dir, "/tmp/sock-bus-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(e->dir));
    e->loop = ev_loop_new(0);
    ck_assert_ptr_nonnull(e->loop);
}

static void
env_destroy(struct env *e)
{
    ev_loop_destroy(e->loop);
    /* Every bus unlinked its socket: the directory must be empty. */
    ck_assert_int_eq(rmdir(e->dir), 0);
}

static void
bus_path(const struct env *e, uint32_t key, char *out, size_t len)
{
    snprintf(out, len, "%s/bus-%u-%u.sock", e->dir, key >> 8, key & 0xff);
}

/* Payload: u32 sequence, then bytes derived from it. */
static void
fill_payload(uint8_t *p, size_t len, uint32_t seq)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seq * 7 + i);
    if (len >= 4)
        memcpy(p, &seq, 4);
}

static bool
payload_ok(const uint8_t *p, size_t len, uint32_t seq)
{
    for (size_t i = 4; i < len; i++)
        if (p[i] != (uint8_t)(seq * 7 + i))
            return false;
    return true;
}

static void
rx_deliver(void *ctx, const struct bus_msg *m)
{
    struct rx *rx = ctx;
    uint32_t seq;

    /* A bus that should get nothing did. Not ck_assert: each of those
       writes a checkpoint, too slow for every message. */
    if (rx == NULL)
        abort();
    rx->n++;
    rx->bytes += m->len;
    rx->last_type = m->type;
    rx->last_to = m->to;
    rx->last_from = m->from;
    rx->last_app_type = m->app_type;
    rx->last_topic_len = MIN(m->topic_len, sizeof(rx->last_topic));
    memcpy(rx->last_topic, m->topic, rx->last_topic_len);
    if (m->from >= MAX_SENDERS || m->len < 4) {
        rx->bad++;
        return;
    }
    memcpy(&seq, m->data, 4);
    if (seq != rx->next[m->from] || m->app_type != seq ||
        !payload_ok(m->data, m->len, seq))
        rx->bad++;
    rx->next[m->from] = seq + 1;
}

static const struct bus_ops rx_ops = { .deliver = rx_deliver };

static struct bus *
mk_bus(struct env *e, struct ev_loop *loop, uint32_t key, struct rx *rx)
{
    char path[128], err[256] = "";
    struct bus *b;

    bus_path(e, key, path, sizeof(path));
    b = bus_new(loop, key, path, &rx_ops, rx, err, sizeof(err));
    ck_assert_msg(b != NULL, "bus_new: %s", err);
    return b;
}

static void
add_peer(struct env *e, struct bus *b, uint32_t key, pid_t pid)
{
    char path[128];

    bus_path(e, key, path, sizeof(path));
    ck_assert_int_eq(bus_peer_add(b, key, pid, path), 0);
}

/* Queues message seq from sender `from` (its index) to a peer. */
static int
send_seq(struct bus *b, uint32_t to_key, uint8_t from, uint32_t seq,
         size_t len)
{
    static uint8_t *buf;
    static size_t cap;
    struct bus_msg m = {
        .type = BUS_SEND, .to = 1000 + seq, .from = from, .app_type = seq,
        .len = (uint32_t)len,
    };

    if (len > cap) {
        free(buf);
        buf = malloc(len);
        ck_assert_ptr_nonnull(buf);
        cap = len;
    }
    fill_payload(buf, len, seq);
    m.data = buf;
    return bus_send(b, to_key, &m);
}

/* ---- Running loops with deadlines -------------------------------------- */

struct waiter {
    ev_prepare prep;
    ev_timer deadline;
    bool (*done)(void *arg);
    void *arg;
    bool timed_out;
};

static void
waiter_on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct waiter *wt = container_of(w, struct waiter, prep);

    (void)revents;
    if (wt->done != NULL && wt->done(wt->arg))
        ev_break(loop, EVBREAK_ONE);
}

static void
waiter_on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct waiter *wt = container_of(w, struct waiter, deadline);

    (void)revents;
    wt->timed_out = true;
    ev_break(loop, EVBREAK_ONE);
}

/*
 * Runs the loop until done(arg) holds (checked before every poll) or
 * `seconds` pass. With done NULL it just runs for that long. Returns
 * whether done held.
 */
static bool
run_until(struct ev_loop *loop, bool (*done)(void *), void *arg,
          double seconds)
{
    struct waiter wt = { .done = done, .arg = arg };

    ev_now_update(loop);
    ev_prepare_init(&wt.prep, waiter_on_prepare);
    ev_prepare_start(loop, &wt.prep);
    ev_timer_init(&wt.deadline, waiter_on_deadline, seconds, 0.);
    ev_timer_start(loop, &wt.deadline);
    ev_run(loop, 0);
    ev_prepare_stop(loop, &wt.prep);
    ev_timer_stop(loop, &wt.deadline);
    return !wt.timed_out;
}

static void
run_for(struct ev_loop *loop, double seconds)
{
    run_until(loop, NULL, NULL, seconds);
}

struct count_goal {
    const struct rx *rx;
    uint64_t n;
};

static bool
reached(void *arg)
{
    const struct count_goal *g = arg;

    return g->rx->n >= g->n;
}

static bool
wait_rx(struct ev_loop *loop, const struct rx *rx, uint64_t n, double sec)
{
    struct count_goal g = { rx, n };

    return run_until(loop, reached, &g, sec);
}

static size_t
frame_size(size_t payload_len)
{
    return BUS_WIRE_HEADER + payload_len;
}

/* ---- bus_outq ---------------------------------------------------------- */

static struct bus_msg
msg_of_len(uint32_t len, uint32_t app_type)
{
    static uint8_t data[200000];
    struct bus_msg m = {
        .type = BUS_SEND, .app_type = app_type, .data = data, .len = len,
    };

    return m;
}

/* Concatenates what the queue would write, for comparison. */
static size_t
outq_gather(const struct bus_outq *q, uint8_t *out)
{
    struct iovec iov[64];
    int n = bus_outq_iov(q, iov, 64);
    size_t len = 0;

    for (int i = 0; i < n; i++) {
        memcpy(out + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    return len;
}

START_TEST(test_outq_pack_and_consume)
{
    struct bus_outq q;
    struct iovec iov[8];
    uint8_t out[1024], want[1024];
    size_t wl = 0;

    bus_outq_init(&q);
    ck_assert_int_eq(bus_outq_iov(&q, iov, 8), 0);
    for (uint32_t i = 0; i < 10; i++) {
        struct bus_msg m = msg_of_len(i * 3, i);

        ck_assert_int_eq(bus_outq_append_msg(&q, &m), 0);
        wl += bus_wire_encode(want + wl, &m);
    }
    /* Small frames share one chunk: one iovec for all ten. */
    ck_assert_int_eq(bus_outq_iov(&q, iov, 8), 1);
    ck_assert_uint_eq(q.bytes, wl);
    ck_assert_uint_eq(outq_gather(&q, out), wl);
    ck_assert_mem_eq(out, want, wl);
    bus_outq_consume(&q, 5);
    ck_assert_uint_eq(q.bytes, wl - 5);
    ck_assert_uint_eq(outq_gather(&q, out), wl - 5);
    ck_assert_mem_eq(out, want + 5, wl - 5);
    bus_outq_consume(&q, wl - 5);
    ck_assert_uint_eq(q.bytes, 0);
    ck_assert_ptr_null(q.head);
    ck_assert_int_eq(bus_outq_iov(&q, iov, 8), 0);
    ck_assert_uint_eq(bus_outq_clear(&q), 0);
}
END_TEST

START_TEST(test_outq_shared_and_large)
{
    struct bus_outq q1, q2;
    struct bus_msg big = msg_of_len(100000, 1), small = msg_of_len(10, 2);
    struct bus_frame *f = bus_frame_new(&big);
    struct iovec iov[8];

    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(bus_frame_len(f), frame_size(100000));
    bus_outq_init(&q1);
    bus_outq_init(&q2);
    ck_assert_int_eq(bus_outq_append_msg(&q1, &small), 0);
    ck_assert_int_eq(bus_outq_append_frame(&q1, f), 0);
    ck_assert_int_eq(bus_outq_append_frame(&q2, f), 0);
    ck_assert_int_eq(bus_outq_append_msg(&q1, &small), 0);
    bus_frame_unref(f);   /* the queues keep it alive */
    ck_assert_int_eq(bus_outq_iov(&q1, iov, 8), 3);
    /* Both queues point at the same bytes: no copy per peer. */
    ck_assert_ptr_eq(iov[1].iov_base, bus_frame_data(f));
    ck_assert_int_eq(bus_outq_iov(&q2, iov + 4, 4), 1);
    ck_assert_ptr_eq(iov[4].iov_base, iov[1].iov_base);
    ck_assert_uint_eq(q1.bytes, 2 * frame_size(10) + frame_size(100000));
    /* A frame larger than a chunk is one segment of its own. */
    ck_assert_int_eq(bus_outq_append_msg(&q2, &big), 0);
    ck_assert_int_eq(bus_outq_iov(&q2, iov, 8), 2);
    ck_assert_uint_eq(iov[1].iov_len, frame_size(100000));
    ck_assert_uint_eq(bus_outq_clear(&q1), 3);
    ck_assert_uint_eq(bus_outq_clear(&q2), 2);
}
END_TEST

/* A connection broke mid-frame: that frame goes, the next ones stay whole. */
START_TEST(test_outq_trim)
{
    struct bus_outq q;
    struct bus_msg a = msg_of_len(20, 1), b = msg_of_len(30, 2);
    struct bus_frame *f;
    uint8_t out[512], want[512];
    size_t la = frame_size(20), lb = frame_size(30);

    bus_outq_init(&q);
    ck_assert(!bus_outq_trim(&q));
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(bus_outq_append_msg(&q, i == 1 ? &b : &a), 0);
    ck_assert(!bus_outq_trim(&q));        /* nothing written yet */
    bus_outq_consume(&q, la);
    ck_assert(!bus_outq_trim(&q));        /* at a boundary */
    ck_assert_uint_eq(q.bytes, lb + la);
    bus_outq_consume(&q, 7);              /* 7 bytes into b */
    ck_assert(bus_outq_trim(&q));
    ck_assert_uint_eq(q.bytes, la);
    bus_wire_encode(want, &a);
    ck_assert_uint_eq(outq_gather(&q, out), la);
    ck_assert_mem_eq(out, want, la);
    ck_assert(!bus_outq_trim(&q));
    /* Cleared mid-frame: that frame counts as dropped too. */
    bus_outq_consume(&q, 1);
    ck_assert_uint_eq(bus_outq_clear(&q), 1);

    /* A shared frame half written goes whole; the rest stays. */
    f = bus_frame_new(&b);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(bus_outq_append_frame(&q, f), 0);
    bus_frame_unref(f);
    ck_assert_int_eq(bus_outq_append_msg(&q, &a), 0);
    bus_outq_consume(&q, lb - 1);
    ck_assert(bus_outq_trim(&q));
    ck_assert_uint_eq(q.bytes, la);
    ck_assert_uint_eq(bus_outq_clear(&q), 1);
}
END_TEST

/* ---- Delivery ---------------------------------------------------------- */

START_TEST(test_directed_in_order)
{
    struct env e;
    struct rx ra = { 0 }, rb = { 0 };
    struct bus *a, *b;
    struct bus_stats sa, sb;
    uint64_t bytes = 0;
    const uint32_t n = 10000;

    env_init(&e);
    a = mk_bus(&e, e.loop, KA, &ra);
    b = mk_bus(&e, e.loop, KB, &rb);
    add_peer(&e, a, KB, 0);
    add_peer(&e, b, KA, getpid());
    /* Lazy: registering connects nothing. */
    run_for(e.loop, 0.05);
    ck_assert_uint_eq(bus_stats(a).connects, 0);
    for (uint32_t i = 0; i < n; i++) {
        size_t len = 4 + (i * 37) % 197;

        ck_assert_int_eq(send_seq(a, KB, 1, i, len), 0);
        bytes += frame_size(len);
    }
    ck_assert(wait_rx(e.loop, &rb, n, 10));
    run_for(e.loop, 0.1);                 /* nothing more comes */
    ck_assert_uint_eq(rb.n, n);
    ck_assert_uint_eq(rb.bad, 0);
    ck_assert_uint_eq(rb.next[1], n);
    ck_assert_uint_eq(rb.last_type, BUS_SEND);
    ck_assert_uint_eq(rb.last_to, 1000 + n - 1);
    sa = bus_stats(a);
    sb = bus_stats(b);
    ck_assert_uint_eq(sa.sent, n);
    ck_assert_uint_eq(sa.connects, 1);
    ck_assert_uint_eq(sa.bytes_out, BUS_WIRE_HEADER + bytes);
    ck_assert_uint_eq(sa.dropped_full + sa.dropped_unknown +
                      sa.dropped_closed + sa.errors, 0);
    ck_assert_uint_eq(sb.received, n);
    ck_assert_uint_eq(sb.bytes_in, sa.bytes_out);
    ck_assert_uint_eq(sb.rejects + sb.errors, 0);
    ck_assert_int_eq(bus_peer_queued(a, KB), 0);
    ck_assert_uint_eq(ra.n, 0);
    bus_free(a);
    bus_free(b);
    env_destroy(&e);
}
END_TEST

/* Both directions at once, each on its own connection. */
START_TEST(test_both_directions)
{
    struct env e;
    struct rx ra = { 0 }, rb = { 0 };
    struct bus *a, *b;

    env_init(&e);
    a = mk_bus(&e, e.loop, KA, &ra);
    b = mk_bus(&e, e.loop, KB, &rb);
    add_peer(&e, a, KB, getpid());
    add_peer(&e, b, KA, getpid());
    for (uint32_t i = 0; i < 1000; i++) {
        ck_assert_int_eq(send_seq(a, KB, 1, i, 50), 0);
        ck_assert_int_eq(send_seq(b, KA, 2, i, 60), 0);
    }
    ck_assert(wait_rx(e.loop, &rb, 1000, 10));
    ck_assert(wait_rx(e.loop, &ra, 1000, 10));
    ck_assert_uint_eq(ra.bad + rb.bad, 0);
    ck_assert_uint_eq(ra.next[2], 1000);
    ck_assert_uint_eq(rb.next[1], 1000);
    ck_assert_uint_eq(bus_stats(a).connects, 1);
    ck_assert_uint_eq(bus_stats(b).connects, 1);
    bus_free(a);
    bus_free(b);
    env_destroy(&e);
}
END_TEST

/* Frames around and far over the read buffer, byte-exact. */
START_TEST(test_large_frames)
{
    static const size_t sizes[] = {
        65536 - BUS_WIRE_HEADER - 1, 65536 - BUS_WIRE_HEADER,
        65536 - BUS_WIRE_HEADER + 1, 4, 300000, 70000, 5, 1 << 20, 65536,
        131072, 9,
    };
    struct env e;
    struct rx rb = { 0 };
    struct bus *a, *b;
    uint64_t total = 0;
    uint32_t seq = 0;

    env_init(&e);
    a = mk_bus(&e, e.loop, KA, NULL);
    b = mk_bus(&e, e.loop, KB, &rb);
    add_peer(&e, a, KB, 0);
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            ck_assert_int_eq(send_seq(a, KB, 1, seq++, sizes[i]), 0);
            total += sizes[i];
        }
        /* Half of the rounds go out while the reader is mid-frame. */
        if (round % 2 == 0)
            run_for(e.loop, 0.001);
    }
    ck_assert(wait_rx(e.loop, &rb, seq, 20));
    ck_assert_uint_eq(rb.n, seq);
    ck_assert_uint_eq(rb.bad, 0);
    ck_assert_uint_eq(rb.bytes, total);
    bus_free(a);
    bus_free(b);
    env_destroy(&e);
}
END_TEST

START_TEST(test_send_all)
{
    struct env e;
    struct rx rb = { 0 }, rc = { 0 };
    struct bus *a, *b, *c;
    uint8_t data[1000];
    struct bus_stats sa;

    env_init(&e);
    a = mk_bus(&e, e.loop, KA, NULL);
    b = mk_bus(&e, e.loop, KB, &rb);
    c = mk_bus(&e, e.loop, KC, &rc);
    /* No peers: nothing to do, not an error. */
    {
        struct bus_msg m = { .type = BUS_BROADCAST, .data = data, .len = 4 };

        ck_assert_int_eq(bus_send_all(a, &m), 0);
    }
    add_peer(&e, a, KB, 0);
    add_peer(&e, a, KC, 0);
    for (uint32_t i = 0; i < 100; i++) {
        /* Alternately below and above the sharing threshold. */
        size_t len = i % 2 ? 1000 : 20;
        struct bus_msg m = {
            .type = i % 3 == 2 ? BUS_BROADCAST : BUS_PUBLISH,
            .from = 3, .app_type = i, .topic = i % 3 != 2 ? "room/1" : NULL,
            .topic_len = i % 3 != 2 ? 6 : 0, .data = data,
            .len = (uint32_t)len,
        };

        fill_payload(data, len, i);
        ck_assert_int_eq(bus_send_all(a, &m), 0);
    }
    ck_assert(wait_rx(e.loop, &rb, 100, 10));
    ck_assert(wait_rx(e.loop, &rc, 100, 10));
    ck_assert_uint_eq(rb.bad + rc.bad, 0);
    ck_assert_uint_eq(rb.next[3], 100);
    ck_assert_uint_eq(rc.next[3], 100);
    /* The last one (99) was a publish with its topic. */
    ck_assert_uint_eq(rc.last_type, BUS_PUBLISH);
    ck_assert_uint_eq(rc.last_topic_len, 6);
    ck_assert_mem_eq(rc.last_topic, "room/1", 6);
    sa = bus_stats(a);
    ck_assert_uint_eq(sa.sent, 200);
    ck_assert_uint_eq(sa.connects, 2);
    bus_free(a);
    bus_free(b);
    bus_free(c);
    env_destroy(&e);
}
END_TEST

/* ---- Bounded queues ---------------------------------------------------- */

/*
 * S's loop never runs: the kernel takes what fits in the socket buffers,
 * then A's queue for S fills to its cap and sends to S fail with -ENOBUFS,
 * while sends to B keep flowing. Every byte is accounted for.
 */
static void
stuck_peer(bool fan_out)
{
    struct env e;
    struct ev_loop *frozen = ev_loop_new(0);
    struct rx rb = { 0 };
    struct bus *a, *b, *s;
    struct bus_stats st;
    const size_t len = 1000, fs = frame_size(len);
    uint64_t accepted = 0, refused = 0;
    ssize_t queued;
    int rc = 0;

    env_init(&e);
    a = mk_bus(&e, e.loop, KA, NULL);
    b = mk_bus(&e, e.loop, KB, &rb);
    s = mk_bus(&e, frozen, KS, NULL);
    add_peer(&e, a, KS, 0);
    for (uint32_t i = 0; rc == 0 && i < 100000; i++) {
        rc = send_seq(a, KS, 1, i, len);
        accepted += rc == 0;
        if (i % 64 == 0)
            run_for(e.loop, 0.001);
    }
    ck_assert_int_eq(rc, -ENOBUFS);
    refused = 1;
    queued = bus_peer_queued(a, KS);
    ck_assert_int_le(queued, BUS_PEER_CAP_DEFAULT);
    ck_assert_int_gt(queued, BUS_PEER_CAP_DEFAULT - fs);
    /* The kernel took some before the queue filled. */
    ck_assert_uint_gt(accepted * fs, (uint64_t)queued);

    add_peer(&e, a, KB, 0);
    for (uint32_t i = 0; i < 200; i++) {
        /* As large as the one S refused, so S has no room for it. */
        if (fan_out) {
            uint8_t data[1000];
            struct bus_msg m = {
                .type = BUS_BROADCAST, .from = 2, .app_type = i,
                .data = data, .len = len,
            };

            fill_payload(data, len, i);
            ck_assert_int_eq(bus_send_all(a, &m), -ENOBUFS);
        } else {
            ck_assert_int_eq(send_seq(a, KB, 2, i, len), 0);
            ck_assert_int_eq(send_seq(a, KS, 1, 0, len), -ENOBUFS);
        }
        refused++;
        if (i % 50 == 0)
            run_for(e.loop, 0.001);
    }
    ck_assert(wait_rx(e.loop, &rb, 200, 10));
    ck_assert_uint_eq(rb.bad, 0);
    ck_assert_int_eq(bus_peer_queued(a, KS), queued);
    st = bus_stats(a);
    ck_assert_uint_eq(st.dropped_full, refused);
    ck_assert_uint_eq(st.sent, accepted + 200);
    /* Two hellos, S's bytes that left, B's bytes. */
    ck_assert_uint_eq(st.bytes_out, 2 * BUS_WIRE_HEADER +
                      accepted * fs - (uint64_t)queued +
                      200 * fs);
    bus_free(a);
    bus_free(b);
    bus_free(s);
    ev_loop_destroy(frozen);
    env_destroy(&e);
}

START_TEST(test_stuck_peer_directed)
{
    stuck_peer(false);
}
END_TEST

START_TEST(test_stuck_peer_fan_out)
{
    stuck_peer(true);
}
END_TEST

START_TEST(test_peer_cap_setting)
{
    struct env e;
    struct bus *a;
    int i;

    env_init(&e);
    a = mk_bus(&e, e.loop, KA, NULL);
    add_peer(&e, a, KB, 0);               /* nobody listens there */
    bus_set_peer_cap(a, 10 * frame_size(100));
    for (i = 0; i < 10; i++)
        ck_assert_int_eq(send_seq(a, KB, 1, (uint32_t)i, 100), 0);
    ck_assert_int_eq(send_seq(a, KB, 1, 10, 100), -ENOBUFS);
    /* Not even a small one: the queue is exactly full. */
    ck_assert_int_eq(send_seq(a, KB, 1, 10, 4), -ENOBUFS);
    ck_assert_int_eq(bus_peer_queued(a, KB), 10 * frame_size(100));
    ck_assert_uint_eq(bus_stats(a).dropped_full, 2);
    bus_free(a);
    env_destroy(&e);
}
END_TEST

/* ---- Peers ------------------------------------------------------------- */

START_TEST(test_unknown_and_removed)
{
    struct env e;
    struct bus *a;
    struct bus_stats st;
    char path[200];
    static const uint8_t zeros[100];
    struct bus_msg m = { .type = BUS_SEND, .data = zeros, .len = 0 };

    env_init(&e);
    a = mk_bus(&e, e.loop, KA, NULL);
    ck_assert_int_eq(send_seq(a, KB, 1, 0, 10), -ENOENT);
    ck_assert_int_eq(bus_peer_queued(a, KB), -ENOENT);
    add_peer(&e, a, KB, 0);
    for (uint32_t i = 0; i < 3; i++)
        ck_assert_int_eq(send_seq(a, KB, 1, i, 10), 0);
    bus_peer_remove(a, KB);               /* with 3 queued */
    bus_peer_remove(a, KB);               /* unknown: ignored */
    ck_assert_int_eq(send_seq(a, KB, 1, 3, 10), -ENOENT);
    st = bus_stats(a);
    ck_assert_uint_eq(st.dropped_unknown, 2);
    ck_assert_uint_eq(st.dropped_closed, 3);
    ck_assert_uint_eq(st.sent, 3);

    /* Registration rules. */
    bus_path(&e, KB, path, sizeof(path));
    ck_assert_int_eq(bus_peer_add(a, KB, 42, path), 0);
    ck_assert_int_eq(bus_peer_add(a, KB, 42, path), 0);
    ck_assert_int_eq(bus_peer_add(a, KB, 43, path), -EEXIST);
    ck_assert_int_eq(bus_peer_add(a, KB, 42, "/elsewhere"), -EEXIST);
    ck_assert_int_eq(bus_peer_add(a, KA, 0, path), -EINVAL);
    memset(path, 'x', sizeof(path) - 1);
    path[sizeof(path) - 1] = '\0';
    ck_assert_int_eq(bus_peer_add(a, KC, 0, path), -ENAMETOOLONG);

    /* Message rules. */
    m.type = BUS_HELLO;
    ck_assert_int_eq(bus_send(a, KB, &m), -EINVAL);
    ck_assert_int_eq(bus_send_all(a, &m), -EINVAL);
    m.type = BUS_ADMIN_REPLY + 1;
    ck_assert_int_eq(bus_send(a, KB, &m), -EINVAL);
    m.type = BUS_SEND;
    bus_set_max_frame(a, 100);
    m.len = 100 - BUS_WIRE_HEADER;
    ck_assert_int_eq(bus_send(a, KB, &m), 0);
    m.len++;
    ck_assert_int_eq(bus_send(a, KB, &m), -EMSGSIZE);
    ck_assert_int_eq(bus_send_all(a, &m), -EMSGSIZE);
    bus_free(a);
    env_destroy(&e);
}
END_TEST

/* Many peers: the table grows and finds each one. */
START_TEST(test_many_peers)
{
    struct env e;
    struct bus *a;
    char path[128];

    env_init(&e);
    a = mk_bus(&e, e.loop, KA, NULL);
    for (uint32_t k = KEY(2, 0); k < KEY(4, 44); k++) {
        bus_path(&e, k, path, sizeof(path));
        ck_assert_int_eq(bus_peer_add(a, k, 0, path), 0);
    }
    for (uint32_t k = KEY(2, 0); k < KEY(4, 44); k++)
        ck_assert_int_eq(bus_peer_queued(a, k), 0);
    for (uint32_t k = KEY(2, 0); k < KEY(4, 44); k += 2)
        bus_peer_remove(a, k);
    for (uint32_t k = KEY(2, 0); k < KEY(4, 44); k++)
        ck_assert_int_eq(bus_peer_queued(a, k), k % 2 ? 0 : -ENOENT);
    bus_free(a);
    env_destroy(&e);
}
END_TEST

/* Nobody listens yet: the sends wait, bounded, and arrive once it does. */
START_TEST(test_late_listener)
{
    struct env e;
    struct rx rb = { 0 };
    struct bus *a, *b;

    env_init(&e);
    a = mk_bus(&e, e.loop, KA, NULL);
    add_peer(&e, a, KB, 0);
    for (uint32_t i = 0; i < 100; i++)
        ck_assert_int_eq(send_seq(a, KB, 1, i, 30), 0);
    run_for(e.loop, 0.35);                /* attempts at 0, .1, .3 s */
    ck_assert_uint_eq(bus_stats(a).connects, 0);
    ck_assert_int_eq(bus_peer_queued(a, KB), 100 * frame_size(30));
    for (uint32_t i = 100; i < 150; i++)
        ck_assert_int_eq(send_seq(a, KB, 1, i, 30), 0);
    b = mk_bus(&e, e.loop, KB, &rb);
    ck_assert(wait_rx(e.loop, &rb, 150, 5));
    ck_assert_uint_eq(rb.bad, 0);
    ck_assert_uint_eq(rb.next[1], 150);
    ck_assert_uint_eq(bus_stats(a).connects, 1);
    ck_assert_int_eq(bus_peer_queued(a, KB), 0);
    bus_free(a);
    bus_free(b);
    env_destroy(&e);
}
END_TEST

static bool
connects_at_least_2(void *arg)
{
    return bus_stats(arg).connects >= 2;
}

/* The peer dies and comes back at the same path: we reconnect. */
START_TEST(test_peer_restart)
{
    struct env e;
    struct rx rb = { 0 }, rb2 = { 0 };
    struct bus *a, *b;

    env_init(&e);
    a = mk_bus(&e, e.loop, KA, NULL);
    b = mk_bus(&e, e.loop, KB, &rb);
    add_peer(&e, a, KB, 0);
    for (uint32_t i = 0; i < 10; i++)
        ck_assert_int_eq(send_seq(a, KB, 1, i, 30), 0);
    ck_assert(wait_rx(e.loop, &rb, 10, 5));
    bus_free(b);
    run_for(e.loop, 0.05);                /* A sees the EOF */
    for (uint32_t i = 0; i < 10; i++)
        ck_assert_int_eq(send_seq(a, KB, 1, i, 30), 0);
    run_for(e.loop, 0.05);
    b = mk_bus(&e, e.loop, KB, &rb2);
    ck_assert(wait_rx(e.loop, &rb2, 10, 5));
    ck_assert_uint_eq(rb2.bad, 0);
    ck_assert(run_until(e.loop, connects_at_least_2, a, 1));
    ck_assert_uint_eq(bus_stats(a).connects, 2);
    ck_assert_uint_eq(bus_stats(a).errors, 0);
    ck_assert_uint_eq(bus_stats(a).dropped_closed, 0);
    bus_free(a);
    bus_free(b);
    env_destroy(&e);
}
END_TEST

static bool
dropped_closed_1(void *arg)
{
    return bus_stats(arg).dropped_closed >= 1;
}

/*
 * The receiver (a raw socket here) goes away in the middle of a large
 * frame. The next connection must start with a hello and whole frames:
 * the rest of the broken frame is dropped, the frame behind it is not.
 */
START_TEST(test_broken_mid_frame)
{
    struct env e;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct bus *a;
    struct bus_msg m;
    uint8_t buf[4096];
    size_t have = 0;
    ssize_t n, r;
    int lfd, fd;

    env_init(&e);
    a = mk_bus(&e, e.loop, KA, NULL);
    bus_path(&e, KS, sa.sun_path, sizeof(sa.sun_path));
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(lfd, 8), 0);
    add_peer(&e, a, KS, 0);
    ck_assert_int_eq(send_seq(a, KS, 1, 0, 4 << 20), 0);
    ck_assert_int_eq(send_seq(a, KS, 1, 1, 100), 0);
    run_for(e.loop, 0.02);
    fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(read(fd, buf, 100), 100);  /* hello and a bit */
    close(fd);
    ck_assert(run_until(e.loop, dropped_closed_1, a, 5));
    ck_assert_uint_eq(bus_stats(a).dropped_closed, 1);
    ck_assert_int_eq(bus_peer_queued(a, KS), frame_size(100));
    /* Reconnected after the backoff: hello, then frame 1 whole. */
    fd = -1;
    for (int i = 0; i < 200 && fd < 0; i++) {
        run_for(e.loop, 0.01);
        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    }
    ck_assert_int_ge(fd, 0);
    run_for(e.loop, 0.02);
    while (have < BUS_WIRE_HEADER + frame_size(100)) {
        n = recv(fd, buf + have, sizeof(buf) - have, MSG_DONTWAIT);
        ck_assert_int_gt(n, 0);
        have += (size_t)n;
    }
    ck_assert_uint_eq(have, BUS_WIRE_HEADER + frame_size(100));
    r = bus_wire_decode(&m, buf, have, 1 << 20);
    ck_assert_int_eq(r, BUS_WIRE_HEADER);
    ck_assert_uint_eq(m.type, BUS_HELLO);
    ck_assert_uint_eq(m.from, KA);
    ck_assert_uint_eq(m.to, KS);
    ck_assert_int_eq(bus_wire_decode(&m, buf + r, have - (size_t)r, 1 << 20),
                     (ssize_t)frame_size(100));
    ck_assert_uint_eq(m.type, BUS_SEND);
    ck_assert_uint_eq(m.app_type, 1);
    ck_assert(payload_ok(m.data, m.len, 1));
    ck_assert_uint_eq(bus_stats(a).connects, 2);
    close(fd);
    close(lfd);
    unlink(sa.sun_path);
    bus_free(a);
    env_destroy(&e);
}
END_TEST

/* ---- Who may talk to us ------------------------------------------------- */

static bool
rejects_at_least_1(void *arg)
{
    return bus_stats(arg).rejects >= 1;
}

static bool
rejects_at_least_2(void *arg)
{
    return bus_stats(arg).rejects >= 2;
}

/*
 * B expects KA's connections from another process: A's are refused at
 * the hello, with what came with it. Registered right, A's next
 * connection gets through.
 */
START_TEST(test_wrong_hello_pid)
{
    struct env e;
    struct rx rb = { 0 };
    struct bus *a, *b;
    char path[128];

    env_init(&e);
    a = mk_bus(&e, e.loop, KA, NULL);
    b = mk_bus(&e, e.loop, KB, &rb);
    add_peer(&e, a, KB, 0);
    add_peer(&e, b, KA, getpid() + 1);
    for (uint32_t i = 0; i < 5; i++)
        ck_assert_int_eq(send_seq(a, KB, 1, i, 30), 0);
    ck_assert(run_until(e.loop, rejects_at_least_1, b, 5));
    run_for(e.loop, 0.02);
    ck_assert_uint_eq(bus_stats(b).rejects, 1);
    ck_assert_uint_eq(bus_stats(b).received, 0);
    ck_assert_uint_eq(rb.n, 0);

    bus_peer_remove(b, KA);
    bus_path(&e, KA, path, sizeof(path));
    ck_assert_int_eq(bus_peer_add(b, KA, getpid(), path), 0);
    for (uint32_t i = 5; i < 10; i++)
        ck_assert_int_eq(send_seq(a, KB, 1, i, 30), 0);
    rb.next[1] = 5;   /* 0..4 went down with the refused connection */
    ck_assert(wait_rx(e.loop, &rb, 5, 5));
    run_for(e.loop, 0.02);
    ck_assert_uint_eq(rb.n, 5);
    ck_assert_uint_eq(rb.bad, 0);
    ck_assert_uint_eq(bus_stats(b).rejects, 1);
    ck_assert_uint_eq(bus_stats(a).connects, 2);
    bus_free(a);
    bus_free(b);
    env_destroy(&e);
}
END_TEST

/*
 * A connects to B before B knows A (membership announcements race), and
 * gets through on the uid alone. When B then learns A's pid and it does
 * not match, that connection is closed too.
 */
START_TEST(test_late_registration)
{
    struct env e;
    struct rx rb = { 0 };
    struct bus *a, *b;

    env_init(&e);
    a = mk_bus(&e, e.loop, KA, NULL);
    b = mk_bus(&e, e.loop, KB, &rb);
    add_peer(&e, a, KB, 0);
    for (uint32_t i = 0; i < 5; i++)
        ck_assert_int_eq(send_seq(a, KB, 1, i, 30), 0);
    ck_assert(wait_rx(e.loop, &rb, 5, 5));
    ck_assert_uint_eq(bus_stats(b).rejects, 0);
    /* Registered right: the connection stays. */
    add_peer(&e, b, KA, getpid());
    run_for(e.loop, 0.02);
    ck_assert_uint_eq(bus_stats(b).rejects, 0);
    ck_assert_uint_eq(bus_stats(a).errors, 0);
    /* Re-registered wrong: it is closed. */
    bus_peer_remove(b, KA);
    add_peer(&e, b, KA, getpid() + 1);
    ck_assert(run_until(e.loop, rejects_at_least_1, b, 5));
    run_for(e.loop, 0.02);
    ck_assert_uint_eq(bus_stats(b).rejects, 1);
    /* A saw it close; what it sends now is refused at each hello. */
    ck_assert_uint_eq(bus_stats(a).connects, 1);
    ck_assert_int_eq(send_seq(a, KB, 1, 5, 30), 0);
    ck_assert(run_until(e.loop, rejects_at_least_2, b, 5));
    ck_assert_uint_eq(rb.n, 5);
    bus_free(a);
    bus_free(b);
    env_destroy(&e);
}
END_TEST

/* B's side of test_reentrant_deliver: echo, and on seq 50, distrust A. */
struct echo {
    struct bus *b;
    struct env *e;
    uint64_t n;
};

static void
echo_deliver(void *ctx, const struct bus_msg *m)
{
    struct echo *ec = ctx;
    struct bus_msg back = *m;
    char path[128];

    ec->n++;
    back.from = 2;
    (void)bus_send(ec->b, KA, &back);
    if (m->app_type == 50) {
        bus_path(ec->e, KA, path, sizeof(path));
        bus_peer_remove(ec->b, KA);
        (void)bus_peer_add(ec->b, KA, getpid() + 1, path);
    }
}

/*
 * The deliver callback sends (the reply goes out with the rest of the
 * iteration's writes) and changes membership so that the connection it
 * is called from is refused: the frames behind it in the same read are
 * not delivered, and nothing is freed under the reader's feet.
 */
START_TEST(test_reentrant_deliver)
{
    static const struct bus_ops echo_ops = { .deliver = echo_deliver };
    struct env e;
    struct rx ra = { 0 };
    struct echo ec = { .e = &e };
    struct bus *a;
    char path[128];

    env_init(&e);
    a = mk_bus(&e, e.loop, KA, &ra);
    bus_path(&e, KB, path, sizeof(path));
    ec.b = bus_new(e.loop, KB, path, &echo_ops, &ec, NULL, 0);
    ck_assert_ptr_nonnull(ec.b);
    add_peer(&e, a, KB, 0);
    add_peer(&e, ec.b, KA, getpid());
    for (uint32_t i = 0; i < 40; i++)
        ck_assert_int_eq(send_seq(a, KB, 1, i, 30), 0);
    ck_assert(wait_rx(e.loop, &ra, 40, 5));
    ck_assert_uint_eq(ra.next[2], 40);
    ck_assert_uint_eq(ra.bad, 0);
    for (uint32_t i = 40; i < 60; i++)
        ck_assert_int_eq(send_seq(a, KB, 1, i, 30), 0);
    ck_assert(run_until(e.loop, rejects_at_least_1, ec.b, 5));
    run_for(e.loop, 0.02);
    ck_assert_uint_eq(ec.n, 51);          /* 0..50, then refused */
    ck_assert_uint_eq(bus_stats(ec.b).rejects, 1);
    /* Echoes 40..50 were still queued when A was removed: dropped. */
    ck_assert_uint_eq(ra.n, 40);
    ck_assert_uint_eq(bus_stats(ec.b).dropped_closed, 11);
    ck_assert_uint_eq(ra.bad, 0);
    bus_free(a);
    bus_free(ec.b);
    env_destroy(&e);
}
END_TEST

static int
raw_connect(const struct env *e, uint32_t key)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    bus_path(e, key, sa.sun_path, sizeof(sa.sun_path));
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void
raw_write(int fd, const void *p, size_t len)
{
    ck_assert_int_eq(write(fd, p, len), (ssize_t)len);
}

static size_t
raw_frame(uint8_t *out, uint8_t type, uint64_t to, uint64_t from,
          uint32_t seq, size_t len)
{
    uint8_t data[64];
    struct bus_msg m = {
        .type = type, .to = to, .from = from, .app_type = seq,
        .data = data, .len = (uint32_t)len,
    };

    fill_payload(data, len, seq);
    return bus_wire_encode(out, &m);
}

/* True once the bus closed our end (EOF), within the deadline. */
static bool
raw_closed(struct ev_loop *loop, int fd)
{
    for (int i = 0; i < 200; i++) {
        char c;
        ssize_t n;

        run_for(loop, 0.005);
        n = recv(fd, &c, 1, MSG_DONTWAIT);
        if (n == 0)
            return true;
        if (n < 0 && errno != EAGAIN)
            return true;
    }
    return false;
}

START_TEST(test_raw_hellos)
{
    struct env e;
    struct rx rb = { 0 };
    struct bus *b;
    uint8_t f[256];
    size_t n;
    int fd;

    env_init(&e);
    b = mk_bus(&e, e.loop, KB, &rb);
    add_peer(&e, b, KA, getpid() + 1);

    /* A hello addressed to another bus. */
    fd = raw_connect(&e, KB);
    raw_write(fd, f, raw_frame(f, BUS_HELLO, KC, KC, 0, 0));
    ck_assert(raw_closed(e.loop, fd));
    close(fd);
    ck_assert_uint_eq(bus_stats(b).rejects, 1);

    /* A message before any hello. */
    fd = raw_connect(&e, KB);
    raw_write(fd, f, raw_frame(f, BUS_SEND, 5, 1, 0, 8));
    ck_assert(raw_closed(e.loop, fd));
    close(fd);
    ck_assert_uint_eq(bus_stats(b).rejects, 2);

    /* Claiming KA, registered with another pid. */
    fd = raw_connect(&e, KB);
    raw_write(fd, f, raw_frame(f, BUS_HELLO, KB, KA, 0, 0));
    ck_assert(raw_closed(e.loop, fd));
    close(fd);
    ck_assert_uint_eq(bus_stats(b).rejects, 3);

    /* Garbage after a good hello from a key we do not know yet. */
    fd = raw_connect(&e, KB);
    n = raw_frame(f, BUS_HELLO, KB, KEY(9, 9), 0, 0);
    n += raw_frame(f + n, BUS_SEND, 1, 1, 0, 8);
    memcpy(f + n, "\x20\x00\x00\x00\x07", 5);
    raw_write(fd, f, n + 5);
    ck_assert(raw_closed(e.loop, fd));
    close(fd);
    ck_assert_uint_eq(bus_stats(b).errors, 1);
    ck_assert_uint_eq(rb.n, 1);           /* the good frame before it */

    /* A second hello. */
    fd = raw_connect(&e, KB);
    n = raw_frame(f, BUS_HELLO, KB, KEY(9, 9), 0, 0);
    n += raw_frame(f + n, BUS_HELLO, KB, KEY(9, 9), 0, 0);
    raw_write(fd, f, n);
    ck_assert(raw_closed(e.loop, fd));
    close(fd);
    ck_assert_uint_eq(bus_stats(b).errors, 2);
    ck_assert_uint_eq(bus_stats(b).rejects, 3);
    ck_assert_uint_eq(rb.n, 1);
    bus_free(b);
    env_destroy(&e);
}
END_TEST

/*
 * One frame stream written a few bytes at a time, with the loop running
 * in between: every read ends somewhere else inside a frame.
 */
START_TEST(test_raw_dribble)
{
    struct env e;
    struct rx rb = { 0 };
    struct bus *b;
    uint8_t *f = malloc(400000);
    size_t n, off = 0;
    uint64_t rng = 99;
    int fd;

    ck_assert_ptr_nonnull(f);
    env_init(&e);
    b = mk_bus(&e, e.loop, KB, &rb);
    fd = raw_connect(&e, KB);
    n = raw_frame(f, BUS_HELLO, KB, KA, 0, 0);
    for (uint32_t i = 0; i < 20; i++)
        n += raw_frame(f + n, BUS_SEND, 1, 1, i, 4 + i % 7);
    {
        /* And one frame larger than the read buffer. */
        uint8_t *data = malloc(200000);
        struct bus_msg m = {
            .type = BUS_SEND, .from = 1, .app_type = 20, .data = data,
            .len = 200000,
        };

        ck_assert_ptr_nonnull(data);
        fill_payload(data, 200000, 20);
        n += bus_wire_encode(f + n, &m);
        free(data);
    }
    n += raw_frame(f + n, BUS_SEND, 1, 1, 21, 10);
    while (off < n) {
        size_t k = 1 + test_rand(&rng) % (off < 2000 ? 9 : 30000);

        k = MIN(k, n - off);
        raw_write(fd, f + off, k);
        off += k;
        run_for(e.loop, 0.0005);
    }
    ck_assert(wait_rx(e.loop, &rb, 22, 5));
    ck_assert_uint_eq(rb.bad, 0);
    ck_assert_uint_eq(rb.next[1], 22);
    ck_assert_uint_eq(bus_stats(b).bytes_in, n);
    close(fd);
    bus_free(b);
    env_destroy(&e);
    free(f);
}
END_TEST

/*
 * Only our own user may connect. Needs root to become somebody else;
 * the socket is opened up so that the connect itself succeeds.
 */
START_TEST(test_uid_rejected)
{
    struct env e;
    struct rx rb = { 0 };
    struct bus *b;
    char path[128];
    pid_t pid;
    int status;

    if (geteuid() != 0) {
        fprintf(stderr, "test_uid_rejected: skipped, not root\n");
        return;
    }
    env_init(&e);
    b = mk_bus(&e, e.loop, KB, &rb);
    bus_path(&e, KB, path, sizeof(path));
    ck_assert_int_eq(chmod(e.dir, 0711), 0);
    ck_assert_int_eq(chmod(path, 0666), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        uint8_t f[128];
        size_t n;
        int fd;

        /* No ck_assert here: this is not the test's process. */
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(2);
        memcpy(sa.sun_path, path, strlen(path));
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            _exit(3);
        n = raw_frame(f, BUS_HELLO, KB, KA, 0, 0);
        n += raw_frame(f + n, BUS_SEND, 1, 1, 0, 8);
        /* The bus may have closed us already: then EPIPE, no signal. */
        (void)send(fd, f, n, MSG_NOSIGNAL);
        /* Closed by the bus without a reply. */
        _exit(read(fd, f, 1) <= 0 ? 0 : 4);
    }
    ck_assert(run_until(e.loop, rejects_at_least_1, b, 5));
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    ck_assert_uint_eq(rb.n, 0);
    ck_assert_uint_eq(bus_stats(b).rejects, 1);
    bus_free(b);
    env_destroy(&e);
}
END_TEST

/* ---- The socket file ---------------------------------------------------- */

START_TEST(test_socket_file)
{
    struct env e;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat st;
    struct bus *a;
    char err[256];
    int fd;

    env_init(&e);
    bus_path(&e, KA, sa.sun_path, sizeof(sa.sun_path));
    /* A stale socket (bound, nobody listening) is replaced. */
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    a = mk_bus(&e, e.loop, KA, NULL);
    ck_assert_int_eq(lstat(sa.sun_path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    /* A live one is not. */
    err[0] = '\0';
    ck_assert_ptr_null(bus_new(e.loop, KB, sa.sun_path, &rx_ops, NULL, err,
                               sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "in use"));
    ck_assert_ptr_null(bus_new(e.loop, KB, sa.sun_path, &rx_ops, NULL, NULL,
                               0));
    bus_free(a);
    ck_assert_int_eq(lstat(sa.sun_path, &st), -1);
    ck_assert_int_eq(errno, ENOENT);
    bus_free(NULL);

    /* Nor is a file that is not a socket. */
    fd = open(sa.sun_path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_ptr_null(bus_new(e.loop, KA, sa.sun_path, &rx_ops, NULL, err,
                               sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "not a socket"));
    ck_assert_int_eq(unlink(sa.sun_path), 0);
    env_destroy(&e);
}
END_TEST

/* ---- Coalescing and throughput ----------------------------------------- */

START_TEST(test_coalescing)
{
    struct env e;
    struct rx rb = { 0 };
    struct bus *a, *b;
    uint64_t w0;

    env_init(&e);
    a = mk_bus(&e, e.loop, KA, NULL);
    b = mk_bus(&e, e.loop, KB, &rb);
    add_peer(&e, a, KB, 0);
    add_peer(&e, a, KC, 0);               /* registered, never sent to */
    ck_assert_int_eq(send_seq(a, KB, 1, 0, 32), 0);
    ck_assert(wait_rx(e.loop, &rb, 1, 5));
    ck_assert_uint_eq(bus_stats(a).writevs, 1);   /* hello + message */
    w0 = bus_stats(a).writevs;
    for (uint32_t i = 1; i <= 1000; i++)
        ck_assert_int_eq(send_seq(a, KB, 1, i, 32), 0);
    ck_assert_uint_eq(bus_stats(a).writevs, w0);  /* sends only queue */
    ck_assert(wait_rx(e.loop, &rb, 1001, 5));
    ck_assert_uint_eq(rb.bad, 0);
    ck_assert_uint_eq(bus_stats(a).writevs - w0, 1);
    ck_assert_uint_eq(bus_stats(a).connects, 1);
    bus_free(a);
    bus_free(b);
    env_destroy(&e);
}
END_TEST

struct armed_sender {
    ev_prepare prep;
    struct bus *a;
    bool armed;
};

static void
armed_on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct armed_sender *as = container_of(w, struct armed_sender, prep);

    (void)loop;
    (void)revents;
    if (as->armed)
        ck_assert_int_eq(send_seq(as->a, KB, 1, 1, 10), 0);
    as->armed = false;
}

/*
 * A send from another prepare watcher, one started before the bus (libev
 * runs those after it at equal priority), still goes out before the loop
 * blocks: otherwise nothing would wake it before the deadline.
 */
START_TEST(test_send_from_prepare)
{
    struct env e;
    struct rx rb = { 0 };
    struct armed_sender as = { 0 };
    struct bus *b;
    ev_tstamp t0;

    env_init(&e);
    ev_prepare_init(&as.prep, armed_on_prepare);
    ev_prepare_start(e.loop, &as.prep);
    as.a = mk_bus(&e, e.loop, KA, NULL);
    b = mk_bus(&e, e.loop, KB, &rb);
    add_peer(&e, as.a, KB, 0);
    ck_assert_int_eq(send_seq(as.a, KB, 1, 0, 10), 0);
    ck_assert(wait_rx(e.loop, &rb, 1, 5));
    as.armed = true;
    t0 = ev_time();
    ck_assert(wait_rx(e.loop, &rb, 2, 3));
    ck_assert(ev_time() - t0 < 1.0);
    ck_assert_uint_eq(rb.bad, 0);
    ev_prepare_stop(e.loop, &as.prep);
    bus_free(as.a);
    bus_free(b);
    env_destroy(&e);
}
END_TEST

/*
 * The benchmark: A sends 200-byte messages to B on one loop, topping A's
 * queue up to 1 MiB before every poll, for one second. The payload is
 * built once and only its sequence number changes, and B checks only
 * that, so the figure is the bus's (both ends on one core), not the
 * test's.
 */
struct bench {
    ev_prepare prep;
    struct bus *a;
    ev_tstamp stop_at;
    uint32_t seq;
    uint64_t refused;
    uint8_t payload[200];
    uint64_t got, bad;    /* at B */
};

static void
bench_deliver(void *ctx, const struct bus_msg *m)
{
    struct bench *bn = ctx;
    uint32_t seq;

    memcpy(&seq, m->data, 4);
    bn->bad += seq != bn->got || m->len != 200;
    bn->got++;
}

static void
bench_on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct bench *bn = container_of(w, struct bench, prep);
    struct bus_msg m = {
        .type = BUS_SEND, .to = 1, .from = 1, .data = bn->payload,
        .len = sizeof(bn->payload),
    };

    (void)revents;
    if (ev_now(loop) >= bn->stop_at) {
        ev_prepare_stop(loop, w);
        return;
    }
    while (bus_peer_queued(bn->a, KB) < (1 << 20)) {
        memcpy(bn->payload, &bn->seq, 4);
        if (bus_send(bn->a, KB, &m) != 0) {
            bn->refused++;
            break;
        }
        bn->seq++;
    }
}

static bool
bench_done(void *arg)
{
    const struct bench *bn = arg;

    return !ev_is_active(&bn->prep) && bn->got == bn->seq;
}

START_TEST(test_throughput)
{
    static const struct bus_ops bench_ops = { .deliver = bench_deliver };
    struct env e;
    struct bench *bn = calloc(1, sizeof(*bn));
    struct bus *b;
    char path[128];
    ev_tstamp t0, t1;
    struct bus_stats st;

    ck_assert_ptr_nonnull(bn);
    env_init(&e);
    bn->a = mk_bus(&e, e.loop, KA, NULL);
    bus_path(&e, KB, path, sizeof(path));
    b = bus_new(e.loop, KB, path, &bench_ops, bn, NULL, 0);
    ck_assert_ptr_nonnull(b);
    add_peer(&e, bn->a, KB, 0);
    fill_payload(bn->payload, sizeof(bn->payload), 0);
    ev_now_update(e.loop);
    t0 = ev_time();
    bn->stop_at = ev_now(e.loop) + 1.0;
    ev_prepare_init(&bn->prep, bench_on_prepare);
    ev_prepare_start(e.loop, &bn->prep);
    ck_assert(run_until(e.loop, bench_done, bn, 30));
    t1 = ev_time();
    ck_assert_uint_eq(bn->got, bn->seq);
    ck_assert_uint_eq(bn->bad, 0);
    ck_assert_uint_eq(bn->refused, 0);
    st = bus_stats(bn->a);
    ck_assert_uint_eq(st.sent, bn->seq);
    printf("bus throughput: %u messages of 200 bytes in %.3f s: %.2f M msg/s, %.0f MB/s of payload, %.0f messages per writev (sender and receiver on one loop)\n",
           bn->seq, t1 - t0, bn->seq / (t1 - t0) / 1e6,
           bn->seq * 200.0 / (t1 - t0) / 1e6,
           (double)bn->seq / (double)st.writevs);
    fflush(stdout);
    bus_free(bn->a);
    bus_free(b);
    env_destroy(&e);
    free(bn);
}
END_TEST

static Suite *
ipc_bus_suite(void)
{
    Suite *s = suite_create("ipc_bus");
    TCase *outq = tcase_create("outq");
    TCase *deliver = tcase_create("deliver");
    TCase *bounded = tcase_create("bounded");
    TCase *peers = tcase_create("peers");
    TCase *auth = tcase_create("auth");
    TCase *perf = tcase_create("perf");

    tcase_add_test(outq, test_outq_pack_and_consume);
    tcase_add_test(outq, test_outq_shared_and_large);
    tcase_add_test(outq, test_outq_trim);
    suite_add_tcase(s, outq);

    tcase_add_test(deliver, test_directed_in_order);
    tcase_add_test(deliver, test_both_directions);
    tcase_add_test(deliver, test_large_frames);
    tcase_add_test(deliver, test_send_all);
    tcase_set_timeout(deliver, 60);
    suite_add_tcase(s, deliver);

    tcase_add_test(bounded, test_stuck_peer_directed);
    tcase_add_test(bounded, test_stuck_peer_fan_out);
    tcase_add_test(bounded, test_peer_cap_setting);
    tcase_set_timeout(bounded, 60);
    suite_add_tcase(s, bounded);

    tcase_add_test(peers, test_unknown_and_removed);
    tcase_add_test(peers, test_many_peers);
    tcase_add_test(peers, test_late_listener);
    tcase_add_test(peers, test_peer_restart);
    tcase_add_test(peers, test_broken_mid_frame);
    tcase_add_test(peers, test_socket_file);
    tcase_set_timeout(peers, 30);
    suite_add_tcase(s, peers);

    tcase_add_test(auth, test_wrong_hello_pid);
    tcase_add_test(auth, test_late_registration);
    tcase_add_test(auth, test_reentrant_deliver);
    tcase_add_test(auth, test_raw_hellos);
    tcase_add_test(auth, test_raw_dribble);
    tcase_add_test(auth, test_uid_rejected);
    tcase_set_timeout(auth, 30);
    suite_add_tcase(s, auth);

    tcase_add_test(perf, test_coalescing);
    tcase_add_test(perf, test_send_from_prepare);
    tcase_add_test(perf, test_throughput);
    tcase_set_timeout(perf, 60);
    suite_add_tcase(s, perf);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(ipc_bus_suite());
    int failed;

    /* Peers going away on purpose are logged at info; keep output short. */
    log_set_level(LOG_LVL_ERR);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
