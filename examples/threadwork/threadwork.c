/*
 * threadwork.c: blocking work on a thread pool, results posted back to
 * the connection (sock_post). A client of /work sends a text message; a
 * pool thread does the "work" (here: sleep option.delay_ms, standing for a
 * blocking library call, then count the message's bytes and reverse it)
 * and posts {"job":N,"bytes":B,"reversed":"..."} back, which handle_info
 * pushes. The worker's loop never waits: other clients are served
 * meanwhile, and jobs run option.threads at a time.
 *
 * Route options: option.threads (1..64, default 2), option.delay_ms
 * (0..60000, default 100), option.max_queue (default 1024: more queued
 * jobs are refused with {"error":"busy"}).
 * Lifecycle: setup starts the pool once per worker; teardown stops and
 * joins it (so no thread posts after the worker is gone); a result for a
 * connection that closed meanwhile is dropped by the server.
 * Built in as `app = threadwork`, and as a module (threadwork.so).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sock.h"

#define TW_RESULT 1
#define TW_MAX_THREADS 64
#define TW_MAX_TEXT 4096

struct job {
    struct job *next;
    sock_id to;
    unsigned n;
    size_t len;
    char text[];
};

static struct pool {
    pthread_mutex_t lock;
    pthread_cond_t more;
    struct job *head, *tail;
    size_t queued, max_queue;
    bool stopping;
    unsigned delay_ms;
    unsigned n_threads;
    pthread_t threads[TW_MAX_THREADS];
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER,
           .more = PTHREAD_COND_INITIALIZER };

/* The option as a number in [lo, hi], def when unset; -1 if bad. */
static long
num_option(const sock_options *o, const char *name, long def, long lo,
           long hi)
{
    const char *v = sock_options_get(o, name);
    char *end;
    long n;

    if (v == NULL)
        return def;
    n = strtol(v, &end, 10);
    return *v != '\0' && *end == '\0' && n >= lo && n <= hi ? n : -1;
}

/* The blocking part, on a pool thread: anything but sock_post here. */
static void
run_job(const struct job *j)
{
    struct timespec ts = { pool.delay_ms / 1000,
                           (long)(pool.delay_ms % 1000) * 1000000 };
    char out[64 + TW_MAX_TEXT];
    size_t o;

    nanosleep(&ts, NULL);
    o = (size_t)snprintf(out, sizeof(out),
                         "{\"job\":%u,\"bytes\":%zu,\"reversed\":\"", j->n,
                         j->len);
    /* Reversed bytewise; the text was checked to be plain ASCII without
       quotes or backslashes, so the JSON needs no escapes. */
    for (size_t i = j->len; i > 0; i--)
        out[o++] = j->text[i - 1];
    memcpy(out + o, "\"}", 2);
    sock_post(j->to, TW_RESULT, out, o + 2);
}

static void *
worker_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        struct job *j;

        while (pool.head == NULL && !pool.stopping)
            pthread_cond_wait(&pool.more, &pool.lock);
        if (pool.head == NULL) /* stopping, and nothing left */
            break;
        j = pool.head;
        pool.head = j->next;
        if (pool.head == NULL)
            pool.tail = NULL;
        pool.queued--;
        pthread_mutex_unlock(&pool.lock);
        run_job(j);
        free(j);
        pthread_mutex_lock(&pool.lock);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

static int
tw_setup(const sock_options *o)
{
    long threads = num_option(o, "threads", 2, 1, TW_MAX_THREADS);
    long delay = num_option(o, "delay_ms", 100, 0, 60000);
    long maxq = num_option(o, "max_queue", 1024, 1, 1 << 20);

    if (threads < 0 || delay < 0 || maxq < 0)
        return -EINVAL;
    if (pool.n_threads > 0)
        return 0; /* one pool per worker, shared by its routes */
    pool.delay_ms = (unsigned)delay;
    pool.max_queue = (size_t)maxq;
    pool.stopping = false;
    for (long i = 0; i < threads; i++) {
        if (pthread_create(&pool.threads[i], NULL, worker_thread, NULL) != 0)
            break;
        pool.n_threads++;
    }
    return pool.n_threads > 0 ? 0 : -EAGAIN;
}

static void
tw_teardown(const sock_options *o)
{
    (void)o;
    if (pool.n_threads == 0)
        return;
    pthread_mutex_lock(&pool.lock);
    pool.stopping = true;
    pthread_cond_broadcast(&pool.more);
    pthread_mutex_unlock(&pool.lock);
    for (unsigned i = 0; i < pool.n_threads; i++)
        pthread_join(pool.threads[i], NULL);
    pool.n_threads = 0;
}

static sock_ret
tw_init(sock_conn *c, void *arg, void **state)
{
    (void)c;
    (void)arg;
    *state = NULL; /* the job counter lives in the pointer itself */
    return SOCK_CONTINUE;
}

static bool
text_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] < ' ' || s[i] > '~' || s[i] == '"' || s[i] == '\\')
            return false;
    return true;
}

static sock_ret
tw_handle_in(sock_conn *c, const sock_msg *m, void **state)
{
    unsigned n = (unsigned)(uintptr_t)*state + 1;
    struct job *j;
    bool queued = false;

    if (m->opcode != SOCK_TEXT || m->len > TW_MAX_TEXT ||
        !text_ok(m->data, m->len))
        return sock_stop_code(c, 1003, "printable ASCII up to 4096 bytes",
                              32);
    *state = (void *)(uintptr_t)n;
    j = malloc(sizeof(*j) + m->len);
    if (j == NULL)
        return sock_stop_error(c, ENOMEM);
    j->next = NULL;
    j->to = sock_self(c);
    j->n = n;
    j->len = m->len;
    memcpy(j->text, m->data, m->len);
    pthread_mutex_lock(&pool.lock);
    if (pool.n_threads > 0 && pool.queued < pool.max_queue) {
        if (pool.tail != NULL)
            pool.tail->next = j;
        else
            pool.head = j;
        pool.tail = j;
        pool.queued++;
        queued = true;
        pthread_cond_signal(&pool.more);
    }
    pthread_mutex_unlock(&pool.lock);
    if (!queued) {
        free(j);
        sock_push(c, SOCK_TEXT, "{\"error\":\"busy\"}", 16);
    }
    return SOCK_CONTINUE;
}

static sock_ret
tw_handle_info(sock_conn *c, const sock_info *i, void **state)
{
    (void)state;
    if (i->kind == SOCK_INFO_POST && i->type == TW_RESULT)
        sock_push(c, SOCK_TEXT, i->data, i->len);
    return SOCK_CONTINUE;
}

#ifdef SOCK_APP_MODULE
#define TW_APP sock_app_v1
#else
#define TW_APP sock_example_threadwork
#endif

extern const sock_app TW_APP;
const sock_app TW_APP = {
    .abi = SOCK_ABI_VERSION,
    .name = "threadwork",
    .init = tw_init,
    .handle_in = tw_handle_in,
    .handle_info = tw_handle_info,
    .setup = tw_setup,
    .teardown = tw_teardown,
};
