/*
 * test_echo.c: the echo example, driven through sock_test.h without a
 * network: messages come back unchanged with their opcode; pings are
 * answered by the server, not the app.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sock_test.h"

extern const sock_app sock_example_echo;

START_TEST(test_echo_text_and_binary)
{
    sock_test *t = sock_test_new(&sock_example_echo, "/echo");
    sock_opcode op;
    const void *data;
    size_t len;
    static const uint8_t bin[] = { 0, 1, 2, 0xff };

    ck_assert_int_eq(sock_test_upgrade(t, "GET /echo HTTP/1.1\r\n"
                                          "Host: x\r\n\r\n"), 0);
    ck_assert_int_eq(sock_test_init(t), SOCK_CONTINUE);
    ck_assert_int_eq(sock_test_in(t, SOCK_TEXT, "héllo", 6), SOCK_CONTINUE);
    ck_assert_int_eq(sock_test_in(t, SOCK_BINARY, bin, sizeof(bin)),
                     SOCK_CONTINUE);
    ck_assert_int_eq(sock_test_in(t, SOCK_TEXT, "", 0), SOCK_CONTINUE);
    ck_assert_uint_eq(sock_test_pushed(t), 3);
    ck_assert(sock_test_take(t, &op, &data, &len));
    ck_assert_int_eq(op, SOCK_TEXT);
    ck_assert_uint_eq(len, 6);
    ck_assert_mem_eq(data, "héllo", 6);
    ck_assert(sock_test_take(t, &op, &data, &len));
    ck_assert_int_eq(op, SOCK_BINARY);
    ck_assert_uint_eq(len, sizeof(bin));
    ck_assert_mem_eq(data, bin, sizeof(bin));
    ck_assert(sock_test_take(t, &op, &data, &len));
    ck_assert_uint_eq(len, 0);
    ck_assert(!sock_test_take(t, &op, &data, &len));
    sock_test_free(t);
}
END_TEST

START_TEST(test_echo_ping_answered_by_server)
{
    sock_test *t = sock_test_new(&sock_example_echo, "/echo");
    sock_opcode op;
    const void *data;
    size_t len;

    sock_test_init(t);
    ck_assert_int_eq(sock_test_in(t, SOCK_PING, "p", 1), SOCK_CONTINUE);
    ck_assert_uint_eq(sock_test_pushed(t), 1);
    ck_assert(sock_test_take(t, &op, &data, &len));
    ck_assert_int_eq(op, SOCK_PONG);
    ck_assert_mem_eq(data, "p", 1);
    sock_test_free(t);
}
END_TEST

START_TEST(test_echo_peer_close_terminates_once)
{
    sock_test *t = sock_test_new(&sock_example_echo, "/echo");

    sock_test_init(t);
    sock_test_peer_close(t, 1001);
    ck_assert(sock_test_terminated(t));
    ck_assert_int_eq(sock_test_close_info(t)->kind, SOCK_CLOSE_REMOTE);
    ck_assert_uint_eq(sock_test_close_info(t)->peer_code, 1001);
    ck_assert_int_eq(sock_push(sock_test_conn(t), SOCK_TEXT, "x", 1),
                     -EPIPE);
    sock_test_free(t);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("echo");
    TCase *tc = tcase_create("echo");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_echo_text_and_binary);
    tcase_add_test(tc, test_echo_ping_answered_by_server);
    tcase_add_test(tc, test_echo_peer_close_terminates_once);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
