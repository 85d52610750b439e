/*
 * redis.c: see redis.h. Two hiredis async contexts (0.14 API) on the
 * worker's libev loop, treated as one link: the bridge is up when both
 * are, and when either fails both are closed and reconnected after a
 * backoff, so there is one state to log and one set of subscriptions to
 * restore. The envelope and channel names are redis_wire.c's; what a
 * message means to the worker is ops->deliver's.
 *
 * Node registry: node ids must be unique among the sockds sharing a
 * Redis (ids and inbox channels are built from them), so while up each
 * worker runs REGISTRY_SCRIPT every REDIS_NODE_REFRESH seconds: it takes
 * PREFIX "node:" ID for our instance name, or keeps it, with a TTL of
 * REDIS_NODE_TTL; if another instance holds it, the clash is logged as an
 * error and counted on every check until that one goes away. It warns, it
 * does not stop the bridge: the clash is a configuration error that only
 * the operator can resolve.
 *
 * hiredis calls every pending reply callback with a NULL reply when a
 * context goes away (also from redisAsyncFree), and frees a context by
 * itself after a failed connect or a disconnect: a link forgets its
 * context before anything can free it, and callbacks check that the
 * context is still the link's.
 */
#include "redis.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>

#include "common.h"
#include "log.h"
#include "redis_wire.h"

#define SUBSCRIBE_BATCH 256     /* channels per SUBSCRIBE command */
#define PUBLISH_STACK 8192      /* commands up to this size skip malloc */
#define MALFORMED_LOG_EVERY 10.0 /* seconds between malformed warnings */
#define REDIS_NODE_REFRESH 10.0 /* seconds between node registry checks */
#define REDIS_NODE_TTL 30       /* seconds the registry entry lives */

/* KEYS[1]: the node key; ARGV: our instance, the TTL. 1 if the key is
   ours now, else the instance that holds it. */
static const char REGISTRY_SCRIPT[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v == false or v == ARGV[1] then "
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 1 end "
    "return v";

enum redis_state {
    REDIS_WAIT,        /* down; the timer starts the next attempt */
    REDIS_CONNECTING,  /* both contexts connecting; the timer gives up */
    REDIS_UP,
};

struct link {
    struct redis *r;
    redisAsyncContext *ac; /* NULL when closed */
    bool up;
    const char *role;      /* "subscriber" or "publisher", for logs */
};

/* A topic channel we want, in a hash set keyed by the channel name. */
struct chan {
    struct chan *next;
    size_t len;
    char name[];           /* NUL-terminated */
};

struct redis {
    struct ev_loop *loop;
    char host[REDIS_WIRE_HOST_MAX];
    int port;
    char *address;
    char *prefix;
    char *password;         /* NULL: no AUTH */
    char *instance;         /* our name in the node registry */
    char node_key[REDIS_WIRE_CHANNEL_MAX];
    ev_timer registry;      /* node registry checks, while up */
    bool clash;             /* the last check found another holder */
    uint16_t node;
    char inbox[REDIS_WIRE_CHANNEL_MAX];
    char all[REDIS_WIRE_CHANNEL_MAX];
    uint64_t self;          /* our node, generation and slot, as in ids */
    struct redis_ops ops;
    void *ctx;
    struct redis_stats *stats;
    struct link sub, pub;
    enum redis_state state;
    ev_timer timer;         /* retry (WAIT) or connect timeout */
    double backoff;
    bool freeing;
    bool in_paused;         /* redis_pause_input */
    bool outage_logged;     /* one warning per outage */
    bool cap_logged;        /* one warning per stretch over the cap */
    bool reply_error_logged;
    ev_tstamp down_since;
    uint64_t dropped_at_down;
    ev_tstamp malformed_logged_at;
    char why[128];          /* the last immediate connect error */
    size_t inflight, inflight_bytes;
    struct chan **buckets;  /* the topic channels wanted */
    size_t n_buckets, n_chans; /* n_buckets: a power of two, or 0 */
};

static void redis_connect(struct redis *r);
static void redis_fail(struct redis *r, const char *why);

/* ---- Wanted topic channels --------------------------------------------- */

static struct chan **
chan_slot(struct redis *r, const char *name, size_t len)
{
    struct chan **p;

    if (r->n_buckets == 0)
        return NULL;
    p = &r->buckets[hash_fnv1a(name, len) & (r->n_buckets - 1)];
    while (*p != NULL && ((*p)->len != len || memcmp((*p)->name, name, len)))
        p = &(*p)->next;
    return p;
}

static int
chans_grow(struct redis *r)
{
    size_t nb = r->n_buckets ? r->n_buckets * 2 : 64;
    struct chan **b = calloc(nb, sizeof(*b));

    if (b == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < r->n_buckets; i++) {
        struct chan *c, *next;

        for (c = r->buckets[i]; c != NULL; c = next) {
            size_t k = hash_fnv1a(c->name, c->len) & (nb - 1);

            next = c->next;
            c->next = b[k];
            b[k] = c;
        }
    }
    free(r->buckets);
    r->buckets = b;
    r->n_buckets = nb;
    return 0;
}

/* 1 if added, 0 if it was there, -ENOMEM. */
static int
chan_add(struct redis *r, const char *name, size_t len)
{
    struct chan **p = chan_slot(r, name, len), *c;

    if (p != NULL && *p != NULL)
        return 0;
    if (r->n_chans >= r->n_buckets && chans_grow(r) != 0)
        return -ENOMEM;
    c = malloc(sizeof(*c) + len + 1);
    if (c == NULL)
        return -ENOMEM;
    c->len = len;
    memcpy(c->name, name, len + 1);
    c->next = NULL;
    *chan_slot(r, name, len) = c;
    r->n_chans++;
    return 1;
}

/* true if it was there. */
static bool
chan_remove(struct redis *r, const char *name, size_t len)
{
    struct chan **p = chan_slot(r, name, len), *c;

    if (p == NULL || *p == NULL)
        return false;
    c = *p;
    *p = c->next;
    free(c);
    r->n_chans--;
    return true;
}

static void
chans_free(struct redis *r)
{
    for (size_t i = 0; i < r->n_buckets; i++) {
        struct chan *c, *next;

        for (c = r->buckets[i]; c != NULL; c = next) {
            next = c->next;
            free(c);
        }
    }
    free(r->buckets);
    r->buckets = NULL;
    r->n_buckets = r->n_chans = 0;
}

/* ---- Receiving --------------------------------------------------------- */

static void
note_malformed(struct redis *r, const char *ch, size_t chlen,
               const char *why)
{
    ev_tstamp now = ev_now(r->loop);
    char name[65];
    size_t n = MIN(chlen, sizeof(name) - 1);

    r->stats->malformed++;
    /* Anyone who can PUBLISH to the server can send these: one warning
       per interval, with the running count, never one per message. */
    if (r->malformed_logged_at != 0 &&
        now - r->malformed_logged_at < MALFORMED_LOG_EVERY)
        return;
    r->malformed_logged_at = now;
    /* The name is anyone's bytes: keep the log line one clean line. */
    for (size_t i = 0; i < n; i++)
        name[i] = ch[i] >= 0x20 && ch[i] < 0x7f && ch[i] != '"' ? ch[i] : '?';
    name[n] = '\0';
    log_warn("event=redis_malformed channel=\"%s\" reason=%s total=%llu",
             name, why, (unsigned long long)r->stats->malformed);
}

static bool
reply_is_string(const redisReply *e)
{
    return e != NULL && (e->type == REDIS_REPLY_STRING ||
                         e->type == REDIS_REPLY_STATUS);
}

/*
 * One message from a channel: the envelope must fit the channel (a topic
 * channel carries publishes, ours or the broadcast channel the other
 * two), and what our own node sent was delivered by the local bus.
 */
static void
redis_handle_message(struct redis *r, const char *ch, size_t chlen,
                     const uint8_t *p, size_t len)
{
    const char *topic = NULL;
    size_t topic_len = 0;
    enum redis_chan kind;
    struct bus_msg m;
    uint16_t origin;

    kind = redis_wire_channel_kind(r->prefix, ch, chlen, &topic, &topic_len);
    if (redis_wire_decode(&m, &origin, p, len) != 0) {
        note_malformed(r, ch, chlen, "envelope");
        return;
    }
    if ((kind == REDIS_CHAN_TOPIC && m.type != BUS_PUBLISH) ||
        (kind == REDIS_CHAN_ALL && m.type != BUS_BROADCAST) ||
        (kind == REDIS_CHAN_INBOX &&
         (m.type != BUS_SEND || (m.to >> 32) != r->self ||
          strlen(r->inbox) != chlen || memcmp(r->inbox, ch, chlen) != 0)) ||
        kind == REDIS_CHAN_OTHER) {
        note_malformed(r, ch, chlen, "type_for_channel");
        return;
    }
    if (origin == r->node)
        return;
    m.topic = topic;
    m.topic_len = (uint16_t)topic_len;
    r->stats->received++;
    r->ops.deliver(r->ctx, &m);
}

/* Every reply on the subscriber: subscribe confirmations and messages. */
static void
redis_on_sub_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct link *l = ac->data;
    const redisReply *x = reply;

    (void)privdata;
    if (x == NULL || l == NULL || l->ac != ac || l->r->freeing)
        return; /* the context is going away */
    /* hiredis reads again after each command it writes: a paused bridge
       stops it again here, at the next reply (of a read already made). */
    if (l->r->in_paused && ac->ev.delRead != NULL)
        ac->ev.delRead(ac->ev.data);
    if (x->type != REDIS_REPLY_ARRAY || x->elements != 3 ||
        !reply_is_string(x->element[0]) || !reply_is_string(x->element[1]) ||
        strcmp(x->element[0]->str, "message") != 0)
        return; /* subscribe and unsubscribe confirmations */
    if (!reply_is_string(x->element[2])) {
        note_malformed(l->r, x->element[1]->str, x->element[1]->len,
                       "payload");
        return;
    }
    redis_handle_message(l->r, x->element[1]->str, x->element[1]->len,
                         (const uint8_t *)x->element[2]->str,
                         x->element[2]->len);
}

/* SUBSCRIBE or UNSUBSCRIBE of n channels. */
static void
redis_sub_command(struct redis *r, const char *cmd, const char **names,
                  const size_t *lens, size_t n)
{
    const char *argv[SUBSCRIBE_BATCH + 1];
    size_t argvlen[SUBSCRIBE_BATCH + 1];

    argv[0] = cmd;
    argvlen[0] = strlen(cmd);
    memcpy(argv + 1, names, n * sizeof(*names));
    memcpy(argvlen + 1, lens, n * sizeof(*lens));
    if (redisAsyncCommandArgv(r->sub.ac, redis_on_sub_reply, NULL,
                              (int)n + 1, argv, argvlen) != REDIS_OK)
        log_warn("event=redis_command_failed command=%s channels=%zu", cmd,
                 n);
}

/* After a (re)connect: our inbox, the broadcast channel, every topic. */
static void
redis_subscribe_all(struct redis *r)
{
    const char *names[SUBSCRIBE_BATCH];
    size_t lens[SUBSCRIBE_BATCH], n = 0;

    names[n] = r->inbox;
    lens[n++] = strlen(r->inbox);
    names[n] = r->all;
    lens[n++] = strlen(r->all);
    for (size_t i = 0; i < r->n_buckets; i++) {
        for (struct chan *c = r->buckets[i]; c != NULL; c = c->next) {
            if (n == SUBSCRIBE_BATCH) {
                redis_sub_command(r, "SUBSCRIBE", names, lens, n);
                n = 0;
            }
            names[n] = c->name;
            lens[n++] = c->len;
        }
    }
    redis_sub_command(r, "SUBSCRIBE", names, lens, n);
}

/* ---- Connection state -------------------------------------------------- */

static void
link_close(struct link *l)
{
    redisAsyncContext *ac = l->ac;

    /* Forget it first: freeing runs its callbacks, which must see that
       it is no longer ours. */
    l->ac = NULL;
    l->up = false;
    if (ac != NULL)
        redisAsyncFree(ac);
}

/* ---- Node registry and AUTH --------------------------------------------- */

static void
redis_on_registry(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct redis *r = privdata;
    const redisReply *x = reply;

    if (x == NULL || r->freeing || r->pub.ac != ac)
        return; /* the context is going away */
    if (x->type == REDIS_REPLY_INTEGER && x->integer == 1) {
        if (r->clash)
            log_info("event=redis_node_id_clash_over node=%u key=%s",
                     r->node, r->node_key);
        r->clash = false;
        return;
    }
    if (reply_is_string(x)) {
        r->clash = true;
        r->stats->node_clashes++;
        log_err("event=redis_node_id_clash node=%u key=%s holder=\"%.*s\" "
                "self=\"%s\" error=\"another sockd uses node_id %u on this "
                "Redis: connection ids and inboxes collide; give every node "
                "its own node_id\"", r->node, r->node_key, (int)x->len,
                x->str, r->instance, r->node);
        return;
    }
    log_warn("event=redis_node_registry_failed key=%s error=\"%s\"",
             r->node_key, x->type == REDIS_REPLY_ERROR ? x->str
                                                       : "unexpected reply");
}

static void
redis_on_registry_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct redis *r = container_of(t, struct redis, registry);
    char ttl[16];

    (void)loop;
    (void)revents;
    if (r->state != REDIS_UP || r->pub.ac == NULL)
        return;
    snprintf(ttl, sizeof(ttl), "%d", REDIS_NODE_TTL);
    if (redisAsyncCommand(r->pub.ac, redis_on_registry, r,
                          "EVAL %s 1 %s %s %s", REGISTRY_SCRIPT, r->node_key,
                          r->instance, ttl) != REDIS_OK)
        log_warn("event=redis_command_failed command=EVAL key=%s",
                 r->node_key);
}

static void
redis_on_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct link *l = ac->data;
    const redisReply *x = reply;
    char why[160];

    (void)privdata;
    if (x == NULL || l == NULL || l->ac != ac || l->r->freeing ||
        x->type != REDIS_REPLY_ERROR)
        return;
    log_err("event=redis_auth_failed address=%s role=%s error=\"%s\"",
            l->r->address, l->role, x->str);
    snprintf(why, sizeof(why), "AUTH refused: %s", x->str);
    redis_fail(l->r, why);
}

static void
redis_went_up(struct redis *r)
{
    ev_timer_stop(r->loop, &r->timer);
    r->state = REDIS_UP;
    r->backoff = REDIS_BACKOFF_MIN;
    r->stats->connects++;
    r->stats->connected = 1;
    r->cap_logged = false;
    r->reply_error_logged = false;
    if (r->outage_logged)
        log_info("event=redis_connected address=%s down_ms=%.0f "
                 "dropped=%llu", r->address,
                 (ev_now(r->loop) - r->down_since) * 1000.0,
                 (unsigned long long)(r->stats->dropped -
                                      r->dropped_at_down));
    else
        log_info("event=redis_connected address=%s prefix=%s inbox=%s",
                 r->address, r->prefix, r->inbox);
    r->outage_logged = false;
    redis_subscribe_all(r);
    ev_timer_set(&r->registry, 0., REDIS_NODE_REFRESH);
    ev_timer_start(r->loop, &r->registry);
}

static void
redis_on_connect(const redisAsyncContext *ac, int status)
{
    struct link *l = ac->data;

    if (l == NULL || l->ac != ac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees this context when we return. */
        l->ac = NULL;
        redis_fail(l->r, ac->errstr);
        return;
    }
    l->up = true;
    redisEnableKeepAlive(&l->ac->c); /* notice a silent peer, in time */
    if (l->r->sub.up && l->r->pub.up)
        redis_went_up(l->r);
}

static void
redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct link *l = ac->data;

    (void)status;
    if (l == NULL || l->ac != ac)
        return; /* we closed it */
    l->ac = NULL; /* hiredis frees it when we return */
    l->up = false;
    redis_fail(l->r, ac->err != 0 ? ac->errstr : "closed by the server");
}

/*
 * Either connection failed or broke: close both, count the outage from
 * now, warn once per outage, and try again after the backoff.
 */
static void
redis_fail(struct redis *r, const char *why)
{
    bool was_up = r->state == REDIS_UP;

    if (r->freeing || r->state == REDIS_WAIT)
        return;
    r->state = REDIS_WAIT;
    r->stats->connected = 0;
    ev_timer_stop(r->loop, &r->registry);
    link_close(&r->sub);
    link_close(&r->pub);
    if (was_up || !r->outage_logged) {
        r->down_since = ev_now(r->loop);
        r->dropped_at_down = r->stats->dropped;
    }
    if (!r->outage_logged) {
        log_warn("event=%s address=%s error=\"%s\" action=retry "
                 "retry_ms=%.0f", was_up ? "redis_disconnected"
                                         : "redis_connect_failed",
                 r->address, why != NULL ? why : "unknown",
                 r->backoff * 1000.0);
        r->outage_logged = true;
    } else {
        log_debug("event=redis_retry_failed address=%s error=\"%s\" "
                  "retry_ms=%.0f", r->address, why != NULL ? why : "unknown",
                  r->backoff * 1000.0);
    }
    ev_timer_stop(r->loop, &r->timer);
    ev_timer_set(&r->timer, r->backoff, 0.);
    ev_timer_start(r->loop, &r->timer);
    r->backoff = MIN(r->backoff * 2, REDIS_BACKOFF_MAX);
}

static void
redis_on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct redis *r = container_of(t, struct redis, timer);

    (void)loop;
    (void)revents;
    if (r->state == REDIS_CONNECTING)
        redis_fail(r, "connect timed out");
    else if (r->state == REDIS_WAIT)
        redis_connect(r);
}

/* 0, or -1 with the reason in why (static or the context's). */
static int
link_open(struct link *l, const char **why)
{
    struct redis *r = l->r;
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);

    if (ac == NULL) {
        *why = "out of memory";
        return -1;
    }
    if (ac->err != 0) {
        snprintf(r->why, sizeof(r->why), "%s: %s", l->role, ac->errstr);
        *why = r->why;
        redisAsyncFree(ac);
        return -1;
    }
    ac->data = l;
    if (redisLibevAttach(r->loop, ac) != REDIS_OK) {
        *why = "cannot attach to the event loop";
        redisAsyncFree(ac);
        return -1;
    }
    redisAsyncSetConnectCallback(ac, redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, redis_on_disconnect);
    l->ac = ac;
    l->up = false;
    /* Queued now, so it goes out first once connected. */
    if (r->password != NULL &&
        redisAsyncCommand(ac, redis_on_auth, NULL, "AUTH %s",
                          r->password) != REDIS_OK) {
        *why = "cannot queue AUTH";
        link_close(l);
        return -1;
    }
    return 0;
}

static void
redis_connect(struct redis *r)
{
    const char *why = NULL;

    r->state = REDIS_CONNECTING;
    if (link_open(&r->sub, &why) != 0 || link_open(&r->pub, &why) != 0) {
        redis_fail(r, why);
        return;
    }
    ev_timer_set(&r->timer, REDIS_CONNECT_TIMEOUT, 0.);
    ev_timer_start(r->loop, &r->timer);
}

/* ---- Publishing -------------------------------------------------------- */

/* The size of a PUBLISH and whether it was directed, as its privdata. */
static void *
pub_tag(size_t size, bool directed)
{
    return (void *)(uintptr_t)(size << 1 | directed);
}

static void
redis_on_published(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct link *l = ac->data;
    struct redis *r = l->r;
    const redisReply *x = reply;
    uintptr_t tag = (uintptr_t)privdata;

    r->inflight--;
    r->inflight_bytes -= tag >> 1;
    if (r->inflight < REDIS_MAX_INFLIGHT / 2)
        r->cap_logged = false;
    if (x == NULL)
        return; /* the connection is going away; fate unknown */
    if (x->type == REDIS_REPLY_INTEGER) {
        if ((tag & 1) && x->integer == 0)
            r->stats->unrouted++; /* that worker is gone */
        return;
    }
    r->stats->dropped++;
    if (!r->reply_error_logged) {
        r->reply_error_logged = true;
        log_warn("event=redis_publish_error address=%s reply=\"%.100s\"",
                 r->address, x->type == REDIS_REPLY_ERROR ? x->str : "?");
    }
}

/* The channel of m into buf, or -EINVAL. */
static int
channel_of(const struct redis *r, const struct bus_msg *m, char *buf,
           size_t size)
{
    switch (m->type) {
    case BUS_PUBLISH:
        if (m->topic_len == 0 || m->topic_len > 255)
            return -EINVAL;
        return redis_wire_topic_channel(buf, size, r->prefix, m->topic,
                                        m->topic_len);
    case BUS_BROADCAST:
        return redis_wire_all_channel(buf, size, r->prefix);
    case BUS_SEND:
        if (m->to == 0)
            return -EINVAL;
        return redis_wire_inbox_channel(buf, size, r->prefix, m->to);
    default:
        return -EINVAL;
    }
}

static int
redis_drop(struct redis *r, int rc)
{
    r->stats->dropped++;
    if (rc == -ENOBUFS && !r->cap_logged) {
        r->cap_logged = true;
        log_warn("event=redis_publish_dropped reason=cap inflight=%zu "
                 "bytes=%zu", r->inflight, r->inflight_bytes);
    }
    return rc;
}

int
redis_publish(struct redis *r, const struct bus_msg *m)
{
    char chan[REDIS_WIRE_CHANNEL_MAX], stack[PUBLISH_STACK], *cmd;
    uint8_t hdr[REDIS_WIRE_HEADER];
    int chlen = channel_of(r, m, chan, sizeof(chan)), rc;
    size_t size;

    if (chlen < 0)
        return -EINVAL;
    if (r->state != REDIS_UP)
        return redis_drop(r, -ENOTCONN);
    size = redis_wire_publish_size((size_t)chlen, m->len);
    if (r->inflight >= REDIS_MAX_INFLIGHT ||
        r->inflight_bytes + size > REDIS_MAX_INFLIGHT_BYTES)
        return redis_drop(r, -ENOBUFS);
    cmd = size <= sizeof(stack) ? stack : malloc(size);
    if (cmd == NULL)
        return -ENOMEM;
    redis_wire_header(hdr, r->node, m);
    redis_wire_publish(cmd, chan, (size_t)chlen, hdr, m->data, m->len);
    rc = redisAsyncFormattedCommand(r->pub.ac, redis_on_published,
                                    pub_tag(size, m->type == BUS_SEND), cmd,
                                    size);
    if (cmd != stack)
        free(cmd);
    if (rc != REDIS_OK)
        return redis_drop(r, -ENOTCONN);
    r->inflight++;
    r->inflight_bytes += size;
    r->stats->published++;
    return 0;
}

void
redis_pause_input(struct redis *r, bool paused)
{
    redisAsyncContext *ac = r->sub.ac;

    r->in_paused = paused;
    if (ac == NULL || ac->ev.delRead == NULL || ac->ev.addRead == NULL)
        return;
    if (paused)
        ac->ev.delRead(ac->ev.data);
    else
        ac->ev.addRead(ac->ev.data);
}

int
redis_subscribe(struct redis *r, const char *topic, bool on)
{
    char chan[REDIS_WIRE_CHANNEL_MAX];
    size_t tlen = strlen(topic), len;
    int n, rc;

    if (tlen == 0 || tlen > 255)
        return -EINVAL;
    n = redis_wire_topic_channel(chan, sizeof(chan), r->prefix, topic, tlen);
    if (n < 0)
        return -EINVAL;
    len = (size_t)n;
    if (on) {
        rc = chan_add(r, chan, len);
        if (rc <= 0)
            return rc;
    } else if (!chan_remove(r, chan, len)) {
        return 0;
    }
    /* While down the set is all that changes: a reconnect subscribes to
       what it holds then. */
    if (r->state == REDIS_UP) {
        const char *name = chan;

        redis_sub_command(r, on ? "SUBSCRIBE" : "UNSUBSCRIBE", &name, &len,
                          1);
    }
    return 0;
}

/* ---- Life -------------------------------------------------------------- */

struct redis *
redis_new(struct ev_loop *loop, const char *address, const char *prefix,
          const char *password, const char *instance, uint16_t node,
          uint8_t generation, uint8_t slot, const struct redis_ops *ops,
          void *ctx, struct redis_stats *stats, char *err, size_t errlen)
{
    struct redis *r;
    uint64_t self = (uint64_t)node << 16 | (uint64_t)generation << 8 | slot;

    if (strlen(prefix) > REDIS_WIRE_PREFIX_MAX) {
        snprintf(err, errlen, "[redis] prefix over %d bytes",
                 REDIS_WIRE_PREFIX_MAX);
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (redis_wire_parse_address(address, r->host, sizeof(r->host),
                                 &r->port) != 0) {
        snprintf(err, errlen, "bad [redis] address '%s': expected HOST:PORT",
                 address);
        free(r);
        return NULL;
    }
    r->address = strdup(address);
    r->prefix = strdup(prefix);
    r->instance = strdup(instance);
    r->password = password != NULL ? strdup(password) : NULL;
    if (r->address == NULL || r->prefix == NULL || r->instance == NULL ||
        (password != NULL && r->password == NULL)) {
        snprintf(err, errlen, "out of memory");
        goto fail_free;
    }
    r->loop = loop;
    r->node = node;
    r->self = self;
    redis_wire_inbox_channel(r->inbox, sizeof(r->inbox), prefix, self << 32);
    redis_wire_all_channel(r->all, sizeof(r->all), prefix);
    r->ops = *ops;
    r->ctx = ctx;
    r->stats = stats;
    r->sub = (struct link){ .r = r, .role = "subscriber" };
    r->pub = (struct link){ .r = r, .role = "publisher" };
    r->backoff = REDIS_BACKOFF_MIN;
    r->state = REDIS_WAIT;
    snprintf(r->node_key, sizeof(r->node_key), "%snode:%u", prefix, node);
    ev_init(&r->timer, redis_on_timer);
    ev_init(&r->registry, redis_on_registry_timer);
    stats->connected = 0;
    redis_connect(r);
    return r;

fail_free:
    free(r->address);
    free(r->prefix);
    free(r->instance);
    free(r->password);
    free(r);
    return NULL;
}

void
redis_free(struct redis *r)
{
    if (r == NULL)
        return;
    r->freeing = true;
    ev_timer_stop(r->loop, &r->timer);
    ev_timer_stop(r->loop, &r->registry);
    link_close(&r->sub);
    link_close(&r->pub);
    r->stats->connected = 0;
    chans_free(r);
    free(r->address);
    free(r->prefix);
    free(r->instance);
    free(r->password);
    free(r);
}
