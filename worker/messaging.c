/*
 * messaging.c: infos inside one worker: inboxes, topics (a hash of names
 * to subscriber lists), broadcast, sock_send_after timers, and the host
 * calls behind sock_send_info / sock_publish / sock_broadcast. A payload
 * is copied once into a shared buffer and referenced by every recipient.
 * Ids of other workers and generations of this machine go over the bus
 * (ipc/): one hop to the owning worker; topics and broadcasts go once to
 * every worker, which fans out to its own connections. With [redis],
 * what starts here also goes once to the other machines (ipc/redis.c),
 * and the first and last local subscriber of a topic (un)subscribe its
 * channel; what comes from there is delivered like bus messages.
 * Connections are reached through w's messaging_conn_ops only.
 */
#include "messaging.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "log.h"
#include "redis.h"
#include "ws_frame.h"
#include "wstate.h"

struct topic {
    struct topic *next;    /* hash chain */
    struct list subs;      /* struct sub.tlink */
    size_t n_subs;
    sock_buf *name;        /* NUL-terminated, shared with infos */
};

struct sub {
    struct list tlink;     /* in topic->subs */
    struct list clink;     /* in its mailbox's subs */
    struct topic *t;
    struct msg_box *b;
    uint8_t frame_op;      /* sock_subscribe_frames: TEXT or BINARY; 0:
                              infos through handle_info */
};

struct topics {
    struct topic **buckets;
    size_t n_buckets;      /* power of two */
    size_t n;
    sock_id current;       /* whose callback runs, for "from" */
};

struct ctimer {
    ev_timer timer;
    struct list link;      /* in its mailbox's timers */
    struct msg_box *b;
    uint32_t type;
    sock_buf *data;
};

static int send_any(struct worker *w, sock_id to, sock_info_kind kind,
                    uint32_t type, sock_id from, const void *data,
                    size_t len);

static int publish_local(struct worker *w, const char *topic, uint32_t type,
                         sock_id from, const void *data, size_t len);
static int broadcast_local(struct worker *w, uint32_t type, sock_id from,
                           const void *data, size_t len);

void
messaging_init(struct worker *w, const struct messaging_conn_ops *ops)
{
    w->msg_ops = ops;
    w->topics = calloc(1, sizeof(*w->topics));
}

void
messaging_destroy(struct worker *w)
{
    if (w->topics != NULL)
        free(w->topics->buckets);
    free(w->topics);
    w->topics = NULL;
}

void
messaging_set_current(struct worker *w, sock_id id)
{
    if (w->topics != NULL)
        w->topics->current = id;
}

static sock_id
current_id(struct worker *w)
{
    return w->topics != NULL ? w->topics->current : 0;
}

/* ---- Inbox ------------------------------------------------------------- */

/* Infos kept for reuse, on a free list through their link: a publish to
   N local subscribers makes N at once and frees them as they are
   delivered, one loop iteration later, and with M publishes in flight
   N x M are out at once (1000 subscribers x 32: 32000). Up to 65536
   stay (4 MiB), so a fan-out in steady state never calls malloc. Last
   in, first out. The process is single-threaded (one worker). */
#define INFO_SPARES 65536
static struct list info_spare = { &info_spare, &info_spare };
static unsigned n_info_spare;

void
messaging_box_init(struct msg_box *b, struct worker *w, struct conn *c)
{
    b->c = c;
    b->w = w;
    b->n = 0;
    list_init(&b->inbox);
    list_init(&b->timers);
    list_init(&b->subs);
}

int
messaging_box_put(struct msg_box *b, sock_info_kind kind, uint32_t type,
                  sock_id from, sock_buf *topic, sock_buf *data, bool held)
{
    struct info *i;

    if (n_info_spare > 0) {
        i = list_first(&info_spare, struct info, link);
        list_remove(&i->link);
        n_info_spare--;
    } else if ((i = malloc(sizeof(*i))) == NULL) {
        return -ENOMEM;
    }
    i->kind = (uint8_t)kind;
    i->held = held;
    i->type = type;
    i->from = from;
    i->topic = topic ? sock_buf_ref(topic) : NULL;
    i->data = data ? sock_buf_ref(data) : NULL;
    list_insert_tail(&b->inbox, &i->link);
    b->n++;
    return 0;
}

struct info *
messaging_pop(struct msg_box *b)
{
    struct info *i;

    if (b == NULL)
        return NULL;
    i = list_first(&b->inbox, struct info, link);
    if (i != NULL) {
        list_remove(&i->link);
        b->n--;
    }
    return i;
}

void
messaging_info_free(struct info *i)
{
    sock_buf_unref(i->topic);
    sock_buf_unref(i->data);
    if (n_info_spare < INFO_SPARES) {
        /* At the head: the next put takes the one freed last, still in
           cache. Taken from the tail (oldest first) they cycled through
           the whole pool, and the cache miss on each made list_remove
           14% of a worker's time on broadcast (e). */
        list_insert_tail(info_spare.next, &i->link);
        n_info_spare++;
    } else {
        free(i);
    }
}

/* ---- Topics ------------------------------------------------------------ */

static uint64_t
hash_name(const char *s)
{
    return hash_fnv1a(s, strlen(s));
}

static struct topic **
topic_slot(struct topics *ts, const char *name)
{
    struct topic **p;

    if (ts->n_buckets == 0)
        return NULL;
    p = &ts->buckets[hash_name(name) & (ts->n_buckets - 1)];
    for (; *p != NULL; p = &(*p)->next)
        if (strcmp((const char *)(*p)->name->data, name) == 0)
            return p;
    return p;
}

static int
topics_grow(struct topics *ts)
{
    size_t nb = ts->n_buckets ? ts->n_buckets * 2 : 64;
    struct topic **b = calloc(nb, sizeof(*b));

    if (b == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < ts->n_buckets; i++) {
        struct topic *t, *next;

        for (t = ts->buckets[i]; t != NULL; t = next) {
            size_t k = hash_name((const char *)t->name->data) & (nb - 1);

            next = t->next;
            t->next = b[k];
            b[k] = t;
        }
    }
    free(ts->buckets);
    ts->buckets = b;
    ts->n_buckets = nb;
    return 0;
}

static struct topic *
topic_get(struct topics *ts, const char *name, bool create)
{
    struct topic **p = topic_slot(ts, name), *t;

    if (p != NULL && *p != NULL)
        return *p;
    if (!create)
        return NULL;
    if (ts->n >= ts->n_buckets && topics_grow(ts) != 0)
        return NULL;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->name = sock_buf_new(name, strlen(name) + 1);
    if (t->name == NULL) {
        free(t);
        return NULL;
    }
    list_init(&t->subs);
    p = topic_slot(ts, name);
    t->next = NULL;
    *p = t;
    ts->n++;
    return t;
}

static void
topic_drop_if_empty(struct topics *ts, struct topic *t)
{
    struct topic **p;

    if (t->n_subs > 0)
        return;
    p = topic_slot(ts, (const char *)t->name->data);
    *p = t->next;
    ts->n--;
    sock_buf_unref(t->name);
    free(t);
}

static void
sub_remove(struct topics *ts, struct sub *s)
{
    struct topic *t = s->t;
    struct worker *w = s->b->w;

    list_remove(&s->tlink);
    list_remove(&s->clink);
    t->n_subs--;
    if (t->n_subs == 0 && w->redis != NULL)
        redis_subscribe(w->redis, (const char *)t->name->data, false);
    free(s);
    topic_drop_if_empty(ts, t);
}

static struct sub *
sub_find(struct msg_box *b, const char *topic)
{
    struct list *l;

    for (l = b->subs.next; l != &b->subs; l = l->next) {
        struct sub *s = container_of(l, struct sub, clink);

        if (strcmp((const char *)s->t->name->data, topic) == 0)
            return s;
    }
    return NULL;
}

int
messaging_subscribe(struct msg_box *b, const char *topic, bool on,
                    uint8_t frame_op)
{
    struct topics *ts = b->w->topics;
    struct sub *s = sub_find(b, topic);
    struct topic *t;

    if (!on) {
        if (s != NULL)
            sub_remove(ts, s);
        return 0;
    }
    if (s != NULL) {
        s->frame_op = frame_op;
        return 0;
    }
    t = topic_get(ts, topic, true);
    s = t ? malloc(sizeof(*s)) : NULL;
    if (s == NULL) {
        if (t != NULL)
            topic_drop_if_empty(ts, t);
        return -ENOMEM;
    }
    s->t = t;
    s->b = b;
    s->frame_op = frame_op;
    list_insert_tail(&t->subs, &s->tlink);
    list_insert_tail(&b->subs, &s->clink);
    t->n_subs++;
    if (t->n_subs == 1 && b->w->redis != NULL)
        redis_subscribe(b->w->redis, topic, true);
    return 0;
}

/* ---- Timers ------------------------------------------------------------ */

static void
ctimer_free(struct worker *w, struct ctimer *t)
{
    ev_timer_stop(w->loop, &t->timer);
    list_remove(&t->link);
    sock_buf_unref(t->data);
    free(t);
}

static void
ctimer_fired(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct ctimer *t = container_of(tw, struct ctimer, timer);
    struct msg_box *b = t->b;

    (void)loop;
    (void)revents;
    b->w->msg_ops->enqueue(b->c, SOCK_INFO_TIMER, t->type, 0, NULL, t->data,
                           false);
    ctimer_free(b->w, t);
}

int
messaging_send_after(struct msg_box *b, uint32_t ms, uint32_t type,
                     const void *data, size_t len)
{
    struct ctimer *t;

    if ((t = malloc(sizeof(*t))) == NULL)
        return -ENOMEM;
    t->data = sock_buf_new(data, len);
    if (t->data == NULL) {
        free(t);
        return -ENOMEM;
    }
    t->b = b;
    t->type = type;
    list_insert_tail(&b->timers, &t->link);
    ev_timer_init(&t->timer, ctimer_fired, ms / 1000.0, 0.);
    ev_timer_start(b->w->loop, &t->timer);
    return 0;
}

void
messaging_box_cleanup(struct msg_box *b)
{
    struct info *i;

    if (b == NULL)
        return;
    while ((i = messaging_pop(b)) != NULL)
        messaging_info_free(i);
    while (!list_empty(&b->timers))
        ctimer_free(b->w, container_of(b->timers.next, struct ctimer, link));
    while (!list_empty(&b->subs))
        sub_remove(b->w->topics,
                   container_of(b->subs.next, struct sub, clink));
}

/* ---- Host calls -------------------------------------------------------- */

/* Delivers to one connection of this worker. */
static int
send_local(struct worker *w, sock_id to, sock_info_kind kind, uint32_t type,
           sock_id from, const void *data, size_t len)
{
    struct conn *c = w->msg_ops->find(w, to);
    sock_buf *b;
    int rc;

    if (c == NULL) {
        w->stats->infos_stale++;
        log_debug("event=info_dropped to=%llx reason=unknown_id",
                  (unsigned long long)to);
        return 0;
    }
    b = sock_buf_new(data, len);
    if (b == NULL)
        return -ENOMEM;
    rc = w->msg_ops->enqueue(c, kind, type, from, NULL, b, false);
    sock_buf_unref(b);
    return rc == -ENOBUFS || rc == -EPIPE ? 0 : rc;
}

/* ---- The bus ------------------------------------------------------------- */

static uint32_t
peer_key_of(sock_id id)
{
    return (uint32_t)SOCK_ID_GENERATION(id) << 8 | SOCK_ID_SLOT(id);
}

/* A host call as the bus and the Redis bridge carry it. */
static struct bus_msg
msg_of(uint8_t type, sock_id to, uint32_t app_type, sock_id from,
       const char *topic, const void *data, size_t len)
{
    struct bus_msg m = {
        .type = type, .to = to, .from = from, .app_type = app_type,
        .topic = topic, .topic_len = topic ? (uint16_t)strlen(topic) : 0,
        .data = data, .len = (uint32_t)len,
    };

    return m;
}

static int
bus_out(struct worker *w, uint8_t type, sock_id to, uint32_t app_type,
        sock_id from, const char *topic, const void *data, size_t len)
{
    struct bus_msg m = msg_of(type, to, app_type, from, topic, data, len);
    int rc;

    if (w->bus == NULL)
        return type == BUS_SEND ? -ENOENT : 0;
    if (len > UINT32_MAX)
        return -EMSGSIZE;
    rc = type == BUS_SEND ? bus_send(w->bus, peer_key_of(to), &m)
                          : bus_send_all(w->bus, &m);
    if (rc == -ENOBUFS)
        w->stats->infos_dropped++;
    return rc;
}

/* Once to the other machines, from the worker where it started. Drops
   are counted by the bridge. */
static int
redis_out(struct worker *w, uint8_t type, sock_id to, uint32_t app_type,
          sock_id from, const char *topic, const void *data, size_t len)
{
    struct bus_msg m = msg_of(type, to, app_type, from, topic, data, len);

    if (w->redis == NULL)
        return -ENOTCONN;
    if (len > UINT32_MAX)
        return -EMSGSIZE;
    return redis_publish(w->redis, &m);
}

/* A message from another worker of this machine or another machine. */
void
messaging_bus_deliver(void *ctx, const struct bus_msg *m)
{
    struct worker *w = ctx;
    char topic[256];

    switch (m->type) {
    case BUS_SEND:
        send_local(w, m->to, SOCK_INFO_SEND, m->app_type, m->from, m->data,
                   m->len);
        break;
    case BUS_PUBLISH:
        if (m->topic_len == 0 || m->topic_len >= sizeof(topic))
            break;
        memcpy(topic, m->topic, m->topic_len);
        topic[m->topic_len] = '\0';
        publish_local(w, topic, m->app_type, m->from, m->data, m->len);
        break;
    case BUS_BROADCAST:
        broadcast_local(w, m->app_type, m->from, m->data, m->len);
        break;
    }
    /* As for a client that publishes (conn_fan_pause): the other workers'
       publishes wait in their queues to us, and over the queues' caps are
       dropped there, counted; the other machines' wait in Redis. */
    if (worker_fanout_over(w) && !w->bus_paused) {
        w->bus_paused = true;
        w->stats->fanout_pauses++;
        if (w->bus != NULL)
            bus_pause_input(w->bus, true);
        if (w->redis != NULL)
            redis_pause_input(w->redis, true);
    }
}

void
messaging_fan_resume(struct worker *w)
{
    if (!w->bus_paused || !worker_fanout_drained(w))
        return;
    w->bus_paused = false;
    if (w->bus != NULL)
        bus_pause_input(w->bus, false);
    if (w->redis != NULL)
        redis_pause_input(w->redis, false);
}

int
messaging_send_info(void *host, sock_id to, uint32_t type, const void *data,
                    size_t len)
{
    struct worker *w = host;

    return send_any(w, to, SOCK_INFO_SEND, type, current_id(w), data, len);
}

/* One hop to wherever to lives: here, another worker, another machine. */
static int
send_any(struct worker *w, sock_id to, sock_info_kind kind, uint32_t type,
         sock_id from, const void *data, size_t len)
{
    int rc;

    w->stats->infos_sent++;
    if (worker_id_is_local(w, to))
        return send_local(w, to, kind, type, from, data, len);
    if (to == 0 || (SOCK_ID_NODE(to) != w->node && w->redis == NULL)) {
        w->stats->infos_stale++;
        return 0;
    }
    if (SOCK_ID_NODE(to) != w->node) {
        rc = redis_out(w, BUS_SEND, to, type, from, NULL, data, len);
        return rc == -ENOMEM || rc == -EMSGSIZE ? rc : 0;
    }
    rc = bus_out(w, BUS_SEND, to, type, from, NULL, data, len);
    if (rc == -ENOENT)
        w->stats->infos_stale++; /* no such worker (any more) */
    return rc == 0 || rc == -ENOENT || rc == -ENOBUFS ? 0 : rc;
}

void
messaging_post_deliver(struct worker *w, sock_id to, uint32_t type,
                       const void *data, size_t len)
{
    send_any(w, to, SOCK_INFO_POST, type, 0, data, len);
}

int
messaging_publish(void *host, const char *topic, uint32_t type,
                  const void *data, size_t len)
{
    struct worker *w = host;
    sock_id from = current_id(w);
    int rc = publish_local(w, topic, type, from, data, len);

    bus_out(w, BUS_PUBLISH, 0, type, from, topic, data, len);
    redis_out(w, BUS_PUBLISH, 0, type, from, topic, data, len);
    return rc;
}

int
messaging_broadcast(void *host, uint32_t type, const void *data, size_t len)
{
    struct worker *w = host;
    sock_id from = current_id(w);
    int rc = broadcast_local(w, type, from, data, len);

    bus_out(w, BUS_BROADCAST, 0, type, from, NULL, data, len);
    redis_out(w, BUS_BROADCAST, 0, type, from, NULL, data, len);
    return rc;
}

/* The whole frame (header and payload) of b for op, built once per
   publish and shared by every frame-mode subscriber. */
static sock_buf *
frame_of(sock_buf *b, uint8_t op)
{
    uint8_t hdr[WS_MAX_SERVER_HEADER];
    size_t hlen = ws_frame_header_write(hdr, true, 0, op, b->len);
    sock_buf *f = sock_buf_alloc(hlen + b->len);

    if (f == NULL)
        return NULL;
    memcpy(f->data, hdr, hlen);
    memcpy(f->data + hlen, b->data, b->len);
    return f;
}

/*
 * Delivers to this worker's subscribers of topic: the payload is copied
 * once into b; infos reference it, frame-mode subscribers get the frame
 * built once (per opcode) queued by reference, or compressed once per
 * window (conn_push_frame), with no callback.
 */
static int
publish_local(struct worker *w, const char *topic, uint32_t type,
              sock_id from, const void *data, size_t len)
{
    struct topic *t = topic_get(w->topics, topic, false);
    sock_buf *frame[2] = { NULL, NULL }; /* TEXT, BINARY */
    struct list *l, *next;
    sock_buf *b;
    bool held;
    int rc = 0;

    if (t == NULL)
        return 0;
    w->fanouts++;
    b = sock_buf_new(data, len);
    if (b == NULL)
        return -ENOMEM;
    sock_buf_ref(t->name); /* an inbox overflow may drop the topic */
    held = worker_fanout_later(w);
    for (l = t->subs.next; l != &t->subs; l = next) {
        struct sub *s = container_of(l, struct sub, tlink);
        sock_buf **f;

        next = l->next;
        if (s->frame_op == 0) {
            w->msg_ops->enqueue(s->b->c, SOCK_INFO_PUBLISH, type, from,
                                t->name, b, held);
            continue;
        }
        f = &frame[s->frame_op == WS_OP_BINARY];
        if (*f == NULL && (*f = frame_of(b, s->frame_op)) == NULL) {
            rc = -ENOMEM;
            continue;
        }
        w->msg_ops->push_frame(s->b->c, s->frame_op, b, *f, held);
    }
    sock_buf_unref(frame[0]);
    sock_buf_unref(frame[1]);
    sock_buf_unref(t->name);
    sock_buf_unref(b);
    return rc;
}

static int
broadcast_local(struct worker *w, uint32_t type, sock_id from,
                const void *data, size_t len)
{
    sock_buf *b = sock_buf_new(data, len);
    bool held;

    if (b == NULL)
        return -ENOMEM;
    w->fanouts++;
    held = worker_fanout_later(w);
    w->msg_ops->broadcast(w, type, from, b, held);
    sock_buf_unref(b);
    return 0;
}
