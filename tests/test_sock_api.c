/*
 * test_sock_api.c: the contract's rules (DESIGN §3.2) as the API and the
 * sock_test.h harness implement them: terminate exactly once (also when
 * init stops), no re-entrant delivery, pushes after terminate fail,
 * garbage returns become 1011, invalid stop codes become 1011, shared
 * buffers, the upgrade hook's decisions, topics and broadcast.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sock_impl.h"
#include "sock_test.h"

struct probe_state {
    int infos;
    bool in_handler;
    bool nested;
    int generation;
};

static int terminates;
static void *terminate_state;
static sock_close_info last_why;

static sock_ret
p_init(sock_conn *c, void *arg, void **state)
{
    struct probe_state *s = calloc(1, sizeof(*s));

    bool stop = arg != NULL && strcmp(arg, "stop-in-init") == 0;

    s->generation = 1;
    *state = s;
    free(arg); /* init owns the upgrade arg */
    if (stop)
        return sock_stop_code(c, 4001, "init", 4);
    return SOCK_CONTINUE;
}

static sock_ret
p_in(sock_conn *c, const sock_msg *m, void **state)
{
    struct probe_state *s = *state;
    char cmd[64] = "";
    sock_ret ret = SOCK_CONTINUE;

    memcpy(cmd, m->data, m->len < 63 ? m->len : 63);
    s->in_handler = true;
    if (strcmp(cmd, "self") == 0) {
        sock_send_info(sock_self(c), 7, "me", 2);
        sock_push(c, SOCK_TEXT, "sent", 4);
    } else if (strcmp(cmd, "garbage") == 0) {
        ret = (sock_ret)7;
    } else if (strcmp(cmd, "badcode") == 0) {
        ret = sock_stop_code(c, 1005, NULL, 0);
    } else if (strcmp(cmd, "longreason") == 0) {
        char r[200];

        memset(r, 'a', sizeof(r));
        ret = sock_stop_code(c, 4000, r, sizeof(r));
    } else if (strcmp(cmd, "badutf8") == 0) {
        ret = sock_stop_code(c, 4000, "\xc3\x28", 2);
    } else if (strcmp(cmd, "bye") == 0) {
        sock_push(c, SOCK_TEXT, "last", 4);
        ret = sock_stop_code(c, 4000, "bye", 3);
    } else if (strcmp(cmd, "swap") == 0) {
        struct probe_state *n = calloc(1, sizeof(*n));

        n->generation = s->generation + 1;
        free(s);
        *state = n;
        s = n;
    } else if (strcmp(cmd, "sub") == 0) {
        ck_assert_int_eq(sock_subscribe(c, "room"), 0);
    } else if (strcmp(cmd, "subf") == 0) {
        ck_assert_int_eq(sock_subscribe_frames(c, "room", SOCK_BINARY), 0);
    } else if (strcmp(cmd, "pub") == 0) {
        sock_publish("room", 3, "hi", 2);
    } else if (strcmp(cmd, "bcast") == 0) {
        sock_broadcast(4, "all", 3);
    }
    s->in_handler = false;
    return ret;
}

static sock_ret
p_info(sock_conn *c, const sock_info *i, void **state)
{
    struct probe_state *s = *state;

    if (s->in_handler)
        s->nested = true;
    s->infos++;
    sock_push(c, SOCK_TEXT, i->data, i->len);
    return SOCK_CONTINUE;
}

static void
p_terminate(sock_conn *c, const sock_close_info *why, void *state)
{
    terminates++;
    terminate_state = state;
    last_why = *why;
    ck_assert_int_eq(sock_push(c, SOCK_TEXT, "x", 1), -EPIPE);
    free(state);
}

static int
p_upgrade(const sock_request *r, sock_upgrade *u)
{
    char v[32];

    if (sock_request_query_param(r, "deny", v, sizeof(v)) >= 0) {
        sock_upgrade_refuse_body(u, "no\n");
        return atoi(v);
    }
    if (sock_upgrade_subprotocol(u, "chat.v2") != 0)
        sock_upgrade_subprotocol(u, "chat.v1");
    if (sock_request_query_param(r, "arg", v, sizeof(v)) >= 0)
        sock_upgrade_set_arg(u, strdup(v), free);
    return 0;
}

static const sock_app probe = {
    .abi = SOCK_ABI_VERSION,
    .name = "probe",
    .upgrade = p_upgrade,
    .init = p_init,
    .handle_in = p_in,
    .handle_info = p_info,
    .terminate = p_terminate,
};

static void
setup(void)
{
    terminates = 0;
    terminate_state = NULL;
    memset(&last_why, 0, sizeof(last_why));
}

static sock_ret
send_text(sock_test *t, const char *s)
{
    return sock_test_in(t, SOCK_TEXT, s, strlen(s));
}

static void
expect(sock_test *t, const char *want)
{
    sock_opcode op;
    const void *d;
    size_t n;

    ck_assert_msg(sock_test_take(t, &op, &d, &n), "nothing pushed");
    ck_assert_uint_eq(n, strlen(want));
    ck_assert_mem_eq(d, want, n);
}

START_TEST(test_no_reentrant_delivery)
{
    sock_test *t = sock_test_new(&probe, "/p");
    struct probe_state *s;

    sock_test_init(t);
    send_text(t, "self");
    s = sock_test_state(t);
    ck_assert_int_eq(s->infos, 0);     /* queued, not delivered yet */
    ck_assert_int_eq(sock_test_run(), 1);
    ck_assert_int_eq(s->infos, 1);
    ck_assert(!s->nested);
    expect(t, "sent");
    expect(t, "me");
    sock_test_free(t);
    ck_assert_int_eq(terminates, 1);
}
END_TEST

START_TEST(test_terminate_once_when_init_stops)
{
    sock_test *t = sock_test_new(&probe, "/p");

    ck_assert_int_eq(sock_test_upgrade(t, "GET /p?arg=stop-in-init "
                                          "HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
    ck_assert_int_eq(sock_test_init(t), SOCK_STOP);
    ck_assert_int_eq(terminates, 1);
    ck_assert_uint_eq(sock_test_close_code(t), 4001);
    ck_assert_uint_eq(last_why.code_sent, 4001);
    ck_assert_int_eq(last_why.kind, SOCK_CLOSE_NORMAL);
    sock_test_free(t);
    ck_assert_int_eq(terminates, 1);
}
END_TEST

START_TEST(test_garbage_return_is_1011)
{
    sock_test *t = sock_test_new(&probe, "/p");

    sock_test_init(t);
    ck_assert_int_eq(send_text(t, "garbage"), 7);
    ck_assert_uint_eq(sock_test_close_code(t), 1011);
    ck_assert_int_eq(last_why.kind, SOCK_CLOSE_ERROR);
    ck_assert_int_eq(last_why.error, SOCK_ERR_APP);
    ck_assert_int_eq(terminates, 1);
    ck_assert_int_eq(sock_push(sock_test_conn(t), SOCK_TEXT, "x", 1),
                     -EPIPE);
    sock_test_free(t);
    ck_assert_int_eq(terminates, 1);
}
END_TEST

START_TEST(test_invalid_stop_codes_become_1011)
{
    static const char *cmds[] = { "badcode", "longreason", "badutf8" };

    for (size_t i = 0; i < 3; i++) {
        sock_test *t = sock_test_new(&probe, "/p");

        sock_test_init(t);
        ck_assert_int_eq(send_text(t, cmds[i]), SOCK_STOP);
        ck_assert_uint_eq(sock_test_close_code(t), 1011);
        sock_test_free(t);
    }
}
END_TEST

START_TEST(test_frames_before_stop_and_reason)
{
    sock_test *t = sock_test_new(&probe, "/p");

    sock_test_init(t);
    ck_assert_int_eq(send_text(t, "bye"), SOCK_STOP);
    expect(t, "last");
    ck_assert_uint_eq(sock_test_close_code(t), 4000);
    ck_assert_str_eq(sock_test_close_reason(t), "bye");
    sock_test_free(t);
}
END_TEST

START_TEST(test_terminate_sees_last_state)
{
    sock_test *t = sock_test_new(&probe, "/p");
    void *st;

    sock_test_init(t);
    send_text(t, "swap");
    st = sock_test_state(t);
    ck_assert_int_eq(((struct probe_state *)st)->generation, 2);
    sock_test_peer_close(t, 1000);
    ck_assert_ptr_eq(terminate_state, st);
    ck_assert_int_eq(last_why.peer_code, 1000);
    sock_test_free(t);
}
END_TEST

START_TEST(test_upgrade_hook)
{
    sock_test *t = sock_test_new(&probe, "/p");

    ck_assert_int_eq(sock_test_upgrade(t, "GET /p?deny=403 HTTP/1.1\r\n"
                                          "Host: h\r\n\r\n"), 403);
    ck_assert_int_eq(sock_test_upgrade(t, "GET /p?deny=200 HTTP/1.1\r\n"
                                          "Host: h\r\n\r\n"), 500);
    ck_assert_int_eq(sock_test_upgrade(t, "POST /p HTTP/1.1\r\n"
                                          "Host: h\r\n\r\n"), 400);
    ck_assert_int_eq(sock_test_upgrade(t, "GET /p HTTP/1.1\r\nHost: h\r\n"
                                          "Sec-WebSocket-Protocol: x, "
                                          "chat.v1\r\n\r\n"), 0);
    ck_assert_str_eq(sock_test_chosen_subprotocol(t), "chat.v1");
    sock_test_free(t);
}
END_TEST

START_TEST(test_topics_and_broadcast)
{
    sock_test *a = sock_test_new(&probe, "/p");
    sock_test *b = sock_test_new(&probe, "/p");
    sock_test *c = sock_test_new(&probe, "/p");

    sock_test_init(a);
    sock_test_init(b);
    sock_test_init(c);
    send_text(a, "sub");
    send_text(b, "sub");
    send_text(c, "pub");
    ck_assert_int_eq(sock_test_run(), 2);
    expect(a, "hi");
    expect(b, "hi");
    ck_assert_uint_eq(sock_test_pushed(c), 0);
    send_text(a, "bcast");
    ck_assert_int_eq(sock_test_run(), 3);
    expect(a, "all");
    expect(b, "all");
    expect(c, "all");
    sock_test_free(a);
    send_text(b, "pub");
    ck_assert_int_eq(sock_test_run(), 1);   /* a is gone */
    sock_test_free(b);
    sock_test_free(c);
    ck_assert_int_eq(terminates, 3);
}
END_TEST

/* Frame mode: the published bytes become a frame of the chosen opcode at
   once, with no handle_info; callback subscribers still get infos. */
START_TEST(test_subscribe_frames)
{
    sock_test *a = sock_test_new(&probe, "/p");
    sock_test *b = sock_test_new(&probe, "/p");
    struct probe_state *sa;
    sock_opcode op;
    const void *d;
    size_t n;

    sock_test_init(a);
    sock_test_init(b);
    sa = sock_test_state(a);
    send_text(a, "subf");
    send_text(b, "sub");
    send_text(b, "pub");
    ck_assert_uint_eq(sock_test_pushed(a), 1); /* queued by the publish */
    ck_assert_int_eq(sock_test_run(), 1);      /* only b's info */
    ck_assert_int_eq(sa->infos, 0);
    ck_assert(sock_test_take(a, &op, &d, &n));
    ck_assert_int_eq(op, SOCK_BINARY);
    ck_assert_uint_eq(n, 2);
    ck_assert_mem_eq(d, "hi", 2);
    expect(b, "hi");
    /* sock_subscribe switches a back to infos; unsubscribe leaves. */
    send_text(a, "sub");
    send_text(b, "pub");
    ck_assert_uint_eq(sock_test_pushed(a), 0);
    ck_assert_int_eq(sock_test_run(), 2);
    ck_assert_int_eq(sa->infos, 1);
    expect(a, "hi");
    expect(b, "hi");
    ck_assert_int_eq(sock_unsubscribe(sock_test_conn(a), "room"), 0);
    send_text(b, "pub");
    ck_assert_int_eq(sock_test_run(), 1);
    ck_assert_uint_eq(sock_test_pushed(a), 0);
    /* Bad arguments. */
    ck_assert_int_eq(sock_subscribe_frames(sock_test_conn(a), "room",
                                           SOCK_PING), -EINVAL);
    ck_assert_int_eq(sock_subscribe_frames(sock_test_conn(a), "", SOCK_TEXT),
                     -EINVAL);
    ck_assert_int_eq(sock_subscribe_frames(sock_test_conn(a), NULL,
                                           SOCK_TEXT), -EINVAL);
    sock_test_free(a);
    sock_test_free(b);
}
END_TEST

START_TEST(test_send_to_gone_id_is_dropped)
{
    sock_test *a = sock_test_new(&probe, "/p");
    sock_id gone;

    sock_test_init(a);
    gone = sock_self(sock_test_conn(a));
    sock_test_free(a);
    ck_assert_int_eq(sock_send_info(gone, 1, "x", 1), 0);
    ck_assert_int_eq(sock_test_run(), 0);
}
END_TEST

START_TEST(test_shared_buffers)
{
    sock_buf *b = sock_buf_new("abc", 3);

    ck_assert_uint_eq(sock_buf_len(b), 3);
    ck_assert_mem_eq(sock_buf_data(b), "abc", 3);
    ck_assert_ptr_eq(sock_buf_ref(b), b);
    ck_assert_uint_eq(b->refs, 2);
    sock_buf_unref(b);
    ck_assert_uint_eq(b->refs, 1);
    sock_buf_unref(b);
    sock_buf_unref(NULL);
}
END_TEST

START_TEST(test_close_code_validity)
{
    static const uint16_t ok[] = { 1000, 1001, 1002, 1003, 1007, 1011,
                                   1012, 1014, 3000, 4999 };
    static const uint16_t bad[] = { 0, 999, 1004, 1005, 1006, 1015, 1016,
                                    2999, 5000, 65535 };

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        ck_assert_msg(sock_close_code_is_valid(ok[i]), "%u", ok[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!sock_close_code_is_valid(bad[i]), "%u", bad[i]);
    ck_assert(sock_utf8_valid("h\xc3\xa9", 3));
    ck_assert(!sock_utf8_valid("\xed\xa0\x80", 3));
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("sock_api");
    TCase *tc = tcase_create("rules");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_no_reentrant_delivery);
    tcase_add_test(tc, test_terminate_once_when_init_stops);
    tcase_add_test(tc, test_garbage_return_is_1011);
    tcase_add_test(tc, test_invalid_stop_codes_become_1011);
    tcase_add_test(tc, test_frames_before_stop_and_reason);
    tcase_add_test(tc, test_terminate_sees_last_state);
    tcase_add_test(tc, test_upgrade_hook);
    tcase_add_test(tc, test_topics_and_broadcast);
    tcase_add_test(tc, test_subscribe_frames);
    tcase_add_test(tc, test_send_to_gone_id_is_dropped);
    tcase_add_test(tc, test_shared_buffers);
    tcase_add_test(tc, test_close_code_validity);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
