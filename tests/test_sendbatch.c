/*
 * test_sendbatch.c: unit tests for worker/sendbatch.c over real loopback
 * TCP connections. Each batched send must answer exactly what send(2)
 * would: every byte offered when there is room, in order, a short count
 * when the socket fills, -EAGAIN at once (never a wait) when it is full,
 * and the error of a connection the peer reset. A send the kernel was not
 * given answers -ECANCELED, so its caller writes it itself.
 *
 * STYLE asks unit tests for in-memory bytes, no sockets: this module is
 * nothing but a way to hand sends to the kernel, so what is tested is what
 * the kernel's sockets answer, and only real ones can say it.
 *
 * Where the kernel has no io_uring (or a seccomp filter refuses it) there
 * is no batch to test: the worker makes one send(2) per connection, which
 * the integration tests cover. The test says so and passes; anywhere else
 * a failure to make a batch fails it.
 */
#include "sendbatch.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"
#include "sendq.h"
#include "testutil.h"

#define PAIRS 8

struct pair {
    int tx;   /* ours: nonblocking, as a worker's */
    int rx;   /* the peer */
};

static struct sendbatch *
batch_or_skip(unsigned max)
{
    int err = 0;
    struct sendbatch *b = sendbatch_new(max, &err);

    if (b == NULL && (err == -ENOSYS || err == -EPERM)) {
        fprintf(stderr, "test_sendbatch: io_uring refused here (%s): the "
                        "batch is not tested\n", strerror(-err));
        return NULL;
    }
    ck_assert_msg(b != NULL, "sendbatch_new: %s", strerror(-err));
    return b;
}

static void
pair_open(struct pair *p, int sndbuf)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t alen = sizeof(a);
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    ck_assert_int_ge(l, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(l, 1), 0);
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    p->tx = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(p->tx, 0);
    if (sndbuf > 0)
        setsockopt(p->tx, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    setsockopt(p->tx, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ck_assert_int_eq(connect(p->tx, (struct sockaddr *)&a, sizeof(a)), 0);
    p->rx = accept(l, NULL, NULL);
    ck_assert_int_ge(p->rx, 0);
    if (sndbuf > 0) /* the peer's window too, so the pair fills soon */
        setsockopt(p->rx, SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof(sndbuf));
    close(l);
    ck_assert_int_eq(fcntl(p->tx, F_SETFL, O_NONBLOCK), 0);
}

static void
pair_close(struct pair *p)
{
    close(p->tx);
    close(p->rx);
}

/* Reads exactly n bytes from fd (5 s at most) into out. */
static void
read_exact(int fd, uint8_t *out, size_t n)
{
    size_t got = 0;

    while (got < n) {
        struct pollfd pf = { .fd = fd, .events = POLLIN };
        ssize_t r;

        ck_assert_msg(poll(&pf, 1, 5000) == 1, "peer got %zu of %zu bytes",
                      got, n);
        r = read(fd, out + got, n - got);
        ck_assert_msg(r > 0, "read: %zd (%s)", r, strerror(errno));
        got += (size_t)r;
    }
}

/* Nothing more arrives at fd within 50 ms. */
static void
assert_quiet(int fd)
{
    struct pollfd pf = { .fd = fd, .events = POLLIN };

    ck_assert_int_eq(poll(&pf, 1, 50), 0);
}

static void
fill_pattern(uint8_t *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)test_rand(&seed);
}

/* Every connection's whole queue leaves in one run, in order: one
   contiguous chunk (send) for some, several segments (sendmsg) for the
   others, a queue by reference among them. */
START_TEST(test_all_sent)
{
    struct sendbatch *b = batch_or_skip(PAIRS);
    struct pair p[PAIRS];
    struct sendq q[PAIRS];
    uint8_t *exp[PAIRS], got[8192];
    size_t len[PAIRS];

    if (b == NULL)
        return;
    for (int i = 0; i < PAIRS; i++) {
        pair_open(&p[i], 0);
        sendq_init(&q[i]);
        len[i] = 100 + (size_t)i * 700;
        exp[i] = malloc(len[i]);
        fill_pattern(exp[i], len[i], (uint64_t)i + 1);
        if (i % 2 == 0) {
            ck_assert_int_eq(sendq_append(&q[i], exp[i], 10, exp[i] + 10,
                                          len[i] - 10), 0);
        } else { /* a copied header, then the body by reference */
            sock_buf *sb = sock_buf_new(exp[i] + 10, len[i] - 10);

            ck_assert_int_eq(sendq_append_buf(&q[i], exp[i], 10, sb), 0);
            sock_buf_unref(sb);
        }
        ck_assert_int_eq(sendbatch_add(b, p[i].tx, &q[i]), i);
    }
    ck_assert_uint_eq(sendbatch_run(b), PAIRS);
    for (int i = 0; i < PAIRS; i++) {
        size_t offered;
        ssize_t r = sendbatch_result(b, (unsigned)i, &offered);

        ck_assert_uint_eq(offered, len[i]);
        ck_assert_int_eq(r, (ssize_t)len[i]);
        sendq_consume(&q[i], (size_t)r);
        ck_assert_uint_eq(q[i].bytes, 0);
        read_exact(p[i].rx, got, len[i]);
        ck_assert_mem_eq(got, exp[i], len[i]);
        assert_quiet(p[i].rx);
        sendq_clear(&q[i]);
        free(exp[i]);
        pair_close(&p[i]);
    }
    /* An empty run makes no call. */
    ck_assert_uint_eq(sendbatch_run(b), 0);
    sendbatch_free(b);
}
END_TEST

/* A socket with room for part of the queue takes part (a short count and
   exactly those bytes), and a full one answers -EAGAIN without waiting,
   while the others of the batch are written whole. Then, once the peer
   has read, the rest goes and the stream is whole. */
START_TEST(test_full_and_short)
{
    struct sendbatch *b = batch_or_skip(4);
    struct pair full, room;
    struct sendq qf, qr;
    size_t big = 4 << 20, sent_r = 0, fill = 0;
    uint8_t *data, *got, junk[65536];
    size_t offered;
    ssize_t r;

    if (b == NULL)
        return;
    data = malloc(big);
    got = malloc(big);
    fill_pattern(data, big, 77);
    pair_open(&full, 16384);
    pair_open(&room, 16384);
    /* Fill `full` until send(2) itself says EAGAIN. */
    memset(junk, 'x', sizeof(junk));
    for (;;) {
        ssize_t w = send(full.tx, junk, sizeof(junk), MSG_DONTWAIT);

        if (w < 0) {
            ck_assert_int_eq(errno, EAGAIN);
            break;
        }
        fill += (size_t)w;
    }
    sendq_init(&qf);
    sendq_init(&qr);
    ck_assert_int_eq(sendq_append(&qf, NULL, 0, "abc", 3), 0);
    {
        sock_buf *sb = sock_buf_new(data, big);

        ck_assert_int_eq(sendq_append_buf(&qr, NULL, 0, sb), 0);
        sock_buf_unref(sb);
    }
    ck_assert_int_eq(sendbatch_add(b, full.tx, &qf), 0);
    ck_assert_int_eq(sendbatch_add(b, room.tx, &qr), 1);
    ck_assert_uint_eq(sendbatch_run(b), 2);
    r = sendbatch_result(b, 0, &offered);
    ck_assert_uint_eq(offered, 3);
    ck_assert_int_eq(r, -EAGAIN);
    r = sendbatch_result(b, 1, &offered);
    ck_assert_uint_eq(offered, big);
    ck_assert_msg(r > 0 && (size_t)r < big, "short write expected: %zd", r);
    sendq_consume(&qr, (size_t)r);
    sent_r = (size_t)r;
    /* The rest, batch after batch as the peer reads: no byte lost or
       repeated. */
    {
        size_t have = 0;

        while (have < big) {
            struct pollfd pf = { .fd = room.rx, .events = POLLIN };
            ssize_t n;

            ck_assert_int_eq(poll(&pf, 1, 5000), 1);
            n = read(room.rx, got + have, big - have);
            ck_assert_int_gt(n, 0);
            have += (size_t)n;
            if (qr.bytes > 0) {
                ck_assert_int_eq(sendbatch_add(b, room.tx, &qr), 0);
                ck_assert_uint_eq(sendbatch_run(b), 1);
                r = sendbatch_result(b, 0, &offered);
                ck_assert_uint_eq(offered, qr.bytes);
                ck_assert_msg(r > 0 || r == -EAGAIN, "result %zd", r);
                if (r > 0) {
                    sendq_consume(&qr, (size_t)r);
                    sent_r += (size_t)r;
                }
            }
        }
    }
    ck_assert_uint_eq(sent_r, big);
    ck_assert_mem_eq(got, data, big);
    /* The full one's peer sees only the filler: -EAGAIN sent nothing. */
    {
        size_t seen = 0;

        while (seen < fill) {
            ssize_t n;

            read_exact(full.rx, junk, MIN(sizeof(junk), fill - seen));
            n = (ssize_t)MIN(sizeof(junk), fill - seen);
            for (ssize_t i = 0; i < n; i++)
                ck_assert_int_eq(junk[i], 'x');
            seen += (size_t)n;
        }
        assert_quiet(full.rx);
    }
    sendq_clear(&qf);
    sendq_clear(&qr);
    pair_close(&full);
    pair_close(&room);
    free(data);
    free(got);
    sendbatch_free(b);
}
END_TEST

/* A connection the peer reset answers its error (no SIGPIPE: MSG_NOSIGNAL)
   and does not spoil the others of its batch. */
START_TEST(test_reset_peer)
{
    struct sendbatch *b = batch_or_skip(4);
    struct pair dead, live;
    struct sendq qd, ql;
    struct linger lg = { 1, 0 };
    uint8_t got[5];
    size_t offered;
    ssize_t r;

    if (b == NULL)
        return;
    pair_open(&dead, 0);
    pair_open(&live, 0);
    /* linger 0: the close sends a RST. */
    setsockopt(dead.rx, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(dead.rx);
    dead.rx = -1;
    usleep(20000);
    sendq_init(&qd);
    sendq_init(&ql);
    ck_assert_int_eq(sendq_append(&qd, NULL, 0, "gone", 4), 0);
    ck_assert_int_eq(sendq_append(&ql, NULL, 0, "alive", 5), 0);
    ck_assert_int_eq(sendbatch_add(b, dead.tx, &qd), 0);
    ck_assert_int_eq(sendbatch_add(b, live.tx, &ql), 1);
    ck_assert_uint_eq(sendbatch_run(b), 2);
    r = sendbatch_result(b, 0, &offered);
    ck_assert_msg(r == -ECONNRESET || r == -EPIPE, "reset peer: %zd", r);
    r = sendbatch_result(b, 1, &offered);
    ck_assert_int_eq(r, 5);
    read_exact(live.rx, got, 5);
    ck_assert_mem_eq(got, "alive", 5);
    sendq_clear(&qd);
    sendq_clear(&ql);
    close(dead.tx);
    pair_close(&live);
    sendbatch_free(b);
}
END_TEST

/* A batch takes at most max sends; the one over is refused (the caller
   writes it itself) and the batch, once run, takes max again. Many runs:
   results never mix up between runs. */
START_TEST(test_capacity_and_runs)
{
    enum { MAX = 3 };
    struct sendbatch *b = batch_or_skip(MAX);
    struct pair p;
    struct sendq q;
    uint8_t got[4];

    if (b == NULL)
        return;
    pair_open(&p, 0);
    sendq_init(&q);
    for (int run = 0; run < 500; run++) {
        uint8_t msg[4] = { 'r', (uint8_t)run, (uint8_t)(run >> 8), '.' };
        size_t offered;

        ck_assert_int_eq(sendq_append(&q, NULL, 0, msg, sizeof(msg)), 0);
        ck_assert_int_eq(sendbatch_add(b, p.tx, &q), 0);
        if (run % 7 == 0) { /* fill it: the same bytes, never sent twice */
            for (int k = 1; k < MAX; k++)
                ck_assert_int_eq(sendbatch_add(b, -1, &q), k);
            ck_assert_int_eq(sendbatch_add(b, p.tx, &q), -ENOSPC);
            ck_assert_uint_eq(sendbatch_run(b), MAX);
            for (int k = 1; k < MAX; k++)
                ck_assert_int_eq(sendbatch_result(b, (unsigned)k, &offered),
                                 -EBADF);
        } else {
            ck_assert_uint_eq(sendbatch_run(b), 1);
        }
        ck_assert_int_eq(sendbatch_result(b, 0, &offered), 4);
        sendq_consume(&q, 4);
        read_exact(p.rx, got, 4);
        ck_assert_mem_eq(got, msg, 4);
    }
    assert_quiet(p.rx);
    sendq_clear(&q);
    pair_close(&p);
    sendbatch_free(b);
}
END_TEST

static Suite *
sendbatch_suite(void)
{
    Suite *s = suite_create("sendbatch");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_all_sent);
    tcase_add_test(tc, test_full_and_short);
    tcase_add_test(tc, test_reset_peer);
    tcase_add_test(tc, test_capacity_and_runs);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(sendbatch_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
