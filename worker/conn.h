/*
 * conn.h: one client connection, from accept through the HTTP upgrade,
 * RFC 6455 framing and the close handshake to its teardown, and the calls
 * into its app. The layout is here because the worker's lists and the
 * messaging code (messaging.c) walk connections.
 */
#ifndef SOCK_CONN_H
#define SOCK_CONN_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common.h"
#include "sendq.h"
#include "sock_impl.h"
#include "tlist.h"
#include "ws_frame.h"

struct worker;
struct route_rt;

enum conn_state {
    CONN_HANDSHAKE, /* reading the HTTP request */
    CONN_OPEN,      /* WebSocket open: callbacks run */
    CONN_CLOSING,   /* we sent close; waiting for the peer's */
    CONN_FINISH,    /* flush, then FIN, then wait for the peer's EOF */
    CONN_DEAD,      /* torn down; freed before the next poll */
};

enum rx_state {
    RX_HEADER,
    RX_PAYLOAD,
};

struct conn {
    struct sock_conn base;       /* ops; what the app holds */
    struct worker *w;
    int fd;
    enum conn_state state;
    enum rx_state rx;
    ev_io rio, wio;
    struct tnode tn;             /* handshake, idle, ping, pong, close */
    struct list link;            /* worker->conns */
    struct list flink;           /* worker->flush */
    struct list plink;           /* worker->pending */
    struct route_rt *route;
    sock_id id;
    void *app_state;
    char *peer;
    char *subprotocol;

    /* Receive side: only a partial header is kept inline. */
    struct ws_frame f;
    uint64_t f_got;              /* payload bytes of f seen so far */
    uint8_t hdr[WS_MAX_HEADER];
    uint8_t hdr_len;
    uint8_t msg_op;              /* opcode of the message being assembled */
    bool in_msg;                 /* a fragmented message is open */
    bool discard;                /* skip this frame's payload (closing) */
    uint32_t utf8;
    uint8_t *msg;                /* reassembly buffer, NULL when none */
    size_t msg_len, msg_cap;
    uint8_t *ctl;                /* control payload being read */
    uint8_t *head;               /* partial HTTP request head */
    size_t head_len;
    uint8_t *stash;              /* input left unprocessed while paused */
    size_t stash_len;

    /* Send side. */
    struct sendq sq;

    /* TLS (wss://), NULL for plain TCP. */
    struct tls_conn *tls;
    bool tls_handshaking;        /* before the HTTP request */
    bool tls_read_wants_write;   /* a read waits for the socket to drain */
    bool tls_write_wants_read;   /* a write waits for bytes from the peer */
    bool raw_drain;              /* answered in clear on a TLS port: read
                                    and drop the rest until EOF */

    /* permessage-deflate (RFC 7692), NULL unless agreed. */
    struct ws_deflate *deflate;
    uint8_t deflate_wbits;       /* our (server) window bits */
    bool deflate_shared_ok;      /* server_no_context_takeover: frames
                                    compressed once may be shared */
    bool compress_on;            /* sock_set_compress */
    bool msg_compressed;         /* the message being read had RSV1 */

    /* Options (the route's, overridable per connection). */
    uint32_t idle_ms;
    uint64_t max_message;

    /* Infos waiting for delivery, and what they hang off. */
    struct list inbox;
    uint32_t inbox_n;
    struct list timers;          /* sock_send_after */
    struct list subs;            /* topic subscriptions */

    /* Closing. */
    sock_close_kind close_kind;
    sock_close_error close_err;
    uint16_t code_sent;
    uint16_t peer_code;
    char *peer_reason;
    size_t peer_reason_len;
    uint16_t stop_code;
    uint8_t stop_reason_len;
    char *stop_reason;           /* malloc'd when an app stops with one */

    bool stop_recorded;
    bool in_cb;
    bool inited;
    bool active;
    bool above_high;
    bool awaiting_pong;
    bool shut_wr;
    bool want_teardown;
};

struct tls_ctx;
/* Takes fd (non-blocking, CLOEXEC) and starts reading the upgrade, after a
   TLS handshake when tls is not NULL. */
struct conn *conn_new(struct worker *w, int fd, const struct sockaddr *sa,
                      socklen_t salen, struct tls_ctx *tls);
/* Writes what is queued; called before each poll for connections on the
   flush list. */
void conn_flush(struct conn *c);
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
/* An info was queued for c: deliver it from the worker's idle watcher. */
void conn_info_arrived(struct conn *c);
/* The inbox overflowed under the close policy: 1008. */
void conn_fail_inbox(struct conn *c);
/* True while callbacks may run and pushes are accepted. */
static inline bool
conn_is_open(const struct conn *c)
{
    return c->state == CONN_OPEN;
}

#endif
