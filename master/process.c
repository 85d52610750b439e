/*
 * process.c: forking a worker (after nginx's ngx_spawn_process and
 * ngx_worker_process_init). The child drops what it inherited from the
 * master (its loop and watchers, every fd but its listeners and its
 * channel, systemd's variables, signal dispositions), reads its TLS
 * material, drops privileges, loads its apps, opens its bus end and runs
 * the worker until it exits; it never returns into the master's code.
 * What the master does with the child afterwards is master.c's and
 * wchan.c's.
 */
#include "process.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "bus.h"
#include "channel.h"
#include "common.h"
#include "config.h"
#include "leakcheck.h"
#include "listen.h"
#include "log.h"
#include "master_impl.h"
#include "tls.h"
#include "wchan.h"
#include "wctl.h"
#include "worker.h"

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

void
process_bus_path(const struct generation *g, int slot, char *buf, size_t size)
{
    snprintf(buf, size, "%s/bus-%u-%d.sock", g->cfg->server.runtime_dir,
             g->id, slot);
}

/* The worker's end of the bus; its peers come over the channel. */
static int
child_open_bus(struct worker *w, const struct generation *g, int slot,
               int chan)
{
    static const struct bus_ops ops = { .deliver = worker_bus_deliver };
    char path[512], err[256];

    process_bus_path(g, slot, path, sizeof(path));
    w->bus = bus_new(w->loop, (uint32_t)g->id << 8 | (uint32_t)slot, path,
                     &ops, w, err, sizeof(err));
    if (w->bus != NULL)
        return 0;
    log_err("event=bus_failed path=%s error=\"%s\"", path, err);
    dprintf(chan, CHAN_ERROR "bus: %.100s", err);
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
    nl = listen_fds_for_slot(m, g, slot, keep);
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
        dprintf(chan, CHAN_ERROR "%.100s", loop ? err : "no event loop");
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

int
process_spawn_worker(struct master *m, struct wproc *w)
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
    ev_io_init(&w->chan_io, wchan_on_read, w->chan, EV_READ);
    ev_io_start(m->loop, &w->chan_io);
    log_info("event=worker_spawned generation=%u slot=%d child=%d",
             w->g->id, w->slot, (int)pid);
    return 0;
}
