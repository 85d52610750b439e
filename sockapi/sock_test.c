/*
 * sock_test.c: the in-process harness of sock_test.h. Each sock_test is a
 * connection whose operations record pushes and stops in memory; the
 * harness is also the process's host, so sock_send_info, sock_publish
 * and sock_broadcast reach other test connections, queued until
 * sock_test_run, as the worker would deliver them after the callback.
 */
#include "sock_test.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    sock_opcode frame_op; /* sock_subscribe_frames, else 0 */
};

/* A route's setup and options (sock_test_setup). */
struct tsetup {
    struct tsetup *next;
    const sock_app *app;
    struct sock_options o;
    bool done;                  /* setup returned 0 */
};

struct sock_watch {
    struct sock_watch *next;
    uint64_t seq;
    int fd;
    unsigned events;
    sock_watch_fn cb;
    void *arg;
};

struct sock_timer {
    struct sock_timer *next;
    uint64_t due, seq;
    uint32_t repeat;
    sock_timer_fn cb;
    void *arg;
    bool firing, stopped;
};

/* A deferred upgrade: the app's handle. */
struct tpending {
    struct sock_pending base;
    struct sock_test *t;        /* NULL once dead; under xlock */
    int refs;                   /* under xlock */
    struct sock_request *req;   /* the hook's; owned once deferred */
    bool own_req;
    char *sub, *hdrs;           /* added before the decision; under xlock */
    size_t hdrs_len;
};

/* What other threads hand to the harness (posts, decisions). */
struct xitem {
    struct xitem *next;
    struct tpending *p;         /* NULL: a post */
    sock_id to;
    uint32_t type;
    int status;
    char *body;
    void *arg;
    void (*free_arg)(void *);
    size_t len;
    uint8_t data[];
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
    const struct sock_options *opts;
    struct tpending *pending;  /* undecided deferred upgrade */
    int up_result;             /* -1 pending, 0 accepted, else status */
    char *refuse_body;
    struct sock_test *next;  /* all live test connections */
};

static struct {
    struct sock_test *conns;
    struct tinfo *q_head, *q_tail;
    struct ttimer *timers;
    uint64_t now, seq;
    uint32_t serial;
    struct sock_test *current;
    struct tsetup *setups;
    struct sock_watch *watches;
    struct sock_timer *atimers;
    struct sock_test *upgrading; /* whose hook runs */
} h;

/* Guards the cross-thread list and the pending handles. */
static pthread_mutex_t xlock = PTHREAD_MUTEX_INITIALIZER;
static struct xitem *x_head, *x_tail;
static uint64_t posts_dropped;

static void pending_kill(struct sock_test *t);
static void apply_cross(void);

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
    t->up_result = 0;
    for (struct tsetup *su = h.setups; su != NULL; su = su->next)
        if (su->app == app && strcmp(su->o.route, t->route) == 0)
            t->opts = &su->o;
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
    pending_kill(t);
    if (t->upgraded)
        sock_upgrade_destroy(&t->up, t->inited);
    free(t->refuse_body);
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
    r->opts = t->opts;
    if (status == 0)
        status = ws_request_validate(r, &why);
    if (status == 0) {
        if (t->upgraded)
            sock_upgrade_destroy(&t->up, false);
        sock_upgrade_init(&t->up, r);
        t->upgraded = true;
        pending_kill(t);
        h.upgrading = t;
        status = sock_upgrade_run(t->app, r, &t->up);
        h.upgrading = NULL;
        if (status == SOCK_UPGRADE_LATER) {
            t->pending = container_of(t->up.pending, struct tpending, base);
            t->pending->own_req = true; /* kept for sock_pending_* */
            r = NULL;
        } else if (t->up.pending != NULL) {
            /* Deferred but answered now: the later decision is dead. */
            t->pending = container_of(t->up.pending, struct tpending, base);
            pending_kill(t);
        }
        t->up.pending = NULL;
        t->up_result = status == SOCK_UPGRADE_LATER ? -1 : status;
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

    apply_cross();
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

static void
app_timer_free(struct sock_timer *st)
{
    for (struct sock_timer **q = &h.atimers; *q != NULL; q = &(*q)->next)
        if (*q == st) {
            *q = st->next;
            break;
        }
    free(st);
}

static void
fire_app_timer(struct sock_timer *st)
{
    st->firing = true;
    st->cb(st, st->arg);
    st->firing = false;
    if (st->stopped || st->repeat == 0) {
        app_timer_free(st);
        return;
    }
    st->due = h.now + st->repeat;
    st->seq = ++h.seq;
}

int
sock_test_advance(uint32_t ms)
{
    uint64_t end = h.now + ms;
    int ran = 0;

    for (;;) {
        struct ttimer **best = NULL;
        struct sock_timer *abest = NULL;

        for (struct ttimer **q = &h.timers; *q != NULL; q = &(*q)->next)
            if ((*q)->due <= end &&
                (best == NULL || (*q)->due < (*best)->due ||
                 ((*q)->due == (*best)->due && (*q)->seq < (*best)->seq)))
                best = q;
        for (struct sock_timer *at = h.atimers; at != NULL; at = at->next)
            if (at->due <= end &&
                (abest == NULL || at->due < abest->due ||
                 (at->due == abest->due && at->seq < abest->seq)))
                abest = at;
        if (abest != NULL &&
            (best == NULL || abest->due < (*best)->due ||
             (abest->due == (*best)->due && abest->seq < (*best)->seq))) {
            h.now = abest->due;
            fire_app_timer(abest);
            ran += sock_test_run();
            continue;
        }
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

/* on: join with frame_op (0: infos); else leave. */
static int
subscribe_mode(sock_conn *c, const char *topic, bool on,
               sock_opcode frame_op)
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
            } else {
                (*p)->frame_op = frame_op;
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
    (*p)->frame_op = frame_op;
    return 0;
}

static int
op_subscribe(sock_conn *c, const char *topic, bool on)
{
    return subscribe_mode(c, topic, on, 0);
}

static int
op_subscribe_frames(sock_conn *c, const char *topic, sock_opcode op)
{
    return subscribe_mode(c, topic, true, op);
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

static const struct sock_options *
op_options(const sock_conn *c)
{
    static const struct sock_options none = { .route = "" };

    return tc(c)->opts != NULL ? tc(c)->opts : &none;
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
    .options = op_options,
    .subscribe_frames = op_subscribe_frames,
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

static const struct ttopic *
subscribed(const struct sock_test *t, const char *topic)
{
    for (const struct ttopic *tp = t->topics; tp != NULL; tp = tp->next)
        if (strcmp(tp->name, topic) == 0)
            return tp;
    return NULL;
}

/* Frame-mode subscribers get the frame at once, as the server queues it
   during the publish; the others an info. */
static int
host_publish(void *host, const char *topic, uint32_t type, const void *data,
             size_t len)
{
    const struct ttopic *tp;

    (void)host;
    for (struct sock_test *t = h.conns; t != NULL; t = t->next) {
        if (!t->open || (tp = subscribed(t, topic)) == NULL)
            continue;
        if (tp->frame_op != 0) {
            if (!t->stopped)
                record(t, tp->frame_op, data, len);
        } else {
            enqueue(t, SOCK_INFO_PUBLISH, type, current_id(), topic, data,
                    len);
        }
    }
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

/* ---- Loop integration ---------------------------------------------------- */

static sock_watch *
host_watch_fd(void *host, int fd, unsigned events, sock_watch_fn cb,
              void *arg)
{
    struct sock_watch *sw = calloc(1, sizeof(*sw));

    (void)host;
    if (sw == NULL)
        return NULL;
    sw->seq = ++h.seq;
    sw->fd = fd;
    sw->events = events;
    sw->cb = cb;
    sw->arg = arg;
    sw->next = h.watches;
    h.watches = sw;
    return sw;
}

static int
host_watch_set(void *host, sock_watch *sw, unsigned events)
{
    (void)host;
    sw->events = events;
    return 0;
}

static void
host_watch_stop(void *host, sock_watch *sw)
{
    (void)host;
    for (struct sock_watch **q = &h.watches; *q != NULL; q = &(*q)->next)
        if (*q == sw) {
            *q = sw->next;
            break;
        }
    free(sw);
}

static sock_timer *
host_timer_start(void *host, uint32_t ms, uint32_t repeat_ms,
                 sock_timer_fn cb, void *arg)
{
    struct sock_timer *st = calloc(1, sizeof(*st));

    (void)host;
    if (st == NULL)
        return NULL;
    st->due = h.now + ms;
    st->seq = ++h.seq;
    st->repeat = repeat_ms;
    st->cb = cb;
    st->arg = arg;
    st->next = h.atimers;
    h.atimers = st;
    return st;
}

static void
host_timer_stop(void *host, sock_timer *st)
{
    (void)host;
    if (st->firing) {
        st->stopped = true;
        return;
    }
    app_timer_free(st);
}

/* The watch with sequence number seq, if it still exists. */
static struct sock_watch *
watch_by_seq(uint64_t seq)
{
    for (struct sock_watch *sw = h.watches; sw != NULL; sw = sw->next)
        if (sw->seq == seq)
            return sw;
    return NULL;
}

int
sock_test_fd_ready(int fd, unsigned revents)
{
    for (struct sock_watch *sw = h.watches; sw != NULL; sw = sw->next) {
        if (sw->fd == fd && (sw->events & revents) != 0) {
            sw->cb(sw, fd, sw->events & revents, sw->arg);
            return 1;
        }
    }
    return 0;
}

int
sock_test_poll(int timeout_ms)
{
    struct pollfd pfd[64];
    uint64_t seq[64];
    nfds_t n = 0;
    int ran = 0;

    for (struct sock_watch *sw = h.watches; sw != NULL && n < 64;
         sw = sw->next) {
        if (sw->events == 0)
            continue;
        pfd[n].fd = sw->fd;
        pfd[n].events = (short)(((sw->events & SOCK_READ) ? POLLIN : 0) |
                                ((sw->events & SOCK_WRITE) ? POLLOUT : 0));
        pfd[n].revents = 0;
        seq[n++] = sw->seq;
    }
    if (poll(pfd, n, timeout_ms) > 0) {
        for (nfds_t i = 0; i < n; i++) {
            /* An earlier callback may have stopped or changed it. */
            struct sock_watch *sw = watch_by_seq(seq[i]);
            unsigned ev = 0;

            if (sw == NULL || pfd[i].revents == 0)
                continue;
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                ev |= SOCK_READ;
            if (pfd[i].revents & POLLOUT)
                ev |= SOCK_WRITE;
            ev &= sw->events;
            if (ev == 0)
                continue;
            sw->cb(sw, sw->fd, ev, sw->arg);
            ran++;
        }
    }
    sock_test_run();
    return ran;
}

size_t
sock_test_watch_count(void)
{
    size_t n = 0;

    for (struct sock_watch *sw = h.watches; sw != NULL; sw = sw->next)
        n++;
    return n;
}

size_t
sock_test_timer_count(void)
{
    size_t n = 0;

    for (struct sock_timer *st = h.atimers; st != NULL; st = st->next)
        n += !st->stopped;
    return n;
}

/* ---- Other threads: posts and decisions --------------------------------- */

static void
x_push(struct xitem *it)
{
    it->next = NULL;
    if (x_tail != NULL)
        x_tail->next = it;
    else
        x_head = it;
    x_tail = it;
}

static int
host_post(void *host, sock_id to, uint32_t type, const void *data,
          size_t len)
{
    struct xitem *it = calloc(1, sizeof(*it) + len);

    (void)host;
    if (it == NULL)
        return -ENOMEM;
    it->to = to;
    it->type = type;
    it->len = len;
    if (len > 0)
        memcpy(it->data, data, len);
    pthread_mutex_lock(&xlock);
    x_push(it);
    pthread_mutex_unlock(&xlock);
    return 0;
}

static void
tpending_unref(struct tpending *p)
{
    int left;

    pthread_mutex_lock(&xlock);
    left = --p->refs;
    pthread_mutex_unlock(&xlock);
    if (left != 0)
        return;
    if (p->own_req) {
        ws_request_destroy(p->req);
        free(p->req);
    }
    free(p->sub);
    free(p->hdrs);
    free(p);
}

static int
tpending_set(sock_pending *sp, int what, const char *a, const char *b)
{
    struct tpending *p = container_of(sp, struct tpending, base);
    int rc;

    pthread_mutex_lock(&xlock);
    if (p->t == NULL)
        rc = -EPIPE;
    else if (what == 1)
        rc = sock_extra_subprotocol(&p->sub, p->req, a);
    else
        rc = sock_extra_header(&p->hdrs, &p->hdrs_len, a, b);
    pthread_mutex_unlock(&xlock);
    return rc;
}

static int
tpending_decide(sock_pending *sp, int status, const char *body, void *arg,
                void (*free_arg)(void *))
{
    struct tpending *p = container_of(sp, struct tpending, base);
    struct xitem *it = calloc(1, sizeof(*it));
    int rc = 0;

    if (it == NULL || (body != NULL && (it->body = strdup(body)) == NULL))
        rc = -ENOMEM;
    pthread_mutex_lock(&xlock);
    if (rc == 0 && p->t == NULL)
        rc = -EPIPE;
    if (rc == 0) {
        it->p = p;
        it->status = status;
        it->arg = arg;
        it->free_arg = free_arg;
        x_push(it);
    }
    pthread_mutex_unlock(&xlock);
    if (rc != 0) {
        if (it != NULL)
            free(it->body);
        free(it);
        tpending_unref(p);
    }
    return rc;
}

static const struct sock_pending_ops tpending_ops = {
    .decide = tpending_decide,
    .set = tpending_set,
};

static sock_pending *
host_defer(void *host, struct sock_upgrade *u)
{
    struct tpending *p = calloc(1, sizeof(*p));

    (void)host;
    if (p == NULL)
        return NULL;
    p->base.ops = &tpending_ops;
    p->refs = 2; /* the app's and t's */
    p->t = h.upgrading;
    p->req = (struct sock_request *)u->req;
    return &p->base;
}

/* t's pending upgrade dies (expired, refused, or t goes). */
static void
pending_kill(struct sock_test *t)
{
    struct tpending *p = t->pending;

    if (p == NULL)
        return;
    t->pending = NULL;
    pthread_mutex_lock(&xlock);
    p->t = NULL;
    pthread_mutex_unlock(&xlock);
    tpending_unref(p);
}

/* What sock_pending_subprotocol / _header added, into t's 101. */
static void
take_additions(struct sock_test *t, struct tpending *p)
{
    pthread_mutex_lock(&xlock);
    if (p->sub != NULL) {
        free(t->subprotocol);
        t->subprotocol = p->sub;
        p->sub = NULL;
    }
    if (p->hdrs != NULL)
        (void)sock_extra_append(&t->up.extra_headers, &t->up.extra_len,
                                p->hdrs, p->hdrs_len);
    pthread_mutex_unlock(&xlock);
}

static void
apply_decision(struct xitem *it)
{
    struct tpending *p = it->p;
    struct sock_test *t;

    pthread_mutex_lock(&xlock);
    t = p->t;
    pthread_mutex_unlock(&xlock);
    if (t == NULL) {
        if (it->arg != NULL && it->free_arg != NULL)
            it->free_arg(it->arg);
    } else {
        t->up_result = it->status;
        if (it->status == 0)
            take_additions(t, p);
        if (it->status == 0 && it->arg != NULL) {
            if (t->up.arg != NULL && t->up.free_arg != NULL &&
                t->up.arg != it->arg)
                t->up.free_arg(t->up.arg);
            sock_upgrade_set_arg(&t->up, it->arg, it->free_arg);
        } else if (it->status != 0) {
            free(t->refuse_body);
            t->refuse_body = it->body != NULL ? strdup(it->body) :
                             t->up.refuse_body != NULL ?
                             strdup(t->up.refuse_body) : NULL;
        }
        pending_kill(t);
    }
    tpending_unref(p);
}

/* Takes what other threads queued: decisions apply, posts are queued
   as infos for their connection (or dropped and counted). */
static void
apply_cross(void)
{
    struct xitem *it, *next;

    pthread_mutex_lock(&xlock);
    it = x_head;
    x_head = x_tail = NULL;
    pthread_mutex_unlock(&xlock);
    for (; it != NULL; it = next) {
        struct sock_test *to = NULL;

        next = it->next;
        if (it->p != NULL) {
            apply_decision(it);
            free(it->body);
            free(it);
            continue;
        }
        for (struct sock_test *t = h.conns; t != NULL; t = t->next)
            if (t->id == it->to && t->open)
                to = t;
        if (to == NULL || enqueue(to, SOCK_INFO_POST, it->type, 0, NULL,
                                  it->data, it->len) != 0)
            posts_dropped++;
        free(it);
    }
}

int
sock_test_wait(int n, int timeout_ms)
{
    struct timespec start, now, nap = { 0, 1000000 };
    int ran = 0;

    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        ran += sock_test_run();
        if (ran >= n)
            return ran;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - start.tv_sec) * 1000 +
            (now.tv_nsec - start.tv_nsec) / 1000000 >= timeout_ms)
            return ran;
        nanosleep(&nap, NULL);
    }
}

uint64_t
sock_test_posts_dropped(void)
{
    return posts_dropped;
}

int
sock_test_upgrade_result(const sock_test *t)
{
    return t->up_result;
}

const char *
sock_test_response_headers(const sock_test *t)
{
    return t->up.extra_headers != NULL ? t->up.extra_headers : "";
}

const char *
sock_test_refuse_body(const sock_test *t)
{
    return t->refuse_body;
}

void
sock_test_upgrade_expire(sock_test *t)
{
    if (t->pending == NULL)
        return;
    pending_kill(t);
    t->up_result = 503;
    free(t->refuse_body);
    t->refuse_body = strdup("upgrade decision timed out\n");
}

/* ---- Setup and options ---------------------------------------------------- */

int
sock_test_setup(const sock_app *app, const char *route,
                const char *const *options)
{
    struct tsetup *su = calloc(1, sizeof(*su));
    size_t n = 0;
    int rc = 0;

    while (options != NULL && options[n] != NULL)
        n++;
    if (su == NULL || (su->o.kv = calloc(n + 1, sizeof(char *))) == NULL ||
        (su->o.route = strdup(route ? route : "/")) == NULL) {
        if (su != NULL)
            free(su->o.kv);
        free(su);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        su->o.kv[i] = strdup(options[i]);
    su->app = app;
    su->next = h.setups;
    h.setups = su;
    sock_host_set(&test_host, NULL);
    if (sock_app_has_v2(app) && app->setup != NULL)
        rc = app->setup(&su->o);
    su->done = rc == 0;
    return rc;
}

void
sock_test_teardown(const sock_app *app, const char *route)
{
    for (struct tsetup **q = &h.setups; *q != NULL; q = &(*q)->next) {
        struct tsetup *su = *q;

        if (su->app != app || strcmp(su->o.route, route ? route : "/") != 0)
            continue;
        if (su->done && sock_app_has_v2(app) && app->teardown != NULL)
            app->teardown(&su->o);
        *q = su->next;
        for (struct sock_test *t = h.conns; t != NULL; t = t->next)
            if (t->opts == &su->o)
                t->opts = NULL;
        for (size_t i = 0; su->o.kv[i] != NULL; i++)
            free(su->o.kv[i]);
        free(su->o.kv);
        free((char *)su->o.route);
        free(su);
        return;
    }
}

static const struct sock_host_ops test_host = {
    .send_info = host_send_info,
    .publish = host_publish,
    .broadcast = host_broadcast,
    .watch_fd = host_watch_fd,
    .watch_set = host_watch_set,
    .watch_stop = host_watch_stop,
    .timer_start = host_timer_start,
    .timer_stop = host_timer_stop,
    .post = host_post,
    .defer = host_defer,
};
