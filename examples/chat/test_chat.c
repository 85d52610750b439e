/*
 * test_chat.c: the chat example through sock_test.h: the upgrade hook's
 * checks, room membership, JSON building and escaping, join and leave
 * notices.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sock_test.h"

extern const sock_app sock_example_chat;

static sock_test *
join(const char *room, const char *nick)
{
    char head[256];
    sock_test *t = sock_test_new(&sock_example_chat, "/chat");

    snprintf(head, sizeof(head), "GET /chat?room=%s&nick=%s HTTP/1.1\r\n"
             "Host: x\r\n\r\n", room, nick);
    ck_assert_int_eq(sock_test_upgrade(t, head), 0);
    ck_assert_int_eq(sock_test_init(t), SOCK_CONTINUE);
    return t;
}

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

START_TEST(test_upgrade_checks)
{
    static const char *bad[] = {
        "GET /chat HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /chat?room=a HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /chat?room=&nick=b HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /chat?room=a%20b&nick=b HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /chat?room=a&nick=123456789012345678901234567890123 "
        "HTTP/1.1\r\nHost: x\r\n\r\n",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sock_test *t = sock_test_new(&sock_example_chat, "/chat");

        ck_assert_int_eq(sock_test_upgrade(t, bad[i]), 400);
        sock_test_free(t);
    }
}
END_TEST

START_TEST(test_room_messages)
{
    sock_test *a = join("r1", "ann");
    sock_test *b, *c;

    sock_test_run();
    expect(a, "{\"event\":\"join\",\"nick\":\"ann\"}");
    b = join("r1", "bob");
    c = join("other", "cid");
    sock_test_run();
    expect(a, "{\"event\":\"join\",\"nick\":\"bob\"}");
    expect(b, "{\"event\":\"join\",\"nick\":\"bob\"}");
    expect(c, "{\"event\":\"join\",\"nick\":\"cid\"}");
    sock_test_in(b, SOCK_TEXT, "hi \"all\"\n", 9);
    sock_test_run();
    expect(a, "{\"from\":\"bob\",\"text\":\"hi \\\"all\\\"\\n\"}");
    expect(b, "{\"from\":\"bob\",\"text\":\"hi \\\"all\\\"\\n\"}");
    ck_assert_uint_eq(sock_test_pushed(c), 0);
    sock_test_free(b);
    sock_test_run();
    expect(a, "{\"event\":\"leave\",\"nick\":\"bob\"}");
    sock_test_free(a);
    sock_test_free(c);
}
END_TEST

START_TEST(test_binary_refused)
{
    sock_test *a = join("r2", "ann");

    ck_assert_int_eq(sock_test_in(a, SOCK_BINARY, "x", 1), SOCK_STOP);
    ck_assert_uint_eq(sock_test_close_code(a), 1003);
    sock_test_free(a);
}
END_TEST

START_TEST(test_outside_messages)
{
    sock_test *a = join("r3", "ann");

    sock_test_run();
    expect(a, "{\"event\":\"join\",\"nick\":\"ann\"}");
    /* What `sockctl publish chat:r3 MESSAGE` delivers: type 0, from 0. */
    sock_test_info(a, SOCK_INFO_PUBLISH, 0, 0,
                   "{\"from\":\"shell\",\"text\":\"hi\"}", 28);
    expect(a, "{\"from\":\"shell\",\"text\":\"hi\"}");
    sock_test_info(a, SOCK_INFO_PUBLISH, 0, 0, "plain \"x\"", 9);
    expect(a, "{\"from\":\"admin\",\"text\":\"plain \\\"x\\\"\"}");
    /* Not shown: invalid UTF-8, type 0 from a connection, other types. */
    sock_test_info(a, SOCK_INFO_PUBLISH, 0, 0, "\xff", 1);
    sock_test_info(a, SOCK_INFO_PUBLISH, 0, 12345, "x", 1);
    sock_test_info(a, SOCK_INFO_PUBLISH, 5, 0, "x", 1);
    ck_assert_uint_eq(sock_test_pushed(a), 0);
    sock_test_free(a);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("chat");
    TCase *tc = tcase_create("chat");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_upgrade_checks);
    tcase_add_test(tc, test_room_messages);
    tcase_add_test(tc, test_binary_refused);
    tcase_add_test(tc, test_outside_messages);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
