/*
 * wsl_frame.c: RFC 6455 §5 client frames: headers and masking out, a
 * resumable parser in. See wsl_frame.h; the connection layer answers
 * pings and closes, this file only says what the bytes are.
 */
#include "wsl_frame.h"

#include <errno.h>
#include <string.h>

#include "wsl_common.h"

size_t
wsl_frame_header(uint8_t *out, uint8_t opcode, uint8_t rsv, uint64_t len,
                 const uint8_t mask[4])
{
    size_t n = 2;

    out[0] = (uint8_t)(0x80 | rsv | (opcode & 0x0f));
    /* §5.2: the minimal number of bytes MUST be used for the length. */
    if (len < 126) {
        out[1] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        out[1] = 0x80 | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    memcpy(out + n, mask, 4);
    return n + 4;
}

void
wsl_frame_mask_copy(uint8_t *dst, const uint8_t *src, size_t n,
                    const uint8_t mask[4], uint64_t pos)
{
    uint8_t m[8];
    uint64_t m64;
    size_t i = 0;

    for (int j = 0; j < 8; j++)
        m[j] = mask[(pos + (uint64_t)j) & 3];
    memcpy(&m64, m, 8);
    /* memcpy in and out: no alignment assumptions, and compilers turn it
       into plain 8-byte loads and stores. */
    for (; i + 8 <= n; i += 8) {
        uint64_t v;

        memcpy(&v, src + i, 8);
        v ^= m64;
        memcpy(dst + i, &v, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ m[i & 7];
}

void
wsl_rx_init(struct wsl_rx *rx, uint8_t rsv_allowed)
{
    memset(rx, 0, sizeof(*rx));
    rx->state = WSL_RX_HEADER;
    rx->hdr_need = 2;
    rx->rsv_allowed = rsv_allowed;
}

static bool
op_is_control(uint8_t op)
{
    return (op & 0x8) != 0;
}

/*
 * Judges the opcode against the message state; opens a new message. rsv1
 * is the frame's RSV1 bit, already known to be allowed: RFC 7692 §6.1
 * puts it on a message's first frame only, never on a control frame.
 */
static int
rx_check_opcode(struct wsl_rx *rx, uint64_t len, bool rsv1)
{
    switch (rx->opcode) {
    case WSL_OP_CONT:
        if (rx->msg_opcode == 0 || rsv1)
            return -EPROTO;
        return 0;
    case WSL_OP_TEXT:
    case WSL_OP_BINARY:
        if (rx->msg_opcode != 0)
            return -EPROTO;
        rx->msg_opcode = rx->opcode;
        rx->msg_off = 0;
        rx->msg_rsv1 = rsv1;
        return 0;
    case WSL_OP_CLOSE:
    case WSL_OP_PING:
    case WSL_OP_PONG:
        /* §5.5: control frames are ≤ 125 bytes and never fragmented. */
        if (!rx->fin || len > WSL_CONTROL_MAX || rsv1)
            return -EPROTO;
        rx->ctl_off = 0;
        return 0;
    default:
        return -EPROTO;
    }
}

/* The header is complete in rx->hdr: decode and judge it. */
static int
rx_header_done(struct wsl_rx *rx)
{
    const uint8_t *h = rx->hdr;
    uint64_t len = h[1] & 0x7f;

    rx->fin = (h[0] & 0x80) != 0;
    rx->opcode = h[0] & 0x0f;
    if ((h[0] & 0x70 & ~rx->rsv_allowed) != 0)
        return -EPROTO;
    if (len == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        if (len < 126)
            return -EPROTO;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        if ((len >> 63) != 0 || len <= 0xffff)
            return -EPROTO;
    }
    rx->remaining = len;
    return rx_check_opcode(rx, len, (h[0] & WSL_RSV1) != 0);
}

/* Hands out n payload bytes at p and moves the state on. */
static void
rx_emit(struct wsl_rx *rx, struct wsl_rx_event *ev, const uint8_t *p,
        size_t n)
{
    bool control = op_is_control(rx->opcode);

    ev->has_data = true;
    ev->data = p;
    ev->len = n;
    ev->control = control;
    ev->opcode = control ? rx->opcode : rx->msg_opcode;
    ev->offset = control ? rx->ctl_off : rx->msg_off;
    ev->compressed = !control && rx->msg_rsv1;
    rx->remaining -= n;
    if (control)
        rx->ctl_off += n;
    else
        rx->msg_off += n;
    ev->end = rx->remaining == 0 && (control || rx->fin);
    if (rx->remaining == 0) {
        rx->state = WSL_RX_HEADER;
        if (!control && rx->fin)
            rx->msg_opcode = 0;
    }
}

static ssize_t
rx_parse_header(struct wsl_rx *rx, const uint8_t *p, size_t len,
                struct wsl_rx_event *ev)
{
    size_t used = 0;
    int rc;

    while (rx->hdr_len < rx->hdr_need && used < len) {
        size_t n = MIN((size_t)(rx->hdr_need - rx->hdr_len), len - used);

        memcpy(rx->hdr + rx->hdr_len, p + used, n);
        rx->hdr_len += (uint8_t)n;
        used += n;
        if (rx->hdr_len == 2) {
            uint8_t l7 = rx->hdr[1] & 0x7f;

            /* §5.1: a client MUST close on a masked frame. */
            if ((rx->hdr[1] & 0x80) != 0)
                return -EPROTO;
            rx->hdr_need = l7 == 126 ? 4 : l7 == 127 ? 10 : 2;
        }
    }
    if (rx->hdr_len < rx->hdr_need)
        return (ssize_t)used;
    rc = rx_header_done(rx);
    if (rc < 0)
        return rc;
    rx->hdr_len = 0;
    rx->hdr_need = 2;
    rx->state = WSL_RX_PAYLOAD;
    if (rx->remaining == 0)
        rx_emit(rx, ev, p + used, 0);
    return (ssize_t)used;
}

ssize_t
wsl_rx_parse(struct wsl_rx *rx, const uint8_t *p, size_t len,
             struct wsl_rx_event *ev)
{
    size_t n;

    ev->has_data = false;
    if (len == 0)
        return 0;
    if (rx->state == WSL_RX_HEADER)
        return rx_parse_header(rx, p, len, ev);
    n = rx->remaining < len ? (size_t)rx->remaining : len;
    rx_emit(rx, ev, p, n);
    return (ssize_t)n;
}
