/*
 * test_ipc_wire.c: unit tests for ipc/bus_wire.c: the exact bytes of a
 * frame, round trips of every type and shape (empty topic and payload,
 * the longest topic), every split of single frames and of a stream
 * ending at a guard page, every violation as early as it can be seen,
 * max_frame at its edge, and random bytes.
 */
#include "bus_wire.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define MAX_FRAME (1u << 20)

static const uint8_t payload[] = "hello, bus";

/* A publish with topic "chat" and payload "hi", written out by hand. */
static const uint8_t publish_bytes[] = {
    0x22, 0x00, 0x00, 0x00,                         /* total 34 */
    0x01,                                           /* version */
    0x02,                                           /* BUS_PUBLISH */
    0x04, 0x00,                                     /* topic_len */
    0x78, 0x56, 0x34, 0x12,                         /* app_type */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* to */
    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* from */
    'c', 'h', 'a', 't', 'h', 'i',
};

static const struct bus_msg publish_msg = {
    .type = BUS_PUBLISH, .to = 0, .from = 0x0102030405060708ULL,
    .app_type = 0x12345678, .topic = "chat", .topic_len = 4,
    .data = (const uint8_t *)"hi", .len = 2,
};

static size_t
encode(uint8_t *out, const struct bus_msg *m)
{
    size_t n = bus_wire_encode(out, m);

    ck_assert_uint_eq(n, bus_wire_size(m));
    return n;
}

static void
assert_msg_eq(const struct bus_msg *a, const struct bus_msg *b)
{
    ck_assert_uint_eq(a->type, b->type);
    ck_assert_uint_eq(a->to, b->to);
    ck_assert_uint_eq(a->from, b->from);
    ck_assert_uint_eq(a->app_type, b->app_type);
    ck_assert_uint_eq(a->topic_len, b->topic_len);
    ck_assert_uint_eq(a->len, b->len);
    if (a->topic_len > 0)
        ck_assert_mem_eq(a->topic, b->topic, a->topic_len);
    if (a->len > 0)
        ck_assert_mem_eq(a->data, b->data, a->len);
}

START_TEST(test_exact_bytes)
{
    uint8_t out[64], hdr[BUS_WIRE_HEADER];

    ck_assert_uint_eq(bus_wire_size(&publish_msg), sizeof(publish_bytes));
    ck_assert_uint_eq(encode(out, &publish_msg), sizeof(publish_bytes));
    ck_assert_mem_eq(out, publish_bytes, sizeof(publish_bytes));
    /* The header alone is the same first 28 bytes. */
    ck_assert_uint_eq(bus_wire_header(hdr, &publish_msg), BUS_WIRE_HEADER);
    ck_assert_mem_eq(hdr, publish_bytes, BUS_WIRE_HEADER);
    ck_assert_uint_eq(bus_wire_frame_len(publish_bytes, 3), 0);
    ck_assert_uint_eq(bus_wire_frame_len(publish_bytes, 4), 34);
}
END_TEST

START_TEST(test_round_trip_types)
{
    static const uint8_t types[] = {
        BUS_HELLO, BUS_SEND, BUS_PUBLISH, BUS_BROADCAST,
    };
    uint8_t out[256];

    for (size_t i = 0; i < sizeof(types); i++) {
        struct bus_msg m = {
            .type = types[i], .to = types[i] == BUS_SEND ? ~0ULL - i : 0,
            .from = 0x8000000000000001ULL + i, .app_type = 0xffffffffu - i,
            .topic = types[i] == BUS_PUBLISH ? "news/eu" : NULL,
            .topic_len = types[i] == BUS_PUBLISH ? 7 : 0,
            .data = payload, .len = types[i] == BUS_HELLO ? 0 : 10,
        }, d;
        size_t n = encode(out, &m);

        ck_assert_int_eq(bus_wire_decode(&d, guard_copy(out, n), n,
                                         MAX_FRAME), (ssize_t)n);
        assert_msg_eq(&d, &m);
    }
}
END_TEST

START_TEST(test_round_trip_shapes)
{
    static char topic[65535];
    static const struct {
        uint16_t topic_len;
        uint32_t len;
    } shapes[] = {
        { 0, 0 }, { 0, 1 }, { 1, 0 }, { 1, 1 }, { 0, 70000 },
        { 65535, 0 }, { 65535, 3 }, { 300, 300 },
    };
    uint8_t *data = malloc(70000), *out = malloc(70000 + 65535 + 64);
    uint64_t rng = 7;

    ck_assert_ptr_nonnull(data);
    ck_assert_ptr_nonnull(out);
    for (size_t i = 0; i < sizeof(topic); i++)
        topic[i] = (char)('a' + i % 26);
    for (size_t i = 0; i < 70000; i++)
        data[i] = (uint8_t)test_rand(&rng);
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        struct bus_msg m = {
            .type = BUS_BROADCAST, .app_type = (uint32_t)i, .from = i,
            .topic = topic, .topic_len = shapes[i].topic_len,
            .data = data, .len = shapes[i].len,
        }, d;
        size_t n = encode(out, &m);
        const uint8_t *g = guard_copy(out, n);

        ck_assert_uint_eq(n, BUS_WIRE_HEADER + shapes[i].topic_len +
                          shapes[i].len);
        ck_assert_int_eq(bus_wire_decode(&d, g, n, MAX_FRAME), (ssize_t)n);
        assert_msg_eq(&d, &m);
        /* Pointers into the input, right after each other. */
        ck_assert_ptr_eq(d.topic, (const char *)g + BUS_WIRE_HEADER);
        ck_assert_ptr_eq(d.data, g + BUS_WIRE_HEADER + d.topic_len);
    }
    free(data);
    free(out);
}
END_TEST

/* Every prefix needs more; the whole frame is taken; nothing is read past. */
START_TEST(test_every_split)
{
    uint8_t out[128];
    const struct bus_msg msgs[] = {
        publish_msg,
        { .type = BUS_SEND, .to = 42, .from = 7 },
        { .type = BUS_HELLO, .from = 0x0102 },
        { .type = BUS_BROADCAST, .data = payload, .len = sizeof(payload) },
    };

    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        size_t n = encode(out, &msgs[i]);

        for (size_t cut = 0; cut <= n; cut++) {
            struct bus_msg d;
            ssize_t r = bus_wire_decode(&d, guard_copy(out, cut), cut,
                                        MAX_FRAME);

            ck_assert_msg(r == (cut < n ? 0 : (ssize_t)n),
                          "msg %zu cut %zu: %zd", i, cut, r);
            if (r > 0)
                assert_msg_eq(&d, &msgs[i]);
        }
    }
}
END_TEST

/* Decodes every whole frame in buf, keeping the rest at the front. */
static void
drain(uint8_t *buf, size_t *have, size_t *got)
{
    struct bus_msg d;
    ssize_t r;

    while ((r = bus_wire_decode(&d, guard_copy(buf, *have), *have,
                                MAX_FRAME)) > 0) {
        ck_assert_uint_eq(d.app_type, *got);
        ck_assert_uint_eq(d.len, *got * 2);
        (*got)++;
        memmove(buf, buf + r, *have - (size_t)r);
        *have -= (size_t)r;
    }
    ck_assert_int_eq(r, 0);
}

/*
 * A stream of frames fed in two pieces at every cut, the way a reader
 * keeps what it could not use and calls again: the same frames come out.
 */
START_TEST(test_stream_every_split)
{
    uint8_t stream[512], buf[512];
    size_t len = 0;

    for (uint32_t i = 0; i < 6; i++) {
        struct bus_msg m = {
            .type = (uint8_t)(1 + i % 3), .app_type = i, .from = i,
            .topic = "t", .topic_len = i % 3 == 1 ? 1 : 0,
            .data = payload, .len = i * 2,
        };
        len += encode(stream + len, &m);
    }
    for (size_t cut = 0; cut <= len; cut++) {
        size_t have = 0, got = 0;

        memcpy(buf, stream, cut);
        have = cut;
        drain(buf, &have, &got);
        memcpy(buf + have, stream + cut, len - cut);
        have += len - cut;
        drain(buf, &have, &got);
        ck_assert_uint_eq(got, 6);
        ck_assert_uint_eq(have, 0);
    }
}
END_TEST

static ssize_t
decode_bytes(const uint8_t *p, size_t len, size_t max_frame)
{
    struct bus_msg d;

    return bus_wire_decode(&d, guard_copy(p, len), len, max_frame);
}

/* Each violation is refused as soon as its field is in, and stays so. */
static void
assert_bad_from(const uint8_t *p, size_t len, size_t first_bad)
{
    for (size_t cut = 0; cut <= len; cut++)
        ck_assert_msg(decode_bytes(p, cut, MAX_FRAME) ==
                      (cut < first_bad ? 0 : -EPROTO),
                      "cut %zu: %zd", cut, decode_bytes(p, cut, MAX_FRAME));
}

START_TEST(test_garbage)
{
    uint8_t f[sizeof(publish_bytes)];

    memcpy(f, publish_bytes, sizeof(f));
    f[4] = 2;                                  /* version */
    assert_bad_from(f, sizeof(f), 5);
    f[4] = 0;
    assert_bad_from(f, sizeof(f), 5);

    memcpy(f, publish_bytes, sizeof(f));
    f[5] = BUS_ADMIN_REPLY + 1;                /* type */
    assert_bad_from(f, sizeof(f), 6);
    f[5] = 0xff;
    assert_bad_from(f, sizeof(f), 6);

    memcpy(f, publish_bytes, sizeof(f));
    f[0] = BUS_WIRE_HEADER - 1;                /* shorter than a header */
    assert_bad_from(f, sizeof(f), 4);
    f[0] = 0;
    assert_bad_from(f, sizeof(f), 4);

    memcpy(f, publish_bytes, sizeof(f));
    f[6] = 7;                                  /* topic past the end */
    assert_bad_from(f, sizeof(f), 8);
    f[6] = 0xff;
    f[7] = 0xff;
    assert_bad_from(f, sizeof(f), 8);

    /* Topic exactly to the end is fine: empty payload. */
    memcpy(f, publish_bytes, sizeof(f));
    f[6] = 6;
    ck_assert_int_eq(decode_bytes(f, sizeof(f), MAX_FRAME), 34);

    /* ASCII noise, as from a stray client. */
    ck_assert_int_eq(decode_bytes((const uint8_t *)"GET / HTTP/1.1\r\n", 16,
                                  MAX_FRAME), -EPROTO);
}
END_TEST

START_TEST(test_max_frame)
{
    uint8_t f[sizeof(publish_bytes)];

    memcpy(f, publish_bytes, sizeof(f));
    ck_assert_int_eq(decode_bytes(f, sizeof(f), 34), 34);
    /* Over the limit is known from the length alone. */
    for (size_t cut = 0; cut <= sizeof(f); cut++)
        ck_assert_int_eq(decode_bytes(f, cut, 33), cut < 4 ? 0 : -EPROTO);
    /* The largest length a u32 holds, without the bytes behind it. */
    memset(f, 0xff, 4);
    ck_assert_int_eq(decode_bytes(f, 4, MAX_FRAME), -EPROTO);
    /* Allowed when the limit allows it: then it just needs more bytes. */
    ck_assert_int_eq(decode_bytes(f, sizeof(f), (size_t)UINT32_MAX), 0);
}
END_TEST

/* Random input: results in range, and a frame always re-encodes the same. */
START_TEST(test_random)
{
    uint64_t rng = 12345;
    uint8_t buf[96], out[96];

    for (int round = 0; round < 200000; round++) {
        size_t len = test_rand(&rng) % sizeof(buf);
        struct bus_msg d;
        ssize_t r;

        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)test_rand(&rng);
        /* Often make it plausible so the deeper checks run too. */
        if (len >= 8 && round % 2 == 0) {
            buf[0] = (uint8_t)(BUS_WIRE_HEADER + test_rand(&rng) % 64);
            buf[1] = buf[2] = buf[3] = 0;
            buf[4] = BUS_WIRE_VERSION;
            buf[5] %= 4;
            buf[6] %= 8;
            buf[7] = 0;
        }
        r = bus_wire_decode(&d, guard_copy(buf, len), len, MAX_FRAME);
        ck_assert(r == 0 || r == -EPROTO ||
                  (r >= BUS_WIRE_HEADER && (size_t)r <= len));
        if (r > 0) {
            ck_assert_uint_eq(bus_wire_encode(out, &d), (size_t)r);
            ck_assert_mem_eq(out, buf, (size_t)r);
        }
    }
}
END_TEST

static Suite *
ipc_wire_suite(void)
{
    Suite *s = suite_create("ipc_wire");
    TCase *codec = tcase_create("codec");
    TCase *split = tcase_create("split");
    TCase *bad = tcase_create("bad");

    tcase_add_test(codec, test_exact_bytes);
    tcase_add_test(codec, test_round_trip_types);
    tcase_add_test(codec, test_round_trip_shapes);
    suite_add_tcase(s, codec);

    tcase_add_test(split, test_every_split);
    tcase_add_test(split, test_stream_every_split);
    suite_add_tcase(s, split);

    tcase_add_test(bad, test_garbage);
    tcase_add_test(bad, test_max_frame);
    tcase_add_test(bad, test_random);
    suite_add_tcase(s, bad);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(ipc_wire_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
