/*
 * asyncapp.c: the app module tests/integration/test_async_apps.py loads
 * as BUILD/asyncapp.so, to exercise what sock.h gives apps beyond
 * callbacks: setup/teardown with route options, sock_watch_fd,
 * sock_timer_start, sock_post from threads, and deferred upgrades.
 *
 * Route options: option.greeting (pushed by "ticks"), option.fail_setup =
 * yes makes setup fail with -EIO.
 *
 * Upgrade query: decide=timer|thread&ms=N&verdict=accept|refuse defers
 * the decision and takes it after N ms from an app timer on the loop
 * (timer) or from a new thread (thread); accept hands init the arg
 * "decided-by-timer"/"decided-by-thread" (init pushes "init:ARG"), adds
 * the header "X-Decided-By: decided-by-..." and, with &proto=P, picks the
 * offered subprotocol P (sock_pending_header, _subprotocol); refuse
 * answers 403 "refused later\n". The result of every decision is counted
 * (see stats). Without decide the upgrade is accepted at once.
 *
 * Text commands, one per message:
 *   option NAME        push sock_option(c, NAME) or "(unset)"
 *   thread MS TEXT     a thread sleeps MS ms, then sock_post(self, 7, TEXT);
 *                      the post is pushed as "post:KIND:TYPE:TEXT"
 *   postto ID TEXT     sock_post(ID (hex), 8, TEXT) from the loop; the
 *                      receiver pushes "post:..." (same worker) or
 *                      "send:KIND:TYPE:FROM:TEXT" (another worker)
 *   flood N            a thread posts N infos to self as fast as it can;
 *                      when all N arrived, push "flood:N"
 *   watch TEXT         a pipe watched with sock_watch_fd; a thread writes
 *                      TEXT into it; the watch callback reads it, stops
 *                      the watch and sends it here: push "watched:TEXT"
 *   timer MS           a one-shot sock_timer_start; push "timer:fired"
 *   ticks              push "ticks:yes|no greeting:G" (setup's 10 ms
 *                      repeating timer ran at least once)
 *   id                 push sock_self in hex
 *   stats              push "ok=A epipe=B other=C" for the deferred
 *                      decisions taken so far
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sock.h"

#define T_POST 7
#define T_POSTTO 8
#define T_WATCH 9
#define T_TIMER 10
#define T_FLOOD 11

static int decided_ok, decided_epipe, decided_other;   /* atomics */
static int threads_running, threads_stop;              /* atomics */
static sock_timer *ticker;
static int ticks;
static char greeting[64];

struct conn_state {
    int flood_want, flood_got;
};

static void
sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

    nanosleep(&ts, NULL);
}

static void
count_decision(int rc)
{
    __atomic_add_fetch(rc == 0 ? &decided_ok : rc == -EPIPE ? &decided_epipe
                                                            : &decided_other,
                       1, __ATOMIC_SEQ_CST);
}

/* ---- Setup -------------------------------------------------------------- */

static void
on_tick(sock_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    ticks++;
}

static int
app_setup(const sock_options *o)
{
    const char *g = sock_options_get(o, "greeting");
    const char *fail = sock_options_get(o, "fail_setup");

    if (fail != NULL && strcmp(fail, "yes") == 0)
        return -EIO;
    snprintf(greeting, sizeof(greeting), "%s", g ? g : "(unset)");
    if (ticker == NULL)
        ticker = sock_timer_start(10, 10, on_tick, NULL);
    return ticker != NULL ? 0 : -ENOMEM;
}

static void
app_teardown(const sock_options *o)
{
    (void)o;
    sock_timer_stop(ticker);
    ticker = NULL;
    /* The module is unloaded after teardown: no thread may still run its
       code. Detached threads are asked to stop and waited for. */
    __atomic_store_n(&threads_stop, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&threads_running, __ATOMIC_SEQ_CST) > 0)
        sleep_ms(1);
}

/* ---- Deferred upgrades ------------------------------------------------- */

struct decision {
    sock_pending *p;
    bool accept;
    unsigned ms;
    const char *by;
    char proto[32];
};

static void
decide(struct decision *d)
{
    int rc;

    if (d->accept) {
        char *arg = strdup(d->by);

        if (d->proto[0] != '\0')
            sock_pending_subprotocol(d->p, d->proto);
        sock_pending_header(d->p, "X-Decided-By", d->by);
        rc = sock_pending_accept(d->p, arg, free);
        if (rc != 0)
            free(arg); /* dead: the arg stayed ours */
    } else {
        rc = sock_pending_refuse(d->p, 403, "refused later\n");
    }
    count_decision(rc);
    free(d);
}

static void
decide_on_timer(sock_timer *t, void *arg)
{
    (void)t;
    decide(arg);
}

static void *
decide_on_thread(void *arg)
{
    struct decision *d = arg;

    sleep_ms(d->ms);
    decide(d);
    __atomic_sub_fetch(&threads_running, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static int
app_upgrade(const sock_request *r, sock_upgrade *u)
{
    char how[16], ms[16], verdict[16];
    struct decision *d;
    pthread_t th;

    if (sock_request_query_param(r, "decide", how, sizeof(how)) < 0)
        return 0;
    if (sock_request_query_param(r, "ms", ms, sizeof(ms)) < 0 ||
        sock_request_query_param(r, "verdict", verdict, sizeof(verdict)) < 0)
        return 400;
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        return 503;
    d->accept = strcmp(verdict, "accept") == 0;
    if (sock_request_query_param(r, "proto", d->proto, sizeof(d->proto)) < 0)
        d->proto[0] = '\0';
    d->ms = (unsigned)atoi(ms);
    d->p = sock_upgrade_defer(u);
    if (d->p == NULL) {
        free(d);
        return 503;
    }
    if (strcmp(how, "timer") == 0) {
        d->by = "decided-by-timer";
        if (sock_timer_start(d->ms, 0, decide_on_timer, d) != NULL)
            return SOCK_UPGRADE_LATER;
    } else {
        d->by = "decided-by-thread";
        __atomic_add_fetch(&threads_running, 1, __ATOMIC_SEQ_CST);
        if (pthread_create(&th, NULL, decide_on_thread, d) == 0) {
            pthread_detach(th);
            return SOCK_UPGRADE_LATER;
        }
        __atomic_sub_fetch(&threads_running, 1, __ATOMIC_SEQ_CST);
    }
    sock_pending_refuse(d->p, 503, NULL); /* frees the handle */
    free(d);
    return 503;
}

/* ---- Threads and watches ----------------------------------------------- */

struct job {
    sock_id to;
    unsigned ms;
    int n;
    int fd;
    char text[128];
};

static void *
job_post(void *arg)
{
    struct job *j = arg;

    sleep_ms(j->ms);
    sock_post(j->to, T_POST, j->text, strlen(j->text));
    free(j);
    __atomic_sub_fetch(&threads_running, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void *
job_flood(void *arg)
{
    struct job *j = arg;

    for (int i = 0; i < j->n && !__atomic_load_n(&threads_stop,
                                                   __ATOMIC_SEQ_CST); i++) {
        while (sock_post(j->to, T_FLOOD, &i, sizeof(i)) == -ENOBUFS)
            sleep_ms(1);
    }
    free(j);
    __atomic_sub_fetch(&threads_running, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void *
job_write(void *arg)
{
    struct job *j = arg;
    ssize_t n;

    sleep_ms(20);
    n = write(j->fd, j->text, strlen(j->text));
    (void)n;
    close(j->fd);
    free(j);
    __atomic_sub_fetch(&threads_running, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

struct watch_ctx {
    sock_id to;
    char buf[128];
    size_t len;
};

static void
on_readable(sock_watch *w, int fd, unsigned revents, void *arg)
{
    struct watch_ctx *x = arg;
    ssize_t n;

    (void)revents;
    n = read(fd, x->buf + x->len, sizeof(x->buf) - 1 - x->len);
    if (n > 0) {
        x->len += (size_t)n;
        return; /* until EOF: the writer closes */
    }
    if (n < 0 && errno == EAGAIN)
        return;
    sock_watch_stop(w);
    close(fd);
    sock_send_info(x->to, T_WATCH, x->buf, x->len);
    free(x);
}

static bool
start_thread(void *(*fn)(void *), struct job *j)
{
    pthread_t th;

    __atomic_add_fetch(&threads_running, 1, __ATOMIC_SEQ_CST);
    if (pthread_create(&th, NULL, fn, j) != 0) {
        __atomic_sub_fetch(&threads_running, 1, __ATOMIC_SEQ_CST);
        free(j);
        return false;
    }
    pthread_detach(th);
    return true;
}

static void
start_watch(sock_conn *c, const char *text)
{
    struct watch_ctx *x = calloc(1, sizeof(*x));
    struct job *j = calloc(1, sizeof(*j));
    int p[2];

    if (x == NULL || j == NULL || pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
        free(x);
        free(j);
        sock_push(c, SOCK_TEXT, "watch:failed", 12);
        return;
    }
    x->to = sock_self(c);
    if (sock_watch_fd(p[0], SOCK_READ, on_readable, x) == NULL) {
        close(p[0]);
        close(p[1]);
        free(x);
        free(j);
        sock_push(c, SOCK_TEXT, "watch:failed", 12);
        return;
    }
    j->fd = p[1];
    snprintf(j->text, sizeof(j->text), "%s", text);
    start_thread(job_write, j);
}

static void
on_timer(sock_timer *t, void *arg)
{
    sock_id *to = arg;

    (void)t;
    sock_send_info(*to, T_TIMER, "fired", 5);
    free(to);
}

/* ---- The connection ---------------------------------------------------- */

static void
pushf(sock_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
pushf(sock_conn *c, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(buf) - 1)
        n = sizeof(buf) - 1;
    sock_push(c, SOCK_TEXT, buf, (size_t)n);
}

static sock_ret
app_init(sock_conn *c, void *arg, void **state)
{
    *state = calloc(1, sizeof(struct conn_state));
    if (*state == NULL)
        return sock_stop_error(c, ENOMEM);
    if (arg != NULL) {
        pushf(c, "init:%s", (const char *)arg);
        free(arg);
    }
    return SOCK_CONTINUE;
}

static sock_ret
app_in(sock_conn *c, const sock_msg *m, void **state)
{
    char cmd[256], *sp, *rest;
    struct conn_state *s = *state;
    struct job *j;
    size_t n = m->len < sizeof(cmd) - 1 ? m->len : sizeof(cmd) - 1;

    memcpy(cmd, m->data, n);
    cmd[n] = '\0';
    sp = strchr(cmd, ' ');
    rest = sp ? sp + 1 : "";
    if (sp)
        *sp = '\0';
    if (strcmp(cmd, "option") == 0) {
        const char *v = sock_option(c, rest);

        pushf(c, "%s", v ? v : "(unset)");
    } else if (strcmp(cmd, "id") == 0) {
        pushf(c, "%llx", (unsigned long long)sock_self(c));
    } else if (strcmp(cmd, "thread") == 0 || strcmp(cmd, "flood") == 0) {
        if ((j = calloc(1, sizeof(*j))) == NULL)
            return sock_stop_error(c, ENOMEM);
        j->to = sock_self(c);
        j->ms = (unsigned)atoi(rest);
        j->n = atoi(rest);
        sp = strchr(rest, ' ');
        snprintf(j->text, sizeof(j->text), "%s", sp ? sp + 1 : "");
        if (cmd[0] == 'f') {
            s->flood_want = j->n;
            s->flood_got = 0;
        }
        start_thread(cmd[0] == 'f' ? job_flood : job_post, j);
    } else if (strcmp(cmd, "postto") == 0) {
        unsigned long long id = strtoull(rest, &sp, 16);
        const char *text = *sp == ' ' ? sp + 1 : "";
        int rc = sock_post((sock_id)id, T_POSTTO, text, strlen(text));

        if (rc != 0)
            pushf(c, "postto:%d", rc);
    } else if (strcmp(cmd, "watch") == 0) {
        start_watch(c, rest);
    } else if (strcmp(cmd, "timer") == 0) {
        sock_id *to = malloc(sizeof(*to));

        if (to == NULL)
            return sock_stop_error(c, ENOMEM);
        *to = sock_self(c);
        if (sock_timer_start((uint32_t)atoi(rest), 0, on_timer, to) == NULL)
            free(to);
    } else if (strcmp(cmd, "ticks") == 0) {
        pushf(c, "ticks:%s greeting:%s", ticks > 0 ? "yes" : "no", greeting);
    } else if (strcmp(cmd, "stats") == 0) {
        pushf(c, "ok=%d epipe=%d other=%d",
              __atomic_load_n(&decided_ok, __ATOMIC_SEQ_CST),
              __atomic_load_n(&decided_epipe, __ATOMIC_SEQ_CST),
              __atomic_load_n(&decided_other, __ATOMIC_SEQ_CST));
    } else {
        pushf(c, "unknown:%s", cmd);
    }
    return SOCK_CONTINUE;
}

static sock_ret
app_info(sock_conn *c, const sock_info *i, void **state)
{
    struct conn_state *s = *state;

    if (i->type == T_FLOOD) {
        if (++s->flood_got == s->flood_want)
            pushf(c, "flood:%d", s->flood_got);
        return SOCK_CONTINUE;
    }
    if (i->type == T_WATCH) {
        pushf(c, "watched:%.*s", (int)i->len, (const char *)i->data);
    } else if (i->type == T_TIMER) {
        pushf(c, "timer:%.*s", (int)i->len, (const char *)i->data);
    } else if (i->kind == SOCK_INFO_POST) {
        pushf(c, "post:%d:%u:%.*s", (int)i->kind, i->type, (int)i->len,
              (const char *)i->data);
    } else {
        pushf(c, "send:%d:%u:%llx:%.*s", (int)i->kind, i->type,
              (unsigned long long)i->from, (int)i->len,
              (const char *)i->data);
    }
    return SOCK_CONTINUE;
}

static void
app_terminate(sock_conn *c, const sock_close_info *why, void *state)
{
    (void)c;
    (void)why;
    free(state);
}

const sock_app sock_app_v1 = {
    .abi = SOCK_ABI_VERSION,
    .name = "asyncapp",
    .upgrade = app_upgrade,
    .init = app_init,
    .handle_in = app_in,
    .handle_info = app_info,
    .terminate = app_terminate,
    .setup = app_setup,
    .teardown = app_teardown,
};
