/*
 * wsl_deflate.h: permessage-deflate (RFC 7692) for wsload's client: the
 * offer, the judgement of the server's answer, one compressed message out
 * at a time, and compressed messages in, inflated as their bytes arrive.
 * Pure compression work on memory: wsl_conn.c decides when to call it and
 * what a failure costs.
 *
 * wsload offers no context takeover in both directions, so every message
 * stands alone: one deflate stream per worker compresses every outgoing
 * message, and inflate streams are lent from a per-worker pool to a
 * connection for one message. A server that answers without
 * server_no_context_takeover keeps its context, and then the connection
 * keeps its inflate stream for life.
 */
#ifndef WSL_DEFLATE_H
#define WSL_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* What wsload sends in Sec-WebSocket-Extensions with --deflate. */
#define WSL_DEFLATE_OFFER \
    "permessage-deflate; client_no_context_takeover; " \
    "server_no_context_takeover"

#define WSL_INFLATE_MAX (64u << 20) /* a larger inflated message: -EMSGSIZE */

struct wsl_deflate;     /* per worker */
struct wsl_inflater;    /* one message's inflate stream */

/* What the server agreed to. */
struct wsl_pmd_params {
    bool server_no_context_takeover;
    bool client_no_context_takeover;
    uint8_t server_max_window_bits;     /* 0: not given (15) */
};

/*
 * Loads zlib and sets up a deflate stream at level (0..9). Returns NULL
 * with *err set: -ELIBACC if zlib could not be loaded, -ENOMEM.
 * wsl_deflate_free(NULL) is a no-op; inflaters still lent out must have
 * been given back.
 */
struct wsl_deflate *wsl_deflate_new(int level, int *err);
void wsl_deflate_free(struct wsl_deflate *d);

/*
 * Looks at the 101's header block p[0..len) for Sec-WebSocket-Extensions.
 * Returns 1 if it accepts permessage-deflate (params filled), 0 if there
 * is no such header, -EPROTO if the answer is not one our offer allows:
 * another extension, more than one, an unknown or repeated parameter, a
 * bad window size, or client_max_window_bits, which we did not offer
 * (RFC 7692 §7.1.2.2).
 */
int wsl_deflate_response(const char *p, size_t len,
                         struct wsl_pmd_params *params);

/*
 * Compresses the iovecs' bytes as one message (§7.2.1: deflate, a sync
 * flush, the 00 00 FF FF tail taken off). *out is d's buffer, valid until
 * the next call. Returns 0 or -ENOMEM.
 */
int wsl_deflate_message(struct wsl_deflate *d, const struct iovec *iov,
                        int iovcnt, const uint8_t **out, size_t *out_len);

/*
 * Receives inflated bytes: a piece of the message at offset, end on its
 * last piece (which may be empty). Returns true to go on, false if the
 * connection ended meanwhile; then nothing more touches the inflater.
 */
typedef bool (*wsl_inflate_emit_fn)(void *arg, const uint8_t *p, size_t len,
                                    uint64_t offset, bool end);

/* An inflate stream from the pool, or NULL (-ENOMEM). */
struct wsl_inflater *wsl_inflater_get(struct wsl_deflate *d);

/* Resets inf and gives it back to the pool. NULL is a no-op. */
void wsl_inflater_put(struct wsl_deflate *d, struct wsl_inflater *inf);

/*
 * Inflates p[0..len), a piece of a compressed message, and hands the
 * output to emit; end: this was the message's last piece, so the 00 00 FF
 * FF tail is added (§7.2.2) and the last emit has end set. Returns 0, 1
 * if emit said stop, -EPROTO for corrupt data, -EMSGSIZE past
 * WSL_INFLATE_MAX.
 */
int wsl_inflate(struct wsl_deflate *d, struct wsl_inflater *inf,
                const uint8_t *p, size_t len, bool end,
                wsl_inflate_emit_fn emit, void *arg);

#endif
