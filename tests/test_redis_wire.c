/*
 * test_redis_wire.c: unit tests for ipc/redis_wire.c: the exact bytes of
 * an envelope and of a PUBLISH command, round trips of every type and
 * shape, every truncation and every violation rejected (read from a
 * guard page, so an over-read crashes), random bytes, channel names from
 * ids and back, and [redis] addresses.
 */
#include "redis_wire.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* A publish from node 0x0102, id 0x1122334455667788, app type 7, "hi". */
static const uint8_t publish_env[] = {
    's', 'k',                                       /* magic */
    0x01,                                           /* version */
    0x02,                                           /* BUS_PUBLISH */
    0x02, 0x01,                                     /* origin node */
    0x07, 0x00, 0x00, 0x00,                         /* app type */
    0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, /* from */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* to */
    'h', 'i',
};

static const struct bus_msg publish_msg = {
    .type = BUS_PUBLISH, .from = 0x1122334455667788ULL, .app_type = 7,
    .topic = "chat", .topic_len = 4, .data = (const uint8_t *)"hi",
    .len = 2,
};

/* The envelope of m from origin, in one buffer. */
static size_t
envelope(uint8_t *out, uint16_t origin, const struct bus_msg *m)
{
    size_t n = redis_wire_header(out, origin, m);

    ck_assert_uint_eq(n, REDIS_WIRE_HEADER);
    if (m->len > 0)
        memcpy(out + n, m->data, m->len);
    return n + m->len;
}

START_TEST(test_exact_bytes)
{
    uint8_t out[64];
    size_t n = envelope(out, 0x0102, &publish_msg);

    ck_assert_uint_eq(n, sizeof(publish_env));
    ck_assert_mem_eq(out, publish_env, n);
}
END_TEST

START_TEST(test_round_trip)
{
    static const uint8_t big[1000] = { 1, 2, 3 };
    const struct bus_msg msgs[] = {
        { .type = BUS_SEND, .to = 0x0002010300000009ULL, .from = 5,
          .app_type = 2, .data = (const uint8_t *)"x", .len = 1 },
        { .type = BUS_SEND, .to = UINT64_MAX, .from = UINT64_MAX,
          .app_type = UINT32_MAX, .data = big, .len = sizeof(big) },
        { .type = BUS_PUBLISH, .from = 0, .app_type = 0 },
        { .type = BUS_BROADCAST, .from = 1, .app_type = 9,
          .data = (const uint8_t *)"all", .len = 3 },
    };
    uint8_t buf[REDIS_WIRE_HEADER + sizeof(big)];

    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        const struct bus_msg *m = &msgs[i];
        size_t n = envelope(buf, (uint16_t)(65535 - i), m);
        struct bus_msg d;
        uint16_t origin = 0;

        ck_assert_int_eq(redis_wire_decode(&d, &origin, guard_copy(buf, n),
                                           n), 0);
        ck_assert_uint_eq(origin, 65535 - i);
        ck_assert_uint_eq(d.type, m->type);
        ck_assert_uint_eq(d.to, m->to);
        ck_assert_uint_eq(d.from, m->from);
        ck_assert_uint_eq(d.app_type, m->app_type);
        ck_assert_uint_eq(d.len, m->len);
        ck_assert_ptr_null(d.topic);
        if (m->len > 0)
            ck_assert_mem_eq(d.data, m->data, m->len);
        else
            ck_assert_ptr_null(d.data);
    }
}
END_TEST

/* A header never names a target for publish and broadcast. */
START_TEST(test_header_drops_to)
{
    struct bus_msg m = publish_msg, d;
    uint8_t out[64];
    uint16_t origin;

    m.to = 42;
    envelope(out, 1, &m);
    ck_assert_int_eq(redis_wire_decode(&d, &origin, out,
                                       REDIS_WIRE_HEADER + 2), 0);
    ck_assert_uint_eq(d.to, 0);
}
END_TEST

START_TEST(test_truncated)
{
    struct bus_msg d;
    uint16_t origin = 77;

    /* Every prefix shorter than the header, read at a guard page. */
    for (size_t cut = 0; cut < REDIS_WIRE_HEADER; cut++)
        ck_assert_int_eq(redis_wire_decode(&d, &origin,
                                           guard_copy(publish_env, cut),
                                           cut), -EPROTO);
    ck_assert_uint_eq(origin, 77); /* untouched on failure */
    /* The header alone is a message with an empty payload. */
    ck_assert_int_eq(redis_wire_decode(&d, &origin,
                                       guard_copy(publish_env,
                                                  REDIS_WIRE_HEADER),
                                       REDIS_WIRE_HEADER), 0);
    ck_assert_uint_eq(d.len, 0);
}
END_TEST

static int
decode_patched(size_t at, uint8_t value)
{
    uint8_t buf[sizeof(publish_env)];
    struct bus_msg d;
    uint16_t origin;

    memcpy(buf, publish_env, sizeof(buf));
    buf[at] = value;
    return redis_wire_decode(&d, &origin, guard_copy(buf, sizeof(buf)),
                             sizeof(buf));
}

START_TEST(test_violations)
{
    uint8_t buf[sizeof(publish_env)];
    struct bus_msg d;
    uint16_t origin;

    ck_assert_int_eq(decode_patched(0, 'S'), -EPROTO);  /* magic */
    ck_assert_int_eq(decode_patched(1, 'K'), -EPROTO);
    ck_assert_int_eq(decode_patched(2, 0), -EPROTO);    /* version */
    ck_assert_int_eq(decode_patched(2, 2), -EPROTO);
    ck_assert_int_eq(decode_patched(3, 0), -EPROTO);    /* BUS_HELLO */
    ck_assert_int_eq(decode_patched(3, 4), -EPROTO);
    ck_assert_int_eq(decode_patched(3, 255), -EPROTO);
    ck_assert_int_eq(decode_patched(3, BUS_BROADCAST), 0);
    /* A publish or broadcast naming a target; a send naming none. */
    ck_assert_int_eq(decode_patched(25, 1), -EPROTO);
    ck_assert_int_eq(decode_patched(3, BUS_SEND), -EPROTO);
    memcpy(buf, publish_env, sizeof(buf));
    buf[3] = BUS_SEND;
    buf[18] = 1;
    ck_assert_int_eq(redis_wire_decode(&d, &origin,
                                       guard_copy(buf, sizeof(buf)),
                                       sizeof(buf)), 0);
    ck_assert_uint_eq(d.to, 1);
    /* Text someone typed into redis-cli. */
    ck_assert_int_eq(redis_wire_decode(&d, &origin,
                                       guard_copy("hello world", 11), 11),
                     -EPROTO);
}
END_TEST

START_TEST(test_random)
{
    uint64_t seed = 0x5eed;
    uint8_t buf[64];
    unsigned ok = 0;

    for (int i = 0; i < 100000; i++) {
        size_t n = (size_t)(test_rand(&seed) % sizeof(buf));
        struct bus_msg d;
        uint16_t origin;

        for (size_t k = 0; k < n; k++)
            buf[k] = (uint8_t)test_rand(&seed);
        if (i % 2 == 0 && n >= 4) { /* get past the magic half the time */
            buf[0] = 's';
            buf[1] = 'k';
            buf[2] = REDIS_WIRE_VERSION;
            buf[3] = (uint8_t)(1 + test_rand(&seed) % 3);
        }
        if (redis_wire_decode(&d, &origin, guard_copy(buf, n), n) == 0) {
            ok++;
            ck_assert_uint_eq(d.len, n - REDIS_WIRE_HEADER);
            ck_assert((d.type == BUS_SEND) == (d.to != 0));
        }
    }
    /* Some random headers are valid (zero or nonzero `to` by chance):
       make sure the loop above really exercised acceptance. */
    ck_assert_uint_gt(ok, 0);
}
END_TEST

/* ---- Channels ---------------------------------------------------------- */

START_TEST(test_channel_names)
{
    char buf[REDIS_WIRE_CHANNEL_MAX];
    /* node 2, generation 1, slot 3, serial 9 */
    uint64_t id = 0x0002010300000009ULL;

    ck_assert_int_eq(redis_wire_topic_channel(buf, sizeof(buf), "sock:",
                                              "chat:lobby", 10), 17);
    ck_assert_str_eq(buf, "sock:t:chat:lobby");
    ck_assert_int_eq(redis_wire_all_channel(buf, sizeof(buf), "sock:"), 8);
    ck_assert_str_eq(buf, "sock:all");
    ck_assert_int_eq(redis_wire_inbox_channel(buf, sizeof(buf), "sock:", id),
                     12);
    ck_assert_str_eq(buf, "sock:w:2:1:3");
    ck_assert_int_eq(redis_wire_inbox_channel(buf, sizeof(buf), "p",
                                              UINT64_MAX), 16);
    ck_assert_str_eq(buf, "pw:65535:255:255");
    ck_assert_int_eq(redis_wire_inbox_channel(buf, sizeof(buf), "", 0), 7);
    ck_assert_str_eq(buf, "w:0:0:0");
    /* Exactly enough room, and one byte less. */
    ck_assert_int_eq(redis_wire_all_channel(buf, 9, "sock:"), 8);
    ck_assert_int_eq(redis_wire_all_channel(buf, 8, "sock:"), -ENAMETOOLONG);
    ck_assert_int_eq(redis_wire_topic_channel(buf, 9, "sock:", "a", 1), 8);
    ck_assert_int_eq(redis_wire_topic_channel(buf, 9, "sock:", "ab", 2),
                     -ENAMETOOLONG);
}
END_TEST

static enum redis_chan
kind(const char *ch, const char **topic, size_t *topic_len)
{
    size_t n = strlen(ch);

    return redis_wire_channel_kind("sock:", (const char *)guard_copy(ch, n),
                                   n, topic, topic_len);
}

START_TEST(test_channel_kinds)
{
    static const char *const other[] = {
        "", "sock", "sock:", "sock:t:", "sock:al", "sock:alll", "sock:x:y",
        "sock:w:", "sock:w:1", "sock:w:1:2", "sock:w:1:2:", "sock:w:1:2:3:",
        "sock:w:1:2:3:4", "sock:w:01:2:3", "sock:w:1:2:256",
        "sock:w:65536:0:0", "sock:w:1:-2:3", "sock:w:1::3", "sock:w:a:b:c",
        "sock:w:123456:0:0", "other:t:chat", "SOCK:all", "xsock:all",
    };
    char longest[7 + 255 + 1], over[7 + 256 + 1];
    const char *topic = NULL;
    size_t tlen = 0;

    ck_assert_int_eq(kind("sock:t:chat", &topic, &tlen), REDIS_CHAN_TOPIC);
    ck_assert_uint_eq(tlen, 4);
    ck_assert_mem_eq(topic, "chat", 4);
    ck_assert_int_eq(kind("sock:t:a:b c", &topic, &tlen), REDIS_CHAN_TOPIC);
    ck_assert_uint_eq(tlen, 5);
    ck_assert_int_eq(kind("sock:all", &topic, &tlen), REDIS_CHAN_ALL);
    ck_assert_int_eq(kind("sock:w:2:1:3", &topic, &tlen), REDIS_CHAN_INBOX);
    ck_assert_int_eq(kind("sock:w:0:0:0", &topic, &tlen), REDIS_CHAN_INBOX);
    ck_assert_int_eq(kind("sock:w:65535:255:255", &topic, &tlen),
                     REDIS_CHAN_INBOX);
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
        ck_assert_msg(kind(other[i], &topic, &tlen) == REDIS_CHAN_OTHER,
                      "'%s' is not ours", other[i]);
    /* Topics of 255 bytes, not 256 (sock.h's limit). */
    memcpy(longest, "sock:t:", 7);
    memset(longest + 7, 'a', 255);
    longest[7 + 255] = '\0';
    ck_assert_int_eq(kind(longest, &topic, &tlen), REDIS_CHAN_TOPIC);
    ck_assert_uint_eq(tlen, 255);
    memcpy(over, "sock:t:", 7);
    memset(over + 7, 'a', 256);
    over[7 + 256] = '\0';
    ck_assert_int_eq(kind(over, &topic, &tlen), REDIS_CHAN_OTHER);
}
END_TEST

/* What a name maker writes, the classifier recognises. */
START_TEST(test_channel_names_classify)
{
    char buf[REDIS_WIRE_CHANNEL_MAX];
    uint64_t seed = 7;

    for (int i = 0; i < 1000; i++) {
        uint64_t id = test_rand(&seed);
        const char *t;
        size_t tl;
        int n = redis_wire_inbox_channel(buf, sizeof(buf), "sock:", id);

        ck_assert_int_gt(n, 0);
        ck_assert_int_eq(redis_wire_channel_kind("sock:", buf, (size_t)n, &t,
                                                 &tl), REDIS_CHAN_INBOX);
    }
}
END_TEST

/* ---- RESP -------------------------------------------------------------- */

START_TEST(test_publish_command)
{
    uint8_t hdr[REDIS_WIRE_HEADER];
    char out[256], want[256];
    size_t n, wn;

    redis_wire_header(hdr, 0x0102, &publish_msg);
    n = redis_wire_publish(out, "sock:t:chat", 11, hdr, "hi", 2);
    ck_assert_uint_eq(n, redis_wire_publish_size(11, 2));
    wn = (size_t)snprintf(want, sizeof(want),
                          "*3\r\n$7\r\nPUBLISH\r\n$11\r\nsock:t:chat\r\n"
                          "$28\r\n");
    memcpy(want + wn, publish_env, sizeof(publish_env));
    wn += sizeof(publish_env);
    memcpy(want + wn, "\r\n", 2);
    wn += 2;
    ck_assert_uint_eq(n, wn);
    ck_assert_mem_eq(out, want, n);
    /* Sizes across digit boundaries. */
    for (size_t len = 0; len < 20000; len += 997) {
        char *big = malloc(redis_wire_publish_size(9, len));
        char *payload = calloc(1, len + 1);

        ck_assert_ptr_nonnull(big);
        ck_assert_ptr_nonnull(payload);
        ck_assert_uint_eq(redis_wire_publish(big, "sock:all", 8, hdr,
                                             payload, len),
                          redis_wire_publish_size(8, len));
        free(big);
        free(payload);
    }
}
END_TEST

/* ---- Addresses --------------------------------------------------------- */

START_TEST(test_address)
{
    static const char *const bad[] = {
        "", "6379", ":6379", "host", "host:", "host:0", "host:65536",
        "host:-1", "host:+1", "host:12x", "::1:6379", "[::1]", "[]:6379",
        "[::1:6379", "a b:1", "host: 1",
    };
    char host[REDIS_WIRE_HOST_MAX];
    int port = 0;

    ck_assert_int_eq(redis_wire_parse_address("127.0.0.1:6379", host,
                                              sizeof(host), &port), 0);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_int_eq(port, 6379);
    ck_assert_int_eq(redis_wire_parse_address("[::1]:1", host, sizeof(host),
                                              &port), 0);
    ck_assert_str_eq(host, "::1");
    ck_assert_int_eq(port, 1);
    ck_assert_int_eq(redis_wire_parse_address("redis.internal:65535", host,
                                              sizeof(host), &port), 0);
    ck_assert_str_eq(host, "redis.internal");
    ck_assert_int_eq(port, 65535);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(redis_wire_parse_address(bad[i], host, sizeof(host),
                                               &port) == -EINVAL,
                      "'%s' is not an address", bad[i]);
    /* A host that does not fit. */
    ck_assert_int_eq(redis_wire_parse_address("abcdef:1", host, 6, &port),
                     -EINVAL);
    ck_assert_int_eq(redis_wire_parse_address("abcde:1", host, 6, &port), 0);
}
END_TEST

static Suite *
redis_wire_suite(void)
{
    Suite *s = suite_create("redis_wire");
    TCase *env = tcase_create("envelope");
    TCase *chan = tcase_create("channels");
    TCase *misc = tcase_create("resp_and_address");

    tcase_add_test(env, test_exact_bytes);
    tcase_add_test(env, test_round_trip);
    tcase_add_test(env, test_header_drops_to);
    tcase_add_test(env, test_truncated);
    tcase_add_test(env, test_violations);
    tcase_add_test(env, test_random);
    suite_add_tcase(s, env);

    tcase_add_test(chan, test_channel_names);
    tcase_add_test(chan, test_channel_kinds);
    tcase_add_test(chan, test_channel_names_classify);
    suite_add_tcase(s, chan);

    tcase_add_test(misc, test_publish_command);
    tcase_add_test(misc, test_address);
    suite_add_tcase(s, misc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(redis_wire_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
