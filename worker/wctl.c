/*
 * wctl.c: see wctl.h. Commands are the short ASCII words of channel.h;
 * unknown ones are logged and ignored so that a newer master can talk to
 * an older worker. What quit, stop and fast do to the worker is worker.c's
 * (w->ctl_ops).
 */
#include "wctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus.h"
#include "channel.h"
#include "log.h"
#include "wstate.h"

#define WCTL_REPORT_INTERVAL 0.1 /* seconds between count reports */

void
wctl_send(struct worker *w, const char *msg)
{
    if (w->chan_fd < 0)
        return;
    if (send(w->chan_fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        log_debug("event=channel_send_failed error=\"%s\"", strerror(errno));
}

static void
wctl_report(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = container_of(t, struct worker, report_timer);
    char msg[64];

    (void)loop;
    (void)revents;
    snprintf(msg, sizeof(msg), CHAN_CONNS "%zu", w->n_conns);
    wctl_send(w, msg);
}

void
wctl_conns_changed(struct worker *w)
{
    if (w->shm_counts != NULL)
        w->shm_counts[w->slot] = (uint32_t)w->n_conns;
    if (w->chan_fd >= 0 && !ev_is_active(&w->report_timer)) {
        ev_timer_set(&w->report_timer, WCTL_REPORT_INTERVAL, 0.);
        ev_timer_start(w->loop, &w->report_timer);
    }
}

/* "KEY PID PATH": another worker of this machine, by its bus key. */
static void
wctl_peer(struct worker *w, const char *args)
{
    unsigned key;
    int pid, n = 0;
    int rc;

    if (w->bus == NULL || sscanf(args, "%u %d %n", &key, &pid, &n) != 2 ||
        n == 0) {
        log_warn("event=bad_peer_command args=\"%.64s\"", args);
        return;
    }
    rc = bus_peer_add(w->bus, key, (pid_t)pid, args + n);
    if (rc == -EEXIST) { /* respawned in the same slot: a new pid */
        bus_peer_remove(w->bus, key);
        rc = bus_peer_add(w->bus, key, (pid_t)pid, args + n);
    }
    if (rc != 0)
        log_warn("event=peer_add_failed key=%u error=\"%s\"", key,
                 strerror(-rc));
}

/*
 * The master's heartbeat: answered from here, the loop, so that a worker
 * whose loop is stuck (an app callback that never returns, a deadlock)
 * stays silent and is killed. Nothing is logged: it comes every few
 * seconds.
 */
static void
wctl_pong(struct worker *w, const char *seq)
{
    char msg[40];

    snprintf(msg, sizeof(msg), CHAN_PONG "%.20s", seq);
    wctl_send(w, msg);
}

static void
wctl_command(struct worker *w, const char *cmd)
{
    const char *arg;

    if (strcmp(cmd, CHAN_QUIT) == 0) {
        w->ctl_ops->drain(w);
    } else if (strcmp(cmd, CHAN_STOP) == 0) {
        w->ctl_ops->stop(w);
    } else if (strcmp(cmd, CHAN_FAST) == 0) {
        w->ctl_ops->fast(w);
    } else if (strcmp(cmd, CHAN_REOPEN) == 0) {
        int rc = log_reopen(w->cfg->server.log_file);

        if (rc != 0)
            log_err("event=reopen_failed path=%s error=\"%s\"",
                    w->cfg->server.log_file, strerror(-rc));
    } else if ((arg = chan_args(cmd, CHAN_PING)) != NULL) {
        wctl_pong(w, arg);
    } else if ((arg = chan_args(cmd, CHAN_PEER)) != NULL) {
        wctl_peer(w, arg);
    } else if ((arg = chan_args(cmd, CHAN_UNPEER)) != NULL) {
        if (w->bus != NULL)
            bus_peer_remove(w->bus, (uint32_t)strtoul(arg, NULL, 10));
    } else {
        log_warn("event=unknown_command command=\"%.32s\"", cmd);
    }
}

static void
wctl_on_read(struct ev_loop *loop, ev_io *io, int revents)
{
    struct worker *w = container_of(io, struct worker, chan_io);
    char buf[1024];
    ssize_t n;

    (void)loop;
    (void)revents;
    n = recv(w->chan_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        /* The master is gone: serve no new clients, close the rest. */
        log_warn("event=master_gone action=stop");
        wctl_detach(w);
        w->ctl_ops->stop(w);
        return;
    }
    buf[n] = '\0';
    wctl_command(w, buf);
}

void
wctl_attach(struct worker *w, int fd)
{
    w->chan_fd = fd;
    ev_io_init(&w->chan_io, wctl_on_read, fd, EV_READ);
    ev_io_start(w->loop, &w->chan_io);
    ev_init(&w->report_timer, wctl_report);
    wctl_send(w, CHAN_READY);
}

void
wctl_detach(struct worker *w)
{
    if (w->chan_fd < 0)
        return;
    ev_io_stop(w->loop, &w->chan_io);
    ev_timer_stop(w->loop, &w->report_timer);
    close(w->chan_fd);
    w->chan_fd = -1;
}
