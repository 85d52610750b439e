/*
 * wchan.c: the master's end of the worker channels (DESIGN §4, §5.2):
 * commands out (channel.h), what the workers report in (ready, draining,
 * their connection counts, why they failed to start), the bus membership
 * every worker learns from the master, and the heartbeats that find a
 * worker whose loop is stuck. What a report means for a generation is
 * master.c's.
 */
#include "wchan.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "channel.h"
#include "common.h"
#include "config.h"
#include "log.h"
#include "master_impl.h"
#include "process.h"
#include "worker.h"

#define HEARTBEAT_MIN_INTERVAL 0.1 /* seconds between pings, at least */
#define STARTUP_GRACE 60.0  /* seconds from spawn to "ready", at least */


void
wchan_send(struct wproc *w, const char *msg)
{
    if (w->chan >= 0)
        send(w->chan, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT);
}

void
wchan_send_all(struct generation *g, const char *msg)
{
    for (int i = 0; i < g->n; i++)
        if (g->w[i].pid > 0)
            wchan_send(&g->w[i], msg);
}


/* ---- Bus membership (DESIGN §5.2) ----------------------------------------- */

static void
peer_line(const struct wproc *w, char *buf, size_t size)
{
    char path[512];

    process_bus_path(w->g, w->slot, path, sizeof(path));
    snprintf(buf, size, CHAN_PEER "%u %d %s", (unsigned)w->g->id << 8 | w->slot,
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
            wchan_send(x, mine);
            peer_line(x, theirs, sizeof(theirs));
            wchan_send(w, theirs);
        }
    }
}

void
wchan_announce_gone(struct master *m, const struct wproc *w)
{
    char line[64];

    snprintf(line, sizeof(line), CHAN_UNPEER "%u",
             (unsigned)w->g->id << 8 | w->slot);
    for (struct generation *g = m->gens; g != NULL; g = g->next)
        for (int i = 0; i < g->n; i++)
            if (&g->w[i] != w && g->w[i].pid > 0)
                wchan_send(&g->w[i], line);
}

/* ---- Reading worker channels -------------------------------------------- */

void
wchan_on_read(struct ev_loop *loop, ev_io *io, int revents)
{
    struct wproc *w = container_of(io, struct wproc, chan_io);
    struct master *m = ev_userdata(loop);
    const char *arg;
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
    if ((arg = chan_args(buf, CHAN_PONG)) != NULL) {
        w->ping_wait = 0.; /* its loop turns; the next tick asks again */
    } else if (strcmp(buf, CHAN_READY) == 0) {
        w->looping = true;
        if (w->state == W_STARTING) {
            w->state = w->g->draining ? W_DRAINING : W_READY;
            w->g->ready++;
            announce_peer(m, w);
            master_gen_ready_check(m, w->g);
        }
    } else if (strcmp(buf, CHAN_DRAINING) == 0) {
        w->quit_acked = true;
        master_reload_reply_check(m);
    } else if ((arg = chan_args(buf, CHAN_ERROR)) != NULL) {
        free(w->last_error);
        w->last_error = strdup(arg);
    } else if ((arg = chan_args(buf, CHAN_CONNS)) != NULL) {
        w->conns = (uint32_t)strtoul(arg, NULL, 10);
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

void
wchan_heartbeat_arm(struct master *m)
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
    master_stats_retired(m)->workers_hung++;
    log_err("event=worker_hung generation=%u slot=%d pid=%d state=%s "
            "silent_ms=%lld timeout_ms=%u action=kill", w->g->id, w->slot,
            (int)w->pid,
            w->looping ? master_wstate_name(w->state) : "starting",
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
        wchan_on_read(m->loop, &w->chan_io, EV_READ);
    if (w->ping_wait > 0. && now - w->ping_wait >= limit) {
        wproc_kill_hung(m, w, now - w->ping_wait);
        return;
    }
    wchan_send(w, ping);
    if (w->ping_wait == 0.)
        w->ping_wait = now;
}

void
wchan_on_heartbeat(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct master *m = ev_userdata(loop);
    ev_tstamp now = ev_now(loop);
    char ping[32];

    (void)t;
    (void)revents;
    snprintf(ping, sizeof(ping), CHAN_PING "%llu",
             (unsigned long long)++m->ping_seq);
    for (struct generation *g = m->gens; g != NULL; g = g->next) {
        if (hb_timeout(g) == 0.)
            continue;
        for (int i = 0; i < g->n; i++)
            if (g->w[i].pid > 0 && !g->w[i].hung)
                heartbeat_check(m, &g->w[i], now, ping);
    }
    wchan_heartbeat_arm(m); /* a generation may have come or gone */
}


void
wchan_read_last(struct master *m, struct wproc *w)
{
    for (int i = 0; i < 8 && w->chan >= 0; i++)
        wchan_on_read(m->loop, &w->chan_io, EV_READ);
}
