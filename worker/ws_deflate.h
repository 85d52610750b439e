/*
 * ws_deflate.h: permessage-deflate (RFC 7692): negotiating the extension
 * from a request's Sec-WebSocket-Extensions offers, and compressing and
 * inflating message payloads with zlib under the negotiated parameters and
 * the route's size and ratio limits. Pure: no sockets, no libev. conn.c
 * owns the frames: RSV1, fragmentation, UTF-8 checks and close codes.
 */
#ifndef SOCK_WS_DEFLATE_H
#define SOCK_WS_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "settings.h"
#include "ws_handshake.h"

/* A resp buffer of this size always holds the longest answer (128 + NUL). */
#define WS_DEFLATE_RESP_MAX 160
/* Messages may inflate to this many bytes whatever the ratio. */
/* The ratio limit starts here: memory is bounded by max_out anyway, and a
   legitimate message of repeated content (100 KB of zeros: ratio ~1000)
   must not be cut as a bomb. */
#define WS_DEFLATE_RATIO_FLOOR (1024 * 1024)

/* What was agreed, from the server's side. */
struct ws_deflate_params {
    bool server_no_context_takeover; /* we reset after each message */
    bool client_no_context_takeover; /* the client does; so do we */
    int server_max_window_bits;      /* we deflate with this: 9..15 */
    int client_max_window_bits;      /* the client's window, 8..15: we
                                        inflate with exactly this */
};

/*
 * RFC 7692 §5, §7.1: picks the extension for the 101. Walks every
 * Sec-WebSocket-Extensions header of r in order, each a comma-separated list
 * of offers (RFC 6455 §9.1: token or quoted-string values, whose unescaped
 * form must be a token), and takes the first permessage-deflate offer whose
 * parameters are all known, unrepeated and valid:
 *   server_no_context_takeover, client_no_context_takeover: no value;
 *   server_max_window_bits: a value 8..15 (decimal, no leading zero);
 *   client_max_window_bits: no value, or 8..15.
 * Names compare case-insensitively; a syntax error spoils only its offer.
 * The answer, for an acceptable offer and route options o:
 *   server_no_context_takeover when offered or o forces it;
 *   client_no_context_takeover when offered (it is the client's own promise,
 *     and lets us drop its window) or o asks for it;
 *   server_max_window_bits=min(offer or 15, o's cap), sent when offered or
 *     below 15. An offer of 8 is answered 8 and deflated with 9: zlib cannot
 *     deflate with 8, but its matches never reach back further than
 *     2^w - 262 bytes (MAX_DIST in deflate.h), 250 for w = 9, which fits the
 *     client's 256-byte window (tested with a window-8 inflater);
 *   client_max_window_bits=min(offer or 15, o's cap), sent only when offered
 *     (§7.1.2.2 forbids it otherwise) and when it has a value or is below
 *     15. Without the parameter in the offer the client may use 15 whatever
 *     o says, so p gets 15.
 * Returns 1 with *p filled and resp holding the NUL-terminated header value
 * ("permessage-deflate; ..."), 0 when no offer is acceptable or o->compress
 * is off (answer without the extension), -ENOSPC when resp is shorter than
 * the answer (WS_DEFLATE_RESP_MAX always suffices).
 */
int ws_deflate_negotiate(const struct sock_request *r,
                         const struct route_opts *o,
                         struct ws_deflate_params *p, char *resp,
                         size_t size);

/* Growable output; the owner frees p. A zeroed one is empty. */
struct ws_dbuf {
    uint8_t *p;
    size_t len, cap;
};

/*
 * Per-connection compression state. The zlib streams are made on first use
 * (deflate on the first non-empty compress, inflate on the first inflate),
 * so a connection that never compresses holds only this small object.
 */
struct ws_deflate;

/*
 * A state for the agreed p, deflating at level (0..9, or -1 for zlib's
 * default) with mem_level (1..9). Returns NULL on ENOMEM or bad arguments.
 * Window bits outside the ranges in struct ws_deflate_params are clamped.
 */
struct ws_deflate *ws_deflate_new(const struct ws_deflate_params *p,
                                  int level, int mem_level);
/* Frees d and its zlib streams; NULL is a no-op. */
void ws_deflate_free(struct ws_deflate *d);

/*
 * Inflates the next piece of a compressed message's payload (unmasked;
 * pieces may split the message anywhere, frames or not), appending to out.
 * fin: this piece ends the message; the 00 00 FF FF tail is added here
 * (§7.2.2), and the context is dropped when client_no_context_takeover.
 * Limits hold while inflating, never after the fact:
 *   out->len may not pass max_out: -EMSGSIZE as soon as one byte would;
 *   this message's inflated bytes, once past WS_DEFLATE_RATIO_FLOOR, may not
 *     pass ratio times the compressed bytes received for it so far
 *     (ratio 0: no such limit): -EMSGSIZE likewise.
 * out grows at most to max_out + 1 bytes (more only if it already was).
 * Accepts what senders do within the RFC: several blocks, a BFINAL block
 * (inflation restarts after it, keeping the window, §7.2.3.4), the zero-byte
 * payload as an empty message. Corrupt data, a message that does not end on
 * a block boundary, or a back-reference beyond the negotiated client window:
 * -EBADMSG. -ENOMEM. Returns 0. After an error d's inflate side keeps
 * returning it: fail the connection (1007, 1009, 1011).
 */
int ws_deflate_inflate(struct ws_deflate *d, const uint8_t *in, size_t len,
                       bool fin, struct ws_dbuf *out, uint64_t max_out,
                       uint32_t ratio);

/*
 * Compresses one whole message for a frame with RSV1 set, appending to out:
 * Z_SYNC_FLUSH, then the trailing 00 00 FF FF removed (§7.2.1); the empty
 * message is the single byte 0x00 (§7.2.3.6). With server context takeover
 * later messages refer to this one, so its output must reach the client; if
 * the caller drops it, it must call ws_deflate_tx_reset before the next
 * compress. The context is reset afterwards when server_no_context_takeover.
 * Returns 0, or -ENOMEM (out->len unchanged, context reset).
 */
int ws_deflate_compress(struct ws_deflate *d, const uint8_t *in, size_t len,
                        struct ws_dbuf *out);

/*
 * Forgets the compression history. Always safe for the client: what a fresh
 * context produces refers to nothing before it.
 */
void ws_deflate_tx_reset(struct ws_deflate *d);

/*
 * Frees the zlib streams that hold no context between messages: deflate
 * under server_no_context_takeover, inflate under client_no_context_takeover
 * when no message is half inflated. They are made again on next use. For
 * idle connections, which should own no buffers; costs a zlib init per
 * message if called after each one.
 */
void ws_deflate_trim(struct ws_deflate *d);

/*
 * Bytes the zlib streams of d hold now (z_stream structs and everything
 * zlib allocated, counted by our allocator; not sizeof(struct ws_deflate)).
 */
size_t ws_deflate_memory(const struct ws_deflate *d);

/* Bytes the zlib streams of this whole process hold now (every d and the
   shared compressors). */
size_t ws_deflate_total_memory(void);

/*
 * One compressor per worker for frames shared by many connections: each
 * message is compressed with a fresh context, so its bytes suit every
 * connection that agreed server_no_context_takeover with a server window of
 * at least window_bits (9..15; 8 is taken as 9, see negotiate) and is sent
 * untouched to all of them. Connections with context takeover must not get
 * it: their own deflate history would no longer match the client's.
 * new returns NULL on ENOMEM or bad arguments; compress is
 * ws_deflate_compress's contract; free(NULL) is a no-op.
 */
struct ws_deflate_shared;
struct ws_deflate_shared *ws_deflate_shared_new(int level, int mem_level,
                                                int window_bits);
int ws_deflate_shared_compress(struct ws_deflate_shared *s, const uint8_t *in,
                               size_t len, struct ws_dbuf *out);
void ws_deflate_shared_free(struct ws_deflate_shared *s);

#endif
