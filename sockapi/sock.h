/*
 * sock.h: the Sock contract. The only header a WebSocket application
 * includes. An application is a table of callbacks (struct sock_app); the
 * server (sockd) owns sockets, HTTP, framing, compression, TLS, processes,
 * timeouts and the message bus, and calls the application on events.
 *
 * Threading and lifetime rules (DESIGN §3.2):
 *  - A connection lives on one worker process and one loop thread. Its
 *    callbacks never run at the same time and never nest: an info sent to
 *    yourself or a neighbour is queued and delivered after the current
 *    callback returns.
 *  - Data in sock_msg and sock_info is owned by the server and valid only
 *    during the callback. Copy what you keep.
 *  - sock_conn * is valid from init until terminate returns. Keep a
 *    sock_id (sock_self) for anything longer-lived.
 *  - Every sock_* call below is made on the worker's loop thread: inside a
 *    callback, or from a sock_watch_fd / sock_timer_start callback or other
 *    code the app runs on that loop. The only exceptions, safe from any
 *    thread, are sock_post, sock_pending_accept and sock_pending_refuse.
 *
 * Errors are negative errno values, never errno itself.
 */
#ifndef SOCK_H
#define SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Bumped when the table below changes; members are only appended. sockd
 * loads modules built for any version from 1 up to this one, and reads
 * only the members that version had (2 added setup and teardown).
 */
#define SOCK_ABI_VERSION 2

typedef struct sock_conn sock_conn;       /* opaque, see lifetime above */
typedef struct sock_request sock_request; /* opaque, upgrade hook only */
typedef struct sock_upgrade sock_upgrade; /* opaque, upgrade hook only */
typedef struct sock_buf sock_buf;         /* shared reference-counted bytes */
typedef struct sock_options sock_options; /* a route's option.NAME keys */
typedef struct sock_watch sock_watch;     /* sock_watch_fd */
typedef struct sock_timer sock_timer;     /* sock_timer_start */
typedef struct sock_pending sock_pending; /* a deferred upgrade decision */

/*
 * A routable connection id: node (16 bits) | generation (8) | worker slot (8)
 * | serial (32). Valid forever as a name: a message to the id of a closed
 * connection is dropped (and counted), never delivered to another one.
 * 0 is never a connection; it is the "from" of messages from outside.
 */
typedef uint64_t sock_id;

#define SOCK_ID_NODE(id) ((uint16_t)((id) >> 48))
#define SOCK_ID_GENERATION(id) ((uint8_t)((id) >> 40))
#define SOCK_ID_SLOT(id) ((uint8_t)((id) >> 32))
#define SOCK_ID_SERIAL(id) ((uint32_t)(id))

/* What every handler returns. Any other value stops the connection with 1011. */
typedef enum sock_ret {
    SOCK_CONTINUE = 0,
    SOCK_STOP = 1,
} sock_ret;

/* RFC 6455 §5.2 opcodes an application sees or pushes. */
typedef enum sock_opcode {
    SOCK_TEXT = 0x1,
    SOCK_BINARY = 0x2,
    SOCK_PING = 0x9,
    SOCK_PONG = 0xA,
} sock_opcode;

/* An inbound message: complete (reassembled, inflated, UTF-8 checked for text). */
typedef struct sock_msg {
    sock_opcode opcode;
    const void *data; /* server-owned, valid during the callback only */
    size_t len;
} sock_msg;

/* Where an info came from. */
typedef enum sock_info_kind {
    SOCK_INFO_SEND = 1,      /* sock_send_info to this connection's id */
    SOCK_INFO_PUBLISH = 2,   /* sock_publish to a topic this connection joined */
    SOCK_INFO_BROADCAST = 3, /* sock_broadcast */
    SOCK_INFO_TIMER = 4,     /* sock_send_after fired */
    SOCK_INFO_DRAIN = 5,     /* the server is draining this worker (reload);
                                type 0, no data. The connection is closed
                                with 1012 after drain_timeout unless the app
                                stops first. */
    SOCK_INFO_POST = 6,      /* sock_post (from any thread); from is 0 */
} sock_info_kind;

typedef struct sock_info {
    sock_info_kind kind;
    uint32_t type;     /* the app's own message type, as given by the sender */
    sock_id from;      /* sender's id; 0 from outside (admin, timers, drain) */
    const char *topic; /* PUBLISH only, else NULL; NUL-terminated */
    const void *data;  /* server-owned, valid during the callback only */
    size_t len;
} sock_info;

/* Why a connection ended (given to terminate). */
typedef enum sock_close_kind {
    SOCK_CLOSE_NORMAL = 1,   /* the app stopped */
    SOCK_CLOSE_REMOTE = 2,   /* the peer sent a close frame */
    SOCK_CLOSE_SHUTDOWN = 3, /* the server is stopping or draining */
    SOCK_CLOSE_TIMEOUT = 4,  /* idle, pong, message or close timeout */
    SOCK_CLOSE_ERROR = 5,    /* see sock_close_error */
} sock_close_kind;

typedef enum sock_close_error {
    SOCK_ERR_NONE = 0,
    SOCK_ERR_NO_CLOSE = 1,     /* TCP closed without a close frame */
    SOCK_ERR_PROTOCOL = 2,     /* RFC 6455 violation by the peer (1002) */
    SOCK_ERR_UTF8 = 3,         /* invalid UTF-8 in text or close reason (1007) */
    SOCK_ERR_TOO_BIG = 4,      /* frame or message over a limit (1009) */
    SOCK_ERR_INFLATE = 5,      /* corrupt compressed data (1007) */
    SOCK_ERR_IO = 6,           /* read or write failed */
    SOCK_ERR_BACKPRESSURE = 7, /* send queue over the hard limit (1008) */
    SOCK_ERR_APP = 8,          /* the app stopped with an error or returned garbage */
    SOCK_ERR_INBOX = 9,        /* info inbox overflow with the close policy (1008) */
} sock_close_error;

typedef struct sock_close_info {
    sock_close_kind kind;
    sock_close_error error;
    uint16_t code_sent;       /* close code we sent; 0 if none was sent */
    uint16_t peer_code;       /* the peer's code; 1005 empty close, 1006 none came */
    const char *peer_reason;  /* the peer's reason (valid UTF-8), "" if none */
    size_t peer_reason_len;
} sock_close_info;

/*
 * The upgrade hook (optional). Runs after the server has validated the
 * request against RFC 6455 §4.2.1, outside the connection's lifecycle.
 * Return 0 to accept, or an HTTP status 400..599 to refuse (the body set
 * with sock_upgrade_refuse_body is sent, else the status text). Any other
 * return value refuses with 500. On accept, whatever was given to
 * sock_upgrade_set_arg reaches init as upgrade_arg; init always runs after
 * an accepted upgrade whose 101 could be queued, so the app may free the
 * arg there. If the client vanishes before init, free_arg (if set) frees it.
 *
 * Or return SOCK_UPGRADE_LATER after taking a handle with
 * sock_upgrade_defer, and decide later with sock_pending_accept or
 * sock_pending_refuse (see "Deferred upgrade decisions" below).
 */
typedef int (*sock_upgrade_fn)(const sock_request *req, sock_upgrade *up);

/* The upgrade hook's answer "I will decide later" (see sock_upgrade_defer). */
#define SOCK_UPGRADE_LATER 1

typedef struct sock_app {
    uint32_t abi;     /* SOCK_ABI_VERSION */
    const char *name; /* for logs */
    sock_upgrade_fn upgrade; /* optional */
    /* Once, after the 101 is written. Frames may be pushed. *state is NULL on entry. */
    sock_ret (*init)(sock_conn *c, void *upgrade_arg, void **state);
    /* Each complete text or binary message. */
    sock_ret (*handle_in)(sock_conn *c, const sock_msg *m, void **state);
    /* Optional: a ping (pong already queued by the server, or under a ping
       flood, one for the latest ping) or pong. Never close. */
    sock_ret (*handle_control)(sock_conn *c, const sock_msg *m, void **state);
    /* Messages from elsewhere: other connections, topics, timers, drain. */
    sock_ret (*handle_info)(sock_conn *c, const sock_info *i, void **state);
    /*
     * Optional. Exactly once for every connection whose init ran, also when
     * init stopped. No sock_* call on c succeeds from here on but the
     * getters; c is dead once this returns. state is the last one stored.
     */
    void (*terminate)(sock_conn *c, const sock_close_info *why, void *state);
    /* Optional: the send queue fell below the low watermark after having
       reached the high watermark. */
    sock_ret (*handle_writable)(sock_conn *c, void **state);

    /* ---- ABI 2 ---- */
    /*
     * Optional. Once per worker and per route that uses the app, on the
     * loop thread, after the worker started and before it accepts: open
     * pools, connect to backends (sock_watch_fd, sock_timer_start and
     * threads may be started here). opts are the route's option.NAME keys,
     * valid until teardown returns. Return 0, or a negative errno: the
     * worker then logs event=app_setup_failed with the route and the error,
     * and that route refuses every upgrade with 503 until the next reload
     * (the other routes keep working).
     */
    int (*setup)(const sock_options *opts);
    /*
     * Optional. Once for every setup that returned 0, when the worker
     * stops, after every connection of the worker has terminated. Stop
     * and join every thread the app started (a module is unloaded right
     * after teardown: a thread still running its code would crash the
     * worker), and free what setup made. sock_post from a straggler
     * after teardown returns -ENOTCONN.
     */
    void (*teardown)(const sock_options *opts);
} sock_app;

/* An app module (.so) exports exactly this symbol. */
#define SOCK_APP_SYMBOL "sock_app_v1"

/* ---- Pushing frames --------------------------------------------------- */

/* Flags for sock_push_ex. */
#define SOCK_PUSH_NO_COMPRESS 0x1u /* send this message uncompressed */

/*
 * Queue a frame to the client. The bytes are copied: data may be reused
 * once this returns. op is TEXT (data must be valid UTF-8; not checked),
 * BINARY, PING or PONG (len <= 125). Frames go out in push order, before any
 * close frame of a later stop. Returns 0; -EPIPE when the connection is
 * closing or terminated; -EINVAL for a bad opcode or an oversized control
 * frame; -ENOBUFS when the send queue passed the hard limit (the connection
 * is then closed with 1008).
 */
int sock_push(sock_conn *c, sock_opcode op, const void *data, size_t len);
int sock_push_ex(sock_conn *c, sock_opcode op, const void *data, size_t len,
                 unsigned flags);

/*
 * Zero-copy push of a shared buffer. The server takes its own reference:
 * the caller keeps (and must drop) its own. Same returns as sock_push.
 */
int sock_push_buf(sock_conn *c, sock_opcode op, sock_buf *b);

/* A new buffer holding a copy of data, with one reference; NULL on ENOMEM. */
sock_buf *sock_buf_new(const void *data, size_t len);
/* Adds a reference; returns b. */
sock_buf *sock_buf_ref(sock_buf *b);
/* Drops a reference; frees on the last one. NULL is a no-op. */
void sock_buf_unref(sock_buf *b);
const void *sock_buf_data(const sock_buf *b);
size_t sock_buf_len(const sock_buf *b);

/* ---- Stopping --------------------------------------------------------- */

/*
 * Each records how to close and returns SOCK_STOP, so a handler ends with
 * `return sock_stop(c);`. Frames pushed before go out before the close
 * frame. Called outside a handler (a timer), the close starts once the
 * current loop callback is done. Calls after the first are ignored.
 */
sock_ret sock_stop(sock_conn *c); /* 1000 */
/* code must be 1000-1003, 1007-1014 or 3000-4999, reason <= 123 bytes of
   UTF-8; otherwise 1011 is sent and a line is logged. */
sock_ret sock_stop_code(sock_conn *c, uint16_t code, const char *reason,
                        size_t len);
sock_ret sock_stop_restart(sock_conn *c);           /* 1012 */
sock_ret sock_stop_error(sock_conn *c, int app_err); /* 1011, app_err logged */

/* ---- Flow control and options ------------------------------------------ */

/* True while the send queue is below the high watermark. */
bool sock_writable(const sock_conn *c);
/* Bytes queued and not yet written to the socket. */
size_t sock_send_queued(const sock_conn *c);
/*
 * Pause (false) or resume (true) reading from the client. While paused
 * nothing is read: no messages, and pings go unanswered. The idle timeout
 * does not run while paused. Returns 0 or -EPIPE.
 */
int sock_set_active(sock_conn *c, bool active);
/* Runtime setters; 0, -EINVAL for a bad value, -EPIPE when closing. */
int sock_set_idle_timeout(sock_conn *c, uint32_t ms); /* 0 turns it off */
int sock_set_max_message_size(sock_conn *c, size_t bytes);
int sock_set_compress(sock_conn *c, bool on); /* -ENOTSUP if not negotiated */

/* ---- Identity and request data ---------------------------------------- */

sock_id sock_self(const sock_conn *c);
/* "ADDR:PORT" ("[v6]:PORT") of the client. Valid while c is. */
const char *sock_peer(const sock_conn *c);
/* The subprotocol chosen at the upgrade, or NULL. */
const char *sock_subprotocol(const sock_conn *c);
/* The route path that accepted the connection ("/echo"). */
const char *sock_route(const sock_conn *c);

/* ---- Messaging (DESIGN §5) -------------------------------------------- */

/*
 * Send an info to a connection by id, on this worker or any other. The data
 * is copied. The receiver sees kind SOCK_INFO_SEND, from = the connection
 * whose callback is running (0 elsewhere). At most once, FIFO per
 * sender/receiver pair, delivered after the current callback returns.
 * Returns 0 (also when the id is gone: such messages are dropped and
 * counted), -ENOMEM.
 */
int sock_send_info(sock_id to, uint32_t type, const void *data, size_t len);

/* Join or leave a topic (1..255 bytes). Returns 0, -EINVAL, -ENOMEM, -EPIPE. */
int sock_subscribe(sock_conn *c, const char *topic);
int sock_unsubscribe(sock_conn *c, const char *topic);
/* Deliver to every subscriber of topic, sender included if subscribed. */
int sock_publish(const char *topic, uint32_t type, const void *data,
                 size_t len);
/* Deliver to every open connection. */
int sock_broadcast(uint32_t type, const void *data, size_t len);

/*
 * Join topic in frame mode: every message later published to it, from
 * this worker, another one or (with [redis]) another machine, reaches c
 * as one data frame of opcode op (SOCK_TEXT or SOCK_BINARY) whose payload
 * is exactly the published bytes. handle_info is not called, and the
 * message does not count against max_info_queue: the worker builds the
 * frame once per publish and queues a reference to it (small frames are
 * copied into the queue, which is cheaper) for every frame-mode
 * subscriber, and where permessage-deflate applies with
 * server_no_context_takeover the payload is compressed once per worker
 * and window, not per subscriber. The app owns nothing here: the bytes
 * belong to the server. For SOCK_TEXT the publisher must publish valid
 * UTF-8 (not checked, as for sock_push). A frame that would take the send
 * queue past send_hard_limit closes c with 1008, as for sock_push; above
 * the high watermark handle_writable is called as for pushes. The type
 * given to sock_publish is not sent. Calling it for a topic c joined with
 * sock_subscribe (or with another op) switches the mode; sock_unsubscribe
 * leaves either. Use sock_subscribe when the app must filter or reword
 * per subscriber. Returns 0, -EINVAL (topic, or op not TEXT or BINARY),
 * -ENOMEM, -EPIPE.
 */
int sock_subscribe_frames(sock_conn *c, const char *topic, sock_opcode op);

/*
 * After ms milliseconds, deliver an info of kind SOCK_INFO_TIMER with this
 * type and a copy of data to c. Cancelled by terminate. Returns 0, -ENOMEM,
 * -EPIPE.
 */
int sock_send_after(sock_conn *c, uint32_t ms, uint32_t type,
                    const void *data, size_t len);

/* ---- Route options (option.NAME = VALUE in [route]) -------------------- */

/*
 * The value of option.NAME in the route's section ("" when given empty),
 * or NULL when it is not set. Strings are the server's, valid as long as
 * the route's app runs (until teardown returns). sock_option: of c's
 * route; sock_request_option: of the request's route (in the upgrade
 * hook); sock_options_get: of the set given to setup and teardown.
 */
const char *sock_option(const sock_conn *c, const char *name);
const char *sock_request_option(const sock_request *r, const char *name);
const char *sock_options_get(const sock_options *o, const char *name);
/* The route path the options belong to ("/chat"). */
const char *sock_options_route(const sock_options *o);

/* ---- Loop integration: file descriptors and timers -------------------- */

#define SOCK_READ 0x1u  /* fd readable (or EOF / error) */
#define SOCK_WRITE 0x2u /* fd writable */

typedef void (*sock_watch_fn)(sock_watch *w, int fd, unsigned revents,
                              void *arg);
/*
 * Watches fd (which the app owns and keeps open; make it non-blocking) on
 * the worker's loop: cb runs on the loop thread with the events that are
 * ready, among `events` (SOCK_READ, SOCK_WRITE, or 0 to register it
 * paused). This is how a non-blocking client (hiredis async, libpq, a
 * socket) runs inside a worker without blocking it. cb runs outside any
 * connection's callback, like a timer: sock_push to a connection the app
 * still holds is allowed (a sock_conn * is valid until its terminate
 * returns). Returns a handle, valid until sock_watch_stop (a watch the
 * app never stops is stopped and freed after teardown); NULL when out of
 * memory, for fd < 0, cb NULL or unknown event bits, and where no worker
 * or harness runs. In the sock_test.h harness, sock_test_poll drives
 * watches with poll(2).
 */
sock_watch *sock_watch_fd(int fd, unsigned events, sock_watch_fn cb,
                          void *arg);
/* Changes the events watched (0 pauses). Returns 0, -EINVAL. */
int sock_watch_set(sock_watch *w, unsigned events);
/* Stops watching and frees w (also from inside its own cb). The fd stays
   open: the app closes it, after this call (never before: the number
   may be reused). NULL is a no-op. */
void sock_watch_stop(sock_watch *w);

typedef void (*sock_timer_fn)(sock_timer *t, void *arg);
/*
 * Runs cb on the loop thread after ms milliseconds, then every repeat_ms
 * if repeat_ms > 0, independent of any connection. A one-shot timer's
 * handle is dead once its cb returns (unless cb stopped it first); a
 * repeating one lives until sock_timer_stop (one still running after
 * teardown is stopped and freed). Returns a handle or NULL (out of
 * memory, cb NULL, no worker or harness). In the sock_test.h harness
 * the timers run on sock_test_advance's fake clock.
 */
sock_timer *sock_timer_start(uint32_t ms, uint32_t repeat_ms,
                             sock_timer_fn cb, void *arg);
/* Cancels and frees t (also from inside its own cb). NULL is a no-op. */
void sock_timer_stop(sock_timer *t);

/* ---- From other threads ------------------------------------------------ */

/*
 * Thread-safe: callable from any thread of the worker process (a thread
 * pool doing blocking work), as well as from the loop. Copies data and
 * wakes the worker's loop, which then delivers it like sock_send_info:
 * an info of kind SOCK_INFO_POST with this type, from 0, to connection
 * `to` on this worker, or over the bus to another worker or (with
 * [redis]) machine, where it arrives as SOCK_INFO_SEND from 0. A closed or
 * unknown id is dropped and counted (sock_infos_stale_total), as for
 * sock_send_info; so is a post over the receiver's inbox bound
 * (max_info_queue, info_overflow), like any info. FIFO per posting
 * thread. Returns 0; -ENOBUFS when 65536 posts already wait for the loop
 * (the post is dropped and counted in sock_infos_dropped_total; retry
 * later); -ENOMEM; -EINVAL (data NULL with len > 0); -ENOTCONN when no
 * worker runs in this process.
 */
int sock_post(sock_id to, uint32_t type, const void *data, size_t len);

/* ---- Deferred upgrade decisions --------------------------------------- */

/*
 * In the upgrade hook only: keep the request waiting and decide later.
 * The hook must then return SOCK_UPGRADE_LATER. What the hook set on u
 * before (subprotocol, headers, options) is kept for the accept. Until the
 * decision nothing the client sends is processed (a few bytes are kept,
 * more than max_request_head is refused with 400); the handshake_timeout,
 * counted from the accept of the TCP connection, still applies: when it
 * expires first the client gets 503 "upgrade decision timed out". Returns
 * the handle, or NULL when out of memory (the hook should then refuse).
 * The app owns the handle until it calls exactly one of
 * sock_pending_accept or sock_pending_refuse, which frees it.
 */
sock_pending *sock_upgrade_defer(sock_upgrade *u);
/*
 * Thread-safe. Accept: the 101 goes out and init runs with arg (as
 * sock_upgrade_set_arg; NULL keeps the hook's own arg, if it set one) on
 * the loop, after the current callback. Returns 0 when the decision was
 * taken: from then on the server owns arg and frees it with free_arg if
 * init never runs (the client vanished in the meantime). Returns -EPIPE
 * when the request is already dead (timed out or the client went away),
 * or -ENOMEM / -ENOBUFS (the queue to the loop is full, see sock_post)
 * when the decision could not be taken (the request then ends at its
 * handshake_timeout): arg stays the caller's. Frees p either way.
 */
int sock_pending_accept(sock_pending *p, void *arg, void (*free_arg)(void *));
/*
 * Thread-safe. Refuse with an HTTP status 400..599 (others become 500) and
 * an optional body (copied; NULL: the status text). Returns 0, -EPIPE
 * when the request is already dead, -ENOMEM or -ENOBUFS as for
 * sock_pending_accept. Frees p either way.
 */
int sock_pending_refuse(sock_pending *p, int status, const char *body);
/*
 * Thread-safe, before the decision: what sock_upgrade_subprotocol and
 * sock_upgrade_header do in the hook, for the 101 of a later accept (a
 * refusal ignores them). Return 0; -EINVAL for a subprotocol the client
 * did not offer or bad header characters; -ENOMEM; -EPIPE when the
 * request is already dead. The handle stays the app's either way: decide
 * still frees it.
 */
int sock_pending_subprotocol(sock_pending *p, const char *proto);
int sock_pending_header(sock_pending *p, const char *name, const char *value);

/* ---- The upgrade request (valid during the upgrade hook only) --------- */

const char *sock_request_method(const sock_request *r); /* "GET" */
const char *sock_request_path(const sock_request *r);   /* "/chat", decoded no further */
const char *sock_request_query(const sock_request *r);  /* "room=a&x=1" or "" */
/* First header with this name (any case), or NULL. */
const char *sock_request_header(const sock_request *r, const char *name);
size_t sock_request_header_count(const sock_request *r);
/* The i-th header as sent; returns false past the end. */
bool sock_request_header_at(const sock_request *r, size_t i,
                            const char **name, const char **value);
const char *sock_request_peer(const sock_request *r);
bool sock_request_tls(const sock_request *r);
/*
 * Looks up key in the query string; copies its value (not percent-decoded)
 * into buf (NUL-terminated). Returns the value's length, or -1 if absent,
 * or -ENOSPC if it does not fit.
 */
int sock_request_query_param(const sock_request *r, const char *key,
                             char *buf, size_t size);

/* Choose one of the subprotocols the client offered. -EINVAL if not offered. */
int sock_upgrade_subprotocol(sock_upgrade *u, const char *proto);
/* Add a header to the 101 response. -EINVAL for bad characters. */
int sock_upgrade_header(sock_upgrade *u, const char *name, const char *value);
/* Hand arg to init; free_arg (optional) frees it if init never runs. */
void sock_upgrade_set_arg(sock_upgrade *u, void *arg, void (*free_arg)(void *));
/* The body of a refusal (copied). */
int sock_upgrade_refuse_body(sock_upgrade *u, const char *body);
/* Per-connection options that override the route's. */
int sock_upgrade_set_idle_timeout(sock_upgrade *u, uint32_t ms);
int sock_upgrade_set_max_message_size(sock_upgrade *u, size_t bytes);

/* ---- Helpers ------------------------------------------------------------ */

/* True if code may be sent in a close frame by an app (see sock_stop_code). */
bool sock_close_code_is_valid(uint16_t code);
/* True if buf is valid UTF-8. */
bool sock_utf8_valid(const void *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
