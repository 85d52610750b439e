/*
 * test_ws_session.c: unit tests for worker/ws_session.c, the receive state
 * machine without I/O. Each input (a stream of client frames) is fed whole,
 * split in two at every byte, and a byte at a time, each piece ending at a
 * guard page; the events must be exactly the expected ones every time.
 */
#include "ws_session.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "ws_deflate.h"

static const uint8_t test_mask[4] = { 0x37, 0xfa, 0x21, 0x3d };

#define LOG_MAX 1024
/* RSV bits as they sit in a frame's first byte. */
#define B_RSV1 0x40
#define B_RSV2 0x20

/* A stream of client frames being built. */
struct wire {
    uint8_t b[8192];
    size_t len;
};

/* Appends a masked client frame; b0 is FIN|RSV|opcode. */
static void
put_frame(struct wire *w, uint8_t b0, const void *data, size_t len)
{
    uint8_t *o = w->b + w->len;
    size_t n = 2;

    ck_assert_uint_lt(w->len + len + 14, sizeof(w->b));
    o[0] = b0;
    if (len <= 125) {
        o[1] = (uint8_t)(0x80 | len);
    } else {
        o[1] = 0x80 | 126;
        o[n++] = (uint8_t)(len >> 8);
        o[n++] = (uint8_t)len;
    }
    memcpy(o + n, test_mask, 4);
    n += 4;
    for (size_t i = 0; i < len; i++)
        o[n + i] = ((const uint8_t *)data)[i] ^ test_mask[i % 4];
    w->len += n + len;
}

static void
put_str(struct wire *w, uint8_t b0, const char *s)
{
    put_frame(w, b0, s, strlen(s));
}

/* A compressed message (RFC 7692 §7.2.1) as one client frame. */
static void
put_deflated(struct wire *w, uint8_t op, const char *s)
{
    static const struct ws_deflate_params p = {
        .server_max_window_bits = 15, .client_max_window_bits = 15,
        .server_no_context_takeover = true,
    };
    struct ws_deflate *d = ws_deflate_new(&p, -1, 8);
    struct ws_dbuf out = { 0 };

    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(ws_deflate_compress(d, (const uint8_t *)s, strlen(s),
                                         &out), 0);
    put_frame(w, 0x80 | B_RSV1 | op, out.p, out.len);
    free(out.p);
    ws_deflate_free(d);
}

/* Appends one event's description to log. */
static void
log_event(char *log, const struct ws_event *ev)
{
    size_t n = strlen(log);
    int k = 0;

    switch (ev->type) {
    case WS_EV_NONE:
        return;
    case WS_EV_MESSAGE:
        k = snprintf(log + n, LOG_MAX - n, "msg%u:%.*s|", ev->opcode,
                     (int)ev->len, (const char *)ev->data);
        break;
    case WS_EV_PING:
    case WS_EV_PONG:
        k = snprintf(log + n, LOG_MAX - n, "%s:%.*s|",
                     ev->type == WS_EV_PING ? "ping" : "pong",
                     (int)ev->len, (const char *)ev->data);
        break;
    case WS_EV_CLOSE:
        k = snprintf(log + n, LOG_MAX - n, "close%u:%.*s|", ev->code,
                     (int)ev->len, (const char *)ev->data);
        break;
    case WS_EV_ERROR:
        k = snprintf(log + n, LOG_MAX - n, "error%u/%d|", ev->code,
                     (int)ev->err);
        break;
    }
    ck_assert_int_lt(k, (int)(LOG_MAX - n));
}

struct limits {
    uint64_t max_frame, max_message;
    bool deflate;
    bool closing;
};

/* Feeds w in pieces that end at cuts[0..ncuts) and at its end; returns the
   events in log. Each piece sits just before a guard page. */
static void
run(const struct wire *w, const struct limits *l, const size_t *cuts,
    size_t ncuts, char *log)
{
    static const struct ws_deflate_params p = {
        .server_max_window_bits = 15, .client_max_window_bits = 15,
    };
    struct ws_session s;
    struct ws_session_opts o = {
        .max_frame = l->max_frame,
        .max_message = l->max_message,
        .max_inflate_ratio = 0,
        .deflate = l->deflate ? ws_deflate_new(&p, -1, 8) : NULL,
        .closing = l->closing,
    };
    size_t start = 0;
    bool failed = false;

    memset(&s, 0, sizeof(s));
    log[0] = '\0';
    for (size_t c = 0; c <= ncuts && !failed; c++) {
        size_t end = c < ncuts ? cuts[c] : w->len;
        uint8_t *piece = guard_copy_mut(w->b + start, end - start);
        size_t off = 0;

        while (off < end - start) {
            struct ws_event ev;
            size_t r = ws_session_feed(&s, &o, piece + off,
                                       end - start - off, &ev);

            ck_assert_uint_le(r, end - start - off);
            ck_assert_msg(r > 0 || ev.type != WS_EV_NONE, "no progress");
            log_event(log, &ev);
            ws_session_release(&s);
            off += r;
            if (ev.type == WS_EV_ERROR) {
                ck_assert_uint_eq(off, end - start);
                failed = true;
                break;
            }
        }
        start = end;
    }
    if (!failed)
        ck_assert_uint_eq(ws_session_held(&s), 0);
    ws_session_free(&s);
    ws_deflate_free(o.deflate);
}

/* Whole, every split in two, and a byte at a time: always want. */
static void
check_all_splits(const struct wire *w, const struct limits *l,
                 const char *want)
{
    static size_t cuts[sizeof(((struct wire *)0)->b)];
    char log[LOG_MAX];

    run(w, l, NULL, 0, log);
    ck_assert_str_eq(log, want);
    for (size_t cut = 0; cut <= w->len; cut++) {
        run(w, l, &cut, 1, log);
        ck_assert_msg(strcmp(log, want) == 0, "cut %zu: %s, want %s", cut,
                      log, want);
    }
    for (size_t i = 0; i < w->len; i++)
        cuts[i] = i + 1;
    run(w, l, cuts, w->len, log);
    ck_assert_msg(strcmp(log, want) == 0, "bytewise: %s, want %s", log,
                  want);
}

static const struct limits plain = { 1 << 20, 1 << 20, false, false };
static const struct limits with_deflate = { 1 << 20, 1 << 20, true, false };

START_TEST(test_fragmented_text)
{
    struct wire w = { .len = 0 };

    /* "wörld": the ö is split between the second and third frames. */
    put_str(&w, WS_OP_TEXT, "Hel");
    put_str(&w, WS_OP_CONT, "lo, w\xc3");
    put_str(&w, 0x80 | WS_OP_CONT, "\xb6rld");
    put_str(&w, 0x80 | WS_OP_BINARY, "b");
    put_frame(&w, 0x80 | WS_OP_TEXT, "", 0);
    check_all_splits(&w, &plain, "msg1:Hello, w\xc3\xb6rld|msg2:b|msg1:|");
}
END_TEST

START_TEST(test_control_inside_fragments)
{
    struct wire w = { .len = 0 };

    put_str(&w, WS_OP_BINARY, "ab");
    put_str(&w, 0x80 | WS_OP_PING, "p1");
    put_str(&w, WS_OP_CONT, "cd");
    put_str(&w, 0x80 | WS_OP_PONG, "");
    put_frame(&w, WS_OP_CONT, "", 0);
    put_str(&w, 0x80 | WS_OP_CONT, "ef");
    put_str(&w, 0x80 | WS_OP_PING, "p2");
    check_all_splits(&w, &plain, "ping:p1|pong:|msg2:abcdef|ping:p2|");
}
END_TEST

START_TEST(test_close_frames)
{
    struct wire w = { .len = 0 };
    static const uint8_t bye[] = { 0x03, 0xe8, 'b', 'y', 'e' };
    static const uint8_t one[] = { 0x03 };
    static const uint8_t bad_code[] = { 0x03, 0xe7 };         /* 999 */
    static const uint8_t bad_reason[] = { 0x0f, 0xa0, 0xff }; /* 4000 */

    put_frame(&w, 0x80 | WS_OP_CLOSE, bye, sizeof(bye));
    check_all_splits(&w, &plain, "close1000:bye|");
    w.len = 0;
    put_frame(&w, 0x80 | WS_OP_CLOSE, "", 0);
    check_all_splits(&w, &plain, "close1005:|");
    w.len = 0;
    put_frame(&w, 0x80 | WS_OP_CLOSE, one, sizeof(one));
    check_all_splits(&w, &plain, "error1002/1|");
    w.len = 0;
    put_frame(&w, 0x80 | WS_OP_CLOSE, bad_code, sizeof(bad_code));
    check_all_splits(&w, &plain, "error1002/1|");
    w.len = 0;
    put_str(&w, WS_OP_TEXT, "a");
    put_frame(&w, 0x80 | WS_OP_CLOSE, bad_reason, sizeof(bad_reason));
    check_all_splits(&w, &plain, "error1007/2|");
}
END_TEST

START_TEST(test_utf8_fail_fast)
{
    struct wire w = { .len = 0 };

    /* No final frame: the bad byte alone ends it. */
    put_str(&w, WS_OP_TEXT, "ok");
    put_str(&w, WS_OP_CONT, "a\xc0zz");
    check_all_splits(&w, &plain, "error1007/2|");
    /* A message that ends inside a character. */
    w.len = 0;
    put_str(&w, WS_OP_TEXT, "ok\xe2\x82");
    put_str(&w, 0x80 | WS_OP_CONT, "");
    check_all_splits(&w, &plain, "error1007/2|");
    w.len = 0;
    put_str(&w, 0x80 | WS_OP_TEXT, "\xed\xa0\x80");
    check_all_splits(&w, &plain, "error1007/2|");
    /* Binary is not checked. */
    w.len = 0;
    put_str(&w, 0x80 | WS_OP_BINARY, "\xff");
    check_all_splits(&w, &plain, "msg2:\xff|");
}
END_TEST

START_TEST(test_sizes)
{
    struct limits l = { 8, 10, false, false };
    struct wire w = { .len = 0 };

    put_str(&w, 0x80 | WS_OP_TEXT, "12345678");
    check_all_splits(&w, &l, "msg1:12345678|");
    w.len = 0;
    put_str(&w, 0x80 | WS_OP_TEXT, "123456789");
    check_all_splits(&w, &l, "error1009/3|");
    /* The message passes max_message with a frame's header. */
    w.len = 0;
    put_str(&w, WS_OP_TEXT, "12345678");
    put_str(&w, 0x80 | WS_OP_CONT, "abc");
    check_all_splits(&w, &l, "error1009/3|");
    w.len = 0;
    put_str(&w, WS_OP_TEXT, "12345678");
    put_str(&w, 0x80 | WS_OP_CONT, "ab");
    check_all_splits(&w, &l, "msg1:12345678ab|");
}
END_TEST

START_TEST(test_protocol_errors)
{
    static const uint8_t unmasked[] = { 0x81, 0x01, 'a' };
    struct wire w = { .len = 0 };

    put_str(&w, 0x80 | B_RSV1 | WS_OP_TEXT, "a");
    check_all_splits(&w, &plain, "error1002/1|");
    w.len = 0;
    put_str(&w, 0x80 | B_RSV2 | WS_OP_BINARY, "a");
    check_all_splits(&w, &with_deflate, "error1002/1|");
    w.len = 0;
    put_str(&w, 0x80 | B_RSV1 | WS_OP_PING, "a");
    check_all_splits(&w, &with_deflate, "error1002/1|");
    w.len = 0;
    put_str(&w, 0x80 | WS_OP_CONT, "a");
    check_all_splits(&w, &plain, "error1002/1|");
    w.len = 0;
    put_str(&w, WS_OP_TEXT, "a");
    put_str(&w, 0x80 | WS_OP_TEXT, "b");
    check_all_splits(&w, &plain, "error1002/1|");
    w.len = 0;
    put_str(&w, 0x80 | WS_OP_TEXT, "ok");
    put_str(&w, WS_OP_PING, "a"); /* fragmented control */
    check_all_splits(&w, &plain, "msg1:ok|error1002/1|");
    w.len = 0;
    memcpy(w.b, unmasked, sizeof(unmasked));
    w.len = sizeof(unmasked);
    check_all_splits(&w, &plain, "error1002/1|");
}
END_TEST

START_TEST(test_closing_skips_all_but_close)
{
    struct limits l = plain;
    struct wire w = { .len = 0 };
    static const uint8_t bye[] = { 0x03, 0xe9 };

    l.closing = true;
    put_str(&w, WS_OP_TEXT, "a\xff");
    put_str(&w, 0x80 | WS_OP_PING, "p");
    put_str(&w, 0x80 | B_RSV2 | WS_OP_CONT, "b");
    put_frame(&w, 0x80 | WS_OP_CLOSE, bye, sizeof(bye));
    check_all_splits(&w, &l, "close1001:|");
}
END_TEST

START_TEST(test_deflate_messages)
{
    static const char big[] = "hello hello hello hello hello hello hello "
                              "hello hello hello hello hello hello hello";
    struct wire w = { .len = 0 };
    struct limits small = with_deflate;

    put_deflated(&w, WS_OP_TEXT, "hello h\xc3\xa9llo hello");
    put_str(&w, 0x80 | WS_OP_TEXT, "plain");
    put_deflated(&w, WS_OP_BINARY, "");
    check_all_splits(&w, &with_deflate,
                     "msg1:hello h\xc3\xa9llo hello|msg1:plain|msg2:|");
    /* Inflated past max_message while it streams. */
    w.len = 0;
    put_deflated(&w, WS_OP_TEXT, big);
    small.max_message = sizeof(big) - 2;
    check_all_splits(&w, &small, "error1009/3|");
    small.max_message = sizeof(big) - 1;
    check_all_splits(&w, &small, "msg1:hello hello hello hello hello hello "
                     "hello hello hello hello hello hello hello hello|");
    /* Not deflate data. */
    w.len = 0;
    put_frame(&w, 0x80 | B_RSV1 | WS_OP_BINARY, "\xff\xff\xff", 3);
    check_all_splits(&w, &with_deflate, "error1007/4|");
    /* Inflated text that is not UTF-8. */
    w.len = 0;
    put_deflated(&w, WS_OP_TEXT, "ab\xff");
    check_all_splits(&w, &with_deflate, "error1007/2|");
}
END_TEST

/* A compressed message in two frames: RSV1 on the first only. */
START_TEST(test_deflate_fragmented)
{
    static const struct ws_deflate_params p = {
        .server_max_window_bits = 15, .client_max_window_bits = 15,
    };
    struct ws_deflate *d = ws_deflate_new(&p, -1, 8);
    struct ws_dbuf out = { 0 };
    struct wire w = { .len = 0 };
    const char *msg = "fragmented and compressed, fragmented and compressed";
    size_t half;

    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(ws_deflate_compress(d, (const uint8_t *)msg,
                                         strlen(msg), &out), 0);
    half = out.len / 2;
    put_frame(&w, B_RSV1 | WS_OP_TEXT, out.p, half);
    put_str(&w, 0x80 | WS_OP_PING, "x");
    put_frame(&w, 0x80 | WS_OP_CONT, out.p + half, out.len - half);
    check_all_splits(&w, &with_deflate, "ping:x|msg1:fragmented and "
                     "compressed, fragmented and compressed|");
    /* RSV1 on a continuation frame. */
    w.len = 0;
    put_frame(&w, B_RSV1 | WS_OP_TEXT, out.p, half);
    put_frame(&w, 0x80 | B_RSV1 | WS_OP_CONT, out.p + half,
              out.len - half);
    check_all_splits(&w, &with_deflate, "error1002/1|");
    free(out.p);
    ws_deflate_free(d);
}
END_TEST

/* Held bytes and unfinished state while a message is assembled. */
START_TEST(test_held_and_unfinished)
{
    struct wire w = { .len = 0 };
    struct ws_session s;
    struct ws_session_opts o = { .max_frame = 1000, .max_message = 1000 };
    struct ws_event ev;
    uint8_t *p;
    size_t r;

    memset(&s, 0, sizeof(s));
    put_str(&w, WS_OP_BINARY, "abc");
    p = guard_copy_mut(w.b, 1);
    ck_assert_uint_eq(ws_session_feed(&s, &o, p, 1, &ev), 1);
    ck_assert_int_eq(ev.type, WS_EV_NONE);
    ck_assert(ws_session_unfinished(&s));
    ck_assert(!ws_session_in_msg(&s));
    p = guard_copy_mut(w.b + 1, w.len - 1);
    r = ws_session_feed(&s, &o, p, w.len - 1, &ev);
    ck_assert_uint_eq(r, w.len - 1);
    ck_assert_int_eq(ev.type, WS_EV_NONE);
    ck_assert(ev.frame_end);
    ck_assert(ws_session_in_msg(&s));
    ck_assert_uint_eq(ws_session_held(&s), 256);
    ws_session_release(&s);
    ck_assert_uint_eq(ws_session_held(&s), 256);
    w.len = 0;
    put_str(&w, 0x80 | WS_OP_CONT, "d");
    p = guard_copy_mut(w.b, w.len);
    ck_assert_uint_eq(ws_session_feed(&s, &o, p, w.len, &ev), w.len);
    ck_assert_int_eq(ev.type, WS_EV_MESSAGE);
    ck_assert_uint_eq(ev.len, 4);
    ck_assert_mem_eq(ev.data, "abcd", 4);
    ck_assert(!ws_session_unfinished(&s));
    ws_session_release(&s);
    ck_assert_uint_eq(ws_session_held(&s), 0);
    ws_session_free(&s);
}
END_TEST

static Suite *
ws_session_suite(void)
{
    Suite *s = suite_create("ws_session");
    TCase *t = tcase_create("feed");

    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_fragmented_text);
    tcase_add_test(t, test_control_inside_fragments);
    tcase_add_test(t, test_close_frames);
    tcase_add_test(t, test_utf8_fail_fast);
    tcase_add_test(t, test_sizes);
    tcase_add_test(t, test_protocol_errors);
    tcase_add_test(t, test_closing_skips_all_but_close);
    tcase_add_test(t, test_deflate_messages);
    tcase_add_test(t, test_deflate_fragmented);
    tcase_add_test(t, test_held_and_unfinished);
    suite_add_tcase(s, t);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(ws_session_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
