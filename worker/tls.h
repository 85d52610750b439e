/*
 * tls.h: TLS for wss:// listeners on OpenSSL 3 (DESIGN §7): per-listener
 * certificate and key with extra certificates chosen by SNI, TLS 1.2 and
 * 1.3 only, ALPN http/1.1, stateless session tickets whose keys the master
 * makes so that any worker of a generation resumes any other's sessions,
 * renegotiation refused, and non-blocking handshake, read and writev calls
 * shaped like recv(2) and sendq_writev_fn.
 *
 * It knows file descriptors, not connections or loops: the caller (conn.c)
 * owns the fd, its watchers and timers, and decides what a failure means.
 * Nothing here logs; errors come back as negative errno values and short
 * reasons for the caller's one log line.
 */
#ifndef SOCK_TLS_H
#define SOCK_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* The direction an -EAGAIN waits for: a read can need a write and back. */
enum tls_want {
    TLS_WANT_READ = 1,
    TLS_WANT_WRITE = 2,
};

/* How many ticket keys a context holds: the current one and older ones. */
#define TLS_TICKET_KEYS_MAX 4

/*
 * Session ticket keys (AES-256-CBC + HMAC-SHA256, RFC 5077 §4 layout).
 * Made by the master, inherited by every worker of a generation; keeping
 * them across reloads keeps resumption working across reloads.
 */
struct tls_ticket_keys {
    uint8_t name[16];
    uint8_t aes_key[32];
    uint8_t hmac_key[32];
};

/* Fills k from the CSPRNG. 0, or -EIO if OpenSSL's RAND_bytes fails. */
int tls_ticket_keys_generate(struct tls_ticket_keys *k);

/*
 * One per TLS listener: an SSL_CTX for the listener's certificate and
 * key (the default) and one per SNI certificate, all with the same
 * settings: TLS 1.2 and 1.3, ALPN http/1.1 (a client that offers ALPN
 * without it gets no_application_protocol), no renegotiation, no
 * compression, no server session cache (stateless tickets only).
 * Built before the fork (inherited) or in the worker; either way it must
 * outlive every tls_conn made from it.
 */
struct tls_ctx;

/*
 * Loads and checks cert (a PEM chain: leaf first, then intermediates) and
 * key (PEM, unencrypted). keys encrypt new tickets and decrypt old ones
 * (copied); NULL makes random keys private to this context, so sessions
 * resume only on it. Returns NULL and writes "PATH: reason" into err
 * (strerror for a file that cannot be read, else OpenSSL's reason).
 */
struct tls_ctx *tls_ctx_new(const char *cert, const char *key,
                            const struct tls_ticket_keys *keys,
                            char *err, size_t errlen);
/*
 * Adds a certificate chosen when the client's SNI names one of its DNS
 * subjectAltNames (its CN if it has none); "*.example.com" matches one
 * label. Exact names win over wildcards, then the earliest certificate;
 * the listener's own pair serves any other name or no SNI. 0, or -EINVAL
 * (bad files, no DNS name; "PATH: reason" in err) or -ENOMEM.
 */
int tls_ctx_add_sni(struct tls_ctx *t, const char *cert, const char *key,
                    char *err, size_t errlen);
/*
 * Adds an older ticket key that still decrypts (a resumed session gets a
 * ticket under the current key). For rotation: 0, or -ENOSPC past
 * TLS_TICKET_KEYS_MAX keys in all.
 */
int tls_ctx_add_ticket_keys(struct tls_ctx *t,
                            const struct tls_ticket_keys *k);
void tls_ctx_free(struct tls_ctx *t);

/*
 * What sockd -t and a reload check: the same loading and checks as
 * tls_ctx_new without keeping anything. 0, or -EINVAL with "PATH: reason"
 * in err.
 */
int tls_check_files(const char *cert, const char *key, char *err,
                    size_t errlen);

/* One per connection; the fd stays the caller's (never closed here). */
struct listener_cfg;
/* tls_check_files for a listener's certificate and every SNI pair. */
int tls_check_listener(const struct listener_cfg *l, char *err,
                       size_t errlen);

struct tls_conn;

/* A server-side session on fd (non-blocking). NULL on allocation failure. */
struct tls_conn *tls_conn_new(struct tls_ctx *t, int fd);
void tls_conn_free(struct tls_conn *c);

/*
 * Drives the handshake: 1 done, 0 in progress (*want says which event to
 * wait for), or negative on failure: -EPROTO for TLS (a plain-HTTP client,
 * TLS 1.0/1.1, no common cipher, ALPN without http/1.1, EOF mid-way) or
 * -errno from the socket. Failures are sticky. The caller bounds it with
 * handshake_timeout.
 */
int tls_handshake(struct tls_conn *c, int *want);
/*
 * Like recv(2) after the handshake: fills buf with as many decrypted bytes
 * as are ready (several records), returns their count, 0 on close_notify
 * or EOF, -EAGAIN with *want set (a read can need a write, e.g. to answer
 * a TLS 1.3 KeyUpdate), -EPROTO on a TLS error or a renegotiation attempt,
 * or -errno from the socket. Bytes read before an error are returned
 * first; the error is sticky and comes with the next call.
 */
ssize_t tls_read(struct tls_conn *c, void *buf, size_t len, int *want);
/*
 * Like writev(2), with the sendq_writev_fn contract: returns the bytes
 * taken from the front of iov (possibly fewer than offered), -EAGAIN with
 * *want set, or -EPIPE/-EPROTO/-errno. Small iovecs are packed into one
 * record through a 16 KiB stack buffer; iovecs of a record's size or more
 * are encrypted in place. After -EAGAIN the next call must offer at least
 * the same bytes at the front (a queue that only appends does).
 */
ssize_t tls_writev(struct tls_conn *c, const struct iovec *iov, int iovcnt,
                   int *want);
/*
 * Queues and tries to send close_notify, once, without blocking; nothing
 * after a fatal error or before the handshake finished. Best effort: a
 * full socket drops it.
 */
void tls_shutdown(struct tls_conn *c);

/* True once the handshake resumed a session from a ticket. */
bool tls_session_reused(const struct tls_conn *c);
/* The reason for the last failure, "" if none; static storage. */
const char *tls_conn_error(const struct tls_conn *c);
/* True when the handshake failed on plain HTTP (answer 400 in clear). */
bool tls_conn_is_plain_http(const struct tls_conn *c);
/* "TLSv1.3", "TLSv1.2": for logs. */
const char *tls_conn_version(const struct tls_conn *c);
/*
 * Non-zero while OpenSSL holds input: decrypted bytes (their count), or
 * bytes read ahead and not yet decrypted (1). The fd does not become
 * readable for them: a caller that stops reading with this non-zero must
 * come back without waiting for EV_READ.
 */
size_t tls_pending(const struct tls_conn *c);

#endif
