/*
 * worker.c: a worker process's loop: listeners and accept, the routes'
 * apps, and the per-iteration work: flushing every connection that
 * queued output (before the poll, one write each, made together by one
 * io_uring call where the kernel allows: sendbatch.c), delivering infos and
 * stashed input from an idle watcher, freeing torn-down connections.
 * Connections themselves are conn.c's.
 */
#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin.h"
#include "appio.h"
#include "apps.h"
#include "bus.h"
#include "channel.h"
#include "conn.h"
#include "log.h"
#include "messaging.h"
#include "pending.h"
#include "procstat.h"
#include "redis.h"
#include "sendbatch.h"
#include "tls.h"
#include "wctl.h"
#include "ws_deflate.h"
#include "ws_handshake.h"

#define WORKER_RBUF_SIZE (256 * 1024)
#define WORKER_ACCEPTS_PER_WAKEUP 64
#define WORKER_PENDING_BATCH 256
#define WORKER_FLUSH_BATCH CONN_FLUSH_BATCH_MAX
#define WORKER_FD_RESERVE 32
#define WORKER_DRAIN_TICK 0.05 /* seconds between drain close batches */

static void worker_on_accept(struct ev_loop *loop, ev_io *io, int revents);
static void worker_on_accept_retry(struct ev_loop *loop, ev_timer *t,
                                   int revents);
static void worker_on_check(struct ev_loop *loop, ev_check *ck, int revents);
static void worker_on_stop_timer(struct ev_loop *loop, ev_timer *t,
                                 int revents);
static void worker_teardown_apps(struct worker *w);
static const struct wctl_ops worker_ctl_ops;

/* The host calls of sock.h, answered by the modules that own them. */
static const struct sock_host_ops worker_host_ops = {
    .send_info = messaging_send_info,
    .publish = messaging_publish,
    .broadcast = messaging_broadcast,
    .watch_fd = appio_watch_fd,
    .watch_set = appio_watch_set,
    .watch_stop = appio_watch_stop,
    .timer_start = appio_timer_start,
    .timer_stop = appio_timer_stop,
    .post = appio_post,
    .defer = pending_new,
};

/* How messaging reaches connections without depending on conn.c. */
static const struct messaging_conn_ops worker_msg_conn_ops = {
    .find = conn_find,
    .enqueue = conn_enqueue_info,
    .push_frame = conn_push_frame,
    .broadcast = conn_broadcast_info,
};

static void
worker_on_prepare(struct ev_loop *loop, ev_prepare *p, int revents)
{
    struct worker *w = container_of(p, struct worker, prepare);

    (void)loop;
    (void)revents;
    /* The pushes of this iteration leave now, coalesced per connection:
       at most WORKER_FLUSH_BATCH connections per iteration (more than an
       echo of 100 connections flushes); the rest
       stay in line (oldest first) and the loop polls without blocking,
       so what arrives meanwhile (more publishes) joins their queues and
       leaves in the same write. */
    conn_flush_batch(w, WORKER_FLUSH_BATCH);
    if (!list_empty(&w->flush))
        ev_idle_start(loop, &w->idle);
    if (!list_empty(&w->paused))
        conn_fan_resume(w);
    messaging_fan_resume(w);
    w->stats->send_bytes = sendq_total_bytes();
    w->stats->deflate_memory = ws_deflate_total_memory();
    while (!list_empty(&w->dead)) {
        struct conn *c = container_of(w->dead.next, struct conn, link);

        list_remove(&c->link);
        conn_free(c);
    }
    if (ev_is_active(&w->check))
        w->poll_start = ev_time(); /* the poll waits from here */
}

/* After each poll: the time it waited feeds fanout_interval = auto. */
static void
worker_on_check(struct ev_loop *loop, ev_check *ck, int revents)
{
    struct worker *w = container_of(ck, struct worker, check);

    (void)revents;
    worker_fanout_load(w, ev_now(loop));
}

static void
worker_on_idle(struct ev_loop *loop, ev_idle *idle, int revents)
{
    struct worker *w = container_of(idle, struct worker, idle);
    struct list batch;

    (void)revents;
    /* Take the current list, so that work queued while delivering waits
       for the next turn and no connection starves the others. */
    list_init(&batch);
    if (!list_empty(&w->pending)) {
        batch.next = w->pending.next;
        batch.prev = w->pending.prev;
        batch.next->prev = &batch;
        batch.prev->next = &batch;
        list_init(&w->pending);
    }
    for (int i = 0; i < WORKER_PENDING_BATCH && !list_empty(&batch); i++)
        conn_run_pending(container_of(batch.next, struct conn, plink));
    while (!list_empty(&batch)) { /* over the batch: back in line */
        struct list *l = batch.next;

        list_remove(l);
        list_insert_tail(&w->pending, l);
    }
    if (list_empty(&w->pending) && list_empty(&w->flush))
        ev_idle_stop(loop, idle);
}

static void
worker_on_fanout_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = container_of(t, struct worker, fanout_timer);

    (void)revents;
    /* A tick that writes held fan-out starts the next interval; one with
       nothing left to write (other output took it) lets the next fan-out
       leave at once. */
    w->fanout_next = ev_now(loop);
    if (!list_empty(&w->flush_later))
        w->fanout_next += worker_fanout_interval(w);
    while (!list_empty(&w->flush_later))
        conn_flush_soon(container_of(w->flush_later.next, struct conn,
                                     flink));
}

static void
tlist_expired(struct tnode *n, void *ctx)
{
    conn_on_timeout(n, ctx);
}

static void
msg_tlist_expired(struct tnode *n, void *ctx)
{
    conn_on_message_timeout(n, ctx);
}

int
worker_load_tls(struct worker *w, const struct tls_ticket_keys *keys,
                char *err, size_t errlen)
{
    for (size_t i = 0; i < w->n_listeners; i++) {
        struct wlistener *l = &w->listeners[i];
        char why[512];

        if (l->admin || l->cfg->tls_certificate == NULL)
            continue;
        l->tls = tls_ctx_new(l->cfg->tls_certificate, l->cfg->tls_key, keys,
                             why, sizeof(why));
        if (l->tls == NULL) {
            snprintf(err, errlen, "%s:%d: %s", w->cfg->path, l->cfg->line,
                     why);
            return -1;
        }
        for (size_t k = 0; l->cfg->tls_sni_certificates != NULL &&
                           l->cfg->tls_sni_certificates[k] != NULL; k++) {
            if (tls_ctx_add_sni(l->tls, l->cfg->tls_sni_certificates[k],
                                l->cfg->tls_sni_keys[k], why,
                                sizeof(why)) != 0) {
                snprintf(err, errlen, "%s:%d: %s", w->cfg->path,
                         l->cfg->line, why);
                return -1;
            }
        }
    }
    return 0;
}

/*
 * The soft RLIMIT_NOFILE, raised to the hard limit first: a WebSocket
 * server holds an fd per client, whatever max_connections says.
 */
static rlim_t
raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0 ||
            getrlimit(RLIMIT_NOFILE, &rl) != 0)
            return 1024;
    }
    return rl.rlim_cur;
}

/*
 * Connections the fds allow: the limit less what the worker holds
 * besides clients (listeners, the channel, bus sockets to and from the
 * workers of two generations, Redis, logs, app files), so that at the
 * limit accept still gets an fd to answer 503 with instead of EMFILE.
 */
static uint32_t
nofile_max_conns(const struct config *cfg, rlim_t nofile)
{
    long workers = cfg->server.workers;
    rlim_t reserve;

    if (workers < 0)
        workers = sysconf(_SC_NPROCESSORS_ONLN);
    reserve = WORKER_FD_RESERVE + cfg->n_listeners + 1 +
              4 * (rlim_t)MAX(workers, 1);
    if (nofile == RLIM_INFINITY || nofile > (1u << 24) + reserve)
        return 1u << 24;
    if (nofile <= reserve * 2)
        return (uint32_t)(nofile / 2);
    return (uint32_t)(nofile - reserve);
}

/* max_connections, or what the fds allow if that is less (logged once,
   by slot 0), or 0: derived from the fds. */
static uint32_t
worker_max_conns(const struct config *cfg, uint8_t slot)
{
    rlim_t nofile = raise_nofile();
    uint32_t allowed = nofile_max_conns(cfg, nofile);
    uint32_t want = cfg->server.max_connections;

    if (want == 0)
        return allowed;
    if (want > allowed && slot == 0)
        log_warn("event=max_connections_clamped max_connections=%u "
                 "allowed=%u nofile=%llu reason=\"RLIMIT_NOFILE too low; "
                 "raise LimitNOFILE= or ulimit -n\"", want, allowed,
                 (unsigned long long)nofile);
    return MIN(want, allowed);
}

int
worker_load_apps(struct worker *w, char *err, size_t errlen)
{
    const struct config *cfg = w->cfg;

    w->routes = calloc(cfg->n_routes ? cfg->n_routes : 1,
                       sizeof(*w->routes));
    if (w->routes == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->n_routes; i++) {
        struct route_rt *r = &w->routes[i];
        char why[512];

        r->cfg = &cfg->routes[i];
        r->stat = (uint8_t)(worker_route_stats_for(w->stats, r->cfg->path) -
                            w->stats->route);
        r->opts.route = r->cfg->path;
        r->opts.kv = r->cfg->app_options;
        if (apps_load(r->cfg->app, &r->app, &r->dl, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "%s:%d: %s", cfg->path ? cfg->path : "",
                     r->cfg->app_line, why);
            return -1;
        }
        w->n_routes++;
    }
    return 0;
}

/*
 * RFC 6455 §1.3's accept-key example, computed before the first client:
 * proof that SHA-1 and base64 work, and it pages libcrypto's code in now
 * (about 1.4 MB of RSS per worker), not during the first handshake.
 */
static bool
worker_self_test(void)
{
    char accept[29];

    ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", accept);
    return strcmp(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0;
}

struct worker *
worker_new(struct ev_loop *loop, const struct config *cfg, const int *fds,
           uint8_t generation, uint8_t slot, char *err, size_t errlen)
{
    struct worker *w = calloc(1, sizeof(*w));
    int rc;

    if (w == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    /* Send chunks come and go by the megabyte under load: trimming the
       heap top and faulting it back in cost ~9% of a worker's CPU in the
       1000-connection echo profile. Keep what was used. */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_TOP_PAD, 4 << 20);
    w->loop = loop;
    w->cfg = cfg;
    w->node = cfg->server.node_id;
    w->generation = generation;
    w->slot = slot;
    list_init(&w->conns);
    list_init(&w->flush);
    list_init(&w->flush_later);
    list_init(&w->paused);
    list_init(&w->pending);
    list_init(&w->dead);
    list_init(&w->admin_waiting);
    idmap_init(&w->ids);
    w->chan_fd = -1;
    w->ctl_ops = &worker_ctl_ops;
    /* Held for the moment accept finds no fd (worker_refuse_no_fd). */
    w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    w->stats = w->stats_all = &w->own_stats;
    w->stats_n = 1;
    w->own_stats.generation = generation;
    w->own_stats.pid = (uint32_t)getpid();
    w->own_stats.slot = slot;
    w->rbuf_size = WORKER_RBUF_SIZE;
    w->rbuf = malloc(w->rbuf_size);
    w->timers = tlist_set_new(loop, tlist_expired, w);
    w->msg_timers = tlist_set_new(loop, msg_tlist_expired, w);
    w->listeners = calloc(cfg->n_listeners + 1, sizeof(*w->listeners));
    if (w->rbuf == NULL || w->timers == NULL || w->msg_timers == NULL ||
        w->listeners == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* After the fork: a ring belongs to the process that made it. */
    if (cfg->server.io_uring &&
        (w->sendbatch = sendbatch_new(WORKER_FLUSH_BATCH, &rc)) == NULL)
        log_info("event=io_uring_unavailable error=\"%s\" "
                 "detail=\"one send(2) per connection\"", strerror(-rc));
    if (!worker_self_test()) {
        snprintf(err, errlen, "SHA-1 self-test failed (libcrypto)");
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        struct wlistener *l = &w->listeners[i];

        l->fd = fds[i];
        l->w = w;
        l->cfg = &cfg->listeners[i];
        ev_io_init(&l->io, worker_on_accept, l->fd, EV_READ);
        w->n_listeners++;
    }
    if (cfg->admin.listen != NULL) {
        struct wlistener *l = &w->listeners[w->n_listeners++];

        l->fd = fds[cfg->n_listeners];
        l->w = w;
        l->cfg = &cfg->admin.l;
        l->admin = true;
        ev_io_init(&l->io, worker_on_accept, l->fd, EV_READ);
    }
    w->max_conns = worker_max_conns(cfg, slot);
    messaging_init(w, &worker_msg_conn_ops);
    sock_host_set(&worker_host_ops, w);
    if (appio_init(w) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    ev_prepare_init(&w->prepare, worker_on_prepare);
    ev_prepare_start(loop, &w->prepare);
    ev_check_init(&w->check, worker_on_check);
    if (cfg->server.fanout_interval_ms == FANOUT_AUTO) {
        ev_check_start(loop, &w->check);
        w->poll_start = w->busy_since = ev_now(loop);
    }
    ev_idle_init(&w->idle, worker_on_idle);
    ev_init(&w->accept_retry, worker_on_accept_retry);
    ev_init(&w->fanout_timer, worker_on_fanout_tick);
    ev_init(&w->stop_timer, worker_on_stop_timer);
    return w;

fail:
    worker_free(w);
    return NULL;
}

void
worker_share_stats(struct worker *w, struct worker_stats *all, size_t n,
                   size_t mine)
{
    all[mine] = w->own_stats;
    w->stats = &all[mine];
    w->stats_all = all;
    w->stats_n = n;
}

void
worker_free(struct worker *w)
{
    if (w == NULL)
        return;
    /* First, so closing connections sends no UNSUBSCRIBE to Redis. */
    redis_free(w->redis);
    w->redis = NULL;
    while (!list_empty(&w->conns))
        conn_abort(container_of(w->conns.next, struct conn, link));
    while (!list_empty(&w->dead)) {
        struct conn *c = container_of(w->dead.next, struct conn, link);

        list_remove(&c->link);
        conn_free(c);
    }
    for (size_t i = 0; i < w->n_listeners; i++) {
        ev_io_stop(w->loop, &w->listeners[i].io);
        tls_ctx_free(w->listeners[i].tls);
        if (w->listeners[i].fd >= 0)
            close(w->listeners[i].fd);
    }
    wctl_detach(w);
    bus_free(w->bus);
    w->bus = NULL;
    ev_timer_stop(w->loop, &w->drain_timer);
    worker_teardown_apps(w);
    /* No sock_post from a straggling app thread may reach the queue that
       goes next: the host is withdrawn under sock_post's own lock. */
    sock_host_set(NULL, NULL);
    appio_destroy(w);
    for (size_t i = 0; i < w->n_routes; i++)
        apps_unload(w->routes[i].dl);
    ev_prepare_stop(w->loop, &w->prepare);
    ev_check_stop(w->loop, &w->check);
    ev_idle_stop(w->loop, &w->idle);
    ev_timer_stop(w->loop, &w->accept_retry);
    ev_timer_stop(w->loop, &w->fanout_timer);
    ev_timer_stop(w->loop, &w->stop_timer);
    ev_signal_stop(w->loop, &w->sig_term);
    ev_signal_stop(w->loop, &w->sig_quit);
    ev_signal_stop(w->loop, &w->sig_int);
    for (size_t i = 0; i < ARRAY_SIZE(w->dcache); i++) {
        sock_buf_unref(w->dcache[i].key);
        sock_buf_unref(w->dcache[i].val);
    }
    for (size_t i = 0; i < ARRAY_SIZE(w->dshared); i++)
        ws_deflate_shared_free(w->dshared[i]);
    messaging_destroy(w);
    tlist_set_free(w->timers);
    tlist_set_free(w->msg_timers);
    idmap_destroy(&w->ids);
    if (w->spare_fd >= 0)
        close(w->spare_fd);
    free(w->listeners);
    free(w->routes);
    sendbatch_free(w->sendbatch);
    free(w->rbuf);
    free(w);
}

/* ---- Accepting --------------------------------------------------------- */

static void
worker_accepting(struct worker *w, bool on)
{
    for (size_t i = 0; i < w->n_listeners; i++) {
        if (on)
            ev_io_start(w->loop, &w->listeners[i].io);
        else
            ev_io_stop(w->loop, &w->listeners[i].io);
    }
}

static void
worker_on_accept_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = container_of(t, struct worker, accept_retry);

    (void)loop;
    (void)revents;
    if (!w->stopping && !w->draining)
        worker_accepting(w, true);
}

/* Over max_connections: a 503 written best-effort, then close. */
static void
worker_refuse_full(struct worker *w, int fd)
{
    static const char resp[] =
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\n"
        "Retry-After: 1\r\n\r\nserver at capacity.\n";
    ssize_t n;

    w->stats->refused_full++;
    n = send(fd, resp, sizeof(resp) - 1, MSG_NOSIGNAL);
    (void)n;
    shutdown(fd, SHUT_WR);
    close(fd);
}

/*
 * With several workers on one listening socket, one that holds clearly
 * more than the average steps back for a moment (nginx's
 * accept_disabled), so a burst spreads over all of them.
 */
static bool
worker_over_share(struct worker *w)
{
    uint64_t total = 0, avg, live = 0;
    ev_tstamp now = ev_now(w->loop);

    if (w->shm_counts == NULL || w->n_slots < 2)
        return false;
    for (unsigned i = 0; i < w->n_slots; i++) {
        uint32_t n = w->shm_counts[i];

        if (n != SLOT_DEAD) { /* dead or given-up slots take nobody */
            total += n;
            live++;
        }
    }
    avg = live > 0 ? total / live : 0;
    /* Small differences are noise (short-lived connections come and go);
       stepping back for them only delays accepts when every worker is
       momentarily "over" and paused. */
    if (w->n_conns <= avg + MAX(8, avg / 8)) {
        w->stepped_back_since = 0;
        return false;
    }
    /* Never step back for long: a stopped peer must not starve the queue. */
    if (w->stepped_back_since == 0)
        w->stepped_back_since = now;
    return now - w->stepped_back_since < 0.05;
}

/*
 * Out of fds (EMFILE, ENFILE), the client at the head of the queue still
 * gets an answer: the spare fd is given up for a moment to accept it and
 * send the 503 (libev's documented trick), instead of leaving it waiting
 * for an fd to free. Logged at most once a second. 1: a client was
 * answered; 0: the queue was empty (accept reports EMFILE before it looks
 * at the queue); -errno: no spare, or accept failed otherwise.
 */
static int
worker_refuse_no_fd(struct worker *w, struct wlistener *l, int err)
{
    ev_tstamp now = ev_now(w->loop);
    int fd, rc;

    if (w->spare_fd < 0)
        return -EMFILE;
    close(w->spare_fd);
    fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    rc = fd >= 0 ? 1 : errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    if (fd >= 0) {
        worker_refuse_full(w, fd);
        if (now - w->nofd_logged >= 1.0) {
            w->nofd_logged = now;
            log_err("event=accept_failed error=\"%s\" open=%zu "
                    "action=refuse_503", strerror(err), w->n_conns);
        }
    }
    w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return rc;
}

/*
 * accept4 failed. Out of fds or memory the listening socket stays
 * readable, and a level-triggered watcher would spin on it: unless the
 * spare fd answers the client, every listener pauses for a moment
 * (nginx's accept_mutex_delay), and the queued clients wait in the
 * backlog. True if the caller stops its batch.
 */
static bool
worker_accept_failed(struct worker *w, struct wlistener *l, int err)
{
    int rc = 0;

    if (err == EINTR || err == ECONNABORTED)
        return false;
    if (err == EMFILE || err == ENFILE) {
        rc = worker_refuse_no_fd(w, l, err);
        if (rc >= 0)
            return rc == 0; /* answered: go on; queue empty: done */
        err = rc == -EMFILE ? err : -rc;
    }
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        log_err("event=accept_failed error=\"%s\" open=%zu "
                "action=pause_500ms", strerror(err), w->n_conns);
        worker_accepting(w, false);
        ev_timer_set(&w->accept_retry, 0.5, 0.);
        ev_timer_start(w->loop, &w->accept_retry);
    }
    return true;
}

/* The [admin] listener: a batch per wakeup, so a burst of scrapes is not
   served one per loop turn. */
static void
worker_accept_admin(struct worker *w, struct wlistener *l)
{
    for (int i = 0; i < WORKER_ACCEPTS_PER_WAKEUP; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd >= 0)
            admin_accept(w, fd);
        else if (worker_accept_failed(w, l, errno))
            return;
    }
}

static void
worker_on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
    struct wlistener *l = container_of(io, struct wlistener, io);
    struct worker *w = l->w;
    int budget = w->n_slots > 1 ? 4 : WORKER_ACCEPTS_PER_WAKEUP;

    (void)revents;
    if (l->admin) {
        worker_accept_admin(w, l);
        return;
    }
    /* A reuseport socket is this slot's alone: stepping back would only
       leave its queue waiting. */
    if (!l->cfg->reuseport && worker_over_share(w)) {
        worker_accepting(w, false);
        ev_timer_set(&w->accept_retry, 0.001, 0.);
        ev_timer_start(loop, &w->accept_retry);
        return;
    }
    for (int i = 0; i < budget; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (worker_accept_failed(w, l, errno))
                return;
            continue;
        }
        if (w->n_conns >= w->max_conns) {
            worker_refuse_full(w, fd);
            continue;
        }
        if (conn_new(w, fd, (struct sockaddr *)&ss, sl, l->tls) == NULL)
            close(fd);
    }
}

/* ---- Stopping ---------------------------------------------------------- */

void
worker_stop_accepting(struct worker *w)
{
    worker_accepting(w, false);
    ev_timer_stop(w->loop, &w->accept_retry);
}

void
worker_close_listeners(struct worker *w)
{
    worker_stop_accepting(w);
    for (size_t i = 0; i < w->n_listeners; i++) {
        if (w->listeners[i].fd >= 0)
            close(w->listeners[i].fd);
        w->listeners[i].fd = -1;
    }
}

void
worker_fast_stop(struct worker *w)
{
    log_info("event=fast_stop open=%zu", w->n_conns);
    w->stopping = true;
    worker_close_listeners(w);
    while (!list_empty(&w->conns))
        conn_abort(container_of(w->conns.next, struct conn, link));
    ev_break(w->loop, EVBREAK_ALL);
}

static void
worker_on_stop_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = container_of(t, struct worker, stop_timer);

    (void)revents;
    log_info("event=shutdown_timeout open=%zu action=abort", w->n_conns);
    while (!list_empty(&w->conns))
        conn_abort(container_of(w->conns.next, struct conn, link));
    ev_break(loop, EVBREAK_ALL);
}

void
worker_shutdown(struct worker *w, uint16_t code, uint32_t timeout_ms)
{
    struct list *l, *next;

    if (w->shutting_down)
        return;
    /* Also during a reload drain: the server is stopping now. */
    w->shutting_down = true;
    w->stopping = true;
    /* Stopping, not reloading: nobody will accept on these again, so a
       new client is refused now instead of waiting in a backlog for a
       reset. Our copy closes; the master closes its own. */
    worker_close_listeners(w);
    ev_timer_stop(w->loop, &w->stop_timer);
    log_info("event=shutdown open=%zu code=%u", w->n_conns, code);
    for (l = w->conns.next; l != &w->conns; l = next) {
        next = l->next;
        conn_shutdown(container_of(l, struct conn, link), code);
    }
    ev_timer_set(&w->stop_timer, timeout_ms / 1000.0, 0.);
    ev_timer_start(w->loop, &w->stop_timer);
    worker_conn_gone(w);
}

/* ---- Reload drain ----------------------------------------------------- */

static void
drain_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = container_of(t, struct worker, drain_timer);
    size_t batch;

    (void)loop;
    (void)revents;
    /* Spread the 1012s so the clients do not all reconnect at once. */
    if (w->drain_ticks_left <= 1)
        batch = w->n_conns;
    else
        batch = (w->n_conns + w->drain_ticks_left - 1) / w->drain_ticks_left;
    if (w->drain_ticks_left > 0)
        w->drain_ticks_left--;
    for (struct list *l = w->conns.next; l != &w->conns && batch > 0;) {
        struct conn *c = container_of(l, struct conn, link);

        l = l->next;
        if (c->state == CONN_OPEN || c->state == CONN_HANDSHAKE) {
            conn_shutdown(c, 1012);
            batch--;
        }
    }
    if (w->n_conns > 0) {
        ev_timer_set(t, WORKER_DRAIN_TICK, 0.);
        ev_timer_start(w->loop, t);
    }
}

/*
 * Reload drain (the master's quit): stop accepting now, give every app a
 * SOCK_INFO_DRAIN, after drain_timeout close the rest with 1012 spread
 * over drain_spread, exit by worker_shutdown_timeout at the latest.
 */
static void
worker_drain(struct worker *w)
{
    const struct server_cfg *s = &w->cfg->server;

    if (w->stopping)
        return;
    w->draining = true;
    worker_stop_accepting(w);
    wctl_send(w, CHAN_DRAINING); /* the master answers the reload now */
    /* Our copies of the listening sockets go: a reuseport socket of a slot
       the new generation no longer has must leave the kernel's group. */
    worker_close_listeners(w);
    log_info("event=drain open=%zu drain_timeout_ms=%u", w->n_conns,
             s->drain_timeout_ms);
    for (struct list *l = w->conns.next; l != &w->conns; l = l->next) {
        struct conn *c = container_of(l, struct conn, link);

        if (c->state == CONN_OPEN)
            conn_enqueue_info(c, SOCK_INFO_DRAIN, 0, 0, NULL, NULL, false);
    }
    w->drain_ticks_left = (unsigned)(s->drain_spread_ms / 1000.0 /
                                     WORKER_DRAIN_TICK) + 1;
    ev_init(&w->drain_timer, drain_tick);
    ev_timer_set(&w->drain_timer, s->drain_timeout_ms / 1000.0, 0.);
    ev_timer_start(w->loop, &w->drain_timer);
    /* The hard cap: worker_shutdown_timeout after the drain began. */
    w->stopping = true;
    ev_timer_set(&w->stop_timer, s->worker_shutdown_timeout_ms / 1000.0, 0.);
    ev_timer_start(w->loop, &w->stop_timer);
    worker_conn_gone(w);
}

/* The master's stop, or the master gone (wctl.c). */
static void
worker_ctl_stop(struct worker *w)
{
    worker_shutdown(w, 0,
                    w->cfg->server.shutdown_timeout_ms);
}

static const struct wctl_ops worker_ctl_ops = {
    .drain = worker_drain,
    .stop = worker_ctl_stop,
    .fast = worker_fast_stop,
};

static void
worker_on_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
    struct worker *w = s->data;

    (void)revents;
    (void)loop;
    if (s->signum == SIGINT) {
        worker_fast_stop(w);
        return;
    }
    worker_shutdown(w, 0,
                    w->cfg->server.shutdown_timeout_ms);
}

void
worker_bus_deliver(void *ctx, const struct bus_msg *m)
{
    switch (m->type) {
    case BUS_ADMIN:
        admin_bus_request(ctx, m);
        break;
    case BUS_ADMIN_REPLY:
        admin_bus_reply(ctx, m);
        break;
    default:
        messaging_bus_deliver(ctx, m);
        break;
    }
}

/*
 * The bridge to other machines (DESIGN §5.3), once the loop, the apps
 * and the final stats slot exist (§4.4). Without it the worker still
 * serves its own machine, so a failure is logged, not fatal.
 */
static void
worker_start_redis(struct worker *w)
{
    static const struct redis_ops ops = { .deliver = worker_bus_deliver };
    const struct redis_cfg *rc = &w->cfg->redis;
    char err[256], host[128] = "", instance[256];
    pid_t master = w->cfg->server.workers != 0 ? getppid() : getpid();
    struct procstat ps = { 0 };

    if (rc->address == NULL || w->redis != NULL)
        return;
    /* The same for every worker of this sockd, across reloads; another
       sockd (another master, here or elsewhere) differs. */
    gethostname(host, sizeof(host) - 1);
    procstat_read(master, &ps);
    snprintf(instance, sizeof(instance), "%s:%d:%.2f", host, (int)master,
             ps.start_time);
    w->redis = redis_new(w->loop, rc->address, rc->prefix, rc->password,
                         instance, w->node, w->generation, w->slot, &ops, w,
                         &w->stats->redis, err, sizeof(err));
    if (w->redis == NULL)
        log_err("event=redis_failed error=\"%s\"", err);
}

/*
 * Each route's app setup, once per worker (a module on two routes is set
 * up twice, with each route's options). A failure stays local to its
 * route: the others serve on, and a reload retries.
 */
static void
worker_setup_apps(struct worker *w)
{
    for (size_t i = 0; i < w->n_routes; i++) {
        struct route_rt *r = &w->routes[i];
        int rc;

        if (!sock_app_has_v2(r->app) || r->app->setup == NULL) {
            r->setup_done = true;
            continue;
        }
        rc = r->app->setup(&r->opts);
        if (rc == 0) {
            r->setup_done = true;
            continue;
        }
        r->setup_failed = true;
        log_err("event=app_setup_failed route=%s app=%s error=\"%s\" "
                "action=refuse_503", r->cfg->path, r->app->name,
                strerror(rc < 0 ? -rc : EINVAL));
    }
}

/* The teardown of every app whose setup succeeded, once. */
static void
worker_teardown_apps(struct worker *w)
{
    for (size_t i = 0; i < w->n_routes; i++) {
        struct route_rt *r = &w->routes[i];

        if (!r->setup_done)
            continue;
        r->setup_done = false;
        if (sock_app_has_v2(r->app) && r->app->teardown != NULL)
            r->app->teardown(&r->opts);
    }
}

void
worker_start(struct worker *w)
{
    ev_signal *sigs[] = { &w->sig_term, &w->sig_quit, &w->sig_int };
    int nums[] = { SIGTERM, SIGQUIT, SIGINT };

    for (size_t i = 0; i < 3; i++) {
        ev_signal_init(sigs[i], worker_on_signal, nums[i]);
        sigs[i]->data = w;
        ev_signal_start(w->loop, sigs[i]);
    }
    worker_setup_apps(w);
    worker_start_redis(w);
    worker_accepting(w, true);
}

/* ---- Sockets ----------------------------------------------------------- */

int
worker_listen(const struct listener_cfg *l)
{
    int fd, one = 1, err;

    fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (l->reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (l->addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) != 0 ||
        listen(fd, l->backlog) != 0) {
        err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

void
worker_sockname(int fd, char *buf, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    ss.ss_family = AF_UNSPEC;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        ss.ss_family = AF_UNSPEC;
    worker_format_addr((struct sockaddr *)&ss, buf, size);
}
