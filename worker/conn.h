/*
 * conn.h: one client connection, from accept through the HTTP upgrade
 * (conn_upgrade.c), RFC 6455 framing (output: conn_send.c; input:
 * conn_recv.c, which feeds ws_session.h's state machine and acts on its
 * events) and the close handshake to its teardown (conn.c), and the calls
 * into its app (conn_ops.c). The layout is here because those parts, the
 * worker's lists (worker.c) and admin.c use its fields; messaging.c
 * keeps only the mailbox (struct msg_box) and reaches connections
 * through the functions below that worker.c registers with it.
 */
#ifndef SOCK_CONN_H
#define SOCK_CONN_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "common.h"
#include "messaging.h"
#include "sendq.h"
#include "sock_impl.h"
#include "tlist.h"
#include "ws_frame.h"
#include "ws_session.h"

struct worker;
struct route_rt;

enum conn_state {
    CONN_HANDSHAKE, /* reading the HTTP request */
    CONN_OPEN,      /* WebSocket open: callbacks run */
    CONN_CLOSING,   /* we sent close; waiting for the peer's */
    CONN_FINISH,    /* flush, then FIN, then wait for the peer's EOF */
    CONN_DEAD,      /* torn down; freed before the next poll */
};

/*
 * What most connections never need: buffers for input split across reads,
 * close details, infos and subscriptions. Allocated on first use
 * (conn_cold), freed with the connection, so that an idle connection costs
 * only struct conn (DESIGN §8: memory per idle connection).
 */
struct conn_cold {
    char *peer;                  /* sock_peer(), formatted on first call */
    char *subprotocol;
    uint8_t *head;               /* partial HTTP request head */
    size_t head_len;
    uint8_t *stash;              /* input left unprocessed while paused */
    size_t stash_len;
    char *peer_reason;
    size_t peer_reason_len;
    char *stop_reason;           /* when an app stops with one */
    uint8_t stop_reason_len;

    /* A ping's answer waiting for the queued pongs to leave (its payload
       is the latest ping's: conn_answer_ping). */
    uint8_t pong_len;
    uint8_t *pong;

    /* message_timeout: armed while a frame or message is unfinished. */
    struct tnode mtn;

    /* Infos waiting for delivery, timers and topics (messaging.c's);
       box.c leads back to the connection from mtn too. */
    struct msg_box box;
    sock_pending *pending;       /* the upgrade waits for the app (pending.c) */

    /* On w->paused while c->fan_paused (conn_fan_pause). */
    struct list palink;
};

/* The client's address, kept raw: formatted only when asked for. */
union conn_addr {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

struct conn {
    struct sock_conn base;       /* ops; what the app holds */
    struct worker *w;
    int fd;
    enum conn_state state;
    /* One watcher: EV_READ while reading (active), EV_WRITE while the
       socket must drain; see conn_io_update. */
    ev_io io;
    struct tnode tn;             /* handshake, idle, ping, pong, close */
    struct list link;            /* worker->conns */
    struct list flink;           /* worker->flush */
    struct list plink;           /* worker->pending */
    struct route_rt *route;
    sock_id id;
    void *app_state;
    struct conn_cold *x;         /* NULL until needed */

    /* Receive side (ws_session.h): only a partial header is inline. */
    struct ws_session ws;

    /* Send side. */
    struct sendq sq;
    size_t pong_left;            /* queued bytes up to the last pong's end */

    struct tls_conn *tls;        /* wss://, NULL for plain TCP */
    struct ws_deflate *deflate;  /* permessage-deflate, NULL unless agreed */

    /* Options (the route's, overridable per connection). */
    uint64_t max_message;
    uint32_t idle_ms;

    /* Closing. */
    uint16_t code_sent;
    uint16_t peer_code;
    uint16_t stop_code;
    uint8_t close_kind;          /* sock_close_kind */
    uint8_t close_err;           /* sock_close_error */
    uint8_t deflate_wbits;       /* our (server) window bits */

    uint8_t pongs_queued;        /* pongs in sq maybe not written yet */

    /* Flags, as one-bit fields: 18 bools would cost 18 bytes of every
       connection. None may have its address taken. */
    bool reading:1;              /* io has EV_READ */
    bool writing:1;              /* io has EV_WRITE */
    bool tls_handshaking:1;      /* before the HTTP request */
    bool tls_read_wants_write:1; /* a read waits for the socket to drain */
    bool tls_write_wants_read:1; /* a write waits for bytes from the peer */
    bool raw_drain:1;            /* answered in clear on a TLS port: read
                                    and drop the rest until EOF */
    bool deflate_shared_ok:1;    /* server_no_context_takeover: frames
                                    compressed once may be shared */
    bool compress_on:1;          /* sock_set_compress */
    bool stop_recorded:1;
    bool in_cb:1;
    bool inited:1;
    bool active:1;
    bool above_high:1;
    bool awaiting_pong:1;
    bool shut_wr:1;
    bool want_teardown:1;
    bool pong_due:1;             /* x->pong waits to be queued */
    bool flush_later:1;          /* flink is on w->flush_later */
    bool fan_paused:1;           /* not read: its publishes took the
                                    fan-out backlog over its limit */
    /* Fan-out queued to c since its last write attempt while c waited for
       us, not its peer (its part of stats->fanout_backlog; saturates). */
    uint32_t fan_unsent:24;

    union conn_addr addr;        /* the peer */
    ev_tstamp opened_at;         /* the 101, for sockctl conns */
};

struct tls_ctx;
/* Takes fd (non-blocking, CLOEXEC) and starts reading the upgrade, after a
   TLS handshake when tls is not NULL. */
struct conn *conn_new(struct worker *w, int fd, const struct sockaddr *sa,
                      socklen_t salen, struct tls_ctx *tls);
/* Writes what is queued; called before each poll for connections on the
   flush list. */
void conn_flush(struct conn *c);
#define CONN_FLUSH_BATCH_MAX 128
/* conn_flush for the first max (<= CONN_FLUSH_BATCH_MAX) connections of the
   flush list, their writes made with one system call where the worker
   has a send batch (w->sendbatch). */
void conn_flush_batch(struct worker *w, int max);
/* Puts c on the worker's flush list (off flush_later if it was there):
   it is written before the next poll. */
void conn_flush_soon(struct conn *c);
/* Reads again from the connections paused for the fan-out backlog, once
   it is down to half of max_fanout_backlog (before each poll). */
void conn_fan_resume(struct worker *w);
/* Delivers queued infos and stashed input (from the worker's idle). */
void conn_run_pending(struct conn *c);
/* Server stop: 1001 (or the code given) to open connections. */
void conn_shutdown(struct conn *c, uint16_t code);
/* Tears down now: no close frame (fast stop). */
void conn_abort(struct conn *c);
/* Frees a torn-down connection. */
void conn_free(struct conn *c);
/* Timeout of c's timer class (from the worker's tlist callback). */
void conn_on_timeout(struct tnode *n, void *ctx);
/* message_timeout of c (the tnode in its cold part): 1008. */
void conn_on_message_timeout(struct tnode *n, void *ctx);
/*
 * A publish to a frame-mode subscriber (sock_subscribe_frames): queues
 * frame (the whole uncompressed frame of payload, built once) by
 * reference, or payload compressed once per worker and window where c
 * compresses, within send_hard_limit (over it c fails with 1008).
 * held (worker_fanout_later): it waits for the worker's fan-out tick.
 * Returns 0 or -errno; takes its own references.
 */
int conn_push_frame(struct conn *c, uint8_t op, sock_buf *payload,
                    sock_buf *frame, bool held);
/* The open connection with that id on this worker, or NULL. */
struct conn *conn_find(struct worker *w, sock_id id);
/*
 * Queues an info for c, delivered from the worker's idle watcher (new
 * references to topic and data; held: see struct info). Over the route's
 * max_info_queue it is dropped and counted, or c fails with 1008 under
 * info_overflow_close. 0, -EPIPE (c not open), -ENOBUFS (dropped) or
 * -ENOMEM.
 */
int conn_enqueue_info(struct conn *c, sock_info_kind kind, uint32_t type,
                      sock_id from, sock_buf *topic, sock_buf *data,
                      bool held);
/* conn_enqueue_info of a SOCK_INFO_BROADCAST to every open connection of
   w (overflows counted, as for each alone). */
void conn_broadcast_info(struct worker *w, uint32_t type, sock_id from,
                         sock_buf *data, bool held);
/* c's cold part, allocated if need be; NULL when out of memory. */
struct conn_cold *conn_cold(struct conn *c);
/* "ADDR:PORT" ("[v6]:PORT") of the peer into buf, for logs. */
const char *conn_peer_str(const struct conn *c, char *buf, size_t size);
#define CONN_PEER_MAX 56

/* True while callbacks may run and pushes are accepted. */
static inline bool
conn_is_open(const struct conn *c)
{
    return c->state == CONN_OPEN;
}

#endif
