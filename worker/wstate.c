/*
 * wstate.c: see wstate.h: the small operations on a worker's state that
 * connections, messaging and the control channel need, without reaching
 * up to worker.c.
 */
#include "wstate.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

void
worker_wake(struct worker *w)
{
    ev_idle_start(w->loop, &w->idle);
}

/*
 * Fan-out coalescing ([server] fanout_interval). Under a steady stream of
 * publishes every subscriber would get one write per loop iteration, each
 * costing a full trip through the kernel's TCP stack (about 80% of a
 * worker's CPU on a 1000-subscriber broadcast). Instead the first fan-out
 * after a quiet interval leaves at once, and what follows within the
 * interval waits on w->flush_later for one tick, which writes each
 * connection's gathered frames in one go. A connection that gets any
 * other output meanwhile (a reply, a pong, a close) leaves the list and
 * takes the held frames with it (conn_want_flush).
 */
bool
worker_fanout_later(struct worker *w)
{
    ev_tstamp iv = worker_fanout_interval(w), now;

    if (iv <= 0)
        return false;
    now = ev_now(w->loop);
    if (now >= w->fanout_next) {
        w->fanout_next = now + iv;
        return false;
    }
    worker_fanout_arm(w);
    return true;
}

void
worker_fanout_arm(struct worker *w)
{
    ev_tstamp wait;

    if (ev_is_active(&w->fanout_timer))
        return;
    wait = w->fanout_next - ev_now(w->loop);
    ev_timer_set(&w->fanout_timer, wait > 0 ? wait : 0., 0.);
    ev_timer_start(w->loop, &w->fanout_timer);
}

ev_tstamp
worker_fanout_interval(const struct worker *w)
{
    uint32_t ms = w->cfg->server.fanout_interval_ms;

    if (ms == FANOUT_AUTO)
        return w->fanout_auto;
    return ms / 1000.;
}

/*
 * fanout_interval = auto. A lightly loaded worker holds nothing: each
 * fan-out leaves at once. Over each FANOUT_WINDOW the share of time the
 * loop did not wait in its poll is its load; above FANOUT_BUSY the hold
 * starts at 1 ms and doubles each window up to FANOUT_AUTO_MAX, below
 * FANOUT_CALM it halves back to nothing. The band between keeps it from
 * flapping, since holding itself lowers the load. Short holds buy little
 * (natural batching already puts several frames in each write when the
 * worker is behind); it is the longer ones that cut the writes per
 * delivery, and with them the load, which is why the hold doubles.
 */
#define FANOUT_WINDOW 0.05
#define FANOUT_BUSY 0.70
#define FANOUT_CALM 0.35
#define FANOUT_AUTO_MIN 0.001
#define FANOUT_AUTO_MAX 0.010

void
worker_fanout_load(struct worker *w, ev_tstamp now)
{
    ev_tstamp span;
    double busy;

    if (now > w->poll_start)
        w->idle_acc += now - w->poll_start;
    span = now - w->busy_since;
    if (span < FANOUT_WINDOW)
        return;
    busy = 1. - w->idle_acc / span;
    if (span > 4 * FANOUT_WINDOW && busy < FANOUT_CALM)
        w->fanout_auto = 0;      /* back from a long wait: quiet now */
    else if (busy > FANOUT_BUSY)
        w->fanout_auto = w->fanout_auto > 0
                             ? MIN(w->fanout_auto * 2, FANOUT_AUTO_MAX)
                             : FANOUT_AUTO_MIN;
    else if (busy < FANOUT_CALM)
        w->fanout_auto = w->fanout_auto > FANOUT_AUTO_MIN
                             ? w->fanout_auto / 2 : 0;
    w->busy_since = now;
    w->idle_acc = 0;
    w->stats->fanout_hold_us = (uint64_t)(w->fanout_auto * 1e6 + 0.5);
}

struct route_rt *
worker_route_find(struct worker *w, const char *path)
{
    for (size_t i = 0; i < w->n_routes; i++)
        if (strcmp(w->routes[i].cfg->path, path) == 0)
            return &w->routes[i];
    return NULL;
}

void
worker_stats_add(struct worker_stats *sum, const struct worker_stats *s)
{
    sum->accepted += s->accepted;
    sum->opened += s->opened;
    sum->closed += s->closed;
    sum->refused_full += s->refused_full;
    sum->handshake_failed += s->handshake_failed;
    sum->msgs_in += s->msgs_in;
    sum->msgs_out += s->msgs_out;
    sum->bytes_in += s->bytes_in;
    sum->bytes_out += s->bytes_out;
    sum->infos_sent += s->infos_sent;
    sum->infos_dropped += s->infos_dropped;
    sum->infos_stale += s->infos_stale;
    sum->deflate_msgs += s->deflate_msgs;
    sum->deflate_shared += s->deflate_shared;
    sum->deflate_in += s->deflate_in;
    sum->deflate_out += s->deflate_out;
    sum->partial_closes += s->partial_closes;
    sum->fanout_pauses += s->fanout_pauses;
    sum->send_budget_closes += s->send_budget_closes;
    sum->deflate_no_takeover += s->deflate_no_takeover;
    sum->message_timeouts += s->message_timeouts;
    sum->pongs_coalesced += s->pongs_coalesced;
    sum->send_batches += s->send_batches;
    sum->sends_batched += s->sends_batched;
    sum->redis.published += s->redis.published;
    sum->redis.received += s->redis.received;
    sum->redis.dropped += s->redis.dropped;
    sum->redis.malformed += s->redis.malformed;
    sum->redis.unrouted += s->redis.unrouted;
    sum->redis.connects += s->redis.connects;
    sum->redis.node_clashes += s->redis.node_clashes;
    sum->workers_died += s->workers_died;
    sum->workers_hung += s->workers_hung;
    sum->reloads += s->reloads;
    sum->reloads_failed += s->reloads_failed;
    for (size_t i = 0; i < WORKER_CLOSE_KINDS; i++)
        sum->closed_kind[i] += s->closed_kind[i];
    for (size_t i = 0; i < WORKER_CLOSE_ERRORS; i++)
        sum->closed_error[i] += s->closed_error[i];
    for (size_t i = 0; i < WORKER_ROUTE_STATS && s->route[i].path[0]; i++) {
        const struct worker_route_stats *r = &s->route[i];
        struct worker_route_stats *t = worker_route_stats_for(sum, r->path);

        t->opened += r->opened;
        t->closed += r->closed;
        t->msgs_in += r->msgs_in;
        t->msgs_out += r->msgs_out;
    }
}

struct worker_route_stats *
worker_route_stats_for(struct worker_stats *sum, const char *path)
{
    struct worker_route_stats *last = &sum->route[WORKER_ROUTE_STATS - 1];

    for (size_t i = 0; i < WORKER_ROUTE_STATS - 1; i++) {
        struct worker_route_stats *r = &sum->route[i];

        if (r->path[0] == '\0')
            snprintf(r->path, sizeof(r->path), "%s", path);
        if (strncmp(r->path, path, sizeof(r->path) - 1) == 0)
            return r; /* (a path cut to fit matches its whole self) */
    }
    snprintf(last->path, sizeof(last->path), "other");
    return last;
}

void
worker_conn_gone(struct worker *w)
{
    if (w->stopping && w->n_conns == 0)
        ev_break(w->loop, EVBREAK_ALL);
}

void
worker_format_addr(const struct sockaddr *sa, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;

        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;

        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(buf, size, "[%s]:%d", host, ntohs(in6->sin6_port));
        return;
    }
    snprintf(buf, size, "%s:%d", host, port);
}
