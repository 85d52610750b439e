/*
 * test_threadwork.c: the threadwork example through sock_test.h: setup's
 * option checks, jobs done on the pool and posted back in order per
 * connection, the busy answer over max_queue, results for a closed
 * connection dropped, and teardown joining the pool.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sock_test.h"

extern const sock_app sock_example_threadwork;
#define APP (&sock_example_threadwork)

static void
expect(sock_test *t, const char *want)
{
    sock_opcode op;
    const void *d;
    size_t n;

    ck_assert_msg(sock_test_take(t, &op, &d, &n), "nothing for %s", want);
    ck_assert_int_eq(op, SOCK_TEXT);
    ck_assert_msg(n == strlen(want) && memcmp(d, want, n) == 0,
                  "got %.*s want %s", (int)n, (const char *)d, want);
}

START_TEST(test_bad_options)
{
    static const char *const bad[] = { "threads", "0", NULL };
    static const char *const bad2[] = { "delay_ms", "x", NULL };

    ck_assert_int_eq(sock_test_setup(APP, "/w", bad), -22);
    sock_test_teardown(APP, "/w");
    ck_assert_int_eq(sock_test_setup(APP, "/w", bad2), -22);
    sock_test_teardown(APP, "/w");
}
END_TEST

START_TEST(test_jobs_come_back)
{
    static const char *const opts[] = { "threads", "3", "delay_ms", "20",
                                        NULL };
    sock_test *a, *b;
    uint64_t dropped;

    ck_assert_int_eq(sock_test_setup(APP, "/w", opts), 0);
    a = sock_test_new(APP, "/w");
    b = sock_test_new(APP, "/w");
    sock_test_init(a);
    sock_test_init(b);
    sock_test_in(a, SOCK_TEXT, "abc", 3);
    sock_test_in(b, SOCK_TEXT, "hello", 5);
    ck_assert_uint_eq(sock_test_pushed(a), 0); /* nothing blocks the loop */
    ck_assert_int_eq(sock_test_wait(2, 5000), 2);
    expect(a, "{\"job\":1,\"bytes\":3,\"reversed\":\"cba\"}");
    expect(b, "{\"job\":1,\"bytes\":5,\"reversed\":\"olleh\"}");
    /* A connection that leaves before its result: dropped, counted. */
    dropped = sock_test_posts_dropped();
    sock_test_in(a, SOCK_TEXT, "late", 4);
    sock_test_peer_close(a, 1000);
    ck_assert_int_eq(sock_test_wait(1, 300), 0);
    ck_assert_uint_eq(sock_test_posts_dropped(), dropped + 1);
    /* Not text: refused. */
    ck_assert_int_eq(sock_test_in(b, SOCK_TEXT, "a\"b", 3), SOCK_STOP);
    ck_assert_uint_eq(sock_test_close_code(b), 1003);
    sock_test_free(a);
    sock_test_free(b);
    sock_test_teardown(APP, "/w");
}
END_TEST

START_TEST(test_busy_over_max_queue)
{
    static const char *const opts[] = { "threads", "1", "delay_ms", "500",
                                        "max_queue", "1", NULL };
    struct timespec pick = { 0, 100 * 1000000 };
    sock_test *a;

    ck_assert_int_eq(sock_test_setup(APP, "/w", opts), 0);
    a = sock_test_new(APP, "/w");
    sock_test_init(a);
    /* One runs, one waits, the third finds the queue full. */
    sock_test_in(a, SOCK_TEXT, "1", 1);
    nanosleep(&pick, NULL); /* the idle thread takes job 1 meanwhile */
    sock_test_in(a, SOCK_TEXT, "2", 1);
    sock_test_in(a, SOCK_TEXT, "3", 1);
    expect(a, "{\"error\":\"busy\"}");
    ck_assert_int_eq(sock_test_wait(2, 5000), 2);
    expect(a, "{\"job\":1,\"bytes\":1,\"reversed\":\"1\"}");
    expect(a, "{\"job\":2,\"bytes\":1,\"reversed\":\"2\"}");
    sock_test_free(a);
    sock_test_teardown(APP, "/w");
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("threadwork");
    TCase *tc = tcase_create("threadwork");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_bad_options);
    tcase_add_test(tc, test_jobs_come_back);
    tcase_add_test(tc, test_busy_over_max_queue);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
