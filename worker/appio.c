/*
 * appio.c: watches, timers and the cross-thread queue of appio.h. Watches
 * and timers are libev watchers owned by the app's handle and listed in
 * the worker, so the ones an app forgets are stopped when it stops. The
 * queue is a mutex-guarded singly linked list: any thread appends and
 * calls ev_async_send (libev's thread-safe wakeup); the loop takes the
 * queue in batches of APPIO_BATCH, continuing from an ev_idle, so that
 * between two batches the worker's own idle work (delivering inboxes)
 * and every client get their turn: a flood of posts starves nobody, and
 * a post meets the same inbox bound (max_info_queue) as any info.
 */
#include "appio.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "messaging.h"
#include "wstate.h"

#define APPIO_BATCH 1024

enum item_kind {
    ITEM_POST,
    ITEM_DECISION,
};

struct item {
    struct item *next;
    enum item_kind kind;
    sock_id to;                 /* post */
    uint32_t type;
    struct wpending *p;         /* decision */
    appio_decision_fn *apply;
    int status;
    char *body;
    void *arg;
    void (*free_arg)(void *);
    size_t len;
    uint8_t data[];
};

struct appio {
    struct worker *w;
    ev_async async;
    ev_idle more;               /* the queue is not empty: next batch */
    pthread_mutex_t lock;
    struct item *head, *tail;   /* under lock */
    size_t n;                   /* under lock */
    uint64_t overflowed;        /* under lock; moved to stats by the loop */
    struct list watches;        /* loop thread only */
    struct list timers;
};

struct sock_watch {
    ev_io io;
    struct list link;
    struct worker *w;
    sock_watch_fn cb;
    void *arg;
};

struct sock_timer {
    ev_timer timer;
    struct list link;
    struct worker *w;
    sock_timer_fn cb;
    void *arg;
    bool firing;
    bool stopped;               /* stopped inside its own cb */
};

static void appio_on_async(struct ev_loop *loop, ev_async *as, int revents);
static void appio_on_more(struct ev_loop *loop, ev_idle *idle, int revents);

int
appio_init(struct worker *w)
{
    struct appio *a = calloc(1, sizeof(*a));

    if (a == NULL)
        return -ENOMEM;
    a->w = w;
    pthread_mutex_init(&a->lock, NULL);
    list_init(&a->watches);
    list_init(&a->timers);
    ev_async_init(&a->async, appio_on_async);
    ev_async_start(w->loop, &a->async);
    ev_idle_init(&a->more, appio_on_more);
    /* Only the queue keeps the loop alive, never the wakeup itself. */
    ev_unref(w->loop);
    w->appio = a;
    return 0;
}

static void
item_free(struct item *it)
{
    if (it->kind == ITEM_DECISION) {
        /* Never applied: the loop is going, so the request is too. */
        it->apply(it->p, -EPIPE, NULL, it->arg, it->free_arg);
        free(it->body);
    }
    free(it);
}

void
appio_destroy(struct worker *w)
{
    struct appio *a = w->appio;
    struct item *it, *next;

    if (a == NULL)
        return;
    while (!list_empty(&a->watches))
        appio_watch_stop(w, container_of(a->watches.next, struct sock_watch,
                                         link));
    while (!list_empty(&a->timers))
        appio_timer_stop(w, container_of(a->timers.next, struct sock_timer,
                                         link));
    ev_ref(w->loop);
    ev_async_stop(w->loop, &a->async);
    ev_idle_stop(w->loop, &a->more);
    pthread_mutex_lock(&a->lock);
    it = a->head;
    a->head = a->tail = NULL;
    pthread_mutex_unlock(&a->lock);
    for (; it != NULL; it = next) {
        next = it->next;
        item_free(it);
    }
    pthread_mutex_destroy(&a->lock);
    free(a);
    w->appio = NULL;
}

/* ---- Watches ------------------------------------------------------------ */

static void
watch_on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    struct sock_watch *sw = container_of(io, struct sock_watch, io);
    unsigned ev = 0;

    (void)loop;
    if (revents & (EV_READ | EV_ERROR))
        ev |= SOCK_READ;
    if (revents & EV_WRITE)
        ev |= SOCK_WRITE;
    /* sw may be freed by the callback (sock_watch_stop): not touched after. */
    sw->cb(sw, sw->io.fd, ev, sw->arg);
}

static int
ev_events(unsigned events)
{
    return ((events & SOCK_READ) ? EV_READ : 0) |
           ((events & SOCK_WRITE) ? EV_WRITE : 0);
}

sock_watch *
appio_watch_fd(void *host, int fd, unsigned events, sock_watch_fn cb,
               void *arg)
{
    struct worker *w = host;
    struct sock_watch *sw;

    if (w->appio == NULL || (sw = calloc(1, sizeof(*sw))) == NULL)
        return NULL;
    sw->w = w;
    sw->cb = cb;
    sw->arg = arg;
    ev_io_init(&sw->io, watch_on_io, fd, ev_events(events));
    if (events != 0)
        ev_io_start(w->loop, &sw->io);
    list_insert_tail(&w->appio->watches, &sw->link);
    return sw;
}

int
appio_watch_set(void *host, sock_watch *sw, unsigned events)
{
    struct worker *w = host;

    /* hiredis & co. re-announce what they want often: keep it cheap. */
    if ((sw->io.events & (EV_READ | EV_WRITE)) == ev_events(events) &&
        (events == 0 || ev_is_active(&sw->io)))
        return 0;
    ev_io_stop(w->loop, &sw->io);
    ev_io_set(&sw->io, sw->io.fd, ev_events(events));
    if (events != 0)
        ev_io_start(w->loop, &sw->io);
    return 0;
}

void
appio_watch_stop(void *host, sock_watch *sw)
{
    struct worker *w = host;

    ev_io_stop(w->loop, &sw->io);
    list_remove(&sw->link);
    free(sw);
}

/* ---- Timers ------------------------------------------------------------- */

static void
timer_on_fire(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct sock_timer *st = container_of(t, struct sock_timer, timer);
    bool once = st->timer.repeat == 0.;

    (void)loop;
    (void)revents;
    st->firing = true;
    st->cb(st, st->arg);
    st->firing = false;
    if (st->stopped || once) {
        ev_timer_stop(st->w->loop, &st->timer);
        list_remove(&st->link);
        free(st);
    }
}

sock_timer *
appio_timer_start(void *host, uint32_t ms, uint32_t repeat_ms,
                  sock_timer_fn cb, void *arg)
{
    struct worker *w = host;
    struct sock_timer *st;

    if (w->appio == NULL || (st = calloc(1, sizeof(*st))) == NULL)
        return NULL;
    st->w = w;
    st->cb = cb;
    st->arg = arg;
    ev_timer_init(&st->timer, timer_on_fire, ms / 1000.0, repeat_ms / 1000.0);
    ev_timer_start(w->loop, &st->timer);
    list_insert_tail(&w->appio->timers, &st->link);
    return st;
}

void
appio_timer_stop(void *host, sock_timer *st)
{
    struct worker *w = host;

    if (st->firing) { /* freed when its cb returns */
        st->stopped = true;
        return;
    }
    ev_timer_stop(w->loop, &st->timer);
    list_remove(&st->link);
    free(st);
}

/* ---- The queue ---------------------------------------------------------- */

/* Appends it under the lock and wakes the loop; -ENOBUFS when full. */
static int
queue_push(struct appio *a, struct item *it)
{
    pthread_mutex_lock(&a->lock);
    if (a->n >= APPIO_QUEUE_MAX) {
        a->overflowed++;
        pthread_mutex_unlock(&a->lock);
        return -ENOBUFS;
    }
    it->next = NULL;
    if (a->tail != NULL)
        a->tail->next = it;
    else
        a->head = it;
    a->tail = it;
    a->n++;
    pthread_mutex_unlock(&a->lock);
    ev_async_send(a->w->loop, &a->async);
    return 0;
}

int
appio_post(void *host, sock_id to, uint32_t type, const void *data,
           size_t len)
{
    struct worker *w = host;
    struct item *it;
    int rc;

    if (w->appio == NULL)
        return -ENOTCONN;
    if (len > SIZE_MAX - sizeof(*it))
        return -ENOMEM;
    it = malloc(sizeof(*it) + len);
    if (it == NULL)
        return -ENOMEM;
    memset(it, 0, sizeof(*it));
    it->kind = ITEM_POST;
    it->to = to;
    it->type = type;
    it->len = len;
    if (len > 0)
        memcpy(it->data, data, len);
    rc = queue_push(w->appio, it);
    if (rc != 0)
        free(it);
    return rc;
}

int
appio_queue_decision(struct worker *w, appio_decision_fn *apply,
                     struct wpending *p, int status, char *body, void *arg,
                     void (*free_arg)(void *))
{
    struct item *it = calloc(1, sizeof(*it));
    int rc;

    if (it == NULL)
        return -ENOMEM;
    it->kind = ITEM_DECISION;
    it->apply = apply;
    it->p = p;
    it->status = status;
    it->body = body;
    it->arg = arg;
    it->free_arg = free_arg;
    rc = queue_push(w->appio, it);
    if (rc != 0)
        free(it);
    return rc;
}

/* One batch; true if the queue is not empty after it. */
static bool
appio_run(struct appio *a)
{
    struct item *it;
    uint64_t over;

    for (int i = 0; i < APPIO_BATCH; i++) {
        pthread_mutex_lock(&a->lock);
        it = a->head;
        if (it != NULL) {
            a->head = it->next;
            if (a->head == NULL)
                a->tail = NULL;
            a->n--;
        }
        over = a->overflowed;
        a->overflowed = 0;
        pthread_mutex_unlock(&a->lock);
        a->w->stats->infos_dropped += over;
        if (it == NULL)
            return false;
        if (it->kind == ITEM_POST) {
            messaging_post_deliver(a->w, it->to, it->type, it->data,
                                   it->len);
        } else {
            it->apply(it->p, it->status, it->body, it->arg, it->free_arg);
            free(it->body);
        }
        free(it);
    }
    return true;
}

static void
appio_on_async(struct ev_loop *loop, ev_async *as, int revents)
{
    struct appio *a = container_of(as, struct appio, async);

    (void)revents;
    if (appio_run(a))
        ev_idle_start(loop, &a->more);
}

static void
appio_on_more(struct ev_loop *loop, ev_idle *idle, int revents)
{
    struct appio *a = container_of(idle, struct appio, more);

    (void)revents;
    if (!appio_run(a))
        ev_idle_stop(loop, idle);
}
