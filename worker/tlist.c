/*
 * tlist.c: lists of timed members with one libev timer each (see
 * tlist.h). Expiry handles a bounded batch per wakeup so a burst of
 * timeouts never starves I/O.
 */
#include "tlist.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#define TLIST_EXPIRE_BATCH 256

struct tlist {
    struct tlist_set *set;
    uint32_t ms;
    ev_tstamp timeout;
    struct list members;
    ev_timer timer;
    struct tlist *next;
};

struct tlist_set {
    struct ev_loop *loop;
    tlist_expire_fn fn;
    void *ctx;
    struct tlist *lists;
};

static void tlist_on_timer(struct ev_loop *loop, ev_timer *w, int revents);

/*
 * Stamps come from the monotonic clock, like libev's own timers: ev_now()
 * follows the wall clock, and a clock step must not expire or stall every
 * timeout. (The coarse clock would be cheaper but ticks in 4 ms steps,
 * which makes timeouts fire early.)
 */
static ev_tstamp
mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (ev_tstamp)ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct tlist_set *
tlist_set_new(struct ev_loop *loop, tlist_expire_fn fn, void *ctx)
{
    struct tlist_set *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->loop = loop;
    s->fn = fn;
    s->ctx = ctx;
    return s;
}

void
tlist_set_free(struct tlist_set *s)
{
    struct tlist *l, *next;

    if (s == NULL)
        return;
    for (l = s->lists; l != NULL; l = next) {
        next = l->next;
        ev_timer_stop(s->loop, &l->timer);
        while (!list_empty(&l->members)) {
            struct tnode *n = container_of(l->members.next, struct tnode,
                                           link);
            list_remove(&n->link);
            n->owner = NULL;
        }
        free(l);
    }
    free(s);
}

static struct tlist *
tlist_get(struct tlist_set *s, uint32_t ms)
{
    struct tlist *l;

    for (l = s->lists; l != NULL; l = l->next)
        if (l->ms == ms)
            return l;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->set = s;
    l->ms = ms;
    l->timeout = ms / 1000.0;
    list_init(&l->members);
    ev_init(&l->timer, tlist_on_timer);
    l->next = s->lists;
    s->lists = l;
    return l;
}

/* Starts the list's timer for its oldest member, if it is not running. */
static void
tlist_schedule(struct tlist *l)
{
    struct tnode *first;
    ev_tstamp after;

    if (ev_is_active(&l->timer) || list_empty(&l->members))
        return;
    first = container_of(l->members.next, struct tnode, link);
    after = first->stamp + l->timeout - mono_now();
    ev_timer_set(&l->timer, after > 0 ? after : 0, 0.);
    ev_timer_start(l->set->loop, &l->timer);
}

int
tlist_arm(struct tlist_set *s, struct tnode *n, uint32_t ms)
{
    struct tlist *l;

    tlist_disarm(n);
    if (ms == 0)
        return 0;
    l = tlist_get(s, ms);
    if (l == NULL)
        return -ENOMEM;
    n->owner = l;
    n->stamp = mono_now();
    list_insert_tail(&l->members, &n->link);
    tlist_schedule(l);
    return 0;
}

void
tlist_touch(struct tlist_set *s, struct tnode *n)
{
    struct tlist *l = n->owner;

    if (l == NULL)
        return;
    n->stamp = mono_now();
    /* The timer keeps its deadline: when it fires for a member that moved,
       it re-arms for the new oldest (the lazy part). */
    list_remove(&n->link);
    list_insert_tail(&l->members, &n->link);
}

void
tlist_disarm(struct tnode *n)
{
    if (n->owner == NULL)
        return;
    list_remove(&n->link);
    n->owner = NULL;
}

static void
tlist_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct tlist *l = container_of(w, struct tlist, timer);
    struct tlist_set *s = l->set;
    ev_tstamp now = mono_now();
    /* Slack for an early wake, never as much as the timeout itself. */
    ev_tstamp slack = MIN(0.001, l->timeout / 2);

    (void)loop;
    (void)revents;
    for (int i = 0; i < TLIST_EXPIRE_BATCH && !list_empty(&l->members);
         i++) {
        struct tnode *n = container_of(l->members.next, struct tnode, link);

        if (n->stamp + l->timeout > now + slack)
            break;
        list_remove(&n->link);
        n->owner = NULL;
        s->fn(n, s->ctx);
    }
    tlist_schedule(l);
}
