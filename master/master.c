/*
 * master.c: the preforking master's cycle (DESIGN §4, after nginx's
 * ngx_master_process_cycle): generations of workers, reloads with zero
 * downtime, reaping and respawning, stopping, signals and systemd's
 * notify protocol. The parts: listen.c holds the listening sockets,
 * process.c forks a worker, wchan.c talks to the workers (and heartbeats),
 * ctl_server.c answers the control socket. The master never runs
 * application code and never carries message traffic.
 */
#include "master.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#include "apps.h"
#include "channel.h"
#include "common.h"
#include "config.h"
#include "ctl_server.h"
#include "listen.h"
#include "log.h"
#include "master_impl.h"
#include "notify.h"
#include "process.h"
#include "tls.h"
#include "wchan.h"
#include "worker.h"

#define QUICK_CRASH_SECONDS 2.0
#define CRASH_LOOP_LIMIT 5

static const char *const wstate_names[] = { "starting", "ready", "draining",
                                            "gone" };

static void master_maybe_exit(struct master *m);

const char *
master_wstate_name(enum wstate s)
{
    return wstate_names[s];
}

/* ---- Generations and workers ------------------------------------------- */

static int
worker_count(const struct config *cfg)
{
    long n = cfg->server.workers;

    if (n < 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return (int)MIN(n, MAX_SLOTS);
}

static struct wproc *
wproc_by_pid(struct master *m, pid_t pid)
{
    for (struct generation *g = m->gens; g != NULL; g = g->next)
        for (int i = 0; i < g->n; i++)
            if (g->w[i].pid == pid)
                return &g->w[i];
    return NULL;
}

static uint8_t
next_gen_id(struct master *m)
{
    for (int tries = 0; tries < 256; tries++) {
        bool used = false;

        m->last_gen = (uint8_t)(m->last_gen + 1);
        if (m->last_gen == 0)
            m->last_gen = 1;
        for (struct generation *g = m->gens; g != NULL; g = g->next)
            used = used || g->id == m->last_gen;
        if (!used)
            return m->last_gen;
    }
    return 0;
}

static int
shm_row_free(struct master *m)
{
    for (int row = 0; row < MAX_GENERATIONS; row++) {
        bool used = false;

        for (struct generation *g = m->gens; g != NULL; g = g->next)
            used = used || g->row == row;
        if (!used)
            return row;
    }
    return -1;
}

/*
 * A worker is gone: its counters move to the retired slot (the last one),
 * so /metrics totals never go down; its gauges end with it.
 */
/* The retired slot: also where the master counts what happens to workers. */
struct worker_stats *
master_stats_retired(struct master *m)
{
    return &m->stats[MAX_GENERATIONS * MAX_SLOTS];
}

/*
 * A reload (or, with no active generation yet, the start-up) failed:
 * logged as what it was, and reloads counted for /metrics.
 */
static void
report_reload_failed(struct master *m, unsigned gen, const char *why)
{
    const char *event = m->active != NULL ? "reload_failed" : "start_failed";

    if (m->active != NULL) {
        master_stats_retired(m)->generation = 1;
        master_stats_retired(m)->reloads_failed++;
    }
    if (gen != 0)
        log_err("event=%s generation=%u error=\"%s\"", event, gen, why);
    else
        log_err("event=%s error=\"%s\"", event, why);
}

static void
stats_retire(struct master *m, size_t i)
{
    struct worker_stats *r = master_stats_retired(m);
    struct worker_stats *s = &m->stats[i];

    r->generation = 1; /* counted by the summing worker */
    worker_stats_add(r, s);
    memset(s, 0, sizeof(*s));
}

static struct generation *
gen_new(struct master *m, struct config *cfg)
{
    struct generation *g = calloc(1, sizeof(*g));
    int row = shm_row_free(m);

    if (g == NULL)
        return NULL;
    g->id = next_gen_id(m);
    g->cfg = cfg;
    g->n = worker_count(cfg);
    g->w = calloc((size_t)g->n, sizeof(*g->w));
    if (g->w == NULL || g->id == 0 || row < 0) {
        free(g->w);
        free(g);
        return NULL;
    }
    g->row = row;
    g->shm = m->shm + (size_t)row * MAX_SLOTS;
    for (size_t i = 0; i < MAX_SLOTS; i++)
        stats_retire(m, (size_t)row * MAX_SLOTS + i);
    for (int i = 0; i < MAX_SLOTS; i++)
        g->shm[i] = SLOT_DEAD;
    for (int i = 0; i < g->n; i++) {
        g->w[i].g = g;
        g->w[i].slot = i;
        g->w[i].chan = -1;
    }
    g->next = m->gens;
    m->gens = g;
    return g;
}

static void
gen_free(struct master *m, struct generation *g)
{
    struct generation **p;

    for (p = &m->gens; *p != NULL; p = &(*p)->next)
        if (*p == g) {
            *p = g->next;
            break;
        }
    for (int i = 0; i < g->n; i++) {
        ev_timer_stop(m->loop, &g->w[i].respawn);
        ev_io_stop(m->loop, &g->w[i].chan_io);
        if (g->w[i].chan >= 0)
            close(g->w[i].chan);
        free(g->w[i].last_error);
    }
    config_free(g->cfg);
    free(g->w);
    free(g);
}

static int
gen_alive(const struct generation *g)
{
    int n = 0;

    for (int i = 0; i < g->n; i++)
        n += g->w[i].pid > 0;
    return n;
}

static void
notify_status(struct master *m)
{
    int workers = 0;
    unsigned long conns = 0;

    for (struct generation *g = m->gens; g != NULL; g = g->next)
        for (int i = 0; i < g->n; i++)
            if (g->w[i].pid > 0) {
                workers++;
                conns += g->w[i].conns;
            }
    notify_send("STATUS=generation %u, %d workers, %lu connections",
                m->active ? m->active->id : 0, workers, conns);
}

/* ---- Reload -------------------------------------------------------------- */

static void
gen_start_drain(struct master *m, struct generation *g)
{
    g->draining = true;
    for (int i = 0; i < g->n; i++)
        if (g->w[i].pid > 0)
            g->w[i].state = W_DRAINING;
    wchan_send_all(g, CHAN_QUIT);
    log_info("event=generation_draining generation=%u workers=%d", g->id,
             gen_alive(g));
    notify_send("EXTEND_TIMEOUT_USEC=%llu",
                (unsigned long long)g->cfg->server.worker_shutdown_timeout_ms
                    * 1000ULL);
}

/* Answers the reload once every draining worker has stopped accepting
   (or exited), or when the timer gives up waiting. */
void
master_reload_reply_check(struct master *m)
{
    if (m->reload_reply[0] == '\0')
        return;
    for (struct generation *g = m->gens; g != NULL; g = g->next)
        for (int i = 0; g->draining && i < g->n; i++)
            if (g->w[i].pid > 0 && !g->w[i].quit_acked &&
                ev_is_active(&m->reply_timer))
                return;
    ev_timer_stop(m->loop, &m->reply_timer);
    ctl_server_reply_reloads(m, m->reload_reply);
    m->reload_reply[0] = '\0';
}

static void
reply_timer_fired(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct master *m = ev_userdata(loop);

    (void)t;
    (void)revents;
    master_reload_reply_check(m); /* the timer is no longer active: answer */
}

/* A generation's workers all accept: it becomes the active one. */
void
master_gen_ready_check(struct master *m, struct generation *g)
{
    char line[128];

    int given_up = 0;

    for (int i = 0; i < g->n; i++)
        given_up += g->w[i].given_up;
    if (g != m->pending || g->ready + given_up < g->n)
        return;
    if (g->ready == 0) { /* start-up: every slot crash-looped */
        log_err("event=start_failed generation=%u error=\"every worker "
                "failed to start; see the lines above\"", g->id);
        m->pending = NULL;
        g->draining = true;
        m->exit_code = 1;
        m->stopping = true;
        master_maybe_exit(m);
        return;
    }
    m->pending = NULL;
    if (m->active != NULL) {
        gen_start_drain(m, m->active);
        master_stats_retired(m)->generation = 1;
        master_stats_retired(m)->reloads++;
    }
    m->active = g;
    log_set_level(g->cfg->server.log_level); /* a reload may change it */
    listen_prune(m);
    log_info("event=ready generation=%u workers=%d", g->id, g->ready);
    notify_send("READY=1\nMAINPID=%d\nSTATUS=generation %u, %d workers "
                "ready", (int)getpid(), g->id, g->ready);
    snprintf(m->reload_reply, sizeof(m->reload_reply),
             "OK reload: generation %u ready (%d workers)", g->id, g->n);
    (void)line;
    ev_timer_set(&m->reply_timer, 2.0, 0.); /* bound the wait for acks */
    ev_timer_start(m->loop, &m->reply_timer);
    master_reload_reply_check(m);
}

/* The pending generation failed to start: take it down, keep the old. */
static void
gen_abort_pending(struct master *m, const char *why)
{
    struct generation *g = m->pending;
    char line[512];

    m->pending = NULL;
    for (int i = 0; i < g->n; i++) {
        ev_timer_stop(m->loop, &g->w[i].respawn);
        if (g->w[i].pid > 0)
            kill(g->w[i].pid, SIGKILL);
    }
    g->draining = true;
    report_reload_failed(m, g->id, why);
    snprintf(line, sizeof(line), "ERR reload failed: %s; generation %u "
             "keeps serving", why, m->active ? m->active->id : 0);
    ctl_server_reply_reloads(m, line);
    if (m->active == NULL) { /* nothing to fall back on at start-up */
        m->exit_code = 1;
        m->stopping = true;
    } else {
        notify_send("READY=1");
    }
    if (gen_alive(g) == 0)
        gen_free(m, g);
}

static int
gen_spawn_all(struct master *m, struct generation *g, char *err,
              size_t errlen)
{
    for (int i = 0; i < g->n; i++) {
        int rc = process_spawn_worker(m, &g->w[i]);

        if (rc != 0) {
            snprintf(err, errlen, "fork: %s", strerror(-rc));
            return rc;
        }
    }
    return 0;
}

/* What the master can check of the apps without running their code:
   built-in names, and module files that exist and can be read; and the
   TLS files. */
static int
check_app_specs(const struct config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct listener_cfg *l = &cfg->listeners[i];
        char why[512];

        if (l->tls_certificate != NULL &&
            tls_check_listener(l, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "%s:%d: %s", cfg->path, l->line, why);
            return -1;
        }
    }
    for (size_t i = 0; i < cfg->n_routes; i++) {
        char why[512];

        if (apps_check_spec(cfg->routes[i].app, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "%s:%d: %s", cfg->path,
                     cfg->routes[i].app_line, why);
            return -1;
        }
    }
    return 0;
}

/* A reload's config has errors: log them, tell the waiting clients. */
static void
config_refused(struct master *m, char *errors)
{
    size_t cap = (errors ? strlen(errors) * 2 : 0) + 256, len = 0;
    char *reply = malloc(cap), *line = errors, *nl;

    while (line != NULL && (nl = strchr(line, '\n')) != NULL) {
        *nl = '\0';
        log_err("event=config_error message=\"%s\"", line);
        if (reply != NULL)
            len += (size_t)snprintf(reply + len, cap - len, "ERR %s\n", line);
        line = nl + 1;
    }
    if (m->active != NULL) {
        notify_send("READY=1");
        master_stats_retired(m)->generation = 1;
        master_stats_retired(m)->reloads_failed++;
    }
    if (reply != NULL)
        snprintf(reply + len, cap - len, "ERR reload refused: the "
                 "configuration has errors; nothing changed");
    ctl_server_reply_reloads(m, reply ? reply : "ERR reload refused");
    free(reply);
}

/*
 * Starts a generation from the config file (start-up and reloads). On
 * any error nothing changes; the error goes to the log and to ctl clients
 * waiting for the reload.
 */
int
master_reload(struct master *m)
{
    char *errors = NULL, err[1024];
    struct config *cfg;
    struct generation *g;

    if (m->pending != NULL || m->stopping)
        return -EBUSY;
    if (m->active != NULL)
        notify_send("RELOADING=1\nMONOTONIC_USEC=%llu",
                    (unsigned long long)notify_monotonic_usec());
    cfg = config_load(m->cfg_path, &errors);
    if (cfg == NULL) {
        config_refused(m, errors);
        free(errors);
        return -EINVAL;
    }
    if (check_app_specs(cfg, err, sizeof(err)) != 0) {
        char line[1100];

        report_reload_failed(m, 0, err);
        snprintf(line, sizeof(line), "ERR %s\nERR reload refused; nothing "
                 "changed", err);
        ctl_server_reply_reloads(m, line);
        config_free(cfg);
        if (m->active != NULL)
            notify_send("READY=1");
        return -EINVAL;
    }
    err[0] = '\0';
    if (listen_prepare(m, cfg, worker_count(cfg), err, sizeof(err)) != 0 ||
        (g = gen_new(m, cfg)) == NULL) {
        char line[1200];

        if (err[0] == '\0')
            snprintf(err, sizeof(err), "too many generations alive (%d): "
                     "wait for the old ones to drain", MAX_GENERATIONS);
        report_reload_failed(m, 0, err);
        snprintf(line, sizeof(line), "ERR %s\nERR reload refused; nothing "
                 "changed", err);
        ctl_server_reply_reloads(m, line);
        config_free(cfg);
        if (m->active != NULL)
            notify_send("READY=1");
        return -EINVAL;
    }
    m->pending = g;
    log_info("event=generation_start generation=%u workers=%d", g->id, g->n);
    wchan_heartbeat_arm(m);
    if (gen_spawn_all(m, g, err, sizeof(err)) != 0)
        gen_abort_pending(m, err);
    return 0;
}

/* ---- Reaping and respawning -------------------------------------------- */

static void
wproc_on_respawn(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct wproc *w = container_of(t, struct wproc, respawn);
    struct master *m = ev_userdata(loop);

    (void)revents;
    if (m->stopping || w->g->draining || w->pid > 0)
        return;
    if (process_spawn_worker(m, w) != 0)
        log_err("event=respawn_failed generation=%u slot=%d", w->g->id,
                w->slot);
}

static void
master_maybe_exit(struct master *m)
{
    for (struct generation *g = m->gens, *next; g != NULL; g = next) {
        next = g->next;
        if (g->draining && gen_alive(g) == 0 && g != m->pending) {
            log_info("event=generation_gone generation=%u", g->id);
            gen_free(m, g);
        }
    }
    if (m->stopping) {
        bool any = false;

        for (struct generation *g = m->gens; g != NULL; g = g->next)
            any = any || gen_alive(g) > 0;
        if (!any)
            ev_break(m->loop, EVBREAK_ALL);
    }
}

static void
wproc_exited(struct master *m, struct wproc *w, int status)
{
    struct generation *g = w->g;

    /* What it said before exiting (an "error ...") may not be read yet. */
    wchan_read_last(m, w);
    bool quick = ev_time() - w->started < QUICK_CRASH_SECONDS;
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;

    if (w->state == W_STARTING && g == m->pending && !m->stopping &&
        m->active != NULL) {
        char why[512];

        snprintf(why, sizeof(why), "worker slot %d of generation %u exited "
                 "with status %d before accepting%s%s", w->slot, g->id,
                 WIFEXITED(status) ? WEXITSTATUS(status)
                                   : 128 + WTERMSIG(status),
                 w->last_error ? ": " : "",
                 w->last_error ? w->last_error : "");
        w->pid = 0;
        w->state = W_GONE;
        gen_abort_pending(m, why);
        return;
    }
    if (w->state != W_STARTING)
        wchan_announce_gone(m, w);
    w->pid = 0;
    w->conns = 0;
    if (w->state == W_READY)
        g->ready--;
    w->state = W_GONE;
    if (w->chan >= 0) {
        ev_io_stop(m->loop, &w->chan_io);
        close(w->chan);
        w->chan = -1;
    }
    g->shm[w->slot] = SLOT_DEAD;
    stats_retire(m, (size_t)g->row * MAX_SLOTS + (size_t)w->slot);
    if (!clean && !m->stopping)
        master_stats_retired(m)->workers_died++;
    if (m->stopping || g->draining ||
        (clean && g != m->active && g != m->pending))
        return;
    /* An active worker died: replace it, backing off if it crash-loops. */
    w->quick_crashes = quick ? w->quick_crashes + 1 : 0;
    if (w->quick_crashes >= CRASH_LOOP_LIMIT) {
        w->given_up = true;
        log_err("event=slot_crash_loop generation=%u slot=%d crashes=%d "
                "action=give_up%s%s", g->id, w->slot, w->quick_crashes,
                w->last_error ? " error=" : "",
                w->last_error ? w->last_error : "");
        master_gen_ready_check(m, g);
        return;
    }
    double delay = w->quick_crashes == 0 ? 0.
                   : 0.1 * (double)(1 << (w->quick_crashes - 1));
    log_warn("event=worker_died generation=%u slot=%d status=%d "
             "respawn_in_ms=%d", g->id, w->slot, status, (int)(delay * 1000));
    ev_timer_init(&w->respawn, wproc_on_respawn, delay, 0.);
    ev_timer_start(m->loop, &w->respawn);
}

static void
master_on_child(struct ev_loop *loop, ev_child *c, int revents)
{
    struct master *m = ev_userdata(loop);
    struct wproc *w = wproc_by_pid(m, c->rpid);

    (void)revents;
    if (w != NULL) {
        log_info("event=worker_exit generation=%u slot=%d child=%d "
                 "status=%d", w->g->id, w->slot, c->rpid, c->rstatus);
        wproc_exited(m, w, c->rstatus);
    }
    notify_status(m);
    master_reload_reply_check(m);
    master_maybe_exit(m);
}

/* ---- Stopping ------------------------------------------------------------ */

static void
master_on_kill_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct master *m = ev_userdata(loop);

    (void)t;
    (void)revents;
    for (struct generation *g = m->gens; g != NULL; g = g->next)
        for (int i = 0; i < g->n; i++)
            if (g->w[i].pid > 0) {
                log_warn("event=worker_killed generation=%u slot=%d "
                         "reason=stop_timeout", g->id, i);
                kill(g->w[i].pid, SIGKILL);
            }
}

void
master_stop(struct master *m, bool fast)
{
    uint32_t grace;

    if (m->stopping && (!fast || m->fast))
        return;
    m->stopping = true;
    m->fast = fast;
    notify_send("STOPPING=1");
    if (m->pending != NULL) {
        m->pending->draining = true;
        m->pending = NULL;
        ctl_server_reply_reloads(m,
                                 "ERR reload cancelled: sockd is stopping");
    }
    grace = fast ? 1000 : m->active ? m->active->cfg->server.shutdown_timeout_ms
                                    : 1000;
    log_info("event=stopping mode=%s", fast ? "fast" : "graceful");
    /* Nobody will accept again: with our copies closed (and the workers
       closing theirs) a new client is refused at once instead of sitting
       in a backlog until the last worker exits and it gets a reset. A
       reload never comes here: the sockets outlive generations. */
    listen_close_all(m);
    notify_send("EXTEND_TIMEOUT_USEC=%llu",
                (unsigned long long)(grace + 2000) * 1000ULL);
    for (struct generation *g = m->gens; g != NULL; g = g->next)
        wchan_send_all(g, fast ? CHAN_FAST : CHAN_STOP);
    ev_timer_stop(m->loop, &m->kill_timer);
    ev_timer_set(&m->kill_timer, grace / 1000.0 + 1.0, 0.);
    ev_timer_start(m->loop, &m->kill_timer);
    master_maybe_exit(m);
}

static void
master_on_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
    struct master *m = ev_userdata(loop);

    (void)revents;
    switch (s->signum) {
    case SIGHUP:
        log_info("event=reload_requested source=SIGHUP");
        master_reload(m);
        break;
    case SIGTERM:
    case SIGQUIT:
        master_stop(m, false);
        break;
    case SIGINT:
        master_stop(m, true);
        break;
    case SIGUSR1:
        log_reopen(m->active ? m->active->cfg->server.log_file : NULL);
        for (struct generation *g = m->gens; g != NULL; g = g->next)
            wchan_send_all(g, CHAN_REOPEN);
        break;
    }
}

static void
master_on_watchdog(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
    /* The loop turning is the master's health: it answers signals, the
       control socket and its children from here. */
    notify_send("WATCHDOG=1");
}

void
master_stop_watchers(struct master *m)
{
    ev_signal *sigs[] = { &m->sig_hup, &m->sig_term, &m->sig_quit,
                          &m->sig_int, &m->sig_usr1 };

    for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
        ev_signal_stop(m->loop, sigs[i]);
    ev_child_stop(m->loop, &m->child);
    ev_io_stop(m->loop, &m->ctl_io);
    ev_timer_stop(m->loop, &m->kill_timer);
    ev_timer_stop(m->loop, &m->watchdog);
    ev_timer_stop(m->loop, &m->reply_timer);
    ev_timer_stop(m->loop, &m->heartbeat);
}

/* ---- Start-up ------------------------------------------------------------ */

static void
master_start_watchers(struct master *m, uint64_t watchdog_usec)
{
    struct { ev_signal *w; int sig; } sigs[] = {
        { &m->sig_hup, SIGHUP }, { &m->sig_term, SIGTERM },
        { &m->sig_quit, SIGQUIT }, { &m->sig_int, SIGINT },
        { &m->sig_usr1, SIGUSR1 },
    };

    for (size_t i = 0; i < ARRAY_SIZE(sigs); i++) {
        ev_signal_init(sigs[i].w, master_on_signal, sigs[i].sig);
        ev_signal_start(m->loop, sigs[i].w);
    }
    ev_child_init(&m->child, master_on_child, 0, 0);
    ev_child_start(m->loop, &m->child);
    ev_init(&m->kill_timer, master_on_kill_timer);
    ev_init(&m->reply_timer, reply_timer_fired);
    ev_init(&m->heartbeat, wchan_on_heartbeat);
    if (watchdog_usec > 0) {
        ev_timer_init(&m->watchdog, master_on_watchdog, 0.,
                      watchdog_usec / 2e6);
        ev_timer_start(m->loop, &m->watchdog);
    }
}

static void
master_cleanup(struct master *m)
{
    ctl_server_close(m);
    while (m->gens != NULL)
        gen_free(m, m->gens);
    listen_close_all(m);
    master_stop_watchers(m);
    free(m->activated);
    notify_close();
    if (m->shm != NULL)
        munmap((void *)m->shm, MAX_GENERATIONS * MAX_SLOTS * sizeof(uint32_t));
    if (m->stats != NULL && m->stats != MAP_FAILED)
        munmap(m->stats,
               (MAX_GENERATIONS * MAX_SLOTS + 1) * sizeof(*m->stats));
}

int
master_run(const char *cfg_path, const struct config *first)
{
    struct master m = { .cfg_path = strdup(cfg_path), .ctl_fd = -1 };
    uint64_t watchdog;
    char err[1024];

    log_set_role("master", -1);
    watchdog = notify_open();
    m.loop = ev_default_loop(EVFLAG_AUTO);
    m.shm = mmap(NULL, MAX_GENERATIONS * MAX_SLOTS * sizeof(uint32_t),
                 PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    m.stats = mmap(NULL, (MAX_GENERATIONS * MAX_SLOTS + 1) * sizeof(*m.stats),
                   PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m.loop == NULL || m.shm == MAP_FAILED || m.stats == MAP_FAILED ||
        m.cfg_path == NULL) {
        fprintf(stderr, "sockd: cannot set up the master\n");
        free(m.cfg_path);
        return 1;
    }
    ev_set_userdata(m.loop, &m);
    if (ctl_server_listen(&m, first->server.runtime_dir, first->server.user,
                          err, sizeof(err)) != 0) {
        fprintf(stderr, "sockd: %s\n", err);
        goto fail;
    }
    listen_take_activated(&m);
    if (tls_ticket_keys_generate(&m.ticket_keys) != 0) {
        fprintf(stderr, "sockd: cannot make TLS ticket keys\n");
        goto fail;
    }
    master_start_watchers(&m, watchdog);
    if (master_reload(&m) != 0)
        goto fail;
    listen_drop_unused_activated(&m);
    ev_run(m.loop, 0);
    log_info("event=exit code=%d", m.exit_code);
    master_cleanup(&m);
    free(m.cfg_path);
    return m.exit_code;

fail:
    master_cleanup(&m);
    free(m.cfg_path);
    return 1;
}
