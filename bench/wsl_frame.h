/*
 * wsl_frame.h: RFC 6455 §5 frames as a client sees them: masked frame
 * headers and masking on the way out, a resumable parser for the server's
 * unmasked frames on the way in. Pure functions on memory: no sockets, no
 * allocation. wsl_conn.c owns the bytes and decides what errors cost.
 */
#ifndef WSL_FRAME_H
#define WSL_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum wsl_op {
    WSL_OP_CONT = 0x0,
    WSL_OP_TEXT = 0x1,
    WSL_OP_BINARY = 0x2,
    WSL_OP_CLOSE = 0x8,
    WSL_OP_PING = 0x9,
    WSL_OP_PONG = 0xA,
};

#define WSL_RSV1 0x40           /* as it sits in the first header byte */
#define WSL_FRAME_HDR_MAX 14    /* 2 + 8 length + 4 masking key */
#define WSL_CONTROL_MAX 125

/*
 * Writes a final (FIN=1), masked frame header for a payload of len bytes
 * into out (WSL_FRAME_HDR_MAX bytes of room). Returns its length, 6..14.
 * rsv is 0, or WSL_RSV1 for a compressed message (permessage-deflate).
 */
size_t wsl_frame_header(uint8_t *out, uint8_t opcode, uint8_t rsv,
                        uint64_t len, const uint8_t mask[4]);

/*
 * Copies n bytes from src to dst XORed with mask, where src[0] is payload
 * byte number pos (so a payload sent in pieces is masked as one). 8 bytes
 * at a time. dst and src must not overlap, except dst == src.
 */
void wsl_frame_mask_copy(uint8_t *dst, const uint8_t *src, size_t n,
                         const uint8_t mask[4], uint64_t pos);

enum wsl_rx_state {
    WSL_RX_HEADER,
    WSL_RX_PAYLOAD,
};

/* Parser state for one connection: 40-odd bytes, no buffers. */
struct wsl_rx {
    uint64_t remaining;     /* payload bytes left in the current frame */
    uint64_t msg_off;       /* data message bytes before the next chunk */
    uint64_t ctl_off;       /* control frame bytes before the next chunk */
    uint8_t hdr[WSL_FRAME_HDR_MAX];
    uint8_t hdr_len;        /* header bytes held in hdr */
    uint8_t hdr_need;       /* 2 until byte 1 gives the full length */
    uint8_t state;          /* enum wsl_rx_state */
    uint8_t opcode;         /* current frame's */
    uint8_t msg_opcode;     /* TEXT/BINARY while a message is open, else 0 */
    uint8_t rsv_allowed;    /* RSV bits an extension negotiated */
    bool fin;
    bool msg_rsv1;          /* RSV1 on the open message's first frame */
};

/*
 * A piece of payload. Data messages come as chunks of one message, in
 * order, across frames (offset counts from the message's first byte);
 * control frames (control = true) come as chunks of that frame, possibly
 * between two frames of a fragmented message. end marks the last chunk of
 * a message or control frame; an empty one is a single chunk of len 0.
 */
struct wsl_rx_event {
    const uint8_t *data;    /* borrowed from the caller's input */
    size_t len;
    uint64_t offset;
    uint8_t opcode;         /* message's TEXT/BINARY, or the control op */
    bool control;
    bool end;
    bool has_data;          /* false: only header bytes were taken */
    bool compressed;        /* data: RSV1 was on the message's first frame
                               (RFC 7692 "Per-Message Compressed") */
};

void wsl_rx_init(struct wsl_rx *rx, uint8_t rsv_allowed);

/*
 * Consumes input from p[0..len): returns the bytes taken (possibly fewer
 * than len: call again with the rest), 0 only when len is 0, or -EPROTO for
 * a frame a server must not send: masked (§5.1), RSV bits nothing
 * negotiated (§5.2), RSV1 on a continuation or control frame when it was
 * negotiated (RFC 7692 §6.1), reserved opcode, control frame fragmented or over 125
 * bytes (§5.5), continuation with no message open or a new message inside
 * one (§5.4), a length not in its minimal form or with the top bit set
 * (§5.2). Sets *ev; ev->has_data tells whether it holds a chunk. Accepts
 * any split of the input and never reads past len.
 */
ssize_t wsl_rx_parse(struct wsl_rx *rx, const uint8_t *p, size_t len,
                     struct wsl_rx_event *ev);

#endif
