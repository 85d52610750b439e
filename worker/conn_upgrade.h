/*
 * conn_upgrade.h: a connection's HTTP upgrade (RFC 6455 §4), from the
 * request head to the 101 or an HTTP error; see conn_upgrade.c.
 */
#ifndef SOCK_CONN_UPGRADE_H
#define SOCK_CONN_UPGRADE_H

#include <stddef.h>
#include <stdint.h>

#include "sock.h"

struct conn;

/*
 * Request bytes (c in CONN_HANDSHAKE): returns how many of p belong to the
 * head. A complete head is decided at once: static file, HTTP error, the
 * 101 and init, or a deferred decision (pending.c).
 */
size_t conn_handshake(struct conn *c, const uint8_t *p, size_t n);
/* Refuses the upgrade with status and why (a log-friendly line, or NULL
   for the status text), then finishes the connection. */
void conn_http_error(struct conn *c, int status, const char *why);
/*
 * The app decided a deferred upgrade (pending.c, on the loop, outside any
 * callback): status 0 sends the 101 and runs init, else refuses with
 * status and body (NULL: u's refusal body, else the status text). Takes
 * u's contents (not u itself); r stays the caller's.
 */
void conn_upgrade_decided(struct conn *c, const struct sock_request *r,
                          struct sock_upgrade *u, int status,
                          const char *body);

#endif
