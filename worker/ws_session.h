/*
 * ws_session.h: the receive side of an RFC 6455 connection (with
 * permessage-deflate, RFC 7692) without I/O: bytes in, events out. Frame
 * headers (ws_frame.h), fragment reassembly, control frames between
 * fragments, the close frame's payload, UTF-8 checked as bytes arrive
 * (fail fast), inflate, and the size limits. The caller (conn_recv.c) owns the
 * socket, the app and what a failure costs the connection.
 */
#ifndef SOCK_WS_SESSION_H
#define SOCK_WS_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ws_frame.h"

struct ws_deflate;

/* Where the session is within a frame. */
enum ws_rx {
    WS_RX_HEADER = 0, /* between frames (maybe a partial header kept) */
    WS_RX_DATA,       /* a data frame's payload */
    WS_RX_CONTROL,    /* a control frame's payload */
    WS_RX_DISCARD,    /* a frame skipped while closing */
    WS_RX_FAILED,     /* an error was reported: no more input */
};

/* The message being assembled. */
enum ws_msg {
    WS_MSG_NONE = 0,       /* none: the next data frame starts one */
    WS_MSG_PLAIN,          /* started, payload kept as it came */
    WS_MSG_COMPRESSED,     /* started with RSV1: inflated as it comes */
};

enum ws_event_type {
    WS_EV_NONE = 0,
    WS_EV_MESSAGE,    /* opcode, data, len: a whole data message */
    WS_EV_PING,       /* data, len */
    WS_EV_PONG,       /* data, len */
    WS_EV_CLOSE,      /* code (1005 for none), data/len: the reason */
    WS_EV_ERROR,      /* code: fail the connection with it; err: why */
};

/* Why a WS_EV_ERROR. */
enum ws_session_err {
    WS_ERR_NONE = 0,
    WS_ERR_PROTOCOL,  /* 1002 */
    WS_ERR_UTF8,      /* 1007: text or close reason not UTF-8 */
    WS_ERR_TOO_BIG,   /* 1009 */
    WS_ERR_INFLATE,   /* 1007: corrupt compressed data */
    WS_ERR_INTERNAL,  /* 1011: inflate failed otherwise */
    WS_ERR_NOMEM,     /* code 0: out of memory, drop the connection */
};

struct ws_event {
    enum ws_event_type type;
    uint8_t opcode;            /* WS_EV_MESSAGE: WS_OP_TEXT or _BINARY */
    uint16_t code;             /* WS_EV_CLOSE, WS_EV_ERROR */
    enum ws_session_err err;   /* WS_EV_ERROR */
    bool frame_end;            /* a frame ended in this call */
    const uint8_t *data;       /* valid until ws_session_release */
    size_t len;
};

/* Limits and context of one feed; they may change between feeds. */
struct ws_session_opts {
    uint64_t max_frame;        /* max_frame_size */
    uint64_t max_message;      /* max_message_size */
    uint32_t max_inflate_ratio;
    struct ws_deflate *deflate; /* agreed permessage-deflate, or NULL */
    bool closing;              /* we sent our close: skip all but close */
};

/* Zeroed is a fresh session. */
struct ws_session {
    struct ws_frame f;         /* the current frame's header */
    uint64_t f_got;            /* payload bytes of f seen so far */
    uint8_t *msg;              /* reassembly buffer, NULL when none */
    size_t msg_len, msg_cap;
    uint8_t *ctl;              /* control payload (malloc'd when needed) */
    uint32_t utf8;             /* incremental validator state */
    uint8_t hdr[WS_MAX_HEADER];
    uint8_t hdr_len;
    uint8_t msg_op;            /* opcode of the message being assembled */
    uint8_t rx;                /* enum ws_rx */
    uint8_t mstate;            /* enum ws_msg */
};

/*
 * Takes bytes from p[0..len) (unmasked in place: an event's data may point
 * into p) and reports at most one event in *ev: at most one frame header
 * and one piece of payload per call. Returns the bytes used; all of them
 * after a WS_EV_ERROR. Call ws_session_release after handling an event.
 */
size_t ws_session_feed(struct ws_session *s, const struct ws_session_opts *o,
                       uint8_t *p, size_t len, struct ws_event *ev);

/* Frees what the last event delivered (the message or control buffer). */
void ws_session_release(struct ws_session *s);

/* Bytes held for an unfinished message (for max_partial_bytes). */
static inline size_t
ws_session_held(const struct ws_session *s)
{
    return s->msg_cap;
}

/* A frame or message has begun and is not complete. */
static inline bool
ws_session_unfinished(const struct ws_session *s)
{
    return s->mstate != WS_MSG_NONE || s->rx != WS_RX_HEADER ||
           s->hdr_len > 0;
}

/* A fragmented message is open (its first frame is complete). */
static inline bool
ws_session_in_msg(const struct ws_session *s)
{
    return s->mstate != WS_MSG_NONE && s->rx == WS_RX_HEADER;
}

/* The connection failed: no message is open any more. */
static inline void
ws_session_abort(struct ws_session *s)
{
    s->mstate = WS_MSG_NONE;
}

/* Drops the reassembly buffer (the connection is being failed). */
void ws_session_drop(struct ws_session *s);

/* Frees everything; s is zeroed. */
void ws_session_free(struct ws_session *s);

#endif
