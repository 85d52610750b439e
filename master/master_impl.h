/*
 * master_impl.h: the master's process state (after nginx's ngx_cycle_t),
 * shared by the files that make up the master: master.c (generations,
 * reload, reaping, stopping, signals), listen.c (listening sockets and
 * socket activation), process.c (fork and the child's set-up), wchan.c (the
 * worker channels, bus membership, heartbeats) and ctl_server.c (the
 * control socket). Nothing outside master/ includes it.
 */
#ifndef SOCK_MASTER_IMPL_H
#define SOCK_MASTER_IMPL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "tls.h"

#define MAX_GENERATIONS 4      /* alive at once: shm rows */
#define MAX_SLOTS 256

struct config;
struct ctl_client;
struct mlisten;
struct worker_stats;

enum wstate { W_STARTING, W_READY, W_DRAINING, W_GONE };

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

/* What master.c offers the other parts. */

/* "starting", "ready", "draining" or "gone". */
const char *master_wstate_name(enum wstate s);
/* The retired slot: where gone workers' counters and the master's own
   counts of what happens to workers go, so /metrics never goes down. */
struct worker_stats *master_stats_retired(struct master *m);
/* Starts a generation from the config file; -EBUSY while one starts or
   the master stops, -EINVAL if refused (reported to ctl clients). */
int master_reload(struct master *m);
/* Stops every generation (fast: close at once); answered as it exits. */
void master_stop(struct master *m, bool fast);
/* The child side of a fork: the master's watchers must not fire there. */
void master_stop_watchers(struct master *m);
/* A worker of g said "ready" or gave up: g may become the active one. */
void master_gen_ready_check(struct master *m, struct generation *g);
/* A draining worker stopped accepting: a held reload answer may go. */
void master_reload_reply_check(struct master *m);

#endif
