/*
 * authredis.c: an upgrade decided by a backend without blocking the
 * worker. A client connects to /auth?token=TOKEN; the upgrade hook defers
 * (sock_upgrade_defer) and asks Redis `GET <key_prefix>TOKEN` over
 * hiredis's async API, driven on the worker's own loop through
 * sock_watch_fd (the adapter below: hiredis 0.14's ev.addRead & co.).
 * The value "USER TOPIC..." accepts the upgrade: the connection joins
 * "user:USER" and each TOPIC and is greeted with
 * {"user":"USER","topics":["TOPIC",...]}; no value refuses with 403
 * "unknown token". While Redis is down the hook answers 503 at once; a
 * Redis that does not answer within handshake_timeout gets the client a
 * 503 from the server, and the late reply's decision is told -EPIPE.
 *
 * Messages: a text "TOPIC TEXT" from the client is published to TOPIC (if
 * it joined it) as {"from":"USER","topic":"TOPIC","text":"TEXT"}; what is
 * published to the topics it joined (by apps or `sockctl publish`) is
 * pushed as it is (if valid UTF-8).
 *
 * Route options: option.redis = HOST:PORT (required), option.key_prefix
 * (default "token:"). One Redis connection per worker, made in setup,
 * reconnected every 500 ms while down, closed in teardown.
 * Built in as `app = authredis`, and as a module (authredis.so, linked
 * with hiredis).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "sock.h"

#define AR_MAX_TOPICS 16
#define AR_NAME_MAX 64
#define AR_MSG 1

/* ---- hiredis on sock_watch_fd -------------------------------------------- */

struct ar_ev {
    redisAsyncContext *ac;
    sock_watch *w;
    unsigned events;
    bool in_cb, gone;
};

static void
ar_ev_on_fd(sock_watch *w, int fd, unsigned revents, void *arg)
{
    struct ar_ev *e = arg;

    (void)w;
    (void)fd;
    /* Either handler may end the context (cleanup below): check between. */
    e->in_cb = true;
    if (revents & SOCK_READ)
        redisAsyncHandleRead(e->ac);
    if (!e->gone && (revents & SOCK_WRITE))
        redisAsyncHandleWrite(e->ac);
    e->in_cb = false;
    if (e->gone)
        free(e);
}

static void
ar_ev_update(void *privdata, unsigned set, unsigned clear)
{
    struct ar_ev *e = privdata;

    e->events = (e->events | set) & ~clear;
    if (e->w != NULL)
        sock_watch_set(e->w, e->events);
}

static void ar_add_read(void *p) { ar_ev_update(p, SOCK_READ, 0); }
static void ar_del_read(void *p) { ar_ev_update(p, 0, SOCK_READ); }
static void ar_add_write(void *p) { ar_ev_update(p, SOCK_WRITE, 0); }
static void ar_del_write(void *p) { ar_ev_update(p, 0, SOCK_WRITE); }

static void
ar_cleanup(void *privdata)
{
    struct ar_ev *e = privdata;

    sock_watch_stop(e->w); /* also from inside its own callback */
    e->w = NULL;
    if (e->in_cb)
        e->gone = true;    /* freed when the callback returns */
    else
        free(e);
}

/* Attaches ac to the worker's loop. 0, or -1 (ac is the caller's). */
static int
ar_attach(redisAsyncContext *ac)
{
    struct ar_ev *e = calloc(1, sizeof(*e));

    if (e == NULL)
        return -1;
    e->ac = ac;
    e->w = sock_watch_fd(ac->c.fd, 0, ar_ev_on_fd, e);
    if (e->w == NULL) {
        free(e);
        return -1;
    }
    ac->ev.data = e;
    ac->ev.addRead = ar_add_read;
    ac->ev.delRead = ar_del_read;
    ac->ev.addWrite = ar_add_write;
    ac->ev.delWrite = ar_del_write;
    ac->ev.cleanup = ar_cleanup;
    return 0;
}

/* ---- The worker's Redis connection --------------------------------------- */

static struct {
    redisAsyncContext *ac;
    bool connected, stopping;
    char host[256];
    int port;
    char prefix[AR_NAME_MAX];
    sock_timer *retry;
} R;

static void ar_connect(void);

static void
ar_on_retry(sock_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    R.retry = NULL;
    ar_connect();
}

static void
ar_schedule_retry(void)
{
    if (!R.stopping && R.retry == NULL)
        R.retry = sock_timer_start(500, 0, ar_on_retry, NULL);
}

static void
ar_on_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) { /* hiredis frees ac after this */
        fprintf(stderr, "<4>app=authredis event=redis_connect_failed "
                "addr=%s:%d error=\"%s\"\n", R.host, R.port, ac->errstr);
        R.ac = NULL;
        ar_schedule_retry();
        return;
    }
    R.connected = true;
    fprintf(stderr, "<6>app=authredis event=redis_connected addr=%s:%d\n",
            R.host, R.port);
}

static void
ar_on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    if (!R.stopping)
        fprintf(stderr, "<4>app=authredis event=redis_lost addr=%s:%d "
                "error=\"%s\" action=retry_500ms\n", R.host, R.port,
                ac->errstr);
    R.ac = NULL;
    R.connected = false;
    ar_schedule_retry();
}

static void
ar_connect(void)
{
    redisAsyncContext *ac = redisAsyncConnect(R.host, R.port);

    if (ac == NULL || ac->err != 0 || ar_attach(ac) != 0) {
        if (ac != NULL)
            redisAsyncFree(ac);
        ar_schedule_retry();
        return;
    }
    redisAsyncSetConnectCallback(ac, ar_on_connect);
    redisAsyncSetDisconnectCallback(ac, ar_on_disconnect);
    R.ac = ac;
}

static int
ar_setup(const sock_options *o)
{
    const char *addr = sock_options_get(o, "redis");
    const char *prefix = sock_options_get(o, "key_prefix");
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    char *end;
    long port;

    if (R.ac != NULL || R.retry != NULL)
        return 0; /* one connection per worker, made by the first route */
    if (colon == NULL || colon == addr ||
        (size_t)(colon - addr) >= sizeof(R.host))
        return -EINVAL;
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535)
        return -EINVAL;
    if (prefix != NULL && strlen(prefix) >= sizeof(R.prefix))
        return -EINVAL;
    memcpy(R.host, addr, (size_t)(colon - addr));
    R.host[colon - addr] = '\0';
    R.port = (int)port;
    snprintf(R.prefix, sizeof(R.prefix), "%s", prefix ? prefix : "token:");
    R.stopping = false;
    ar_connect();
    return 0;
}

static void
ar_teardown(const sock_options *o)
{
    (void)o;
    R.stopping = true;
    sock_timer_stop(R.retry);
    R.retry = NULL;
    if (R.ac != NULL)
        redisAsyncFree(R.ac); /* pending replies come back NULL */
    R.ac = NULL;
    R.connected = false;
}

/* ---- The upgrade ----------------------------------------------------------- */

struct auth {
    char user[AR_NAME_MAX + 1];
    char topics[AR_MAX_TOPICS][AR_NAME_MAX + 1];
    int n_topics;
};

static bool
name_ok(const char *s, size_t len)
{
    if (len < 1 || len > AR_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
              ch == ':'))
            return false;
    }
    return true;
}

/* "USER TOPIC..." into a; false if malformed. */
static bool
parse_grant(const char *s, size_t len, struct auth *a)
{
    size_t i = 0;
    int field = 0;

    while (i < len) {
        size_t start, n;

        while (i < len && s[i] == ' ')
            i++;
        start = i;
        while (i < len && s[i] != ' ')
            i++;
        n = i - start;
        if (n == 0)
            break;
        if (!name_ok(s + start, n) || field > AR_MAX_TOPICS)
            return false;
        memcpy(field == 0 ? a->user : a->topics[field - 1], s + start, n);
        (field == 0 ? a->user : a->topics[field - 1])[n] = '\0';
        field++;
    }
    a->n_topics = field - 1;
    return field >= 1;
}

/* The reply to GET, on the loop: decide the upgrade it was for. */
static void
ar_on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    sock_pending *p = privdata;
    redisReply *reply = r;
    struct auth *a;

    (void)ac;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        sock_pending_refuse(p, 503, "auth backend unavailable\n");
        return;
    }
    if (reply->type != REDIS_REPLY_STRING) {
        sock_pending_refuse(p, 403, "unknown token\n");
        return;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL || !parse_grant(reply->str, reply->len, a)) {
        free(a);
        sock_pending_refuse(p, 500, "bad grant in the auth backend\n");
        return;
    }
    /* -EPIPE: the client left or timed out meanwhile; a is still ours. */
    if (sock_pending_accept(p, a, free) != 0)
        free(a);
}

static int
ar_upgrade(const sock_request *r, sock_upgrade *u)
{
    char token[AR_NAME_MAX + 1];
    int n = sock_request_query_param(r, "token", token, sizeof(token));
    sock_pending *p;

    if (n < 1 || !name_ok(token, (size_t)n)) {
        sock_upgrade_refuse_body(u, "need ?token=TOKEN (1-64 of "
                                    "[A-Za-z0-9_:-])\n");
        return 401;
    }
    if (!R.connected) {
        sock_upgrade_refuse_body(u, "auth backend unavailable\n");
        return 503;
    }
    p = sock_upgrade_defer(u);
    if (p == NULL)
        return 503;
    if (redisAsyncCommand(R.ac, ar_on_reply, p, "GET %s%s", R.prefix,
                          token) != REDIS_OK) {
        sock_pending_refuse(p, 503, NULL); /* frees the handle */
        sock_upgrade_refuse_body(u, "auth backend unavailable\n");
        return 503;
    }
    return SOCK_UPGRADE_LATER;
}

/* ---- The connection ----------------------------------------------------- */

static sock_ret
ar_init(sock_conn *c, void *arg, void **state)
{
    struct auth *a = arg;
    char topic[AR_NAME_MAX + 8], msg[128 + AR_MAX_TOPICS * (AR_NAME_MAX + 3)];
    size_t n;

    if (a == NULL) /* no upgrade hook ran: not reachable through sockd */
        return sock_stop_code(c, 1008, "no token", 8);
    *state = a;
    snprintf(topic, sizeof(topic), "user:%s", a->user);
    if (sock_subscribe(c, topic) != 0)
        return sock_stop_error(c, ENOMEM);
    n = (size_t)snprintf(msg, sizeof(msg), "{\"user\":\"%s\",\"topics\":[",
                         a->user);
    for (int i = 0; i < a->n_topics; i++) {
        if (sock_subscribe(c, a->topics[i]) != 0)
            return sock_stop_error(c, ENOMEM);
        n += (size_t)snprintf(msg + n, sizeof(msg) - n, "%s\"%s\"",
                              i ? "," : "", a->topics[i]);
    }
    n += (size_t)snprintf(msg + n, sizeof(msg) - n, "]}");
    sock_push(c, SOCK_TEXT, msg, n);
    return SOCK_CONTINUE;
}

static sock_ret
ar_handle_in(sock_conn *c, const sock_msg *m, void **state)
{
    struct auth *a = *state;
    const char *s = m->data, *sp = memchr(s, ' ', m->len);
    size_t tl = sp ? (size_t)(sp - s) : 0;
    char topic[AR_NAME_MAX + 1], *json;
    bool joined = false;
    size_t cap, n;

    if (m->opcode != SOCK_TEXT)
        return sock_stop_code(c, 1003, "text only", 9);
    if (tl == 0 || tl > AR_NAME_MAX)
        return SOCK_CONTINUE;
    memcpy(topic, s, tl);
    topic[tl] = '\0';
    for (int i = 0; i < a->n_topics; i++)
        joined |= strcmp(a->topics[i], topic) == 0;
    if (!joined)
        return SOCK_CONTINUE;
    /* The text is echoed raw: keep this example's JSON to names and text
       without quotes or backslashes. */
    for (size_t i = tl + 1; i < m->len; i++)
        if (s[i] == '"' || s[i] == '\\' || (unsigned char)s[i] < ' ')
            return SOCK_CONTINUE;
    cap = 64 + 2 * AR_NAME_MAX + m->len;
    json = malloc(cap);
    if (json == NULL)
        return sock_stop_error(c, ENOMEM);
    n = (size_t)snprintf(json, cap, "{\"from\":\"%s\",\"topic\":\"%s\","
                         "\"text\":\"%.*s\"}", a->user, topic,
                         (int)(m->len - tl - 1), s + tl + 1);
    sock_publish(topic, AR_MSG, json, n);
    free(json);
    return SOCK_CONTINUE;
}

static sock_ret
ar_handle_info(sock_conn *c, const sock_info *i, void **state)
{
    (void)state;
    if (i->kind == SOCK_INFO_PUBLISH && sock_utf8_valid(i->data, i->len))
        sock_push(c, SOCK_TEXT, i->data, i->len);
    return SOCK_CONTINUE;
}

static void
ar_terminate(sock_conn *c, const sock_close_info *why, void *state)
{
    (void)c;
    (void)why;
    free(state);
}

#ifdef SOCK_APP_MODULE
#define AR_APP sock_app_v1
#else
#define AR_APP sock_example_authredis
#endif

extern const sock_app AR_APP;
const sock_app AR_APP = {
    .abi = SOCK_ABI_VERSION,
    .name = "authredis",
    .upgrade = ar_upgrade,
    .init = ar_init,
    .handle_in = ar_handle_in,
    .handle_info = ar_handle_info,
    .terminate = ar_terminate,
    .setup = ar_setup,
    .teardown = ar_teardown,
};
