/*
 * wsl_tls.c: TLS for wsload (see wsl_tls.h).
 *
 * libssl is loaded with dlopen, as wsl_deflate.c loads zlib: wsload's link
 * line (CMakeLists.txt, outside bench/) has libcrypto but not libssl. Only
 * functions are called through the table, never OpenSSL's macros, which
 * expand to direct calls (SSL_CTX_set_mode is SSL_CTX_ctrl, and so on).
 * ERR_* live in libcrypto, which wsload links.
 */
#include "wsl_tls.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

struct sslfn {
    void *lib;
    const SSL_METHOD *(*client_method)(void);
    SSL_CTX *(*ctx_new)(const SSL_METHOD *);
    void (*ctx_free)(SSL_CTX *);
    long (*ctx_ctrl)(SSL_CTX *, int, long, void *);
    void (*ctx_set_verify)(SSL_CTX *, int, SSL_verify_cb);
    int (*ctx_set_alpn)(SSL_CTX *, const unsigned char *, unsigned int);
    SSL *(*new_ssl)(SSL_CTX *);
    void (*free_ssl)(SSL *);
    int (*set_fd)(SSL *, int);
    int (*connect)(SSL *);
    int (*read)(SSL *, void *, int);
    int (*write)(SSL *, const void *, int);
    int (*get_error)(const SSL *, int);
    int (*shutdown)(SSL *);
    int (*is_init_finished)(const SSL *);
};

struct wsl_tls {
    struct sslfn f;
    SSL_CTX *ctx;
};

static bool
sym(void *lib, const char *name, void *fnp)
{
    void *s = dlsym(lib, name);

    if (s == NULL)
        return false;
    /* POSIX guarantees object and function pointers convert. */
    memcpy(fnp, &s, sizeof(s));
    return true;
}

static int
sslfn_load(struct sslfn *f)
{
    f->lib = dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL);
    if (f->lib == NULL)
        return -ELIBACC;
    if (sym(f->lib, "TLS_client_method", &f->client_method) &&
        sym(f->lib, "SSL_CTX_new", &f->ctx_new) &&
        sym(f->lib, "SSL_CTX_free", &f->ctx_free) &&
        sym(f->lib, "SSL_CTX_ctrl", &f->ctx_ctrl) &&
        sym(f->lib, "SSL_CTX_set_verify", &f->ctx_set_verify) &&
        sym(f->lib, "SSL_CTX_set_alpn_protos", &f->ctx_set_alpn) &&
        sym(f->lib, "SSL_new", &f->new_ssl) &&
        sym(f->lib, "SSL_free", &f->free_ssl) &&
        sym(f->lib, "SSL_set_fd", &f->set_fd) &&
        sym(f->lib, "SSL_connect", &f->connect) &&
        sym(f->lib, "SSL_read", &f->read) &&
        sym(f->lib, "SSL_write", &f->write) &&
        sym(f->lib, "SSL_get_error", &f->get_error) &&
        sym(f->lib, "SSL_shutdown", &f->shutdown) &&
        sym(f->lib, "SSL_is_init_finished", &f->is_init_finished))
        return 0;
    dlclose(f->lib);
    f->lib = NULL;
    return -ELIBACC;
}

void
wsl_tls_free(struct wsl_tls *t)
{
    if (t == NULL)
        return;
    if (t->ctx != NULL)
        t->f.ctx_free(t->ctx);
    if (t->f.lib != NULL)
        dlclose(t->f.lib);
    free(t);
}

struct wsl_tls *
wsl_tls_new(int *err)
{
    static const unsigned char alpn[] = "\x08http/1.1";
    struct wsl_tls *t = calloc(1, sizeof(*t));

    *err = -ENOMEM;
    if (t == NULL)
        return NULL;
    *err = sslfn_load(&t->f);
    if (*err != 0) {
        free(t);
        return NULL;
    }
    *err = -ENOMEM;
    t->ctx = t->f.ctx_new(t->f.client_method());
    if (t->ctx == NULL) {
        wsl_tls_free(t);
        return NULL;
    }
    t->f.ctx_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
    (void)t->f.ctx_ctrl(t->ctx, SSL_CTRL_SET_MIN_PROTO_VERSION,
                        TLS1_2_VERSION, NULL);
    /* Writes go out in pieces, from a buffer that may move (realloc). */
    (void)t->f.ctx_ctrl(t->ctx, SSL_CTRL_MODE,
                        SSL_MODE_ENABLE_PARTIAL_WRITE |
                        SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, NULL);
    (void)t->f.ctx_set_alpn(t->ctx, alpn, sizeof(alpn) - 1);
    *err = 0;
    return t;
}

struct wsl_tls_conn *
wsl_tls_conn_new(struct wsl_tls *t, int fd)
{
    SSL *s = t->f.new_ssl(t->ctx);

    if (s == NULL)
        return NULL;
    if (t->f.set_fd(s, fd) != 1) {
        t->f.free_ssl(s);
        return NULL;
    }
    return (struct wsl_tls_conn *)s;
}

void
wsl_tls_conn_free(struct wsl_tls *t, struct wsl_tls_conn *c)
{
    SSL *s = (SSL *)c;

    if (s == NULL)
        return;
    /* One non-blocking try at close_notify; the fd closes right after. */
    if (t->f.is_init_finished(s))
        (void)t->f.shutdown(s);
    ERR_clear_error();
    t->f.free_ssl(s);
}

int
wsl_tls_handshake(struct wsl_tls *t, struct wsl_tls_conn *c,
                  const char **what)
{
    SSL *s = (SSL *)c;
    int rc, e;

    ERR_clear_error();
    rc = t->f.connect(s);
    if (rc == 1)
        return WSL_TLS_DONE;
    e = t->f.get_error(s, rc);
    if (e == SSL_ERROR_WANT_READ)
        return WSL_TLS_WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE)
        return WSL_TLS_WANT_WRITE;
    *what = e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN ?
            "tls: server closed during the TLS handshake" :
            "tls: handshake failed (not a TLS server?)";
    ERR_clear_error();
    return -EPROTO;
}

/* Maps an SSL_read/SSL_write failure onto errno. */
static ssize_t
io_error(struct wsl_tls *t, SSL *s, int rc, bool reading)
{
    int e = t->f.get_error(s, rc);

    ERR_clear_error();
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        if (reading)
            return 0;
        errno = EPIPE;
        return -1;
    case SSL_ERROR_SYSCALL:
        /* EOF without close_notify: a close all the same. */
        if (reading && errno == 0)
            return 0;
        if (errno == 0)
            errno = ECONNRESET;
        return -1;
    default:
        errno = EPROTO;
        return -1;
    }
}

ssize_t
wsl_tls_read(struct wsl_tls *t, struct wsl_tls_conn *c, void *buf,
             size_t len)
{
    SSL *s = (SSL *)c;
    int rc;

    ERR_clear_error();
    errno = 0;
    rc = t->f.read(s, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    return rc > 0 ? rc : io_error(t, s, rc, true);
}

ssize_t
wsl_tls_write(struct wsl_tls *t, struct wsl_tls_conn *c, const void *buf,
              size_t len)
{
    SSL *s = (SSL *)c;
    int rc;

    ERR_clear_error();
    errno = 0;
    rc = t->f.write(s, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    return rc > 0 ? rc : io_error(t, s, rc, false);
}
