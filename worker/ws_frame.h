/*
 * ws_frame.h: RFC 6455 §5 frame codec: client frame headers in, server
 * frame headers out, masking, and close frame payloads (§5.5.1, §7.4).
 * Pure functions on memory: no sockets, no allocation. The connection
 * layer (conn.c) decides what a violation costs and which RSV bits an
 * extension allows.
 */
#ifndef SOCK_WS_FRAME_H
#define SOCK_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum ws_op {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

#define WS_RSV1 0x4
#define WS_RSV2 0x2
#define WS_RSV3 0x1

#define WS_MAX_HEADER 14        /* client: 2 + 8 + 4 mask */
#define WS_MAX_SERVER_HEADER 10 /* server frames are never masked */
#define WS_MAX_CONTROL 125

struct ws_frame {
    bool fin;
    uint8_t rsv;      /* WS_RSV1|WS_RSV2|WS_RSV3 as sent; not judged here */
    uint8_t opcode;
    bool masked;
    uint8_t mask[4];
    uint64_t len;     /* payload length */
};

static inline bool
ws_opcode_is_control(uint8_t op)
{
    return (op & 0x8) != 0;
}

/*
 * Parses a client frame header. Returns the header's length (2..14), 0 if
 * more input is needed, or -EPROTO: unmasked frame (§5.1), reserved opcode
 * (3-7, 0xB-0xF), control frame fragmented or over 125 bytes (§5.5), a
 * 64-bit length with the top bit set (§5.2). Never reads past len.
 */
ssize_t ws_frame_parse_header(struct ws_frame *f, const uint8_t *p,
                              size_t len);

/*
 * XORs p[0..len) with mask, where p[0] is payload byte number pos (so a
 * payload unmasked in pieces gives the same bytes). 8 bytes at a time.
 */
void ws_unmask(uint8_t *p, size_t len, const uint8_t mask[4], uint64_t pos);

/*
 * Writes an unmasked server frame header with the shortest length form
 * (§5.2). rsv is WS_RSV* bits. Returns its length, 2..10.
 */
size_t ws_frame_header_write(uint8_t out[WS_MAX_SERVER_HEADER], bool fin,
                             uint8_t rsv, uint8_t opcode, uint64_t len);

/* Close codes a peer may send (§7.4.1, IANA registry): 1000-1003,
   1007-1014, 3000-4999. */
bool ws_close_code_is_valid(uint16_t code);

/*
 * Checks a received close payload (already unmasked). Returns 0 and sets
 * *code (1005 for an empty payload), *reason, *reason_len; or returns the
 * close code to fail with: 1002 for a 1-byte payload or an invalid code,
 * 1007 for a reason that is not UTF-8.
 */
int ws_close_parse(const uint8_t *p, size_t len, uint16_t *code,
                   const uint8_t **reason, size_t *reason_len);

/*
 * Writes a close payload: code in network order and up to 123 bytes of
 * reason, cut back to a whole UTF-8 character. Returns its length (2..125).
 */
size_t ws_close_payload_write(uint8_t out[WS_MAX_CONTROL], uint16_t code,
                              const char *reason, size_t len);

#endif
