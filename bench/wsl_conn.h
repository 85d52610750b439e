/*
 * wsl_conn.h: client WebSocket connections on a libev loop, and the
 * per-worker machinery they share (struct wsl_net): non-blocking connect,
 * the opening handshake, masked frames out, writes corked to one send() per
 * connection per loop iteration, reads into one worker-wide buffer, pings
 * answered, the close handshake, and a deferred release. What to send and
 * what the messages mean belongs to the owner (wsl_worker.c), through
 * struct wsl_conn_ops. Connections are embedded in the owner's structs;
 * this layer never allocates or frees one.
 *
 * Variations: TLS under everything for wss:// URLs (wsl_tls.c);
 * permessage-deflate when the target offers it (messages are compressed
 * and inflated here, so owners see plain payloads); and raw TCP (tcp://
 * URLs, the echo ceiling in bench/compare): no handshake and no frames,
 * the byte stream cut into messages of a fixed size.
 */
#ifndef WSL_CONN_H
#define WSL_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <ev.h>

#include "wsl_frame.h"

/* What ended a connection, and the error counters, by kind. */
enum wsl_err {
    WSL_ERR_NONE,        /* a close we asked for */
    WSL_ERR_CONNECT,     /* socket() or connect() failed */
    WSL_ERR_HANDSHAKE,   /* not a valid 101, or closed during it */
    WSL_ERR_PROTOCOL,    /* a frame a server must not send */
    WSL_ERR_CLOSED,      /* the server closed or reset an open connection */
    WSL_ERR_MISMATCH,    /* counted by the owner: a wrong echo */
    WSL_ERR_TIMEOUT,     /* counted by the owner: connect or close too slow */
    WSL_ERR_COUNT
};

/* Where to connect and what to ask for; shared read-only by all. */
struct wsl_target {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char host[300];          /* Host header: "127.0.0.1:18555" */
    char path[1024];         /* request target, path and query */
    const char *extensions;  /* NULL, or WSL_DEFLATE_OFFER */
    int deflate_level;       /* with extensions: zlib level of our messages */
    uint32_t src_ips;        /* > 1: bind to 127.0.0.(1 + index % src_ips) */
    uint32_t raw_msg_size;   /* > 0: raw TCP, messages of this many bytes */
    uint8_t raw_opcode;      /* raw TCP: the opcode messages are given */
    bool tls;                /* wss:// */
};

enum wsl_conn_state {
    WSL_CS_NONE,
    WSL_CS_CONNECTING,
    WSL_CS_HANDSHAKE,   /* request sent, waiting for the 101 */
    WSL_CS_OPEN,
    WSL_CS_CLOSE_SENT,  /* our close frame is out; waiting for the server's */
    WSL_CS_CLOSE_WAIT,  /* close frames exchanged; waiting for its FIN */
    WSL_CS_DEAD,        /* fd closed; on_dead not yet called */
};

struct wsl_net;
struct wsl_hs;
struct wsl_deflate;
struct wsl_inflater;
struct wsl_tls;
struct wsl_tls_conn;

struct wsl_conn {
    ev_io rio, wio;
    struct wsl_net *net;
    struct wsl_conn *next_dead;
    struct wsl_hs *hs;          /* during the handshake only */
    uint8_t *out;               /* frames not yet written */
    size_t out_off, out_len, out_cap;
    uint8_t *ctl;               /* a control frame's payload, while read */
    struct wsl_inflater *inf;   /* while a compressed message is read, or
                                   for life if the server keeps context */
    struct wsl_tls_conn *tls;   /* wss:// */
    struct wsl_rx rx;
    uint64_t t_start_ns;        /* connect() called */
    uint64_t t_open_ns;         /* 101 parsed */
    uint64_t t_close_ns;        /* close frame sent or received */
    int fd;
    uint8_t state;              /* enum wsl_conn_state */
    uint8_t why;                /* enum wsl_err, once DEAD */
    bool in_dirty;
    bool server_closed;         /* the server sent the first close frame */
    bool keep_out;              /* owner: keep the write buffer allocated */
    bool tls_hs;                /* TLS handshake under way (CONNECTING) */
    bool deflate;               /* permessage-deflate agreed */
    bool srv_takeover;          /* the server keeps its deflate context */
};

/*
 * The owner's side. Each is called with the connection it concerns, from
 * the loop; c may have been closed by the time the next one runs, so the
 * owner checks c->state after anything that may close it.
 */
struct wsl_conn_ops {
    void (*on_open)(struct wsl_conn *c);
    /* A piece of a data message; ev and its bytes are borrowed. */
    void (*on_data)(struct wsl_conn *c, const struct wsl_rx_event *ev);
    /* Just before queued frames are written; may be NULL. */
    void (*before_flush)(struct wsl_conn *c, uint64_t now_ns);
    /* c is dead and off every list: the owner may now reuse or free it. */
    void (*on_dead)(struct wsl_conn *c);
};

/* Per-worker state all its connections share. */
struct wsl_net {
    struct ev_loop *loop;
    const struct wsl_target *target;
    const struct wsl_conn_ops *ops;
    uint8_t *rbuf;              /* every read lands here */
    size_t rbuf_cap;
    struct wsl_conn **dirty;    /* frames queued this iteration */
    size_t n_dirty, dirty_cap;
    struct wsl_conn *dead;      /* waiting for on_dead */
    ev_prepare prepare;         /* flush the corked writes, then release */
    ev_idle kick;               /* keeps the loop from blocking on a release */
    uint64_t rng;
    uint64_t now_ns;            /* after the last read, before each write */
    struct wsl_deflate *dfl;    /* when the target offers permessage-deflate */
    struct wsl_tls *tls;        /* wss:// */
    uint64_t bytes_in, bytes_out;
    uint64_t inflated;          /* compressed messages received */
    uint64_t err[WSL_ERR_COUNT];
    int first_errno[WSL_ERR_COUNT];
    char first_failure[120];    /* first bad status line, close code, ... */
};

/*
 * Sets up n for at most max_conns connections at a time. Returns 0,
 * -ENOMEM, or -ELIBACC if the target needs zlib (permessage-deflate) or
 * libssl (wss://) and it cannot be loaded. wsl_net_destroy frees what init allocated; connections must be
 * dead by then.
 */
int wsl_net_init(struct wsl_net *n, struct ev_loop *loop,
                 const struct wsl_target *t, const struct wsl_conn_ops *ops,
                 size_t max_conns);
void wsl_net_destroy(struct wsl_net *n);

/* Counts an error of kind why; notes errnum or a description once. */
void wsl_net_count(struct wsl_net *n, enum wsl_err why, int errnum,
                   const char *what);

/*
 * Zeroes c and connects it; index picks the source address. Any failure,
 * now or later, ends in on_dead with c->why set, never in a return value.
 */
void wsl_conn_start(struct wsl_net *n, struct wsl_conn *c, uint32_t index);

/*
 * Queues a data frame of the iovecs' bytes, masked (copied: the caller's
 * buffers may be reused at once); it is written before the loop blocks.
 * Returns 0, -EPIPE unless c is open, or -ENOMEM.
 */
int wsl_conn_sendv(struct wsl_conn *c, uint8_t opcode,
                   const struct iovec *iov, int iovcnt);

/* Starts the close handshake (code) if open; ends c if still connecting;
   nothing otherwise. */
void wsl_conn_close(struct wsl_conn *c, uint16_t code);

/* Ends c now (RST-free close of the fd), counting why unless NONE. */
void wsl_conn_abort(struct wsl_conn *c, enum wsl_err why);

/* Bytes queued and not yet written. */
static inline size_t
wsl_conn_queued(const struct wsl_conn *c)
{
    return c->out_len - c->out_off;
}

static inline bool
wsl_conn_is_live(const struct wsl_conn *c)
{
    return c->state != WSL_CS_NONE && c->state != WSL_CS_DEAD;
}

#endif
