/*
 * master.c: the preforking master (DESIGN §4): it owns the listening
 * sockets, forks generations of workers, reaps and respawns them, reloads
 * with zero downtime, answers signals and the control socket, and speaks
 * systemd's notify protocol. It never runs application code and never
 * carries message traffic.
 */
#include "master.h"

#include <dirent.h>
#include <grp.h>
#include <pwd.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#include "apps.h"
#include "bus.h"
#include "common.h"
#include "config.h"
#include "ctl.h"
#include "leakcheck.h"
#include "log.h"
#include "messaging.h"
#include "notify.h"
#include "tls.h"
#include "wctl.h"
#include "worker.h"

#define MAX_GENERATIONS 4      /* alive at once: shm rows */
#define MAX_SLOTS 256
#define QUICK_CRASH_SECONDS 2.0
#define CRASH_LOOP_LIMIT 5
#define CTL_LINE_MAX 256
#define HEARTBEAT_MIN_INTERVAL 0.1 /* seconds between pings, at least */
#define STARTUP_GRACE 60.0  /* seconds from spawn to "ready", at least */

enum wstate { W_STARTING, W_READY, W_DRAINING, W_GONE };

static const char *const wstate_names[] = { "starting", "ready", "draining",
                                            "gone" };

struct generation;

struct wproc {
    struct generation *g;
    int slot;
    pid_t pid;
    enum wstate state;
    int chan;
    ev_io chan_io;
    ev_timer respawn;
    ev_tstamp started;
    int quick_crashes;
    bool given_up;
    uint32_t conns;
    char *last_error;     /* what the worker said before failing to start */
    bool quit_acked;      /* said "draining": it accepts no more */
    uint32_t incarnation; /* spawns of this slot in this generation */
    bool looping;         /* said "ready": its loop runs, it gets pings */
    ev_tstamp ping_wait;  /* when the oldest unanswered ping went; 0: none */
    bool hung;            /* killed for silence, not reaped yet */
};

struct generation {
    struct generation *next;
    uint8_t id;
    struct config *cfg;
    int n;                    /* worker slots */
    struct wproc *w;
    int ready;
    bool draining;
    int *fds;                 /* per listener (x slot with reuseport) */
    int fds_per_listener;
    volatile uint32_t *shm;   /* this generation's row of counts */
    int row;
};

struct ctl_client {
    struct ctl_client *next;
    struct master *m;
    int fd;
    ev_io io;
    ev_timer timeout;
    char line[CTL_LINE_MAX];
    size_t len;
    enum { CTL_READING, CTL_WAIT_RELOAD, CTL_WAIT_STOP } state;
};

/* A listening socket the master holds, reused across reloads. */
struct mlisten {
    struct mlisten *next;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    bool reuseport;
    int *fds;                 /* 1, or one per slot with reuseport */
    int nfds;
    int backlog;
    bool used;                /* by the newest config */
};

struct master {
    struct ev_loop *loop;
    char *cfg_path;
    struct generation *gens;  /* newest first */
    struct generation *active;
    struct generation *pending; /* a reload's generation until it is ready */
    struct mlisten *listens;
    uint8_t last_gen;
    volatile uint32_t *shm;   /* MAX_GENERATIONS x MAX_SLOTS counts */
    struct worker_stats *stats; /* MAX_GENERATIONS x MAX_SLOTS, shared */
    int ctl_fd;
    char ctl_sock[108];
    ev_io ctl_io;
    struct ctl_client *clients;
    ev_signal sig_hup, sig_term, sig_quit, sig_int, sig_usr1;
    ev_child child;
    ev_timer kill_timer, watchdog;
    ev_timer heartbeat;       /* pings the workers (worker_heartbeat_timeout) */
    uint64_t ping_seq;
    bool stopping, fast;
    int exit_code;
    int *activated;           /* LISTEN_FDS passed by systemd */
    struct tls_ticket_keys ticket_keys; /* made once, kept across reloads */
    char reload_reply[128];   /* held until the old generation stopped
                                 accepting, so a client that connects
                                 after 'sockd -s reload' returns always
                                 reaches the new one */
    ev_timer reply_timer;
    int n_activated;
};

static void gen_ready_check(struct master *m, struct generation *g);
static void reload_reply_check(struct master *m);
static void master_maybe_exit(struct master *m);
static void ctl_reply_reloads(struct master *m, const char *line);

/* ---- Listening sockets ------------------------------------------------- */

static bool
same_addr(const struct sockaddr_storage *a, socklen_t al,
          const struct sockaddr_storage *b, socklen_t bl)
{
    return al == bl && memcmp(a, b, al) == 0;
}

/* A socket systemd passed for this address, taken over (-1 if none). */
static int
take_activated(struct master *m, const struct listener_cfg *l)
{
    for (int i = 0; i < m->n_activated; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);

        if (m->activated[i] < 0)
            continue;
        memset(&ss, 0, sizeof(ss));
        if (getsockname(m->activated[i], (struct sockaddr *)&ss, &sl) == 0 &&
            same_addr(&ss, sl, &l->addr, l->addrlen)) {
            int fd = m->activated[i];

            m->activated[i] = -1;
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
            fcntl(fd, F_SETFD, FD_CLOEXEC);
            return fd;
        }
    }
    return -1;
}

static struct mlisten *
mlisten_find(struct master *m, const struct listener_cfg *l)
{
    for (struct mlisten *ml = m->listens; ml != NULL; ml = ml->next)
        if (ml->reuseport == l->reuseport &&
            same_addr(&ml->addr, ml->addrlen, &l->addr, l->addrlen))
            return ml;
    return NULL;
}

/* Opens l's socket(s) if not open yet (want of them); marks it used. */
static int
listen_prepare_one(struct master *m, const struct config *cfg,
                   const struct listener_cfg *l, int want, int line,
                   const char *address, char *err, size_t errlen)
{
    struct mlisten *ml = mlisten_find(m, l);

    if (ml == NULL) {
        ml = calloc(1, sizeof(*ml));
        if (ml == NULL)
            return -ENOMEM;
        ml->addr = l->addr;
        ml->addrlen = l->addrlen;
        ml->reuseport = l->reuseport;
        ml->next = m->listens;
        m->listens = ml;
    }
    ml->used = true;
    /* Fewer workers: sockets of slots that no longer exist would keep
       receiving connections nobody accepts; the old workers close their
       copies as they drain. */
    while (ml->reuseport && ml->nfds > want)
        close(ml->fds[--ml->nfds]);
    if (ml->nfds >= want)
        return 0;
    int *fds = realloc(ml->fds, (size_t)want * sizeof(int));

    if (fds == NULL)
        return -ENOMEM;
    ml->fds = fds;
    for (; ml->nfds < want; ml->nfds++) {
        int fd = l->reuseport ? -1 : take_activated(m, l);
        char name[80];

        if (fd < 0)
            fd = worker_listen(l);
        if (fd < 0) {
            snprintf(err, errlen, "%s:%d: cannot listen on %s: %s",
                     cfg->path, line, address, strerror(-fd));
            return fd;
        }
        ml->fds[ml->nfds] = fd;
        if (ml->nfds == 0) {
            worker_sockname(fd, name, sizeof(name));
            log_info("event=listening addr=%s reuseport=%s", name,
                     l->reuseport ? "on" : "off");
        }
    }
    return 0;
}

/* Opens what cfg needs that is not open yet; marks what it uses. */
static int
listens_prepare(struct master *m, const struct config *cfg, int nworkers,
                char *err, size_t errlen)
{
    int rc;

    for (struct mlisten *ml = m->listens; ml != NULL; ml = ml->next)
        ml->used = false;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct listener_cfg *l = &cfg->listeners[i];

        rc = listen_prepare_one(m, cfg, l, l->reuseport ? nworkers : 1,
                                l->line, l->address, err, errlen);
        if (rc != 0)
            return rc;
    }
    if (cfg->admin.listen != NULL)
        return listen_prepare_one(m, cfg, &cfg->admin.l, 1, cfg->admin.line,
                                  cfg->admin.listen, err, errlen);
    return 0;
}

/* Closes sockets the newest config no longer uses (old workers keep
   their own copies until they exit). */
static void
listens_prune(struct master *m)
{
    struct mlisten **p = &m->listens;

    while (*p != NULL) {
        struct mlisten *ml = *p;

        if (ml->used) {
            p = &ml->next;
            continue;
        }
        for (int i = 0; i < ml->nfds; i++)
            close(ml->fds[i]);
        *p = ml->next;
        free(ml->fds);
        free(ml);
    }
}

/* The listening fds a worker of g in slot uses, in config order, then the
   admin one; returns how many. */
static size_t
gen_fds_for_slot(struct master *m, struct generation *g, int slot, int *out)
{
    size_t n = 0;

    for (size_t i = 0; i < g->cfg->n_listeners; i++) {
        struct mlisten *ml = mlisten_find(m, &g->cfg->listeners[i]);

        out[n++] = ml->reuseport ? ml->fds[slot % ml->nfds] : ml->fds[0];
    }
    if (g->cfg->admin.listen != NULL)
        out[n++] = mlisten_find(m, &g->cfg->admin.l)->fds[0];
    return n;
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

static void
wproc_send(struct wproc *w, const char *cmd)
{
    if (w->chan >= 0)
        send(w->chan, cmd, strlen(cmd), MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void
gen_send_all(struct generation *g, const char *cmd)
{
    for (int i = 0; i < g->n; i++)
        if (g->w[i].pid > 0)
            wproc_send(&g->w[i], cmd);
}

/* Closes every fd but the listeners, the channel and stdio (the child
   must not hold the master's control socket, other channels, ...). */
static void
child_close_fds(const int *keep, size_t nkeep)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int dfd = d ? dirfd(d) : -1;

    while (d != NULL && (e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        bool kept = fd <= 2 || fd == dfd || e->d_name[0] == '.';

        for (size_t i = 0; i < nkeep && !kept; i++)
            kept = keep[i] == fd;
        if (!kept)
            close(fd);
    }
    if (d != NULL)
        closedir(d);
}

static void master_stop_watchers(struct master *m);

/* Workers drop root for `user =`; the master keeps it to bind and to
   re-read root-only files on reload. */
static int
child_drop_privileges(const struct config *cfg)
{
    const char *user = cfg->server.user;
    struct passwd *pw;

    if (user == NULL || geteuid() != 0)
        return 0;
    pw = getpwnam(user);
    if (pw == NULL) {
        log_err("event=user_unknown user=%s", user);
        return -1;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 ||
        setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        log_err("event=setuid_failed user=%s error=\"%s\"", user,
                strerror(errno));
        return -1;
    }
    return 0;
}

static void
bus_path(const struct generation *g, int slot, char *buf, size_t size)
{
    snprintf(buf, size, "%s/bus-%u-%d.sock", g->cfg->server.runtime_dir,
             g->id, slot);
}

/* The worker's end of the bus; its peers come over the channel. */
static int
child_open_bus(struct worker *w, const struct generation *g, int slot,
               int chan)
{
    static const struct bus_ops ops = { .deliver = messaging_bus_deliver };
    char path[512], err[256];

    bus_path(g, slot, path, sizeof(path));
    w->bus = bus_new(w->loop, (uint32_t)g->id << 8 | (uint32_t)slot, path,
                     &ops, w, err, sizeof(err));
    if (w->bus != NULL)
        return 0;
    log_err("event=bus_failed path=%s error=\"%s\"", path, err);
    dprintf(chan, "error bus: %.100s", err);
    return -1;
}

/* The child side of a fork: a fresh loop, then the worker (DESIGN §4.4). */
static void __attribute__((noreturn))
child_run(struct master *m, struct generation *g, int slot, int chan)
{
    size_t nl;
    int *keep = calloc(g->cfg->n_listeners + 2, sizeof(int));
    struct ev_loop *loop;
    struct worker *w;
    char err[1024];
    sigset_t none;

    if (keep == NULL)
        _exit(70);
    master_stop_watchers(m);
    ev_loop_destroy(EV_DEFAULT);
    nl = gen_fds_for_slot(m, g, slot, keep);
    keep[nl] = chan;
    child_close_fds(keep, nl + 1);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    prctl(PR_SET_NAME, "sockd: worker");
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    log_set_role("worker", slot);
    log_set_level(g->cfg->server.log_level); /* its generation's config */
    loop = ev_default_loop(EVFLAG_AUTO);
    w = loop ? worker_new(loop, g->cfg, keep, g->id, (uint8_t)slot, err,
                          sizeof(err))
             : NULL;
    /* Certificates are read now, as root if we started as root, so a
       reload re-reads them; then privileges go, and only then is any app
       module loaded. */
    if (w != NULL && (worker_load_tls(w, &m->ticket_keys, err,
                                      sizeof(err)) != 0 ||
                      child_drop_privileges(g->cfg) != 0 ||
                      worker_load_apps(w, err, sizeof(err)) != 0)) {
        worker_free(w);
        w = NULL;
    }
    if (w == NULL) {
        log_err("event=worker_start_failed generation=%u error=\"%s\"",
                g->id, loop ? err : "no event loop");
        dprintf(chan, "error %.100s", loop ? err : "no event loop");
        _exit(78);
    }
    if (child_open_bus(w, g, slot, chan) != 0)
        _exit(78);
    /* A respawned slot must never hand out its predecessor's ids
       (DESIGN §5.1): each incarnation has its own serial range. */
    w->next_serial = (g->w[slot].incarnation - 1) << 24;
    w->shm_counts = g->shm;
    w->shm_counts[slot] = 0;
    w->n_slots = (unsigned)g->n;
    worker_share_stats(w, m->stats, MAX_GENERATIONS * MAX_SLOTS + 1,
                       (size_t)g->row * MAX_SLOTS + (size_t)slot);
    worker_start(w);
    wctl_attach(w, chan);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    ev_run(loop, 0);
    log_info("event=worker_exit generation=%u accepted=%llu opened=%llu",
             g->id, (unsigned long long)w->stats->accepted,
             (unsigned long long)w->stats->opened);
    worker_free(w);
    free(keep);
    ev_loop_destroy(loop);
    /* _exit skips the leak check exit() runs in a sanitizer build, and
       exit() would run the master's atexit work in a worker. */
    _exit(leakcheck_found_leaks() ? LEAKCHECK_EXIT_STATUS : 0);
}

static void wproc_on_chan(struct ev_loop *loop, ev_io *io, int revents);

static int
wproc_spawn(struct master *m, struct wproc *w)
{
    int sv[2];
    sigset_t all, old;
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    /* No signal may run a master handler in the child before it has
       its own loop. */
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    w->incarnation++; /* before fork: the child reads it */
    pid = fork();
    if (pid == 0) {
        close(sv[0]);
        child_run(m, w->g, w->slot, sv[1]);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        return -errno;
    }
    w->pid = pid;
    w->chan = sv[0];
    w->state = W_STARTING;
    w->conns = 0;
    w->started = ev_time();
    w->looping = false;
    w->ping_wait = 0.;
    w->hung = false;
    ev_io_init(&w->chan_io, wproc_on_chan, w->chan, EV_READ);
    ev_io_start(m->loop, &w->chan_io);
    log_info("event=worker_spawned generation=%u slot=%d child=%d",
             w->g->id, w->slot, (int)pid);
    return 0;
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
static struct worker_stats *
stats_retired(struct master *m)
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
        stats_retired(m)->generation = 1;
        stats_retired(m)->reloads_failed++;
    }
    if (gen != 0)
        log_err("event=%s generation=%u error=\"%s\"", event, gen, why);
    else
        log_err("event=%s error=\"%s\"", event, why);
}

static void
stats_retire(struct master *m, size_t i)
{
    struct worker_stats *r = stats_retired(m);
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

/* ---- Bus membership (DESIGN §5.2) ----------------------------------------- */

static void
peer_line(const struct wproc *w, char *buf, size_t size)
{
    char path[512];

    bus_path(w->g, w->slot, path, sizeof(path));
    snprintf(buf, size, "peer %u %d %s", (unsigned)w->g->id << 8 | w->slot,
             (int)w->pid, path);
}

/* w accepts now: it and every other live worker learn of each other,
   across generations, so ids stay reachable during a reload. */
static void
announce_peer(struct master *m, struct wproc *w)
{
    char mine[600], theirs[600];

    peer_line(w, mine, sizeof(mine));
    for (struct generation *g = m->gens; g != NULL; g = g->next) {
        for (int i = 0; i < g->n; i++) {
            struct wproc *x = &g->w[i];

            if (x == w || x->pid <= 0 || x->state == W_STARTING)
                continue;
            wproc_send(x, mine);
            peer_line(x, theirs, sizeof(theirs));
            wproc_send(w, theirs);
        }
    }
}

static void
announce_gone(struct master *m, const struct wproc *w)
{
    char line[64];

    snprintf(line, sizeof(line), "unpeer %u",
             (unsigned)w->g->id << 8 | w->slot);
    for (struct generation *g = m->gens; g != NULL; g = g->next)
        for (int i = 0; i < g->n; i++)
            if (&g->w[i] != w && g->w[i].pid > 0)
                wproc_send(&g->w[i], line);
}

/* ---- Reading worker channels -------------------------------------------- */

static void
wproc_on_chan(struct ev_loop *loop, ev_io *io, int revents)
{
    struct wproc *w = container_of(io, struct wproc, chan_io);
    struct master *m = ev_userdata(loop);
    char buf[128];
    ssize_t n;

    (void)revents;
    n = recv(w->chan, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) { /* the worker is exiting; ev_child tells the rest */
        ev_io_stop(loop, io);
        close(w->chan);
        w->chan = -1;
        return;
    }
    buf[n] = '\0';
    if (strncmp(buf, "pong ", 5) == 0) {
        w->ping_wait = 0.; /* its loop turns; the next tick asks again */
    } else if (strcmp(buf, "ready") == 0) {
        w->looping = true;
        if (w->state == W_STARTING) {
            w->state = w->g->draining ? W_DRAINING : W_READY;
            w->g->ready++;
            announce_peer(m, w);
            gen_ready_check(m, w->g);
        }
    } else if (strcmp(buf, "draining") == 0) {
        w->quit_acked = true;
        reload_reply_check(m);
    } else if (strncmp(buf, "error ", 6) == 0) {
        free(w->last_error);
        w->last_error = strdup(buf + 6);
    } else if (strncmp(buf, "conns ", 6) == 0) {
        w->conns = (uint32_t)strtoul(buf + 6, NULL, 10);
    }
}

/* ---- Heartbeats --------------------------------------------------------- */

/*
 * Each tick, every worker that said "ready" gets "ping N" and answers
 * "pong N" from its loop. One whose oldest unanswered ping is its
 * generation's worker_heartbeat_timeout old has a stuck loop (an app
 * callback that never returns, a deadlock): it is killed with SIGKILL,
 * since a stuck loop acts on nothing gentler, and reaped like a crash.
 * Silence counts from a ping sent, not from the last answer, so a master
 * that itself stalled (stopped, swapped out) blames nobody for it.
 * Before "ready" a worker runs no loop yet (it loads TLS material and app
 * modules): it gets no pings, and STARTUP_GRACE or the timeout, whichever
 * is longer, from its spawn.
 */

static ev_tstamp
hb_timeout(const struct generation *g)
{
    return g->cfg->server.worker_heartbeat_timeout_ms / 1000.0;
}

/* The tick for the shortest timeout of a live generation; 0: all off. */
static ev_tstamp
heartbeat_interval(const struct master *m)
{
    ev_tstamp t = 0.;

    for (const struct generation *g = m->gens; g != NULL; g = g->next)
        if (hb_timeout(g) > 0. && (t == 0. || hb_timeout(g) < t))
            t = hb_timeout(g);
    return t == 0. ? 0. : MAX(t / 4, HEARTBEAT_MIN_INTERVAL);
}

/* (Re)starts the tick for the generations alive now, or stops it. */
static void
heartbeat_arm(struct master *m)
{
    ev_tstamp iv = heartbeat_interval(m);

    if (ev_is_active(&m->heartbeat) && m->heartbeat.repeat == iv)
        return;
    ev_timer_stop(m->loop, &m->heartbeat);
    if (iv == 0.)
        return;
    ev_timer_set(&m->heartbeat, iv, iv);
    ev_timer_start(m->loop, &m->heartbeat);
}

static void
wproc_kill_hung(struct master *m, struct wproc *w, ev_tstamp silent)
{
    w->hung = true;
    stats_retired(m)->workers_hung++;
    log_err("event=worker_hung generation=%u slot=%d pid=%d state=%s "
            "silent_ms=%lld timeout_ms=%u action=kill", w->g->id, w->slot,
            (int)w->pid, w->looping ? wstate_names[w->state] : "starting",
            (long long)(silent * 1000),
            w->g->cfg->server.worker_heartbeat_timeout_ms);
    kill(w->pid, SIGKILL);
}

static void
heartbeat_check(struct master *m, struct wproc *w, ev_tstamp now,
                const char *ping)
{
    ev_tstamp limit = hb_timeout(w->g);

    if (!w->looping) {
        if (now - w->started >= MAX(limit, STARTUP_GRACE))
            wproc_kill_hung(m, w, now - w->started);
        return;
    }
    /* A pong may be waiting: this timer can run before the channel's
       watcher in the same loop iteration. */
    for (int i = 0; i < 8 && w->ping_wait > 0. && w->chan >= 0 &&
                    now - w->ping_wait >= limit; i++)
        wproc_on_chan(m->loop, &w->chan_io, EV_READ);
    if (w->ping_wait > 0. && now - w->ping_wait >= limit) {
        wproc_kill_hung(m, w, now - w->ping_wait);
        return;
    }
    wproc_send(w, ping);
    if (w->ping_wait == 0.)
        w->ping_wait = now;
}

static void
master_on_heartbeat(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct master *m = ev_userdata(loop);
    ev_tstamp now = ev_now(loop);
    char ping[32];

    (void)t;
    (void)revents;
    snprintf(ping, sizeof(ping), "ping %llu",
             (unsigned long long)++m->ping_seq);
    for (struct generation *g = m->gens; g != NULL; g = g->next) {
        if (hb_timeout(g) == 0.)
            continue;
        for (int i = 0; i < g->n; i++)
            if (g->w[i].pid > 0 && !g->w[i].hung)
                heartbeat_check(m, &g->w[i], now, ping);
    }
    heartbeat_arm(m); /* a generation may have come or gone */
}

/* ---- Reload -------------------------------------------------------------- */

static void
gen_start_drain(struct master *m, struct generation *g)
{
    g->draining = true;
    for (int i = 0; i < g->n; i++)
        if (g->w[i].pid > 0)
            g->w[i].state = W_DRAINING;
    gen_send_all(g, "quit");
    log_info("event=generation_draining generation=%u workers=%d", g->id,
             gen_alive(g));
    notify_send("EXTEND_TIMEOUT_USEC=%llu",
                (unsigned long long)g->cfg->server.worker_shutdown_timeout_ms
                    * 1000ULL);
}

/* Answers the reload once every draining worker has stopped accepting
   (or exited), or when the timer gives up waiting. */
static void
reload_reply_check(struct master *m)
{
    if (m->reload_reply[0] == '\0')
        return;
    for (struct generation *g = m->gens; g != NULL; g = g->next)
        for (int i = 0; g->draining && i < g->n; i++)
            if (g->w[i].pid > 0 && !g->w[i].quit_acked &&
                ev_is_active(&m->reply_timer))
                return;
    ev_timer_stop(m->loop, &m->reply_timer);
    ctl_reply_reloads(m, m->reload_reply);
    m->reload_reply[0] = '\0';
}

static void
reply_timer_fired(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct master *m = ev_userdata(loop);

    (void)t;
    (void)revents;
    reload_reply_check(m); /* the timer is no longer active: answer */
}

/* A generation's workers all accept: it becomes the active one. */
static void
gen_ready_check(struct master *m, struct generation *g)
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
        stats_retired(m)->generation = 1;
        stats_retired(m)->reloads++;
    }
    m->active = g;
    log_set_level(g->cfg->server.log_level); /* a reload may change it */
    listens_prune(m);
    log_info("event=ready generation=%u workers=%d", g->id, g->ready);
    notify_send("READY=1\nMAINPID=%d\nSTATUS=generation %u, %d workers "
                "ready", (int)getpid(), g->id, g->ready);
    snprintf(m->reload_reply, sizeof(m->reload_reply),
             "OK reload: generation %u ready (%d workers)", g->id, g->n);
    (void)line;
    ev_timer_set(&m->reply_timer, 2.0, 0.); /* bound the wait for acks */
    ev_timer_start(m->loop, &m->reply_timer);
    reload_reply_check(m);
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
    ctl_reply_reloads(m, line);
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
        int rc = wproc_spawn(m, &g->w[i]);

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
        stats_retired(m)->generation = 1;
        stats_retired(m)->reloads_failed++;
    }
    if (reply != NULL)
        snprintf(reply + len, cap - len, "ERR reload refused: the "
                 "configuration has errors; nothing changed");
    ctl_reply_reloads(m, reply ? reply : "ERR reload refused");
    free(reply);
}

/*
 * Starts a generation from the config file (start-up and reloads). On
 * any error nothing changes; the error goes to the log and to ctl clients
 * waiting for the reload.
 */
static int
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
        ctl_reply_reloads(m, line);
        config_free(cfg);
        if (m->active != NULL)
            notify_send("READY=1");
        return -EINVAL;
    }
    err[0] = '\0';
    if (listens_prepare(m, cfg, worker_count(cfg), err, sizeof(err)) != 0 ||
        (g = gen_new(m, cfg)) == NULL) {
        char line[1200];

        if (err[0] == '\0')
            snprintf(err, sizeof(err), "too many generations alive (%d): "
                     "wait for the old ones to drain", MAX_GENERATIONS);
        report_reload_failed(m, 0, err);
        snprintf(line, sizeof(line), "ERR %s\nERR reload refused; nothing "
                 "changed", err);
        ctl_reply_reloads(m, line);
        config_free(cfg);
        if (m->active != NULL)
            notify_send("READY=1");
        return -EINVAL;
    }
    m->pending = g;
    log_info("event=generation_start generation=%u workers=%d", g->id, g->n);
    heartbeat_arm(m);
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
    if (wproc_spawn(m, w) != 0)
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

static void wproc_on_chan(struct ev_loop *loop, ev_io *io, int revents);

static void
wproc_exited(struct master *m, struct wproc *w, int status)
{
    struct generation *g = w->g;

    /* What it said before exiting (an "error ...") may not be read yet. */
    for (int i = 0; i < 8 && w->chan >= 0; i++)
        wproc_on_chan(m->loop, &w->chan_io, EV_READ);
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
        announce_gone(m, w);
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
        stats_retired(m)->workers_died++;
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
        gen_ready_check(m, g);
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
    reload_reply_check(m);
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

static void
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
        ctl_reply_reloads(m, "ERR reload cancelled: sockd is stopping");
    }
    grace = fast ? 1000 : m->active ? m->active->cfg->server.shutdown_timeout_ms
                                    : 1000;
    log_info("event=stopping mode=%s", fast ? "fast" : "graceful");
    /* Nobody will accept again: with our copies closed (and the workers
       closing theirs) a new client is refused at once instead of sitting
       in a backlog until the last worker exits and it gets a reset. A
       reload never comes here: the sockets outlive generations. */
    for (struct mlisten *ml = m->listens; ml != NULL; ml = ml->next)
        ml->used = false;
    listens_prune(m);
    notify_send("EXTEND_TIMEOUT_USEC=%llu",
                (unsigned long long)(grace + 2000) * 1000ULL);
    for (struct generation *g = m->gens; g != NULL; g = g->next)
        gen_send_all(g, fast ? "fast" : "stop");
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
            gen_send_all(g, "reopen");
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

static void
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

/* ---- Control socket (server side) --------------------------------------- */

static void
ctl_client_free(struct master *m, struct ctl_client *c)
{
    struct ctl_client **p;

    for (p = &m->clients; *p != NULL; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    ev_io_stop(m->loop, &c->io);
    ev_timer_stop(m->loop, &c->timeout);
    close(c->fd);
    free(c);
}

static void
ctl_write(struct ctl_client *c, const char *s)
{
    size_t len = strlen(s), off = 0;

    /* Answers are small; a client that does not read loses them. */
    while (off < len) {
        ssize_t n = send(c->fd, s + off, len - off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n <= 0)
            return;
        off += (size_t)n;
    }
}

static void
ctl_reply_reloads(struct master *m, const char *line)
{
    for (struct ctl_client *c = m->clients, *next; c != NULL; c = next) {
        next = c->next;
        if (c->state == CTL_WAIT_RELOAD) {
            ctl_write(c, line);
            ctl_write(c, "\n");
            ctl_client_free(m, c);
        }
    }
}

static void
ctl_status(struct master *m, struct ctl_client *c)
{
    char line[256];

    snprintf(line, sizeof(line), "master pid=%d generation=%u\n",
             (int)getpid(), m->active ? m->active->id : 0);
    ctl_write(c, line);
    for (struct generation *g = m->gens; g != NULL; g = g->next) {
        snprintf(line, sizeof(line), "generation %u %s\n", g->id,
                 g == m->active ? "active"
                 : g == m->pending ? "starting" : "draining");
        ctl_write(c, line);
        for (int i = 0; i < g->n; i++) {
            struct wproc *w = &g->w[i];

            if (w->pid <= 0 && !w->given_up)
                continue;
            snprintf(line, sizeof(line),
                     "  worker slot=%d pid=%d conns=%u state=%s\n", i,
                     (int)w->pid, w->conns,
                     w->given_up ? "crash-loop" : wstate_names[w->state]);
            ctl_write(c, line);
        }
    }
    ctl_write(c, "OK\n");
}

static void
ctl_command(struct master *m, struct ctl_client *c, const char *cmd)
{
    if (strcmp(cmd, "status") == 0) {
        ctl_status(m, c);
    } else if (strcmp(cmd, "reload") == 0) {
        int rc;

        log_info("event=reload_requested source=ctl");
        c->state = CTL_WAIT_RELOAD;
        rc = master_reload(m);
        if (rc == -EBUSY) {
            ctl_write(c, m->stopping ? "ERR sockd is stopping\n"
                                     : "ERR a reload is in progress\n");
            ctl_client_free(m, c);
        }
        return; /* answered when the generation is ready or failed */
    } else if (strcmp(cmd, "stop") == 0 || strcmp(cmd, "quit") == 0) {
        c->state = CTL_WAIT_STOP;
        master_stop(m, false);
        return; /* answered as the master exits */
    } else if (strcmp(cmd, "reopen") == 0) {
        log_reopen(m->active ? m->active->cfg->server.log_file : NULL);
        for (struct generation *g = m->gens; g != NULL; g = g->next)
            gen_send_all(g, "reopen");
        ctl_write(c, "OK logs reopened\n");
    } else {
        ctl_write(c, "ERR unknown command (reload, stop, quit, reopen, "
                     "status)\n");
    }
    ctl_client_free(m, c);
}

static void
ctl_on_client(struct ev_loop *loop, ev_io *io, int revents)
{
    struct ctl_client *c = container_of(io, struct ctl_client, io);
    struct master *m = c->m;
    ssize_t n;
    char *nl;

    (void)loop;
    (void)revents;
    if (c->state != CTL_READING) { /* waiting: only notice a hang-up */
        char b;

        if (recv(c->fd, &b, 1, MSG_DONTWAIT) == 0)
            ctl_client_free(m, c);
        return;
    }
    n = recv(c->fd, c->line + c->len, sizeof(c->line) - 1 - c->len,
             MSG_DONTWAIT);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        ctl_client_free(m, c);
        return;
    }
    c->len += (size_t)n;
    c->line[c->len] = '\0';
    nl = strchr(c->line, '\n');
    if (nl == NULL) {
        if (c->len == sizeof(c->line) - 1) {
            ctl_write(c, "ERR command too long\n");
            ctl_client_free(m, c);
        }
        return;
    }
    *nl = '\0';
    ctl_command(m, c, c->line);
}

static void
ctl_on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct ctl_client *c = container_of(t, struct ctl_client, timeout);

    (void)loop;
    (void)revents;
    if (c->state == CTL_READING)
        ctl_client_free(c->m, c);
}

static void
ctl_on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
    struct master *m = ev_userdata(loop);
    int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    struct ctl_client *c;

    (void)revents;
    if (fd < 0)
        return;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return;
    }
    c->m = m;
    c->fd = fd;
    c->next = m->clients;
    m->clients = c;
    ev_io_init(&c->io, ctl_on_client, fd, EV_READ);
    ev_io_start(loop, &c->io);
    ev_timer_init(&c->timeout, ctl_on_timeout, 5., 0.);
    ev_timer_start(loop, &c->timeout);
}

/* Why an existing runtime_dir of owner uid and mode may not be used, or
   NULL: only root, we or the workers' user may own it, and nobody else
   may write to it (they could plant sockets and links in it). */
static const char *
runtime_dir_unsafe(const struct stat *st, const struct passwd *pw)
{
    if (!S_ISDIR(st->st_mode))
        return "not a directory";
    if (st->st_uid != 0 && st->st_uid != geteuid() &&
        (pw == NULL || st->st_uid != pw->pw_uid))
        return "owned by another user";
    if (st->st_mode & (S_IWGRP | S_IWOTH))
        return "writable by group or others";
    return NULL;
}

/*
 * Creates runtime_dir (0750), or checks the one that exists: never a
 * symbolic link, never a directory someone else owns or can write to.
 * The directory is opened without following links and changed through
 * that fd, so nothing swapped in after the check is chowned. With
 * `user =` (as root) it goes to that user: the workers create their bus
 * sockets in it. 0, or -1 with a message in err.
 */
static int
runtime_dir_prepare(const char *dir, const char *user, char *err,
                    size_t errlen)
{
    struct passwd *pw = NULL;
    const char *why;
    struct stat st;
    bool created;
    int fd;

    if (user != NULL && geteuid() == 0 && (pw = getpwnam(user)) == NULL) {
        snprintf(err, errlen, "user %s does not exist", user);
        return -1;
    }
    created = mkdir(dir, 0750) == 0;
    if (!created && errno != EEXIST) {
        snprintf(err, errlen, "cannot create runtime_dir %s: %s", dir,
                 strerror(errno));
        return -1;
    }
    if (lstat(dir, &st) == 0 && S_ISLNK(st.st_mode)) {
        snprintf(err, errlen, "runtime_dir %s is a symbolic link: refusing "
                 "it (make it a directory owned by root or the service "
                 "user)", dir);
        return -1;
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot open runtime_dir %s: %s", dir,
                 strerror(errno));
        goto fail;
    }
    if (created) {
        if (fchmod(fd, 0750) != 0) /* whatever the umask took */
            log_warn("event=chmod_failed path=%s error=\"%s\"", dir,
                     strerror(errno));
    } else if ((why = runtime_dir_unsafe(&st, pw)) != NULL) {
        snprintf(err, errlen, "runtime_dir %s is unsafe: %s (uid %u, mode "
                 "%04o); refusing it", dir, why, (unsigned)st.st_uid,
                 (unsigned)(st.st_mode & 07777));
        goto fail;
    }
    if (pw != NULL && fchown(fd, pw->pw_uid, pw->pw_gid) != 0)
        log_warn("event=chown_failed path=%s error=\"%s\"", dir,
                 strerror(errno));
    close(fd);
    return 0;

fail:
    if (fd >= 0)
        close(fd);
    return -1;
}

static int
ctl_listen(struct master *m, const char *runtime_dir, const char *user,
           char *err, size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd, probe;
    mode_t old;

    if (runtime_dir_prepare(runtime_dir, user, err, errlen) != 0)
        return -1;
    ctl_path(runtime_dir, m->ctl_sock, sizeof(m->ctl_sock));
    if (strlen(m->ctl_sock) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "runtime_dir path too long: %s", runtime_dir);
        m->ctl_sock[0] = '\0'; /* not ours to unlink */
        return -1;
    }
    strcpy(sa.sun_path, m->ctl_sock);
    /* A live master answers on the socket: never steal it. */
    probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        close(probe);
        snprintf(err, errlen, "another sockd is running with runtime_dir %s",
                 runtime_dir);
        m->ctl_sock[0] = '\0';
        return -1;
    }
    if (probe >= 0)
        close(probe);
    unlink(m->ctl_sock);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    old = umask(0077);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(fd, 16) != 0) {
        umask(old);
        snprintf(err, errlen, "cannot listen on %s: %s", m->ctl_sock,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        m->ctl_sock[0] = '\0';
        return -1;
    }
    umask(old);
    chmod(m->ctl_sock, 0600);
    m->ctl_fd = fd;
    ev_io_init(&m->ctl_io, ctl_on_accept, fd, EV_READ);
    ev_io_start(m->loop, &m->ctl_io);
    return 0;
}

/* ---- Start-up ------------------------------------------------------------ */

static void
take_listen_fds(struct master *m)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    int n;

    if (pid == NULL || fds == NULL || atol(pid) != (long)getpid())
        return;
    n = atoi(fds);
    if (n <= 0 || n > 1024)
        return;
    m->activated = calloc((size_t)n, sizeof(int));
    if (m->activated == NULL)
        return;
    for (int i = 0; i < n; i++)
        m->activated[i] = 3 + i; /* SD_LISTEN_FDS_START */
    m->n_activated = n;
    log_info("event=socket_activation fds=%d", n);
}

static void
drop_unused_activated(struct master *m)
{
    for (int i = 0; i < m->n_activated; i++)
        if (m->activated[i] >= 0) {
            log_warn("event=activated_socket_unused fd=%d (no [listen] "
                     "matches it)", m->activated[i]);
            close(m->activated[i]);
            m->activated[i] = -1;
        }
}

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
    ev_init(&m->heartbeat, master_on_heartbeat);
    if (watchdog_usec > 0) {
        ev_timer_init(&m->watchdog, master_on_watchdog, 0.,
                      watchdog_usec / 2e6);
        ev_timer_start(m->loop, &m->watchdog);
    }
}

static void
master_cleanup(struct master *m)
{
    while (m->clients != NULL) {
        if (m->clients->state == CTL_WAIT_STOP)
            ctl_write(m->clients, "OK stopped\n");
        ctl_client_free(m, m->clients);
    }
    while (m->gens != NULL)
        gen_free(m, m->gens);
    for (struct mlisten *ml = m->listens; ml != NULL; ml = ml->next)
        ml->used = false;
    listens_prune(m);
    if (m->ctl_sock[0] != '\0') {
        unlink(m->ctl_sock);
        close(m->ctl_fd);
    }
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
    if (ctl_listen(&m, first->server.runtime_dir, first->server.user, err,
                   sizeof(err)) != 0) {
        fprintf(stderr, "sockd: %s\n", err);
        goto fail;
    }
    take_listen_fds(&m);
    if (tls_ticket_keys_generate(&m.ticket_keys) != 0) {
        fprintf(stderr, "sockd: cannot make TLS ticket keys\n");
        goto fail;
    }
    master_start_watchers(&m, watchdog);
    if (master_reload(&m) != 0)
        goto fail;
    drop_unused_activated(&m);
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
