/*
 * test_sock_async.c: sock.h's ABI 2 calls as the sock_test.h harness
 * implements them: sock_post from threads (delivery, dropped ids),
 * sock_watch_fd over real pipes, sock_timer_start on the fake clock,
 * deferred upgrade decisions (accept, refuse, from a thread, after the
 * timeout, after the client left, hook misuse), route options and
 * setup/teardown (also for an ABI 1 app, which has neither).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sock_impl.h"
#include "sock_test.h"

/* ---- An app that records what reaches it -------------------------------- */

static char last_info[128];
static sock_info_kind last_kind;
static uint32_t last_type;
static sock_id last_from;
static int n_infos;
static char init_arg[64];
static sock_pending *pending;
static int hook_mode; /* 0 accept, 1 defer, 2 LATER without defer,
                         3 defer then accept at once */
static char hook_option[64];
static int setups, teardowns, setup_result;
static char setup_greeting[64];

static int
a_upgrade(const sock_request *r, sock_upgrade *u)
{
    const char *o = sock_request_option(r, "greeting");

    snprintf(hook_option, sizeof(hook_option), "%s", o ? o : "(unset)");
    switch (hook_mode) {
    case 1:
        pending = sock_upgrade_defer(u);
        sock_upgrade_header(u, "X-Deferred", "yes");
        return pending != NULL ? SOCK_UPGRADE_LATER : 503;
    case 2:
        return SOCK_UPGRADE_LATER;
    case 3:
        pending = sock_upgrade_defer(u);
        return 0;
    default:
        return 0;
    }
}

static sock_ret
a_init(sock_conn *c, void *arg, void **state)
{
    (void)c;
    (void)state;
    snprintf(init_arg, sizeof(init_arg), "%s", arg ? (char *)arg : "");
    free(arg);
    return SOCK_CONTINUE;
}

static sock_ret
a_in(sock_conn *c, const sock_msg *m, void **state)
{
    (void)m;
    (void)state;
    return sock_stop(c);
}

static sock_ret
a_info(sock_conn *c, const sock_info *i, void **state)
{
    (void)c;
    (void)state;
    n_infos++;
    last_kind = i->kind;
    last_type = i->type;
    last_from = i->from;
    snprintf(last_info, sizeof(last_info), "%.*s", (int)i->len,
             (const char *)i->data);
    return SOCK_CONTINUE;
}

static int
a_setup(const sock_options *o)
{
    const char *g = sock_options_get(o, "greeting");

    setups++;
    ck_assert_str_eq(sock_options_route(o), "/a");
    snprintf(setup_greeting, sizeof(setup_greeting), "%s", g ? g : "");
    return setup_result;
}

static void
a_teardown(const sock_options *o)
{
    (void)o;
    teardowns++;
}

static const sock_app app = {
    .abi = SOCK_ABI_VERSION,
    .name = "async-probe",
    .upgrade = a_upgrade,
    .init = a_init,
    .handle_in = a_in,
    .handle_info = a_info,
    .setup = a_setup,
    .teardown = a_teardown,
};

static void
reset(void)
{
    last_info[0] = init_arg[0] = hook_option[0] = setup_greeting[0] = '\0';
    n_infos = setups = teardowns = setup_result = hook_mode = 0;
    pending = NULL;
}

/* ---- sock_post ------------------------------------------------------------ */

struct post_job {
    sock_id to;
    int n;
};

static void *
poster(void *arg)
{
    struct post_job *j = arg;
    char buf[32];

    for (int i = 0; i < j->n; i++) {
        int len = snprintf(buf, sizeof(buf), "result %d", i);

        ck_assert_int_eq(sock_post(j->to, 42, buf, (size_t)len), 0);
    }
    return NULL;
}

START_TEST(test_post_from_threads)
{
    sock_test *t;
    pthread_t th[4];
    struct post_job job;
    uint64_t dropped;

    reset();
    t = sock_test_new(&app, "/a");
    ck_assert_int_eq(sock_test_init(t), SOCK_CONTINUE);
    job.to = sock_self(sock_test_conn(t));
    job.n = 250;
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, poster, &job), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(n_infos, 0); /* nothing before the loop runs */
    ck_assert_int_eq(sock_test_wait(1000, 5000), 1000);
    ck_assert_int_eq(n_infos, 1000);
    ck_assert_int_eq(last_kind, SOCK_INFO_POST);
    ck_assert_uint_eq(last_type, 42);
    ck_assert_uint_eq(last_from, 0);
    ck_assert_str_eq(last_info, "result 249");

    /* A closed or unknown id: dropped and counted. */
    dropped = sock_test_posts_dropped();
    ck_assert_int_eq(sock_post(job.to + 1000, 1, "x", 1), 0);
    ck_assert_int_eq(sock_test_run(), 0);
    ck_assert_uint_eq(sock_test_posts_dropped(), dropped + 1);
    ck_assert_int_eq(sock_post(job.to, 1, NULL, 3), -EINVAL);
    sock_test_peer_close(t, 1000);
    ck_assert_int_eq(sock_post(job.to, 1, "late", 4), 0);
    ck_assert_int_eq(sock_test_run(), 0);
    ck_assert_uint_eq(sock_test_posts_dropped(), dropped + 2);
    ck_assert_int_eq(n_infos, 1000);
    sock_test_free(t);
}
END_TEST

/* ---- sock_watch_fd ---------------------------------------------------------- */

static int watch_calls;
static unsigned watch_revents;
static char watch_buf[64];

static void
on_watch(sock_watch *w, int fd, unsigned revents, void *arg)
{
    ssize_t n = read(fd, watch_buf, sizeof(watch_buf) - 1);

    watch_calls++;
    watch_revents = revents;
    watch_buf[n > 0 ? n : 0] = '\0';
    if (arg != NULL && n == 0)
        sock_watch_stop(w); /* at EOF, from inside its own callback */
}

START_TEST(test_watch_fd)
{
    int p[2];
    sock_watch *w;
    sock_test *t;

    reset();
    t = sock_test_new(&app, "/a"); /* installs the harness as the host */
    watch_calls = 0;
    ck_assert_int_eq(pipe2(p, O_NONBLOCK), 0);
    ck_assert_ptr_null(sock_watch_fd(-1, SOCK_READ, on_watch, NULL));
    ck_assert_ptr_null(sock_watch_fd(p[0], 0x10, on_watch, NULL));
    w = sock_watch_fd(p[0], SOCK_READ, on_watch, &watch_calls);
    ck_assert_ptr_nonnull(w);
    ck_assert_uint_eq(sock_test_watch_count(), 1);
    ck_assert_int_eq(sock_test_poll(0), 0); /* nothing written yet */
    ck_assert_int_eq(write(p[1], "abc", 3), 3);
    ck_assert_int_eq(sock_watch_set(w, 0), 0); /* paused: not reported */
    ck_assert_int_eq(sock_test_poll(0), 0);
    ck_assert_int_eq(sock_watch_set(w, SOCK_READ), 0);
    ck_assert_int_eq(sock_watch_set(w, 0x10), -EINVAL);
    ck_assert_int_eq(sock_test_poll(100), 1);
    ck_assert_int_eq(watch_calls, 1);
    ck_assert_uint_eq(watch_revents, SOCK_READ);
    ck_assert_str_eq(watch_buf, "abc");
    /* EOF: the callback stops its own watch. */
    close(p[1]);
    ck_assert_int_eq(sock_test_poll(100), 1);
    ck_assert_uint_eq(sock_test_watch_count(), 0);
    ck_assert_int_eq(sock_test_poll(0), 0);
    ck_assert_int_eq(watch_calls, 2);
    /* A fake fd driven by hand. */
    w = sock_watch_fd(1000, SOCK_WRITE, on_watch, NULL);
    ck_assert_int_eq(sock_test_fd_ready(1000, SOCK_READ), 0);
    ck_assert_int_eq(sock_test_fd_ready(1000, SOCK_WRITE), 1);
    ck_assert_uint_eq(watch_revents, SOCK_WRITE);
    sock_watch_stop(w);
    sock_watch_stop(NULL);
    ck_assert_uint_eq(sock_test_watch_count(), 0);
    close(p[0]);
    sock_test_free(t);
}
END_TEST

/* ---- sock_timer_start ------------------------------------------------------- */

static int fired_once, fired_repeat;

static void
on_once(sock_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    fired_once++;
}

static void
on_repeat(sock_timer *t, void *arg)
{
    (void)arg;
    if (++fired_repeat == 3)
        sock_timer_stop(t); /* from inside its own callback */
}

START_TEST(test_timers)
{
    sock_timer *once, *rep, *never;
    sock_test *t;

    reset();
    t = sock_test_new(&app, "/a");
    fired_once = fired_repeat = 0;
    once = sock_timer_start(100, 0, on_once, NULL);
    rep = sock_timer_start(10, 20, on_repeat, NULL);
    never = sock_timer_start(50, 0, on_once, NULL);
    ck_assert_ptr_nonnull(once);
    ck_assert_ptr_nonnull(rep);
    ck_assert_ptr_null(sock_timer_start(1, 0, NULL, NULL));
    ck_assert_uint_eq(sock_test_timer_count(), 3);
    sock_timer_stop(never); /* cancelled before it fires */
    sock_test_advance(9);
    ck_assert_int_eq(fired_repeat, 0);
    sock_test_advance(1);  /* 10 */
    ck_assert_int_eq(fired_repeat, 1);
    sock_test_advance(40); /* 30, 50 */
    ck_assert_int_eq(fired_repeat, 3);
    ck_assert_int_eq(fired_once, 0);
    sock_test_advance(100); /* stopped: no more repeats */
    ck_assert_int_eq(fired_repeat, 3);
    ck_assert_int_eq(fired_once, 1);
    ck_assert_uint_eq(sock_test_timer_count(), 0);
    sock_test_free(t);
}
END_TEST

/* ---- Deferred upgrades ------------------------------------------------------ */

static int set_rc[4];

static void *
accept_later(void *arg)
{
    int *rc = arg;

    set_rc[0] = sock_pending_subprotocol(pending, "v2");
    set_rc[1] = sock_pending_subprotocol(pending, "v3"); /* not offered */
    set_rc[2] = sock_pending_header(pending, "X-User", "alice");
    set_rc[3] = sock_pending_header(pending, "Bad Name", "x");
    *rc = sock_pending_accept(pending, strdup("from a thread"), free);
    return NULL;
}

START_TEST(test_deferred_accept_from_thread)
{
    sock_test *t;
    pthread_t th;
    int rc = 1;

    reset();
    hook_mode = 1;
    t = sock_test_new(&app, "/a");
    ck_assert_int_eq(sock_test_upgrade(t, "GET /a HTTP/1.1\r\nHost: h\r\n"
                                          "Sec-WebSocket-Protocol: v1, v2"
                                          "\r\n\r\n"),
                     SOCK_UPGRADE_LATER);
    ck_assert_ptr_nonnull(pending);
    ck_assert_int_eq(sock_test_upgrade_result(t), -1);
    ck_assert_int_eq(pthread_create(&th, NULL, accept_later, &rc), 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(set_rc[0], 0);
    ck_assert_int_eq(set_rc[1], -EINVAL);
    ck_assert_int_eq(set_rc[2], 0);
    ck_assert_int_eq(set_rc[3], -EINVAL);
    ck_assert_ptr_null(sock_test_chosen_subprotocol(t)); /* not applied */
    ck_assert_int_eq(sock_test_upgrade_result(t), -1); /* not yet applied */
    sock_test_run();
    ck_assert_int_eq(sock_test_upgrade_result(t), 0);
    ck_assert_str_eq(sock_test_chosen_subprotocol(t), "v2");
    ck_assert_str_eq(sock_test_response_headers(t),
                     "X-Deferred: yes\r\nX-User: alice\r\n");
    ck_assert_int_eq(sock_test_init(t), SOCK_CONTINUE);
    ck_assert_str_eq(init_arg, "from a thread");
    sock_test_free(t);
}
END_TEST

START_TEST(test_deferred_refuse)
{
    sock_test *t;

    reset();
    hook_mode = 1;
    t = sock_test_new(&app, "/a");
    ck_assert_int_eq(sock_test_upgrade(t, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"),
                     SOCK_UPGRADE_LATER);
    ck_assert_int_eq(sock_pending_refuse(pending, 401, "bad token\n"), 0);
    sock_test_run();
    ck_assert_int_eq(sock_test_upgrade_result(t), 401);
    ck_assert_str_eq(sock_test_refuse_body(t), "bad token\n");
    sock_test_free(t);

    /* A status outside 400..599 becomes 500. */
    t = sock_test_new(&app, "/a");
    sock_test_upgrade(t, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    ck_assert_int_eq(sock_pending_refuse(pending, 200, NULL), 0);
    sock_test_run();
    ck_assert_int_eq(sock_test_upgrade_result(t), 500);
    sock_test_free(t);
}
END_TEST

START_TEST(test_deferred_dead_handles)
{
    sock_test *t;
    char *arg;

    reset();
    hook_mode = 1;
    /* Timed out: 503 for the client, -EPIPE for the app; arg stays ours. */
    t = sock_test_new(&app, "/a");
    sock_test_upgrade(t, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    ck_assert_int_eq(sock_pending_header(pending, "X-A", "b"), 0);
    sock_test_upgrade_expire(t);
    ck_assert_int_eq(sock_test_upgrade_result(t), 503);
    ck_assert_int_eq(sock_pending_header(pending, "X-A", "b"), -EPIPE);
    ck_assert_int_eq(sock_pending_subprotocol(pending, "v1"), -EPIPE);
    ck_assert_str_eq(sock_test_refuse_body(t), "upgrade decision timed out\n");
    arg = strdup("mine");
    ck_assert_int_eq(sock_pending_accept(pending, arg, free), -EPIPE);
    free(arg);
    sock_test_free(t);

    /* The client left while pending. */
    t = sock_test_new(&app, "/a");
    sock_test_upgrade(t, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    sock_test_free(t);
    ck_assert_int_eq(sock_pending_refuse(pending, 403, NULL), -EPIPE);

    /* Decided, then the client left before the loop applied it: the
       server frees the arg (with free_arg; ASan checks the leak). */
    t = sock_test_new(&app, "/a");
    sock_test_upgrade(t, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    ck_assert_int_eq(sock_pending_accept(pending, strdup("x"), free), 0);
    sock_test_free(t);
    sock_test_run();

    /* LATER without a handle: 500. */
    hook_mode = 2;
    t = sock_test_new(&app, "/a");
    ck_assert_int_eq(sock_test_upgrade(t, "GET /a HTTP/1.1\r\nHost: h\r\n"
                                          "\r\n"), 500);
    sock_test_free(t);

    /* A handle taken, but the hook answered at once: the handle is dead. */
    hook_mode = 3;
    t = sock_test_new(&app, "/a");
    ck_assert_int_eq(sock_test_upgrade(t, "GET /a HTTP/1.1\r\nHost: h\r\n"
                                          "\r\n"), 0);
    ck_assert_int_eq(sock_pending_accept(pending, NULL, NULL), -EPIPE);
    sock_test_free(t);
    ck_assert_ptr_null(sock_upgrade_defer(NULL));
    ck_assert_int_eq(sock_pending_accept(NULL, NULL, NULL), -EINVAL);
}
END_TEST

/* ---- Options, setup and teardown -------------------------------------------- */

START_TEST(test_setup_and_options)
{
    static const char *const opts[] = { "greeting", "hi there", "empty", "",
                                        NULL };
    sock_test *t, *u;

    reset();
    ck_assert_int_eq(sock_test_setup(&app, "/a", opts), 0);
    ck_assert_int_eq(setups, 1);
    ck_assert_str_eq(setup_greeting, "hi there");
    t = sock_test_new(&app, "/a");
    ck_assert_int_eq(sock_test_upgrade(t, "GET /a HTTP/1.1\r\nHost: h\r\n"
                                          "\r\n"), 0);
    ck_assert_str_eq(hook_option, "hi there");
    sock_test_init(t);
    ck_assert_str_eq(sock_option(sock_test_conn(t), "greeting"), "hi there");
    ck_assert_str_eq(sock_option(sock_test_conn(t), "empty"), "");
    ck_assert_ptr_null(sock_option(sock_test_conn(t), "nope"));
    /* Another route of the same app has none of them. */
    u = sock_test_new(&app, "/b");
    ck_assert_ptr_null(sock_option(sock_test_conn(u), "greeting"));
    sock_test_free(u);
    sock_test_teardown(&app, "/a");
    ck_assert_int_eq(teardowns, 1);
    ck_assert_ptr_null(sock_option(sock_test_conn(t), "greeting"));
    sock_test_free(t);
    sock_test_teardown(&app, "/a"); /* nothing left: no second teardown */
    ck_assert_int_eq(teardowns, 1);

    /* A failed setup gets no teardown. */
    setup_result = -EIO;
    ck_assert_int_eq(sock_test_setup(&app, "/a", NULL), -EIO);
    sock_test_teardown(&app, "/a");
    ck_assert_int_eq(teardowns, 1);
}
END_TEST

static int
poisoned_setup(const sock_options *o)
{
    (void)o;
    ck_abort_msg("setup of an ABI 1 app was read");
    return 0;
}

static void
poisoned_teardown(const sock_options *o)
{
    (void)o;
    ck_abort_msg("teardown of an ABI 1 app was read");
}

START_TEST(test_abi1_app_has_no_setup)
{
    /* An ABI 1 module's table ends before setup: whatever lies there must
       never be read (here: functions that fail the test). */
    sock_app *old = calloc(1, sizeof(*old));

    reset();
    memcpy(old, &app, offsetof(sock_app, setup));
    old->abi = 1;
    old->setup = poisoned_setup;
    old->teardown = poisoned_teardown;
    ck_assert(!sock_app_has_v2(old));
    ck_assert(sock_app_has_v2(&app));
    ck_assert_int_eq(sock_test_setup(old, "/a", NULL), 0);
    ck_assert_int_eq(setups, 0);
    sock_test_teardown(old, "/a");
    ck_assert_int_eq(teardowns, 0);
    free(old);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("sock_async");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_post_from_threads);
    tcase_add_test(tc, test_watch_fd);
    tcase_add_test(tc, test_timers);
    tcase_add_test(tc, test_deferred_accept_from_thread);
    tcase_add_test(tc, test_deferred_refuse);
    tcase_add_test(tc, test_deferred_dead_handles);
    tcase_add_test(tc, test_setup_and_options);
    tcase_add_test(tc, test_abi1_app_has_no_setup);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
