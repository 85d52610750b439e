/*
 * wstate.h: the state of one worker process (struct worker) and what the
 * modules below worker.c need of it: the routes, the counters and their
 * sums, waking the idle watcher, the fan-out tick, the stop condition.
 * It depends on nothing above it; starting, running and stopping the
 * process is worker.c's (worker.h). The functions keep the worker_
 * prefix of the object they act on, as everywhere they are called.
 */
#ifndef SOCK_WSTATE_H
#define SOCK_WSTATE_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common.h"
#include "idmap.h"
#include "redis.h"
#include "settings.h"
#include "sock_impl.h"
#include "tlist.h"

struct topics;
struct bus;
struct appio;
struct tls_ctx;
struct wctl_ops;
struct messaging_conn_ops;

/* A slot's count while it has no live worker (shm_counts). */
#define SLOT_DEAD UINT32_MAX

struct route_rt {
    const struct route *cfg;
    const sock_app *app;
    void *dl; /* dlopen handle, NULL for a built-in */
    struct sock_options opts; /* the route's option.NAME keys, for the app */
    bool setup_done;          /* setup returned 0: teardown is due */
    bool setup_failed;        /* setup failed: upgrades get 503 */
    uint8_t stat;             /* its entry in worker_stats.route */
};

struct wlistener {
    ev_io io;
    int fd;
    struct worker *w;
    const struct listener_cfg *cfg;
    bool admin;     /* the [admin] address, not a WebSocket listener */
    struct tls_ctx *tls; /* wss:// listener; owned by the worker */
};

/* Counters of one worker. Under a master they live in a shared page
   (one slot per worker of every generation) so that the admin endpoint
   of any worker can sum them; each worker writes only its own. */
#define WORKER_CLOSE_KINDS 6     /* 0 and SOCK_CLOSE_NORMAL..ERROR */
#define WORKER_CLOSE_ERRORS 10   /* SOCK_ERR_NONE..SOCK_ERR_INBOX */
#define WORKER_ROUTE_STATS 16    /* routes with their own /metrics labels */
#define WORKER_ROUTE_PATH 128    /* a longer path's label is cut */

/* One route's counters, labelled by its path in /metrics. Routes past
   the 15th share the last entry, labelled "other". */
struct worker_route_stats {
    char path[WORKER_ROUTE_PATH]; /* "": entry unused */
    uint64_t opened, closed, msgs_in, msgs_out;
    uint64_t open;                /* gauge */
};

struct worker_stats {
    uint64_t accepted, opened, closed, refused_full;
    uint64_t handshake_failed, msgs_in, msgs_out, bytes_in, bytes_out;
    uint64_t infos_sent, infos_dropped, infos_stale;
    uint64_t open, draining;      /* gauges: open WebSocket connections */
    uint64_t deflate_msgs, deflate_in, deflate_out; /* compressed by us */
    uint64_t deflate_shared;      /* of those, compressed once and shared */
    uint64_t partial_bytes;       /* gauge: unfinished input held
                                     (conn_recv.c) */
    uint64_t partial_closes;      /* closed 1009 over max_partial_bytes */
    uint64_t fanout_backlog;      /* gauge: fan-out queued to connections
                                     that wait for us, not for their peer,
                                     to write it (conn_fan_add) */
    uint64_t fanout_pauses;       /* publishers paused over
                                     max_fanout_backlog */
    uint64_t fanout_hold_us;      /* gauge: fanout_interval = auto's hold */
    uint64_t send_bytes;          /* gauge: in every send queue */
    uint64_t deflate_memory;      /* gauge: every zlib stream */
    uint64_t deflate_no_takeover; /* agreed without context takeover over
                                     max_deflate_memory */
    uint64_t send_budget_closes;  /* closed over max_send_bytes */
    uint64_t message_timeouts;    /* closed 1008 over message_timeout */
    uint64_t pongs_coalesced;     /* pings answered by a later ping's pong */
    uint64_t send_batches;        /* io_uring calls that made a flush's */
    uint64_t sends_batched;       /* writes (sendbatch.h), and those writes */
    struct redis_stats redis;     /* the bridge between machines */
    uint64_t workers_died;        /* the master's, in the retired slot: */
    uint64_t workers_hung;        /* abnormal exits; killed by heartbeat */
    uint64_t reloads;             /* the master's too: generations that */
    uint64_t reloads_failed;      /* replaced one; reloads refused */
    uint32_t generation;          /* 0: slot unused */
    uint32_t pid;
    uint32_t slot;                /* the worker's, for admin requests */
    /* Closed connections by sock_close_kind (0: none recorded) and by
       sock_close_error, for /metrics' labels. */
    uint64_t closed_kind[WORKER_CLOSE_KINDS];
    uint64_t closed_error[WORKER_CLOSE_ERRORS];
    struct worker_route_stats route[WORKER_ROUTE_STATS];
};

struct worker {
    struct ev_loop *loop;
    const struct config *cfg;
    uint16_t node;
    uint8_t generation, slot;
    uint32_t next_serial;
    struct route_rt *routes;
    size_t n_routes;
    struct wlistener *listeners;
    size_t n_listeners;
    ev_timer accept_retry;
    int spare_fd;             /* /dev/null, given up to answer at EMFILE */
    ev_tstamp nofd_logged;
    uint8_t *rbuf;            /* the one read buffer (DESIGN §8) */
    struct sendbatch *sendbatch; /* the flush's sends in one call; NULL
                                    without io_uring */
    size_t rbuf_size;
    struct idmap ids;         /* serial -> open connection */
    struct tlist_set *timers;
    struct tlist_set *msg_timers; /* message_timeout (conn_recv.c) */
    struct topics *topics;
    const struct messaging_conn_ops *msg_ops; /* messaging's way to the
                                                 connections (worker.c) */
    struct bus *bus;          /* to the other workers; NULL with workers = 0 */
    struct redis *redis;      /* to other machines; NULL without [redis] */
    struct appio *appio;      /* apps' watches, timers, sock_post queue */
    struct list conns;        /* every live connection */
    struct list flush;        /* connections with output to write */
    struct list flush_later;  /* fan-out output held for the next tick */
    ev_timer fanout_timer;    /* that tick (fanout_interval) */
    ev_tstamp fanout_next;    /* fan-out before then waits for the tick */
    bool fanout_held;         /* in handle_info for a held fan-out */
    uint32_t fanouts;         /* local publishes and broadcasts so far */
    struct list paused;       /* connections not read while the fan-out
                                 backlog is over max_fanout_backlog */
    bool bus_paused;          /* the bus and Redis are not read, for the
                                 same reason */
    struct list pending;      /* connections with infos or stashed input */
    struct list dead;         /* torn down, freed before the next poll */
    struct list admin_waiting; /* admin requests other workers owe answers */
    uint64_t admin_next_req;
    ev_prepare prepare;
    /* fanout_interval = auto (wstate.c): the time the loop waited in its
       polls since busy_since, and the hold that follows from it. */
    ev_check check;
    ev_tstamp poll_start, idle_acc, busy_since;
    ev_tstamp fanout_auto;    /* seconds; 0: no hold */
    ev_idle idle;
    ev_signal sig_term, sig_quit, sig_int;
    ev_timer stop_timer;
    size_t n_conns;
    uint32_t max_conns;
    bool stopping;
    bool shutting_down;
    bool draining;
    struct worker_stats *stats;    /* own_stats, or our slot of stats_all */
    struct worker_stats own_stats;
    struct worker_stats *stats_all; /* every worker's, for /metrics */
    size_t stats_n;

    /* Broadcast compression (conn_send.c): the info payload being
       delivered, and frames compressed once from such payloads, by window
       bits. */
    sock_buf *delivering;
    struct deflate_cache {
        sock_buf *key;            /* the payload (a ref keeps it unique) */
        sock_buf *val;            /* its compressed bytes */
        int wbits, level, mem_level;
    } dcache[64];                 /* >= the per-connection delivery batch,
                                     so fan-out of that many distinct
                                     messages never thrashes it */
    unsigned dcache_next;
    struct ws_deflate_shared *dshared[4];
    int dshared_key[4];

    /* Under a master (wctl.c): the control channel and what its
       commands do (worker.c's), count reports, the reload drain (also
       worker.c's), and the shared per-slot connection counts that keep
       accepting balanced (nginx's accept_disabled). */
    const struct wctl_ops *ctl_ops;
    int chan_fd;
    ev_io chan_io;
    ev_timer report_timer;
    ev_timer drain_timer;
    unsigned drain_ticks_left;
    volatile uint32_t *shm_counts; /* one per slot of this generation */
    unsigned n_slots;
    ev_tstamp stepped_back_since;
};

/* Adds the counters of s to sum (gauges excluded); routes are matched by
   path, and one sum has no room for, goes to its last entry as "other". */
void worker_stats_add(struct worker_stats *sum, const struct worker_stats *s);

/* The entry of sum for path: the one with that path, else a free one
   (given the path), else the last, labelled "other". */
struct worker_route_stats *worker_route_stats_for(struct worker_stats *sum,
                                                  const char *path);

/* The route for a request path, or NULL. */
struct route_rt *worker_route_find(struct worker *w, const char *path);

/* Makes sure the idle watcher runs (infos or stash to process). */
void worker_wake(struct worker *w);

/* Whether id names a connection of this worker (its node, generation and
   slot), open or not. */
static inline bool
worker_id_is_local(const struct worker *w, sock_id id)
{
    return SOCK_ID_NODE(id) == w->node &&
           SOCK_ID_GENERATION(id) == w->generation &&
           SOCK_ID_SLOT(id) == w->slot;
}

/* [server] max_fanout_backlog: over it, what publishes is not read
   (conn_fan_pause, the bus and Redis); reading resumes at half. */
static inline bool
worker_fanout_over(const struct worker *w)
{
    return w->stats->fanout_backlog > w->cfg->server.max_fanout_backlog;
}

static inline bool
worker_fanout_drained(const struct worker *w)
{
    return w->stats->fanout_backlog <= w->cfg->server.max_fanout_backlog / 2;
}

/*
 * Whether the fan-out starting now (one publish or broadcast to this
 * worker's subscribers) should wait for the next tick of [server]
 * fanout_interval instead of leaving before the next poll: asked once
 * per fan-out. The first fan-out after a quiet interval leaves at once;
 * what follows within the interval is gathered and written in one go per
 * connection. Always false when fanout_interval is 0.
 */
bool worker_fanout_later(struct worker *w);
/* Output was put on flush_later: a tick will write it, at the end of the
   current interval or, when that is over, on the next iteration. */
void worker_fanout_arm(struct worker *w);
/* The fan-out hold now, in seconds (0: none). */
ev_tstamp worker_fanout_interval(const struct worker *w);
/* fanout_interval = auto: a poll returned at now; adjusts the hold to the
   share of time the worker was busy. */
void worker_fanout_load(struct worker *w, ev_tstamp now);

/* A connection went away: stop the loop if shutting down and none is left. */
void worker_conn_gone(struct worker *w);

/* "ADDR:PORT", "[V6ADDR]:PORT", or "?:0" for other families. */
void worker_format_addr(const struct sockaddr *sa, char *buf, size_t size);

#endif
