/*
 * wsl_worker.h: one wsload worker process: its share of the connections,
 * what each scenario sends and checks on them, and its timeline. The
 * parent (wsload.c) forks the workers, starts them all at once through the
 * go pipe, samples the server, and adds up their reports.
 */
#ifndef WSL_WORKER_H
#define WSL_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "wsl_conn.h"
#include "wsl_hist.h"

enum wsl_scenario {
    WSL_ECHO,
    WSL_IDLE,
    WSL_CONNECT,
    WSL_BROADCAST,
};

/* Payload marker of broadcast messages: "#wsl:SEQ:TIME:" in 16-digit hex. */
#define WSL_MARK_LEN 39

struct wsl_opts {
    enum wsl_scenario scenario;
    struct wsl_target target;
    uint32_t conns;         /* this worker's share: connections, connect
                               cycles or subscribers */
    uint32_t first_index;   /* global index of its first connection */
    uint32_t worker_index;
    uint32_t inflight;      /* echo: messages in flight per connection */
    uint32_t size;          /* echo: payload; broadcast: after pub_fmt */
    bool binary;
    bool words;             /* text payload: words, not a-z repeated */
    bool publisher;         /* broadcast: this worker has the publisher */
    double pub_rate;        /* broadcast: messages per second */
    uint32_t pub_window;    /* broadcast: at most this many publishes not
                               yet delivered to every subscriber of the
                               publisher's worker (0: rate only) */
    const char *sub_msg;    /* broadcast: sent once by each subscriber */
    const char *pub_fmt;    /* broadcast: put before each payload */
    double conn_rate;       /* connections opened per second, this worker */
    uint32_t max_pending;   /* handshakes under way at once, this worker */
    double connect_timeout; /* per connection, and for the connect phase */
    double warmup, duration, settle, drain, close_wait;
    double deadline;        /* seconds after start: exit whatever happens */
};

/* A worker's report, written down the pipe as is. */
struct wsl_stats {
    uint64_t msgs;          /* in the window: echoes, deliveries, handshakes */
    uint64_t bytes;         /* their payload bytes */
    uint64_t sent;          /* in the window: requests sent, or published */
    uint64_t opened;        /* handshakes completed, whole run */
    uint64_t open_at_end;   /* open when the window closed */
    uint64_t published;     /* broadcast, whole run */
    uint64_t delivered;     /* broadcast, whole run */
    uint64_t subscribers;   /* broadcast: open when the traffic started */
    uint64_t gaps;          /* broadcast: sequence numbers skipped */
    uint64_t reordered;     /* broadcast: older than one already seen */
    uint64_t other;         /* messages without a marker, ignored */
    uint64_t pub_stalled;   /* publisher ticks skipped: server not reading */
    uint64_t wire_in;       /* in the window: bytes read from sockets */
    uint64_t wire_out;      /* in the window: bytes written */
    uint64_t inflated;      /* compressed messages received, whole run */
    uint64_t err[WSL_ERR_COUNT];
    int first_errno[WSL_ERR_COUNT];
    char first_failure[120];
    double connect_s;       /* start to ready: the connect phase */
    double window_s;        /* measured window, by this worker's clock */
    double cpu_s;           /* this worker's CPU time in the window */
    bool deadline_hit;
    struct wsl_hist hist;   /* ns: echo round trips, delivery latency,
                               handshakes (connect, idle) */
};

/*
 * Runs one worker to the end. Writes one byte 'R' on report_fd once its
 * connections are settled (open or failed), starts the traffic when go_fd
 * reads EOF, and writes its struct wsl_stats on report_fd before it
 * returns. Returns 0, or a negative errno if it could not start.
 */
int wsl_worker_run(const struct wsl_opts *o, int go_fd, int report_fd);

#endif
