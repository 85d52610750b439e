/*
 * test_ticker.c: the ticker example on the harness's fake clock: ticks
 * come every interval and only then, the interval can change, "stop"
 * closes with 1000, and terminate frees the state.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "sock_test.h"

extern const sock_app sock_example_ticker;

static void
expect_text(sock_test *t, const char *want)
{
    sock_opcode op;
    const void *data;
    size_t len;

    ck_assert(sock_test_take(t, &op, &data, &len));
    ck_assert_int_eq(op, SOCK_TEXT);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert_mem_eq(data, want, len);
}

START_TEST(test_ticks_on_time)
{
    sock_test *t = sock_test_new(&sock_example_ticker, "/ticker");

    ck_assert_int_eq(sock_test_init(t), SOCK_CONTINUE);
    ck_assert_int_eq(sock_test_advance(999), 0);
    ck_assert_uint_eq(sock_test_pushed(t), 0);
    ck_assert_int_eq(sock_test_advance(1), 1);
    expect_text(t, "tick 1");
    ck_assert_int_eq(sock_test_advance(3000), 3);
    expect_text(t, "tick 2");
    expect_text(t, "tick 3");
    expect_text(t, "tick 4");
    ck_assert_uint_eq(sock_test_pushed(t), 0);
    sock_test_free(t);
}
END_TEST

START_TEST(test_interval_and_stop)
{
    sock_test *t = sock_test_new(&sock_example_ticker, "/ticker");

    sock_test_init(t);
    ck_assert_int_eq(sock_test_in(t, SOCK_TEXT, "interval 100", 12),
                     SOCK_CONTINUE);
    sock_test_advance(1000); /* the pending 1 s tick, then 100 ms ones */
    expect_text(t, "tick 1");
    sock_test_advance(300);
    expect_text(t, "tick 2");
    expect_text(t, "tick 3");
    expect_text(t, "tick 4");
    ck_assert_int_eq(sock_test_in(t, SOCK_TEXT, "stop", 4), SOCK_STOP);
    ck_assert(sock_test_stopped(t));
    ck_assert_uint_eq(sock_test_close_code(t), 1000);
    ck_assert_int_eq(sock_test_terminate_count(t), 1);
    /* Timers die with the connection. */
    ck_assert_int_eq(sock_test_advance(5000), 0);
    sock_test_free(t);
}
END_TEST

START_TEST(test_binary_refused_with_1003)
{
    sock_test *t = sock_test_new(&sock_example_ticker, "/ticker");

    sock_test_init(t);
    ck_assert_int_eq(sock_test_in(t, SOCK_BINARY, "x", 1), SOCK_STOP);
    ck_assert_uint_eq(sock_test_close_code(t), 1003);
    ck_assert_str_eq(sock_test_close_reason(t), "text commands only");
    sock_test_free(t);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("ticker");
    TCase *tc = tcase_create("ticker");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_ticks_on_time);
    tcase_add_test(tc, test_interval_and_stop);
    tcase_add_test(tc, test_binary_refused_with_1003);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
