/*
 * ws_session.c: the RFC 6455 receive state machine, without I/O: see
 * ws_session.h. Moved out of conn.c, whose read path feeds it.
 */
#include "ws_session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "utf8.h"
#include "ws_deflate.h"

/* Reports a failure; the session takes no more input. */
static size_t
ws_fail(struct ws_session *s, struct ws_event *ev, uint16_t code,
        enum ws_session_err err, size_t len)
{
    s->rx = WS_RX_FAILED;
    ev->type = WS_EV_ERROR;
    ev->code = code;
    ev->err = err;
    return len;
}

void
ws_session_release(struct ws_session *s)
{
    if (s->mstate == WS_MSG_NONE) {
        free(s->msg);
        s->msg = NULL;
        s->msg_len = s->msg_cap = 0;
    }
    if (s->rx != WS_RX_CONTROL) {
        free(s->ctl);
        s->ctl = NULL;
    }
}

void
ws_session_drop(struct ws_session *s)
{
    free(s->msg);
    s->msg = NULL;
    s->msg_len = s->msg_cap = 0;
}

void
ws_session_free(struct ws_session *s)
{
    free(s->msg);
    free(s->ctl);
    memset(s, 0, sizeof(*s));
}

/* Parses a header from the partial bytes kept in s->hdr plus p. Returns
   bytes of p used, 0 if all of p went into s->hdr, or -EPROTO. */
static ssize_t
ws_header(struct ws_session *s, const uint8_t *p, size_t n)
{
    size_t take;
    ssize_t h;

    if (s->hdr_len == 0) {
        h = ws_frame_parse_header(&s->f, p, n);
        if (h == 0) {
            memcpy(s->hdr, p, n);
            s->hdr_len = (uint8_t)n;
        }
        return h;
    }
    take = MIN(n, (size_t)(WS_MAX_HEADER - s->hdr_len));
    memcpy(s->hdr + s->hdr_len, p, take);
    h = ws_frame_parse_header(&s->f, s->hdr, s->hdr_len + take);
    if (h == 0) {
        s->hdr_len = (uint8_t)(s->hdr_len + take);
        return 0;
    }
    if (h < 0)
        return h;
    h -= s->hdr_len;
    s->hdr_len = 0;
    return h;
}

/* Checks a new frame header against the session's state (§5.4, §5.5);
   sets s->rx for its payload. Returns 0 or the close code to fail with. */
static uint16_t
ws_frame_begin(struct ws_session *s, const struct ws_session_opts *o,
               enum ws_session_err *err)
{
    const struct ws_frame *f = &s->f;
    bool control = ws_opcode_is_control(f->opcode);
    bool in_msg = s->mstate != WS_MSG_NONE;

    /* Closing: only the peer's close matters, the rest is skipped. */
    if (o->closing && f->opcode != WS_OP_CLOSE) {
        s->rx = WS_RX_DISCARD;
        return 0;
    }
    *err = WS_ERR_PROTOCOL;
    /* RFC 7692 §6: RSV1 only on the first frame of a data message, and
       only with permessage-deflate agreed; RSV2/RSV3 never. */
    if (f->rsv & ~(o->deflate != NULL && !control &&
                   f->opcode != WS_OP_CONT ? WS_RSV1 : 0))
        return 1002;
    if (control) {
        s->rx = WS_RX_CONTROL;
        return 0;
    }
    if (f->opcode == WS_OP_CONT ? !in_msg : in_msg)
        return 1002;
    if (f->opcode != WS_OP_CONT) {
        s->msg_op = f->opcode;
        s->utf8 = UTF8_ACCEPT;
        s->msg_len = 0;
        s->mstate = (f->rsv & WS_RSV1) ? WS_MSG_COMPRESSED : WS_MSG_PLAIN;
    }
    /* Sizes are judged from the header, before any payload is buffered;
       a compressed message is held to max_message_size as it inflates. */
    if (f->len > o->max_frame ||
        f->len > o->max_message - (s->mstate == WS_MSG_PLAIN
                                   ? s->msg_len : 0)) {
        *err = WS_ERR_TOO_BIG;
        return 1009;
    }
    s->rx = WS_RX_DATA;
    return 0;
}

/* A control frame is complete (payload unmasked in p): its event. */
static void
ws_control(struct ws_session *s, const uint8_t *p, size_t len,
           struct ws_event *ev)
{
    uint16_t code;
    const uint8_t *reason;
    size_t rlen;
    int bad;

    switch (s->f.opcode) {
    case WS_OP_CLOSE:
        bad = ws_close_parse(p, len, &code, &reason, &rlen);
        if (bad != 0) {
            ws_fail(s, ev, (uint16_t)bad,
                    bad == 1007 ? WS_ERR_UTF8 : WS_ERR_PROTOCOL, 0);
            return;
        }
        ev->type = WS_EV_CLOSE;
        ev->code = code;
        ev->data = reason;
        ev->len = rlen;
        return;
    case WS_OP_PING:
        ev->type = WS_EV_PING;
        break;
    default:
        ev->type = WS_EV_PONG;
        break;
    }
    ev->data = p;
    ev->len = len;
}

static bool
ws_grow_msg(struct ws_session *s, const struct ws_session_opts *o,
            size_t need)
{
    size_t cap = s->msg_cap ? s->msg_cap : 256;
    uint8_t *p;

    while (cap < need)
        cap = cap * 2;
    if (cap > o->max_message && need <= o->max_message)
        cap = (size_t)o->max_message;
    p = realloc(s->msg, cap);
    if (p == NULL)
        return false;
    s->msg = p;
    s->msg_cap = cap;
    return true;
}

/*
 * Compressed payload: inflated as it arrives, held to max_message_size and
 * max_inflate_ratio while streaming (an inflate bomb stops at the first
 * byte over), UTF-8 checked on what comes out.
 */
static bool
ws_inflate(struct ws_session *s, const struct ws_session_opts *o,
           const uint8_t *p, size_t k, struct ws_event *ev)
{
    bool last = s->f.fin && s->f_got + k == s->f.len;
    struct ws_dbuf out = { s->msg, s->msg_len, s->msg_cap };
    size_t before = s->msg_len;
    int rc;

    s->f_got += k;
    if (k == 0 && !last)
        return true;
    rc = ws_deflate_inflate(o->deflate, p, k, last, &out, o->max_message,
                            o->max_inflate_ratio);
    s->msg = out.p;
    s->msg_len = out.len;
    s->msg_cap = out.cap;
    if (rc == -EMSGSIZE) {
        ws_fail(s, ev, 1009, WS_ERR_TOO_BIG, 0);
        return false;
    }
    if (rc == -EBADMSG) {
        ws_fail(s, ev, 1007, WS_ERR_INFLATE, 0);
        return false;
    }
    if (rc != 0) {
        ws_fail(s, ev, 1011, WS_ERR_INTERNAL, 0);
        return false;
    }
    /* (An empty message may leave msg NULL: no pointer arithmetic.) */
    if (s->msg_op == WS_OP_TEXT && s->msg_len > before) {
        s->utf8 = utf8_validate(s->utf8, s->msg + before,
                                s->msg_len - before);
        if (s->utf8 == UTF8_REJECT) {
            ws_fail(s, ev, 1007, WS_ERR_UTF8, 0);
            return false;
        }
    }
    return true;
}

/* Payload bytes of the current frame: unmask in place, then keep. */
static bool
ws_payload(struct ws_session *s, const struct ws_session_opts *o,
           uint8_t *p, size_t k, struct ws_event *ev)
{
    ws_unmask(p, k, s->f.mask, s->f_got);
    if (s->rx == WS_RX_DISCARD) {
        s->f_got += k;
        return true;
    }
    if (s->rx == WS_RX_CONTROL) {
        if (s->ctl == NULL && (s->ctl = malloc(WS_MAX_CONTROL)) == NULL) {
            ws_fail(s, ev, 0, WS_ERR_NOMEM, 0);
            return false;
        }
        memcpy(s->ctl + s->f_got, p, k);
        s->f_got += k;
        return true;
    }
    if (s->mstate == WS_MSG_COMPRESSED)
        return ws_inflate(s, o, p, k, ev);
    if (s->msg_op == WS_OP_TEXT) {
        /* Fail fast: a bad byte ends the connection when it arrives. */
        s->utf8 = utf8_validate(s->utf8, p, k);
        if (s->utf8 == UTF8_REJECT) {
            ws_fail(s, ev, 1007, WS_ERR_UTF8, 0);
            return false;
        }
    }
    if (k == 0)
        return true;
    if (s->msg_len + k > s->msg_cap && !ws_grow_msg(s, o, s->msg_len + k)) {
        ws_fail(s, ev, 0, WS_ERR_NOMEM, 0);
        return false;
    }
    memcpy(s->msg + s->msg_len, p, k);
    s->msg_len += k;
    s->f_got += k;
    return true;
}

/* The current frame's payload is all in: its event, if any. */
static void
ws_frame_end(struct ws_session *s, struct ws_event *ev)
{
    enum ws_rx rx = (enum ws_rx)s->rx;

    s->rx = WS_RX_HEADER;
    ev->frame_end = true;
    if (rx == WS_RX_DISCARD)
        return;
    if (rx == WS_RX_CONTROL) {
        ws_control(s, s->ctl, (size_t)s->f.len, ev);
        return;
    }
    if (!s->f.fin)
        return;
    s->mstate = WS_MSG_NONE;
    if (s->msg_op == WS_OP_TEXT && s->utf8 != UTF8_ACCEPT) {
        ws_fail(s, ev, 1007, WS_ERR_UTF8, 0);
        return;
    }
    ev->type = WS_EV_MESSAGE;
    ev->opcode = s->msg_op;
    ev->data = s->msg;
    ev->len = s->msg_len;
}

/*
 * A whole single-frame message (or control frame outside a message) in
 * p: unmasked and reported in place, no copy (DESIGN §8).
 */
static void
ws_direct(struct ws_session *s, uint8_t *p, struct ws_event *ev)
{
    size_t len = (size_t)s->f.len;

    ws_unmask(p, len, s->f.mask, 0);
    ev->frame_end = true;
    if (s->rx == WS_RX_CONTROL) {
        s->rx = WS_RX_HEADER;
        ws_control(s, p, len, ev);
        return;
    }
    s->rx = WS_RX_HEADER;
    s->mstate = WS_MSG_NONE;
    if (s->f.opcode == WS_OP_TEXT &&
        utf8_validate(UTF8_ACCEPT, p, len) != UTF8_ACCEPT) {
        ws_fail(s, ev, 1007, WS_ERR_UTF8, 0);
        return;
    }
    ev->type = WS_EV_MESSAGE;
    ev->opcode = s->f.opcode;
    ev->data = p;
    ev->len = len;
}

size_t
ws_session_feed(struct ws_session *s, const struct ws_session_opts *o,
                uint8_t *p, size_t n, struct ws_event *ev)
{
    size_t off = 0, k;

    memset(ev, 0, sizeof(*ev));
    if (s->rx == WS_RX_FAILED)
        return n;
    if (s->rx == WS_RX_HEADER) {
        bool in_msg = s->mstate != WS_MSG_NONE;
        enum ws_session_err err = WS_ERR_NONE;
        ssize_t h;
        uint16_t code;

        if (n == 0)
            return 0;
        h = ws_header(s, p, n);
        if (h == 0)
            return n;
        if (h < 0)
            return ws_fail(s, ev, 1002, WS_ERR_PROTOCOL, n);
        off = (size_t)h;
        code = ws_frame_begin(s, o, &err);
        if (code != 0)
            return ws_fail(s, ev, code, err, n);
        s->f_got = 0;
        if (s->rx != WS_RX_DISCARD && !in_msg && s->f.fin &&
            !(s->f.rsv & WS_RSV1) && n - off >= s->f.len) {
            ws_direct(s, p + off, ev);
            if (ev->type == WS_EV_ERROR)
                return n;
            return off + (size_t)s->f.len;
        }
    }
    k = (size_t)MIN((uint64_t)(n - off), s->f.len - s->f_got);
    if (!ws_payload(s, o, p + off, k, ev))
        return n;
    off += k;
    if (s->f_got == s->f.len) {
        ws_frame_end(s, ev);
        if (ev->type == WS_EV_ERROR)
            return n;
    }
    return off;
}
