/*
 * wsl_handshake.h: the client side of the RFC 6455 §4 opening handshake:
 * the GET request, and the judgement of the server's 101 response. Pure
 * functions on memory; wsl_conn.c owns the socket and the buffers.
 */
#ifndef WSL_HANDSHAKE_H
#define WSL_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WSL_ACCEPT_LEN 28       /* base64 of a SHA-1 */
#define WSL_RESPONSE_MAX 4096   /* a longer 101 response is refused */

/*
 * Writes the upgrade request for path on host (the Host header's value)
 * with the nonce key (16 random bytes) into out, and the
 * Sec-WebSocket-Accept value the server must answer into accept
 * (NUL-terminated). extensions is NULL or the Sec-WebSocket-Extensions
 * offer (permessage-deflate, issue part 2). Returns the request's length,
 * or -ENOSPC if it does not fit in cap.
 */
ssize_t wsl_handshake_request(char *out, size_t cap, const char *host,
                              const char *path, const uint8_t key[16],
                              const char *extensions,
                              char accept[WSL_ACCEPT_LEN + 1]);

/*
 * Looks at the response so far, p[0..len). Returns the length of the
 * complete header block (through the blank line) when it is a valid 101
 * for accept, 0 if more input is needed, -EPROTO if it is anything else
 * (another status, a missing or wrong Upgrade, Connection or
 * Sec-WebSocket-Accept, an extension or subprotocol we did not offer),
 * or -EMSGSIZE past WSL_RESPONSE_MAX bytes. Bytes after the header block
 * are the server's first frames.
 */
ssize_t wsl_handshake_response(const char *p, size_t len,
                               const char *accept, bool offered_extensions);

#endif
