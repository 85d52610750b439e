/*
 * test_tlist.c: unit tests for worker/tlist.c on a real libev loop with
 * 10-50 ms timeouts: expiry in stamp order, touch postponing, disarm,
 * moving between durations, ms == 0, two durations side by side, a
 * callback that re-arms its node, a batch larger than one wakeup takes,
 * and freeing a set with armed members. Every ev_run is bounded by a
 * deadline timer, so a broken list fails the test instead of hanging it.
 */
#include "tlist.h"

#include <check.h>
#include <time.h>
#include <ev.h>
#include <stdbool.h>
#include <stdlib.h>

#define MAX_REC 1024
#define SLACK 0.001 /* tlist.c may expire up to 1 ms early */
#define LATE 0.25   /* how late a loaded machine may be; only a sanity bound */

struct item {
    struct tnode node;
    int id;
    int rearms;        /* times the expiry callback re-arms it */
    uint32_t rearm_ms;
};

/* What expired, when, in what order. */
/* The clock tlist stamps with (monotonic, like libev's timers). */
static ev_tstamp
mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (ev_tstamp)ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct rec {
    struct ev_loop *loop;
    struct tlist_set *set;
    int target;               /* break the loop once this many expired */
    int n;
    int ids[MAX_REC];
    ev_tstamp at[MAX_REC];    /* monotonic time at expiry */
    ev_tstamp stamp[MAX_REC]; /* the node's stamp at expiry */
    bool watch_armed[MAX_REC];
    struct item *watch;       /* its armed state is noted at each expiry */
    bool timed_out;
};

static void
on_expire(struct tnode *n, void *ctx)
{
    struct rec *r = ctx;
    struct item *it = container_of(n, struct item, node);

    /* Removed before the callback, as tlist.h promises. */
    ck_assert_ptr_null(n->owner);
    ck_assert(list_empty(&n->link));
    ck_assert_int_lt(r->n, MAX_REC);
    r->ids[r->n] = it->id;
    r->at[r->n] = mono();
    r->stamp[r->n] = n->stamp;
    r->watch_armed[r->n] = r->watch != NULL && r->watch->node.owner != NULL;
    r->n++;
    if (it->rearms > 0) {
        it->rearms--;
        ck_assert_int_eq(tlist_arm(r->set, n, it->rearm_ms), 0);
        ck_assert_ptr_nonnull(n->owner);
    }
    if (r->n == r->target)
        ev_break(r->loop, EVBREAK_ALL);
}

static void
on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct rec *r = w->data;

    (void)revents;
    r->timed_out = true;
    ev_break(loop, EVBREAK_ALL);
}

/* Runs the loop until target expiries or `secs` from now, whichever first. */
static void
run(struct rec *r, int target, ev_tstamp secs)
{
    ev_timer guard;

    r->target = target;
    r->timed_out = false;
    ev_now_update(r->loop);
    ev_timer_init(&guard, on_deadline, secs, 0.);
    guard.data = r;
    ev_timer_start(r->loop, &guard);
    ev_run(r->loop, 0);
    ev_timer_stop(r->loop, &guard);
}

static struct rec *
rec_new(void)
{
    struct rec *r = calloc(1, sizeof(*r));

    ck_assert_ptr_nonnull(r);
    r->loop = ev_loop_new(0);
    ck_assert_ptr_nonnull(r->loop);
    r->set = tlist_set_new(r->loop, on_expire, r);
    ck_assert_ptr_nonnull(r->set);
    return r;
}

static void
rec_free(struct rec *r)
{
    tlist_set_free(r->set);
    ev_loop_destroy(r->loop);
    free(r);
}

static void
item_init(struct item *it, int id)
{
    tnode_init(&it->node);
    it->id = id;
    it->rearms = 0;
    it->rearm_ms = 0;
}

static ev_tstamp
now(struct rec *r)
{
    ev_now_update(r->loop);
    return mono();
}

static void
arm(struct rec *r, struct item *it, uint32_t ms)
{
    ck_assert_int_eq(tlist_arm(r->set, &it->node, ms), 0);
    ck_assert_ptr_nonnull(it->node.owner);
    ck_assert(it->node.stamp <= mono() && it->node.stamp > mono() - 0.05);
}

/* Expiry k happened no earlier than its stamp allows, and not absurdly late. */
static void
check_time(const struct rec *r, int k, double timeout)
{
    ck_assert_msg(r->at[k] >= r->stamp[k] + timeout - SLACK,
                  "expiry %d (id %d) early by %.4f s", k, r->ids[k],
                  r->stamp[k] + timeout - r->at[k]);
    ck_assert_msg(r->at[k] <= r->stamp[k] + timeout + LATE,
                  "expiry %d (id %d) late by %.4f s", k, r->ids[k],
                  r->at[k] - r->stamp[k] - timeout);
}

/* The least lateness among the expiries of one timeout. */
static double
min_late(const struct rec *r, double timeout)
{
    double least = 1e9;

    for (int k = 0; k < r->n; k++)
        if (r->at[k] - r->stamp[k] < least)
            least = r->at[k] - r->stamp[k];
    return least - timeout;
}

START_TEST(test_stamp_order)
{
    struct rec *r = rec_new();
    struct item it[5];
    static const int want[5] = { 0, 2, 4, 1, 3 };

    for (int i = 0; i < 5; i++) {
        item_init(&it[i], i);
        ev_sleep(0.002);
        now(r);
        arm(r, &it[i], 25);
    }
    /* Touching 1 and 3 puts them behind 4, in that order. */
    ev_sleep(0.002);
    now(r);
    tlist_touch(r->set, &it[1].node);
    tlist_touch(r->set, &it[3].node);
    ck_assert(it[1].node.stamp > it[4].node.stamp);
    ck_assert(it[3].node.stamp >= it[1].node.stamp &&
              it[3].node.stamp - it[1].node.stamp < LATE);
    run(r, 5, 1.0);
    ck_assert(!r->timed_out);
    ck_assert_int_eq(r->n, 5);
    for (int k = 0; k < 5; k++) {
        ck_assert_int_eq(r->ids[k], want[k]);
        check_time(r, k, 0.025);
        if (k > 0)
            ck_assert(r->stamp[k] >= r->stamp[k - 1]);
    }
    ck_assert(r->stamp[1] > r->stamp[0]); /* armed 2 ms apart */
    /* The timer aims at the oldest member's deadline, not at some later
       tick: the least late of five expiries is well under a timeout. */
    ck_assert_msg(min_late(r, 0.025) < 0.008, "least late by %.4f s",
                  min_late(r, 0.025));
    rec_free(r);
}
END_TEST

START_TEST(test_touch_postpones)
{
    struct rec *r = rec_new();
    struct item a, b;
    ev_tstamp t0 = now(r);
    ev_tstamp b_stamp;

    item_init(&a, 1);
    item_init(&b, 2);
    arm(r, &a, 50);
    arm(r, &b, 50);
    ck_assert(b.node.stamp >= a.node.stamp &&
              b.node.stamp - a.node.stamp < LATE);
    b_stamp = b.node.stamp;
    /* 15 ms in: nothing has expired; a is refreshed, b is not. */
    run(r, 1, 0.015);
    ck_assert(r->timed_out);
    ck_assert_int_eq(r->n, 0);
    now(r);
    tlist_touch(r->set, &a.node);
    ck_assert(a.node.stamp >= t0 + 0.015 - SLACK);
    r->watch = &a;
    run(r, 2, 1.0);
    ck_assert(!r->timed_out);
    ck_assert_int_eq(r->n, 2);
    ck_assert_int_eq(r->ids[0], 2);
    ck_assert(r->watch_armed[0]); /* a was still waiting when b went */
    ck_assert_int_eq(r->ids[1], 1);
    ck_assert(r->stamp[0] == b_stamp); /* b was never touched */
    check_time(r, 0, 0.050);
    ck_assert(r->stamp[1] >= t0 + 0.015 - SLACK);
    check_time(r, 1, 0.050);
    ck_assert(r->at[1] >= t0 + 0.065 - SLACK);
    rec_free(r);
}
END_TEST

START_TEST(test_touch_unarmed_noop)
{
    struct rec *r = rec_new();
    struct item a;

    item_init(&a, 1);
    tlist_touch(r->set, &a.node);
    ck_assert_ptr_null(a.node.owner);
    ck_assert(list_empty(&a.node.link));
    run(r, 1, 0.030);
    ck_assert(r->timed_out);
    ck_assert_int_eq(r->n, 0);
    rec_free(r);
}
END_TEST

START_TEST(test_disarm)
{
    struct rec *r = rec_new();
    struct item a, b, c, d;

    item_init(&a, 1);
    item_init(&b, 2);
    item_init(&c, 3);
    item_init(&d, 4);
    now(r);
    arm(r, &a, 20);  /* the one the timer is set for */
    arm(r, &b, 20);
    arm(r, &c, 20);
    tlist_disarm(&a.node);
    tlist_disarm(&c.node);
    tlist_disarm(&c.node);  /* twice is harmless */
    tlist_disarm(&d.node);  /* never armed */
    ck_assert_ptr_null(a.node.owner);
    ck_assert_ptr_null(c.node.owner);
    ck_assert(list_empty(&a.node.link));
    run(r, 10, 0.080);
    ck_assert(r->timed_out);
    ck_assert_int_eq(r->n, 1);
    ck_assert_int_eq(r->ids[0], 2);
    check_time(r, 0, 0.020);
    ck_assert_ptr_null(b.node.owner);
    rec_free(r);
}
END_TEST

/* The list's only member disarmed: its timer fires on an empty list. */
START_TEST(test_disarm_all)
{
    struct rec *r = rec_new();
    struct item a;

    item_init(&a, 1);
    now(r);
    arm(r, &a, 10);
    tlist_disarm(&a.node);
    run(r, 1, 0.040);
    ck_assert(r->timed_out);
    ck_assert_int_eq(r->n, 0);
    /* The list still works afterwards. */
    now(r);
    arm(r, &a, 10);
    run(r, 1, 1.0);
    ck_assert(!r->timed_out);
    ck_assert_int_eq(r->n, 1);
    check_time(r, 0, 0.010);
    rec_free(r);
}
END_TEST

START_TEST(test_rearm_moves)
{
    struct rec *r = rec_new();
    struct item a, b, c;
    struct tlist *short_list;

    item_init(&a, 1);
    item_init(&b, 2);
    item_init(&c, 3);
    now(r);
    arm(r, &a, 20);
    short_list = a.node.owner;
    arm(r, &b, 20);
    ck_assert_ptr_eq(b.node.owner, short_list);
    arm(r, &a, 45);
    ck_assert_ptr_ne(a.node.owner, short_list);
    /* Re-arming into the same duration keeps the list, restamped. */
    ev_sleep(0.005);
    now(r);
    arm(r, &c, 20);
    arm(r, &c, 20);
    ck_assert_ptr_eq(c.node.owner, short_list);
    r->watch = &a;
    run(r, 4, 0.150);
    ck_assert(r->timed_out); /* a fourth expiry never came */
    ck_assert_int_eq(r->n, 3);
    ck_assert_int_eq(r->ids[0], 2);
    ck_assert(r->watch_armed[0]);
    ck_assert_int_eq(r->ids[1], 3);
    ck_assert(r->watch_armed[1]);
    ck_assert_int_eq(r->ids[2], 1);
    check_time(r, 0, 0.020);
    check_time(r, 1, 0.020);
    check_time(r, 2, 0.045);
    rec_free(r);
}
END_TEST

START_TEST(test_arm_zero_removes)
{
    struct rec *r = rec_new();
    struct item a, b, c;

    item_init(&a, 1);
    item_init(&b, 2);
    item_init(&c, 3);
    now(r);
    arm(r, &a, 20);
    arm(r, &b, 20);
    ck_assert_int_eq(tlist_arm(r->set, &a.node, 0), 0);
    ck_assert_ptr_null(a.node.owner);
    ck_assert(list_empty(&a.node.link));
    ck_assert_int_eq(tlist_arm(r->set, &c.node, 0), 0); /* was unarmed */
    ck_assert_ptr_null(c.node.owner);
    run(r, 10, 0.080);
    ck_assert(r->timed_out);
    ck_assert_int_eq(r->n, 1);
    ck_assert_int_eq(r->ids[0], 2);
    rec_free(r);
}
END_TEST

START_TEST(test_two_durations)
{
    struct rec *r = rec_new();
    struct item it[4];
    static const uint32_t ms[4] = { 40, 15, 40, 15 };
    static const int want[4] = { 1, 3, 0, 2 };
    ev_tstamp armed[4];

    now(r);
    for (int i = 0; i < 4; i++) {
        item_init(&it[i], i);
        arm(r, &it[i], ms[i]);
        armed[i] = it[i].node.stamp;
    }
    ck_assert_ptr_eq(it[0].node.owner, it[2].node.owner);
    ck_assert_ptr_eq(it[1].node.owner, it[3].node.owner);
    ck_assert_ptr_ne(it[0].node.owner, it[1].node.owner);
    run(r, 4, 1.0);
    ck_assert(!r->timed_out);
    ck_assert_int_eq(r->n, 4);
    for (int k = 0; k < 4; k++) {
        ck_assert_int_eq(r->ids[k], want[k]);
        ck_assert(r->stamp[k] == armed[want[k]]); /* expiry keeps it */
        check_time(r, k, ms[want[k]] / 1000.0);
    }
    rec_free(r);
}
END_TEST

START_TEST(test_callback_rearms)
{
    struct rec *r = rec_new();
    struct item a, b, c;
    int na = 0, nb = 0, nc = 0;
    ev_tstamp prev_a = 0;

    item_init(&a, 1);
    item_init(&b, 2);
    item_init(&c, 3);
    a.rearms = 3;
    a.rearm_ms = 15;
    now(r);
    arm(r, &a, 15);
    arm(r, &c, 15);   /* same list, expires once */
    arm(r, &b, 40);   /* another list, expires once */
    run(r, 6, 1.0);
    ck_assert(!r->timed_out);
    ck_assert_int_eq(r->n, 6);
    /* a and c share a stamp; a is first, its re-arm goes behind c. */
    ck_assert_int_eq(r->ids[0], 1);
    ck_assert_int_eq(r->ids[1], 3);
    for (int k = 0; k < r->n; k++) {
        switch (r->ids[k]) {
        case 1:
            check_time(r, k, 0.015);
            /* Re-armed in the callback: stamped at that expiry. */
            if (na > 0)
                ck_assert(r->stamp[k] >= prev_a &&
                          r->stamp[k] - prev_a < LATE);
            prev_a = r->at[k];
            na++;
            break;
        case 2:
            check_time(r, k, 0.040);
            nb++;
            break;
        case 3:
            check_time(r, k, 0.015);
            nc++;
            break;
        default:
            ck_abort_msg("unknown id %d", r->ids[k]);
        }
    }
    ck_assert_int_eq(na, 4);
    ck_assert_int_eq(nb, 1);
    ck_assert_int_eq(nc, 1);
    ck_assert_int_eq(a.rearms, 0);
    ck_assert_ptr_null(a.node.owner);
    rec_free(r);
}
END_TEST

/* More members due at once than one wakeup expires: all go, in order. */
START_TEST(test_batch_over_limit)
{
    struct rec *r = rec_new();
    static struct item it[600];
    ev_tstamp t0 = now(r);

    for (int i = 0; i < 600; i++) {
        item_init(&it[i], i);
        arm(r, &it[i], 10);
    }
    run(r, 600, 1.0);
    ck_assert(!r->timed_out);
    ck_assert_int_eq(r->n, 600);
    for (int k = 0; k < 600; k++) {
        ck_assert_int_eq(r->ids[k], k);
        /* Armed in a row: stamps never go back and start at t0. */
        ck_assert(r->stamp[k] >= t0);
        ck_assert(k == 0 || r->stamp[k] >= r->stamp[k - 1]);
        check_time(r, k, 0.010);
        ck_assert_ptr_null(it[k].node.owner);
    }
    rec_free(r);
}
END_TEST

START_TEST(test_set_free_unlinks)
{
    struct rec *r = rec_new();
    struct item a, b;

    item_init(&a, 1);
    item_init(&b, 2);
    now(r);
    arm(r, &a, 10);
    arm(r, &b, 20);
    tlist_set_free(r->set);
    r->set = NULL;
    tlist_set_free(NULL);
    ck_assert_ptr_null(a.node.owner);
    ck_assert_ptr_null(b.node.owner);
    ck_assert(list_empty(&a.node.link));
    ck_assert(list_empty(&b.node.link));
    /* Its timers are stopped: nothing fires into freed memory. */
    run(r, 1, 0.050);
    ck_assert(r->timed_out);
    ck_assert_int_eq(r->n, 0);
    rec_free(r);
}
END_TEST

static Suite *
tlist_suite(void)
{
    Suite *s = suite_create("tlist");
    TCase *tc = tcase_create("expiry");

    tcase_add_test(tc, test_stamp_order);
    tcase_add_test(tc, test_touch_postpones);
    tcase_add_test(tc, test_touch_unarmed_noop);
    tcase_add_test(tc, test_disarm);
    tcase_add_test(tc, test_disarm_all);
    tcase_add_test(tc, test_rearm_moves);
    tcase_add_test(tc, test_arm_zero_removes);
    tcase_add_test(tc, test_two_durations);
    tcase_add_test(tc, test_callback_rearms);
    tcase_add_test(tc, test_batch_over_limit);
    tcase_add_test(tc, test_set_free_unlinks);
    tcase_set_timeout(tc, 10);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(tlist_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
