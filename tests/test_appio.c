/*
 * test_appio.c: worker/appio.c on a real libev loop, with a bare worker
 * (no listeners, no connections): sock_watch_fd over a pipe (pause,
 * resume, stop from inside the callback), sock_timer_start one-shot and
 * repeating (stopped from inside), sock_post from four threads drained
 * by the loop in batches (every post reaches the delivery step: here an
 * id of another machine without [redis], so each is counted stale), the
 * queue bound (-ENOBUFS past APPIO_QUEUE_MAX, counted as dropped), and
 * appio_destroy freeing what an app left running (ASan checks the
 * leaks).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appio.h"
#include "messaging.h"
#include "wstate.h"

static struct worker *
bare_worker(void)
{
    struct worker *w = calloc(1, sizeof(*w));

    ck_assert_ptr_nonnull(w);
    w->loop = ev_loop_new(EVFLAG_AUTO);
    w->node = 1;
    w->stats = &w->own_stats;
    list_init(&w->conns);
    ck_assert_int_eq(appio_init(w), 0);
    return w;
}

static void
bare_free(struct worker *w)
{
    appio_destroy(w);
    ck_assert_ptr_null(w->appio);
    ev_loop_destroy(w->loop);
    free(w);
}

/* Runs the loop until pred(w) or about 5 s. */
static bool
run_until(struct worker *w, bool (*pred)(struct worker *))
{
    for (int i = 0; i < 5000 && !pred(w); i++) {
        ev_run(w->loop, EVRUN_NOWAIT);
        if (!pred(w))
            usleep(1000);
    }
    return pred(w);
}

/* ---- Watches ------------------------------------------------------------ */

static int reads;
static char got[64];

static void
on_read(sock_watch *sw, int fd, unsigned revents, void *arg)
{
    struct worker *w = arg;
    ssize_t n = read(fd, got, sizeof(got) - 1);

    ck_assert_uint_eq(revents, SOCK_READ);
    got[n > 0 ? n : 0] = '\0';
    reads++;
    if (n == 0)
        appio_watch_stop(w, sw); /* EOF: stop from inside */
}

static bool
two_reads(struct worker *w)
{
    (void)w;
    return reads >= 2;
}

START_TEST(test_watch)
{
    struct worker *w = bare_worker();
    sock_watch *sw, *left;
    int p[2];

    reads = 0;
    ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    sw = appio_watch_fd(w, p[0], 0, on_read, w); /* registered paused */
    ck_assert_ptr_nonnull(sw);
    ck_assert_int_eq(write(p[1], "ab", 2), 2);
    ev_run(w->loop, EVRUN_NOWAIT);
    ck_assert_int_eq(reads, 0);
    ck_assert_int_eq(appio_watch_set(w, sw, SOCK_READ), 0);
    ck_assert_int_eq(appio_watch_set(w, sw, SOCK_READ), 0); /* no change */
    ev_run(w->loop, EVRUN_NOWAIT);
    ck_assert_int_eq(reads, 1);
    ck_assert_str_eq(got, "ab");
    close(p[1]);
    ck_assert(run_until(w, two_reads)); /* EOF; the watch stops itself */
    ck_assert_int_eq(reads, 2);
    close(p[0]);
    /* One left running: appio_destroy frees it. */
    ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    left = appio_watch_fd(w, p[0], SOCK_READ | SOCK_WRITE, on_read, w);
    ck_assert_ptr_nonnull(left);
    bare_free(w);
    close(p[0]);
    close(p[1]);
}
END_TEST

/* ---- Timers ------------------------------------------------------------- */

static int once_fired, repeat_fired;

static void
on_once(sock_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    once_fired++;
}

static void
on_repeat(sock_timer *t, void *arg)
{
    if (++repeat_fired == 3)
        appio_timer_stop(arg, t);
}

static bool
timers_done(struct worker *w)
{
    (void)w;
    return once_fired == 1 && repeat_fired == 3;
}

START_TEST(test_timers)
{
    struct worker *w = bare_worker();

    once_fired = repeat_fired = 0;
    ck_assert_ptr_nonnull(appio_timer_start(w, 5, 0, on_once, NULL));
    ck_assert_ptr_nonnull(appio_timer_start(w, 1, 2, on_repeat, w));
    ck_assert_ptr_nonnull(appio_timer_start(w, 60000, 0, on_once, NULL));
    ck_assert(run_until(w, timers_done));
    usleep(20000);
    ev_run(w->loop, EVRUN_NOWAIT);
    ck_assert_int_eq(repeat_fired, 3); /* stopped from inside: no more */
    ck_assert_int_eq(once_fired, 1);
    bare_free(w); /* frees the 60 s one */
}
END_TEST

/* ---- The queue ---------------------------------------------------------- */

#define POSTERS 4
#define POSTS 20000

static void *
poster(void *arg)
{
    struct worker *w = arg;
    /* Node 2: another machine, no [redis]: counted stale on delivery. */
    sock_id to = (sock_id)2 << 48 | 7;

    for (int i = 0; i < POSTS; i++) {
        int rc;

        while ((rc = appio_post(w, to, 1, &i, sizeof(i))) == -ENOBUFS)
            usleep(100);
        ck_assert_int_eq(rc, 0);
    }
    return NULL;
}

static bool
all_delivered(struct worker *w)
{
    return w->stats->infos_stale == (uint64_t)POSTERS * POSTS;
}

START_TEST(test_posts_from_threads)
{
    struct worker *w = bare_worker();
    pthread_t th[POSTERS];

    for (int i = 0; i < POSTERS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, poster, w), 0);
    /* The loop drains while they post (ev_async wakes it). */
    ck_assert(run_until(w, all_delivered));
    for (int i = 0; i < POSTERS; i++)
        pthread_join(th[i], NULL);
    ck_assert_uint_eq(w->stats->infos_sent, (uint64_t)POSTERS * POSTS);
    ck_assert_uint_eq(w->stats->infos_dropped, 0);
    bare_free(w);
}
END_TEST

static bool
queue_drained(struct worker *w)
{
    return w->stats->infos_stale == APPIO_QUEUE_MAX;
}

START_TEST(test_queue_bound)
{
    struct worker *w = bare_worker();
    sock_id to = (sock_id)2 << 48 | 7;

    for (int i = 0; i < APPIO_QUEUE_MAX; i++)
        ck_assert_int_eq(appio_post(w, to, 1, "x", 1), 0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(appio_post(w, to, 1, "x", 1), -ENOBUFS);
    ck_assert(run_until(w, queue_drained));
    ck_assert_uint_eq(w->stats->infos_dropped, 5);
    ck_assert_int_eq(appio_post(w, to, 1, "x", 1), 0); /* room again */
    /* Left queued at destroy: freed without delivery (ASan: no leak). */
    bare_free(w);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("appio");
    TCase *tc = tcase_create("loop");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_watch);
    tcase_add_test(tc, test_timers);
    tcase_add_test(tc, test_posts_from_threads);
    tcase_add_test(tc, test_queue_bound);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
