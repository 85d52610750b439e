/*
 * sock_test.c: the in-process harness of sock_test.h. Each sock_test is a
 * connection whose operations record pushes and stops in memory; the
 * harness is also the process's host, so sock_send_info, sock_publish
 * and sock_broadcast reach other test connections, queued until
 * sock_test_run, as the worker would deliver them after the callback.
 */
#include "sock_test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "sock_impl.h"
#include "ws_handshake.h"

struct frame {
    struct frame *next;
    sock_opcode op;
    size_t len;
    uint8_t data[];
};

struct tinfo {
    struct tinfo *next;
    struct sock_test *to;
    sock_info_kind kind;
    uint32_t type;
    sock_id from;
    char *topic;
    size_t len;
    uint8_t data[];
};

struct ttimer {
    struct ttimer *next;
    struct sock_test *to;
    uint64_t due;
    uint64_t seq;
    uint32_t type;
    size_t len;
    uint8_t data[];
};

struct ttopic {
    struct ttopic *next;
    char *name;
};

struct sock_test {
    struct sock_conn base;
    const sock_app *app;
    char *route;
    sock_id id;
    void *state;
    struct frame *out_head, *out_tail, *taken;
    size_t n_out;
    struct ttopic *topics;
    struct sock_upgrade up;
    bool upgraded;
    char *subprotocol;
    bool inited, open, stopped, active, in_cb;
    int terminate_count;
    uint16_t code;
    char reason[124];
    sock_close_info why;
    struct sock_test *next;  /* all live test connections */
};

static struct {
    struct sock_test *conns;
    struct tinfo *q_head, *q_tail;
    struct ttimer *timers;
    uint64_t now, seq;
    uint32_t serial;
    struct sock_test *current;
} h;

static const struct sock_conn_ops test_ops;
static const struct sock_host_ops test_host;

static struct sock_test *
tc(const sock_conn *c)
{
    return container_of(c, struct sock_test, base);
}

sock_test *
sock_test_new(const sock_app *app, const char *route)
{
    struct sock_test *t = calloc(1, sizeof(*t));

    if (t == NULL || (t->route = strdup(route ? route : "/")) == NULL) {
        free(t);
        return NULL;
    }
    t->base.ops = &test_ops;
    t->app = app;
    t->id = (sock_id)1 << 48 | (sock_id)1 << 40 | ++h.serial;
    t->active = true;
    t->next = h.conns;
    h.conns = t;
    sock_host_set(&test_host, NULL);
    return t;
}

static void
drop_frames(struct frame *f)
{
    while (f != NULL) {
        struct frame *next = f->next;

        free(f);
        f = next;
    }
}

/* After terminate no callback runs: t's queued infos and timers go. */
static void
drop_pending(struct sock_test *t)
{
    for (struct tinfo **q = &h.q_head; *q != NULL;) {
        struct tinfo *i = *q;

        if (i->to == t) {
            *q = i->next;
            free(i->topic);
            free(i);
        } else {
            q = &i->next;
        }
    }
    h.q_tail = NULL;
    for (struct tinfo *i = h.q_head; i != NULL; i = i->next)
        h.q_tail = i;
    for (struct ttimer **q = &h.timers; *q != NULL;) {
        struct ttimer *tm = *q;

        if (tm->to == t) {
            *q = tm->next;
            free(tm);
        } else {
            q = &tm->next;
        }
    }
}

/* Ends the connection: drops its infos and timers, runs terminate once. */
static void
finish(struct sock_test *t, sock_close_kind kind, sock_close_error err,
       uint16_t peer_code)
{
    if (!t->open)
        return;
    t->open = false;
    for (struct ttopic *tp = t->topics, *n; tp != NULL; tp = n) {
        n = tp->next;
        free(tp->name);
        free(tp);
    }
    t->topics = NULL;
    drop_pending(t);
    t->why = (sock_close_info){ .kind = kind, .error = err,
                                .code_sent = t->stopped ? t->code : 0,
                                .peer_code = peer_code, .peer_reason = "" };
    t->terminate_count++;
    if (t->app->terminate != NULL) {
        t->in_cb = true;
        t->app->terminate(&t->base, &t->why, t->state);
        t->in_cb = false;
    }
}

void
sock_test_free(sock_test *t)
{
    struct sock_test **p;

    if (t == NULL)
        return;
    finish(t, SOCK_CLOSE_SHUTDOWN, SOCK_ERR_NONE, 1006);
    for (p = &h.conns; *p != NULL; p = &(*p)->next)
        if (*p == t) {
            *p = t->next;
            break;
        }
    drop_pending(t);
    if (t->upgraded)
        sock_upgrade_destroy(&t->up, t->inited);
    drop_frames(t->out_head);
    drop_frames(t->taken);
    free(t->subprotocol);
    free(t->route);
    free(t);
}

/* ---- Upgrade ------------------------------------------------------------ */

static char *
complete_head(const char *head)
{
    static const char *need[][2] = {
        { "Upgrade", "websocket" },
        { "Connection", "Upgrade" },
        { "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==" },
        { "Sec-WebSocket-Version", "13" },
    };
    size_t len = strlen(head), cap = len + 256;
    char *s = malloc(cap);

    if (s == NULL)
        return NULL;
    /* Drop the final blank line, add what is missing, end the head. */
    memcpy(s, head, len + 1);
    while (len >= 2 && s[len - 2] == '\r' && s[len - 1] == '\n' &&
           len >= 4 && s[len - 4] == '\r' && s[len - 3] == '\n')
        s[len -= 2] = '\0';
    for (size_t i = 0; i < ARRAY_SIZE(need); i++) {
        if (strcasestr(s, need[i][0]) == NULL)
            len += (size_t)snprintf(s + len, cap - len, "%s: %s\r\n",
                                    need[i][0], need[i][1]);
    }
    snprintf(s + len, cap - len, "\r\n");
    return s;
}

int
sock_test_upgrade(sock_test *t, const char *head)
{
    struct sock_request *r = calloc(1, sizeof(*r));
    char *full = complete_head(head);
    const char *why;
    int status;

    if (r == NULL || full == NULL) {
        free(r);
        free(full);
        return 500;
    }
    status = ws_request_parse(r, (const uint8_t *)full, strlen(full), 64);
    r->peer = "127.0.0.1:40000";
    if (status == 0)
        status = ws_request_validate(r, &why);
    if (status == 0) {
        if (t->upgraded)
            sock_upgrade_destroy(&t->up, false);
        sock_upgrade_init(&t->up, r);
        t->upgraded = true;
        status = sock_upgrade_run(t->app, r, &t->up);
        if (t->up.subprotocol != NULL) {
            free(t->subprotocol);
            t->subprotocol = strdup(t->up.subprotocol);
        }
        t->up.req = NULL; /* the request ends with the hook */
    }
    ws_request_destroy(r);
    free(r);
    free(full);
    return status;
}

const char *
sock_test_chosen_subprotocol(const sock_test *t)
{
    return t->subprotocol;
}

/* ---- Calling the app ---------------------------------------------------- */

static sock_ret
after(struct sock_test *t, sock_ret ret)
{
    if (ret == SOCK_CONTINUE || !t->open)
        return ret;
    if (ret != SOCK_STOP) {
        t->stopped = true;
        t->code = 1011;
        t->reason[0] = '\0';
        finish(t, SOCK_CLOSE_ERROR, SOCK_ERR_APP, 1006);
        return ret;
    }
    if (!t->stopped) {
        t->stopped = true;
        t->code = 1000;
    }
    finish(t, t->code == 1011 ? SOCK_CLOSE_ERROR : SOCK_CLOSE_NORMAL,
           t->code == 1011 ? SOCK_ERR_APP : SOCK_ERR_NONE, 1006);
    return ret;
}

#define CALL(t, expr)                          \
    do {                                       \
        struct sock_test *prev_ = h.current;   \
        (t)->in_cb = true;                     \
        h.current = (t);                       \
        ret = (expr);                          \
        h.current = prev_;                     \
        (t)->in_cb = false;                    \
    } while (0)

sock_ret
sock_test_init(sock_test *t)
{
    sock_ret ret = SOCK_CONTINUE;

    if (t->inited)
        return SOCK_STOP;
    t->inited = true;
    t->open = true;
    if (t->app->init != NULL)
        CALL(t, t->app->init(&t->base, t->upgraded ? t->up.arg : NULL,
                             &t->state));
    return after(t, ret);
}

static int record(struct sock_test *t, sock_opcode op, const void *data,
                  size_t len);

sock_ret
sock_test_in(sock_test *t, sock_opcode op, const void *data, size_t len)
{
    sock_msg m = { .opcode = op, .data = data, .len = len };
    sock_ret ret = SOCK_CONTINUE;

    if (!t->open)
        return SOCK_STOP;
    if (op == SOCK_PING || op == SOCK_PONG) {
        if (op == SOCK_PING)
            record(t, SOCK_PONG, data, len);
        if (t->app->handle_control != NULL)
            CALL(t, t->app->handle_control(&t->base, &m, &t->state));
        return after(t, ret);
    }
    if (op == SOCK_TEXT && !sock_utf8_valid(data, len)) {
        t->stopped = true;
        t->code = 1007;
        finish(t, SOCK_CLOSE_ERROR, SOCK_ERR_UTF8, 1006);
        return SOCK_STOP;
    }
    CALL(t, t->app->handle_in(&t->base, &m, &t->state));
    return after(t, ret);
}

static sock_ret
deliver_info(struct sock_test *t, sock_info_kind kind, uint32_t type,
             sock_id from, const char *topic, const void *data, size_t len)
{
    sock_info in = { .kind = kind, .type = type, .from = from,
                     .topic = topic, .data = data, .len = len };
    sock_ret ret = SOCK_CONTINUE;

    if (!t->open || t->app->handle_info == NULL)
        return t->open ? SOCK_CONTINUE : SOCK_STOP;
    CALL(t, t->app->handle_info(&t->base, &in, &t->state));
    return after(t, ret);
}

sock_ret
sock_test_info(sock_test *t, sock_info_kind kind, uint32_t type,
               sock_id from, const void *data, size_t len)
{
    return deliver_info(t, kind, type, from, NULL, data, len);
}

void
sock_test_peer_close(sock_test *t, uint16_t code)
{
    if (!t->open)
        return;
    if (!t->stopped) {
        t->stopped = true;
        t->code = code == 1005 ? 0 : code;
    }
    finish(t, SOCK_CLOSE_REMOTE, SOCK_ERR_NONE, code);
}

/* ---- Infos and the fake clock ------------------------------------------ */

static int
enqueue(struct sock_test *to, sock_info_kind kind, uint32_t type,
        sock_id from, const char *topic, const void *data, size_t len)
{
    struct tinfo *i = malloc(sizeof(*i) + len);

    if (i == NULL)
        return -ENOMEM;
    i->next = NULL;
    i->to = to;
    i->kind = kind;
    i->type = type;
    i->from = from;
    i->topic = topic ? strdup(topic) : NULL;
    i->len = len;
    if (len > 0)
        memcpy(i->data, data, len);
    if (h.q_tail != NULL)
        h.q_tail->next = i;
    else
        h.q_head = i;
    h.q_tail = i;
    return 0;
}

int
sock_test_run(void)
{
    int n = 0;

    while (h.q_head != NULL) {
        struct tinfo *i = h.q_head;

        h.q_head = i->next;
        if (h.q_head == NULL)
            h.q_tail = NULL;
        deliver_info(i->to, i->kind, i->type, i->from, i->topic, i->data,
                     i->len);
        free(i->topic);
        free(i);
        n++;
    }
    return n;
}

int
sock_test_advance(uint32_t ms)
{
    uint64_t end = h.now + ms;
    int ran = 0;

    for (;;) {
        struct ttimer **best = NULL;

        for (struct ttimer **q = &h.timers; *q != NULL; q = &(*q)->next)
            if ((*q)->due <= end &&
                (best == NULL || (*q)->due < (*best)->due ||
                 ((*q)->due == (*best)->due && (*q)->seq < (*best)->seq)))
                best = q;
        if (best == NULL)
            break;
        struct ttimer *tm = *best;

        *best = tm->next;
        h.now = tm->due;
        enqueue(tm->to, SOCK_INFO_TIMER, tm->type, 0, NULL, tm->data,
                tm->len);
        free(tm);
        ran += sock_test_run(); /* its handler may set the next timer */
    }
    h.now = end;
    return ran + sock_test_run();
}

/* ---- Reading back -------------------------------------------------------- */

size_t
sock_test_pushed(const sock_test *t)
{
    return t->n_out;
}

bool
sock_test_take(sock_test *t, sock_opcode *op, const void **data, size_t *len)
{
    struct frame *f = t->out_head;

    drop_frames(t->taken);
    t->taken = NULL;
    if (f == NULL)
        return false;
    t->out_head = f->next;
    if (t->out_head == NULL)
        t->out_tail = NULL;
    t->n_out--;
    f->next = NULL;
    t->taken = f;
    *op = f->op;
    *data = f->data;
    *len = f->len;
    return true;
}

bool
sock_test_stopped(const sock_test *t)
{
    return t->stopped;
}

uint16_t
sock_test_close_code(const sock_test *t)
{
    return t->code;
}

const char *
sock_test_close_reason(const sock_test *t)
{
    return t->reason;
}

bool
sock_test_terminated(const sock_test *t)
{
    return t->terminate_count > 0;
}

int
sock_test_terminate_count(const sock_test *t)
{
    return t->terminate_count;
}

const sock_close_info *
sock_test_close_info(const sock_test *t)
{
    return &t->why;
}

void *
sock_test_state(const sock_test *t)
{
    return t->state;
}

sock_conn *
sock_test_conn(sock_test *t)
{
    return &t->base;
}

bool
sock_test_active(const sock_test *t)
{
    return t->active;
}

/* ---- Operations ---------------------------------------------------------- */

static int
record(struct sock_test *t, sock_opcode op, const void *data, size_t len)
{
    struct frame *f = malloc(sizeof(*f) + len);

    if (f == NULL)
        return -ENOMEM;
    f->next = NULL;
    f->op = op;
    f->len = len;
    if (len > 0)
        memcpy(f->data, data, len);
    if (t->out_tail != NULL)
        t->out_tail->next = f;
    else
        t->out_head = f;
    t->out_tail = f;
    t->n_out++;
    return 0;
}

static int
op_push(sock_conn *c, sock_opcode op, const void *data, size_t len,
        sock_buf *b, unsigned flags)
{
    struct sock_test *t = tc(c);

    (void)b;
    (void)flags;
    /* As on the server: pushes made in the handler that stops still go
       out (before the close frame). */
    if (!t->open || (t->stopped && !t->in_cb))
        return -EPIPE;
    if (op != SOCK_TEXT && op != SOCK_BINARY && op != SOCK_PING &&
        op != SOCK_PONG)
        return -EINVAL;
    if ((op == SOCK_PING || op == SOCK_PONG) && len > 125)
        return -EINVAL;
    return record(t, op, data, len);
}

static void
op_stop(sock_conn *c, uint16_t code, const char *reason, size_t len,
        sock_close_error err)
{
    struct sock_test *t = tc(c);

    (void)err;
    if (!t->open || t->stopped)
        return;
    if (reason == NULL)
        len = 0; /* sock_stop_code checked code and reason */
    t->stopped = true;
    t->code = code;
    memcpy(t->reason, reason ? reason : "", len);
    t->reason[len] = '\0';
    if (!t->in_cb)
        finish(t, code == 1011 ? SOCK_CLOSE_ERROR : SOCK_CLOSE_NORMAL,
               code == 1011 ? SOCK_ERR_APP : SOCK_ERR_NONE, 1006);
}

static bool
op_writable(const sock_conn *c)
{
    return tc(c)->open;
}

static size_t
op_queued(const sock_conn *c)
{
    (void)c;
    return 0;
}

static int
op_set_active(sock_conn *c, bool active)
{
    if (!tc(c)->open)
        return -EPIPE;
    tc(c)->active = active;
    return 0;
}

static int
op_set_option(sock_conn *c, int opt, uint64_t value)
{
    if (!tc(c)->open)
        return -EPIPE;
    if (opt == SOCK_OPT_COMPRESS)
        return -ENOTSUP;
    if (opt == SOCK_OPT_MAX_MESSAGE && value == 0)
        return -EINVAL;
    return 0;
}

static sock_id
op_self(const sock_conn *c)
{
    return tc(c)->id;
}

static const char *
op_peer(const sock_conn *c)
{
    (void)c;
    return "127.0.0.1:40000";
}

static const char *
op_subprotocol(const sock_conn *c)
{
    return tc(c)->subprotocol;
}

static const char *
op_route(const sock_conn *c)
{
    return tc(c)->route;
}

static int
op_subscribe(sock_conn *c, const char *topic, bool on)
{
    struct sock_test *t = tc(c);
    struct ttopic **p;

    if (!t->open)
        return -EPIPE;
    for (p = &t->topics; *p != NULL; p = &(*p)->next) {
        if (strcmp((*p)->name, topic) == 0) {
            if (!on) {
                struct ttopic *gone = *p;

                *p = gone->next;
                free(gone->name);
                free(gone);
            }
            return 0;
        }
    }
    if (!on)
        return 0;
    *p = calloc(1, sizeof(**p));
    if (*p == NULL || ((*p)->name = strdup(topic)) == NULL) {
        free(*p);
        *p = NULL;
        return -ENOMEM;
    }
    return 0;
}

static int
op_send_after(sock_conn *c, uint32_t ms, uint32_t type, const void *data,
              size_t len)
{
    struct sock_test *t = tc(c);
    struct ttimer *tm;

    if (!t->open)
        return -EPIPE;
    tm = malloc(sizeof(*tm) + len);
    if (tm == NULL)
        return -ENOMEM;
    tm->to = t;
    tm->due = h.now + ms;
    tm->seq = ++h.seq;
    tm->type = type;
    tm->len = len;
    if (len > 0)
        memcpy(tm->data, data, len);
    tm->next = h.timers;
    h.timers = tm;
    return 0;
}

static const struct sock_conn_ops test_ops = {
    .push = op_push,
    .stop = op_stop,
    .writable = op_writable,
    .queued = op_queued,
    .set_active = op_set_active,
    .set_option = op_set_option,
    .self = op_self,
    .peer = op_peer,
    .subprotocol = op_subprotocol,
    .route = op_route,
    .subscribe = op_subscribe,
    .send_after = op_send_after,
};

/* ---- Host ---------------------------------------------------------------- */

static sock_id
current_id(void)
{
    return h.current != NULL ? h.current->id : 0;
}

static int
host_send_info(void *host, sock_id to, uint32_t type, const void *data,
               size_t len)
{
    (void)host;
    for (struct sock_test *t = h.conns; t != NULL; t = t->next)
        if (t->id == to && t->open)
            return enqueue(t, SOCK_INFO_SEND, type, current_id(), NULL, data,
                           len);
    return 0; /* unknown ids are dropped, as on the server */
}

static bool
subscribed(const struct sock_test *t, const char *topic)
{
    for (const struct ttopic *tp = t->topics; tp != NULL; tp = tp->next)
        if (strcmp(tp->name, topic) == 0)
            return true;
    return false;
}

static int
host_publish(void *host, const char *topic, uint32_t type, const void *data,
             size_t len)
{
    (void)host;
    for (struct sock_test *t = h.conns; t != NULL; t = t->next)
        if (t->open && subscribed(t, topic))
            enqueue(t, SOCK_INFO_PUBLISH, type, current_id(), topic, data,
                    len);
    return 0;
}

static int
host_broadcast(void *host, uint32_t type, const void *data, size_t len)
{
    (void)host;
    for (struct sock_test *t = h.conns; t != NULL; t = t->next)
        if (t->open)
            enqueue(t, SOCK_INFO_BROADCAST, type, current_id(), NULL, data,
                    len);
    return 0;
}

static const struct sock_host_ops test_host = {
    .send_info = host_send_info,
    .publish = host_publish,
    .broadcast = host_broadcast,
};
