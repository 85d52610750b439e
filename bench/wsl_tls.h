/*
 * wsl_tls.h: TLS for wss:// URLs, on OpenSSL's libssl: a client context
 * per worker and one TLS session per connection, with non-blocking
 * handshake, read and write calls shaped like recv and send, so that
 * wsl_conn.c only swaps the calls that touch the socket.
 *
 * The server's certificate is not checked: wsload only talks to loopback,
 * and a benchmark's servers use throwaway self-signed certificates. No SNI
 * (the host is an address literal), ALPN "http/1.1".
 */
#ifndef WSL_TLS_H
#define WSL_TLS_H

#include <stddef.h>
#include <sys/types.h>

struct wsl_tls;         /* per worker */
struct wsl_tls_conn;    /* an SSL *, opaque here */

/*
 * Loads libssl and sets up a client context. Returns NULL with *err set:
 * -ELIBACC if libssl could not be loaded, -ENOMEM.
 * wsl_tls_free(NULL) is a no-op.
 */
struct wsl_tls *wsl_tls_new(int *err);
void wsl_tls_free(struct wsl_tls *t);

/* A TLS session on the connected socket fd, or NULL. */
struct wsl_tls_conn *wsl_tls_conn_new(struct wsl_tls *t, int fd);

/* Sends close_notify if the handshake finished, then frees. NULL: no-op. */
void wsl_tls_conn_free(struct wsl_tls *t, struct wsl_tls_conn *c);

enum {
    WSL_TLS_DONE = 0,
    WSL_TLS_WANT_READ = 1,
    WSL_TLS_WANT_WRITE = 2,
};

/* One step of the handshake: WSL_TLS_DONE, _WANT_READ, _WANT_WRITE, or
   -EPROTO (the reason is in *what, a static string). */
int wsl_tls_handshake(struct wsl_tls *t, struct wsl_tls_conn *c,
                      const char **what);

/*
 * Like recv and send: bytes moved, 0 for the peer's close (read only), or
 * -1 with errno EAGAIN (try again when the socket is ready; a write must
 * then be retried with the same bytes, or more), ECONNRESET or EPROTO.
 */
ssize_t wsl_tls_read(struct wsl_tls *t, struct wsl_tls_conn *c, void *buf,
                     size_t len);
ssize_t wsl_tls_write(struct wsl_tls *t, struct wsl_tls_conn *c,
                      const void *buf, size_t len);

#endif
