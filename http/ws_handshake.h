/*
 * ws_handshake.h: the HTTP/1.1 side of RFC 6455 §4: finding the end of a
 * request head under a size limit, parsing it with http-parser into a
 * struct sock_request (the object the app's upgrade hook sees through the
 * sock_request_* getters of sockapi/request.c), checking §4.2.1, computing
 * the accept key (§4.2.2, OpenSSL SHA-1 + base64), and writing the 101 and
 * error responses. No sockets, no routing: the worker's conn.c (and the
 * sock_test.h harness) decide with what they get from here. http/ depends
 * only on common/ and sock.h's types, so sockapi/ and worker/ can use it.
 */
#ifndef SOCK_WS_HANDSHAKE_H
#define SOCK_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sock.h"

struct ws_header {
    const char *name;  /* as sent, NUL-terminated */
    const char *value; /* leading/trailing spaces trimmed, NUL-terminated */
};

/* The parsed request; typedef'd as sock_request in sock.h. */
struct sock_request {
    char *storage;     /* owned: NUL-terminated copies of every string below */
    size_t storage_len;
    const char *method;
    const char *path;  /* URL path, without the query */
    const char *query; /* after '?', without the fragment; "" if none */
    unsigned short http_major, http_minor;
    struct ws_header *headers; /* owned array */
    size_t n_headers;
    bool upgrade;      /* http-parser saw "Connection: upgrade" + Upgrade */
    /* Filled by the caller (conn.c), not by the parser. */
    const char *peer;
    bool tls;
    const sock_options *opts; /* the route's option.NAME keys, or NULL */
};

/*
 * Length of the request head (through the blank line) at p, or 0 if it is
 * not complete yet, or -E2BIG if no head end is within max bytes. Accepts
 * CRLF CRLF only.
 */
ssize_t ws_head_len(const uint8_t *p, size_t len, size_t max);

/*
 * Whether len bytes that hold no complete head yet can still begin one
 * that ws_request_parse accepts: 0 if so (wait for more), or the status
 * to answer at once: 400 for what no HTTP/1.x request starts with (a TLS
 * ClientHello, an SSH banner, a method http-parser does not know, a bare
 * LF, a CR without its LF, a bad header name), 431 past max_headers, 505
 * for a finished request line of another HTTP version. Any prefix of a
 * head that ws_request_parse accepts gives 0.
 */
int ws_head_check_prefix(const uint8_t *p, size_t len, size_t max_headers);

/*
 * Parses a complete head (as found by ws_head_len) with http-parser into r,
 * copying what it keeps. Returns 0, or an HTTP status for the client: 400
 * for malformed HTTP (a bare LF or CR included) or a request body, 431 for
 * more than max_headers headers, 505 for HTTP other than 1.x, 500 on
 * ENOMEM. r needs ws_request_destroy either way.
 */
int ws_request_parse(struct sock_request *r, const uint8_t *head, size_t len,
                     size_t max_headers);
void ws_request_destroy(struct sock_request *r);

/* First header named name (ASCII case-insensitive), or NULL. */
const char *ws_request_header(const struct sock_request *r, const char *name);

/*
 * True if any header named name holds token in its comma-separated list
 * (RFC 7230 §7). ci: compare the token case-insensitively.
 */
bool ws_request_has_token(const struct sock_request *r, const char *name,
                          const char *token, bool ci);

/*
 * RFC 6455 §4.2.1 checks, in this order: method GET (else 400), HTTP/1.1 or
 * later (400), Host present (400), Upgrade containing "websocket" and
 * Connection containing "upgrade", any case, lists allowed (a GET without
 * both: 426, "plain GET to a WebSocket route"), exactly one
 * Sec-WebSocket-Key that base64-decodes to 16 bytes (400),
 * Sec-WebSocket-Version 13 (missing or other: 426). Returns 0 or the status;
 * *why gets a static reason for logs and the response body.
 */
int ws_request_validate(const struct sock_request *r, const char **why);

/* Sec-WebSocket-Accept for a key (§4.2.2): 28 characters + NUL. */
void ws_accept_key(const char *key, char out[29]);

/*
 * A 101 response: Upgrade, Connection, Sec-WebSocket-Accept, then
 * Sec-WebSocket-Protocol and Sec-WebSocket-Extensions when not NULL, then
 * extra (already "Name: value\r\n" lines, may be NULL). Returns a malloc'd
 * buffer and its length in *len, or NULL on ENOMEM.
 */
char *ws_response_101(const char *accept, const char *subprotocol,
                      const char *extensions, const char *extra, size_t *len);

/*
 * An error response with "Connection: close", text/plain body (the status
 * text if body is NULL) and Content-Length; 426 adds
 * "Sec-WebSocket-Version: 13", 405 adds "Allow: GET". Returns malloc'd bytes
 * and *len, or NULL on ENOMEM.
 */
char *ws_response_error(int status, const char *body, size_t *len);

/* "Bad Request" for 400 etc.; "Error" for unknown codes. */
const char *ws_status_text(int status);

#endif
