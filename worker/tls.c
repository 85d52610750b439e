/*
 * tls.c: OpenSSL 3 behind the tls.h calls: loading and checking PEM files
 * with messages an operator can act on, the SSL_CTX settings every TLS
 * listener shares, SNI, ALPN and ticket-key callbacks, and the mapping of
 * SSL_read/SSL_write/SSL_do_handshake results to recv/writev-like returns.
 *
 * Files are read here (not by OpenSSL's file BIOs) so that a missing or
 * unreadable file is reported with strerror, a FIFO never blocks and key
 * bytes are wiped after use. No libev, no connections, no logging.
 */
#include "tls.h"

#include "settings.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common.h"

/* A PEM chain or key larger than this is a wrong path, not a certificate. */
#define TLS_FILE_MAX (1024 * 1024)
/* The largest TLS plaintext record (RFC 8446 §5.1). */
#define TLS_RECORD 16384
/* Packing buffer; iovecs at least a record long are written in place. */
#define TLS_SCRATCH TLS_RECORD
#define TLS_TICKET_IV 16

/* Mozilla's "intermediate" TLS 1.2 list; TLS 1.3 keeps OpenSSL's suites. */
static const char tls_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:"
    "DHE-RSA-CHACHA20-POLY1305";

/* Same on every context, so that resumed sessions match after SNI. */
static const unsigned char tls_sid_ctx[] = "sockd";

/* A certificate and the host names it serves. */
struct tls_cert {
    SSL_CTX *ctx;
    char **names;     /* lower case; "*.example.com" for wildcards */
    size_t n_names;
};

struct tls_ctx {
    struct tls_cert *certs; /* [0]: the listener's pair, the default */
    size_t n_certs;
    EVP_CIPHER *cipher;     /* AES-256-CBC for tickets, fetched once */
    struct tls_ticket_keys keys[TLS_TICKET_KEYS_MAX]; /* [0] encrypts */
    size_t n_keys;
};

struct tls_conn {
    SSL *ssl;
    const char *reason;   /* static string, NULL while healthy */
    int sys_errno;        /* when the failure came from the socket */
    int fail_rc;          /* sticky negative return, 0 while healthy */
    size_t wlen;          /* a blocked SSL_write's length, offered again */
    bool done;            /* handshake finished */
    bool reneg;           /* the peer started a new handshake */
    bool eof;             /* close_notify or EOF seen */
    bool ssl_fatal;       /* OpenSSL forbids further I/O, even shutdown */
    bool plain_http;
    bool shut;
};

/* ---- Error text --------------------------------------------------------- */

/* "PATH: what: OpenSSL's reason for its first queued error"; clears it. */
static void
report_ssl(char *err, size_t errlen, const char *path, const char *what)
{
    unsigned long e = ERR_peek_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
    char buf[256];

    if (e != 0 && reason == NULL) {
        ERR_error_string_n(e, buf, sizeof(buf));
        reason = buf;
    }
    if (reason != NULL)
        snprintf(err, errlen, "%s: %s: %s", path, what, reason);
    else
        snprintf(err, errlen, "%s: %s", path, what);
    ERR_clear_error();
}

/* ---- Reading PEM files -------------------------------------------------- */

/*
 * Reads path whole into a malloc'd buffer. 0, or -errno with
 * "PATH: strerror" in err. Non-blocking open: a FIFO must not hang -t.
 */
static int
slurp(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int fd, rc;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        goto fail_errno;
    if (fstat(fd, &st) != 0)
        goto fail_close;
    if (S_ISDIR(st.st_mode)) {
        errno = EISDIR;
        goto fail_close;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(err, errlen, "%s: not a regular file", path);
        return -EINVAL;
    }
    if (st.st_size > TLS_FILE_MAX) {
        errno = EFBIG;
        goto fail_close;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL)
        goto fail_close;
    while (len < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto fail_free;
        if (n == 0)
            break; /* shrank under us: parse what is there */
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;

fail_free:
    rc = errno;
    free(buf);
    errno = rc;
fail_close:
    rc = errno;
    close(fd);
    errno = rc;
fail_errno:
    rc = errno;
    snprintf(err, errlen, "%s: %s", path, strerror(rc));
    return -rc;
}

static void
wipe_free(char *p, size_t len)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p, len);
    free(p);
}

/* Never prompt: an encrypted key is an error, not a question on a tty. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* The leaf into ctx, then every further certificate as its chain. */
static int
load_chain(SSL_CTX *ctx, const char *path, char *err, size_t errlen)
{
    char *pem;
    size_t len;
    BIO *bio;
    X509 *x;
    unsigned long e;
    int rc = slurp(path, &pem, &len, err, errlen);

    if (rc != 0)
        return rc;
    rc = -EINVAL;
    ERR_clear_error();
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) {
        report_ssl(err, errlen, path, "cannot read certificate");
        goto out_free;
    }
    x = PEM_read_bio_X509_AUX(bio, NULL, no_passphrase, NULL);
    if (x == NULL) {
        report_ssl(err, errlen, path, "bad certificate");
        goto out_bio;
    }
    if (SSL_CTX_use_certificate(ctx, x) != 1) {
        report_ssl(err, errlen, path, "certificate refused");
        X509_free(x);
        goto out_bio;
    }
    X509_free(x);
    while ((x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
            X509_free(x);
            report_ssl(err, errlen, path, "chain certificate refused");
            goto out_bio;
        }
    }
    /* The end of the file shows up as "no start line"; anything else is
       a broken certificate after the leaf. */
    e = ERR_peek_last_error();
    if (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM &&
                    ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
        report_ssl(err, errlen, path, "bad chain certificate");
        goto out_bio;
    }
    ERR_clear_error();
    rc = 0;
out_bio:
    BIO_free(bio);
out_free:
    free(pem);
    return rc;
}

/* The key into ctx, after checking that it matches the certificate. */
static int
load_key(SSL_CTX *ctx, const char *cert, const char *path, char *err,
         size_t errlen)
{
    char *pem, what[64 + 4096];
    size_t len;
    BIO *bio;
    EVP_PKEY *k = NULL;
    int rc = slurp(path, &pem, &len, err, errlen);

    if (rc != 0)
        return rc;
    rc = -EINVAL;
    ERR_clear_error();
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio != NULL)
        k = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    wipe_free(pem, len);
    if (k == NULL) {
        report_ssl(err, errlen, path, "bad private key");
        return rc;
    }
    if (X509_check_private_key(SSL_CTX_get0_certificate(ctx), k) != 1) {
        snprintf(what, sizeof(what), "does not match the certificate in %s",
                 cert);
        report_ssl(err, errlen, path, what);
        goto out;
    }
    if (SSL_CTX_use_PrivateKey(ctx, k) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        report_ssl(err, errlen, path, "private key refused");
        goto out;
    }
    rc = 0;
out:
    EVP_PKEY_free(k);
    return rc;
}

/* ---- Contexts ----------------------------------------------------------- */

static int tls_on_servername(SSL *s, int *alert, void *arg);
static int tls_on_alpn(SSL *s, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg);
static int tls_on_ticket_key(SSL *s, unsigned char name[16],
                             unsigned char *iv, EVP_CIPHER_CTX *cctx,
                             EVP_MAC_CTX *hctx, int enc);

/*
 * A context with sock's settings. t == NULL: only for checking files (no
 * callbacks). Every context of a tls_ctx gets the callbacks, since after
 * SNI switches contexts OpenSSL asks the new one for ALPN.
 */
static SSL_CTX *
ctx_create(struct tls_ctx *t)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL)
        return NULL;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, 0) != 1 ||
        SSL_CTX_set_cipher_list(ctx, tls_ciphers) != 1 ||
        SSL_CTX_set_dh_auto(ctx, 1) != 1 ||
        SSL_CTX_set_session_id_context(ctx, tls_sid_ctx,
                                       sizeof(tls_sid_ctx) - 1) != 1)
        goto fail;
    /* Unexpected EOF reads as a clean close: WebSocket's own close
       handshake is what tells a truncated stream (1006) apart. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                        SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET |
                          SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                     SSL_MODE_RELEASE_BUFFERS);
    /* One read(2) takes what the socket has, not a record header and
       then its body: 1 read per small message instead of 3 (echo of
       32 B, perf stat). Bytes read ahead hide from epoll: tls_pending
       counts them. */
    SSL_CTX_set_read_ahead(ctx, 1);
    /* Stateless tickets only: no per-worker cache to miss in. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (t == NULL)
        return ctx;
    SSL_CTX_set_app_data(ctx, t);
    SSL_CTX_set_tlsext_servername_callback(ctx, tls_on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx, t);
    SSL_CTX_set_alpn_select_cb(ctx, tls_on_alpn, NULL);
    if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_on_ticket_key) != 1)
        goto fail;
    return ctx;

fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* A new context for cert/key, checked. NULL with err filled. */
static SSL_CTX *
ctx_load(struct tls_ctx *t, const char *cert, const char *key, char *err,
         size_t errlen)
{
    SSL_CTX *ctx = ctx_create(t);

    if (ctx == NULL) {
        report_ssl(err, errlen, cert, "cannot create TLS context");
        return NULL;
    }
    if (load_chain(ctx, cert, err, errlen) != 0 ||
        load_key(ctx, cert, key, err, errlen) != 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int
add_name(struct tls_cert *c, const unsigned char *p, size_t len)
{
    char **v, *s;

    /* An embedded NUL would make "a.com\0.evil" match "a.com". */
    if (len == 0 || memchr(p, '\0', len) != NULL)
        return 0;
    v = realloc(c->names, (c->n_names + 1) * sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    c->names = v;
    s = malloc(len + 1);
    if (s == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++)
        s[i] = (char)tolower(p[i]);
    s[len] = '\0';
    c->names[c->n_names++] = s;
    return 0;
}

/* The DNS subjectAltNames of x, or its CN when it has none. */
static int
cert_names(struct tls_cert *c, X509 *x)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL,
                                           NULL);
    X509_NAME_ENTRY *cn;
    unsigned char *utf8;
    int rc = 0, idx, len;

    for (int i = 0; i < sk_GENERAL_NAME_num(gens) && rc == 0; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

        if (g->type == GEN_DNS)
            rc = add_name(c, ASN1_STRING_get0_data(g->d.dNSName),
                          (size_t)ASN1_STRING_length(g->d.dNSName));
    }
    GENERAL_NAMES_free(gens);
    if (rc != 0 || c->n_names > 0)
        return rc;
    idx = X509_NAME_get_index_by_NID(X509_get_subject_name(x),
                                     NID_commonName, -1);
    if (idx < 0)
        return 0;
    cn = X509_NAME_get_entry(X509_get_subject_name(x), idx);
    len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(cn));
    if (len < 0)
        return 0;
    rc = add_name(c, utf8, (size_t)len);
    OPENSSL_free(utf8);
    return rc;
}

static void
cert_destroy(struct tls_cert *c)
{
    for (size_t i = 0; i < c->n_names; i++)
        free(c->names[i]);
    free(c->names);
    SSL_CTX_free(c->ctx);
}

/* Loads cert/key as t->certs[t->n_certs]. 0 or -EINVAL/-ENOMEM. */
static int
add_cert(struct tls_ctx *t, const char *cert, const char *key, char *err,
         size_t errlen)
{
    struct tls_cert *v, *c;

    v = realloc(t->certs, (t->n_certs + 1) * sizeof(*v));
    if (v == NULL) {
        snprintf(err, errlen, "%s: %s", cert, strerror(ENOMEM));
        return -ENOMEM;
    }
    t->certs = v;
    c = &t->certs[t->n_certs];
    memset(c, 0, sizeof(*c));
    c->ctx = ctx_load(t, cert, key, err, errlen);
    if (c->ctx == NULL)
        return -EINVAL;
    if (cert_names(c, SSL_CTX_get0_certificate(c->ctx)) != 0) {
        cert_destroy(c);
        snprintf(err, errlen, "%s: %s", cert, strerror(ENOMEM));
        return -ENOMEM;
    }
    t->n_certs++;
    return 0;
}

struct tls_ctx *
tls_ctx_new(const char *cert, const char *key,
            const struct tls_ticket_keys *keys, char *err, size_t errlen)
{
    struct tls_ctx *t = calloc(1, sizeof(*t));

    if (t == NULL) {
        snprintf(err, errlen, "%s: %s", cert, strerror(ENOMEM));
        return NULL;
    }
    t->n_keys = 1;
    if (keys != NULL)
        t->keys[0] = *keys;
    else if (tls_ticket_keys_generate(&t->keys[0]) != 0)
        goto fail_rand;
    t->cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
    if (t->cipher == NULL)
        goto fail_rand;
    if (add_cert(t, cert, key, err, errlen) != 0)
        goto fail_free;
    return t;

fail_rand:
    report_ssl(err, errlen, cert, "cannot set up session tickets");
fail_free:
    tls_ctx_free(t);
    return NULL;
}

int
tls_ctx_add_sni(struct tls_ctx *t, const char *cert, const char *key,
                char *err, size_t errlen)
{
    int rc = add_cert(t, cert, key, err, errlen);

    if (rc != 0)
        return rc;
    if (t->certs[t->n_certs - 1].n_names == 0) {
        t->n_certs--;
        cert_destroy(&t->certs[t->n_certs]);
        snprintf(err, errlen, "%s: no DNS subjectAltName or CN to select "
                 "it by SNI", cert);
        return -EINVAL;
    }
    return 0;
}

int
tls_ctx_add_ticket_keys(struct tls_ctx *t, const struct tls_ticket_keys *k)
{
    if (t->n_keys >= TLS_TICKET_KEYS_MAX)
        return -ENOSPC;
    t->keys[t->n_keys++] = *k;
    return 0;
}

void
tls_ctx_free(struct tls_ctx *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_certs; i++)
        cert_destroy(&t->certs[i]);
    free(t->certs);
    EVP_CIPHER_free(t->cipher);
    OPENSSL_cleanse(t->keys, sizeof(t->keys));
    free(t);
}

int
tls_check_files(const char *cert, const char *key, char *err, size_t errlen)
{
    SSL_CTX *ctx = ctx_load(NULL, cert, key, err, errlen);

    if (ctx == NULL)
        return -EINVAL;
    SSL_CTX_free(ctx);
    return 0;
}

int
tls_ticket_keys_generate(struct tls_ticket_keys *k)
{
    if (RAND_bytes(k->name, sizeof(k->name)) != 1 ||
        RAND_bytes(k->aes_key, sizeof(k->aes_key)) != 1 ||
        RAND_bytes(k->hmac_key, sizeof(k->hmac_key)) != 1)
        return -EIO;
    return 0;
}

/* ---- Handshake callbacks ------------------------------------------------ */

/* "*.example.com" covers exactly one more label: "a.example.com". */
static bool
wildcard_matches(const char *pattern, const char *host)
{
    const char *dot = strchr(host, '.');

    return pattern[0] == '*' && pattern[1] == '.' && dot != NULL &&
           dot != host && strcasecmp(pattern + 1, dot) == 0;
}

static const struct tls_cert *
sni_find(const struct tls_ctx *t, const char *host)
{
    for (size_t i = 0; i < t->n_certs; i++)
        for (size_t j = 0; j < t->certs[i].n_names; j++)
            if (t->certs[i].names[j][0] != '*' &&
                strcasecmp(t->certs[i].names[j], host) == 0)
                return &t->certs[i];
    for (size_t i = 0; i < t->n_certs; i++)
        for (size_t j = 0; j < t->certs[i].n_names; j++)
            if (wildcard_matches(t->certs[i].names[j], host))
                return &t->certs[i];
    return NULL;
}

/* An unknown name gets the default certificate, as nginx does. */
static int
tls_on_servername(SSL *s, int *alert, void *arg)
{
    const struct tls_ctx *t = arg;
    const char *host = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
    const struct tls_cert *c;

    if (host == NULL)
        return SSL_TLSEXT_ERR_OK;
    c = sni_find(t, host);
    if (c == NULL || c->ctx == SSL_get_SSL_CTX(s))
        return SSL_TLSEXT_ERR_OK;
    if (SSL_set_SSL_CTX(s, c->ctx) == NULL) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
}

/* RFC 7301 §3.2: no protocol in common is fatal, no_application_protocol. */
static int
tls_on_alpn(SSL *s, const unsigned char **out, unsigned char *outlen,
            const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char http11[] = "http/1.1";

    (void)s;
    (void)arg;
    for (unsigned int i = 0; i < inlen;) {
        unsigned int len = in[i];

        if (len > inlen - i - 1)
            break;
        if (len == 8 && memcmp(in + i + 1, http11, 8) == 0) {
            *out = http11;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + len;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static bool
ticket_mac_init(EVP_MAC_CTX *h, const struct tls_ticket_keys *k)
{
    OSSL_PARAM p[3];

    p[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
                                             (void *)k->hmac_key,
                                             sizeof(k->hmac_key));
    p[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                            (char *)"SHA256", 0);
    p[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(h, p) == 1;
}

/*
 * SSL_CTX_set_tlsext_ticket_key_evp_cb: encrypt under keys[0]; decrypt
 * under the key the ticket names: 1 (current), 2 (older: resume and issue
 * a fresh ticket), 0 (unknown: full handshake), -1 (failure).
 */
static int
tls_on_ticket_key(SSL *s, unsigned char name[16], unsigned char *iv,
                  EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    const struct tls_ctx *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(s));
    const struct tls_ticket_keys *k = &t->keys[0];
    size_t i = 0;

    if (enc) {
        memcpy(name, k->name, sizeof(k->name));
        if (RAND_bytes(iv, TLS_TICKET_IV) != 1 ||
            EVP_EncryptInit_ex2(cctx, t->cipher, k->aes_key, iv, NULL) != 1 ||
            !ticket_mac_init(hctx, k))
            return -1;
        return 1;
    }
    while (i < t->n_keys && memcmp(name, t->keys[i].name, 16) != 0)
        i++;
    if (i == t->n_keys)
        return 0;
    k = &t->keys[i];
    if (!ticket_mac_init(hctx, k) ||
        EVP_DecryptInit_ex2(cctx, t->cipher, k->aes_key, iv, NULL) != 1)
        return -1;
    return i == 0 ? 1 : 2;
}

/*
 * Renegotiation: SSL_OP_NO_RENEGOTIATION answers a TLS 1.2 ClientHello
 * after the handshake with a no_renegotiation warning and carries on; we
 * fail the connection instead, so a client cannot make us parse hellos
 * forever. TLS 1.3 post-handshake messages start no handshake.
 */
static void
tls_on_info(const SSL *s, int where, int ret)
{
    struct tls_conn *c = SSL_get_app_data(s);

    if (c == NULL || !c->done)
        return;
    if ((where & SSL_CB_HANDSHAKE_START) ||
        ((where & SSL_CB_WRITE_ALERT) &&
         (ret & 0xff) == SSL_AD_NO_RENEGOTIATION))
        c->reneg = true;
}

/* ---- Connections -------------------------------------------------------- */

struct tls_conn *
tls_conn_new(struct tls_ctx *t, int fd)
{
    struct tls_conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->ssl = SSL_new(t->certs[0].ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
        SSL_free(c->ssl);
        free(c);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_accept_state(c->ssl);
    SSL_set_app_data(c->ssl, c);
    SSL_set_info_callback(c->ssl, tls_on_info);
    return c;
}

void
tls_conn_free(struct tls_conn *c)
{
    if (c == NULL)
        return;
    SSL_free(c->ssl); /* the BIO does not own the fd */
    free(c);
}

/* Records a sticky failure; returns rc. */
static int
fail(struct tls_conn *c, int rc, const char *reason)
{
    c->fail_rc = rc;
    c->reason = reason;
    ERR_clear_error();
    return rc;
}

/* A TLS-level failure with OpenSSL's first reason. */
static int
fail_ssl(struct tls_conn *c, const char *fallback)
{
    unsigned long e = ERR_peek_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

    if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
        (ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST ||
         ERR_GET_REASON(e) == SSL_R_HTTPS_PROXY_REQUEST))
        c->plain_http = true;
    c->ssl_fatal = true;
    return fail(c, -EPROTO, reason != NULL ? reason : fallback);
}

/*
 * Maps a failed SSL call's result: -EAGAIN with *want, 0 for close_notify
 * or EOF, or a sticky negative failure. saved_errno is errno right after
 * the call (SSL_ERROR_SYSCALL leaves the cause there).
 */
static int
io_result(struct tls_conn *c, int r, int saved_errno, int *want)
{
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        *want = TLS_WANT_READ;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want = TLS_WANT_WRITE;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        c->eof = true;
        ERR_clear_error();
        return 0;
    case SSL_ERROR_SYSCALL:
        c->ssl_fatal = true;
        if (saved_errno == 0 || saved_errno == EAGAIN)
            return fail_ssl(c, "connection closed");
        c->sys_errno = saved_errno;
        return fail(c, -saved_errno, NULL);
    default:
        return fail_ssl(c, "TLS error");
    }
}

int
tls_handshake(struct tls_conn *c, int *want)
{
    int r, rc;

    if (c->fail_rc != 0)
        return c->fail_rc;
    if (c->done)
        return 1;
    ERR_clear_error();
    errno = 0;
    r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->done = true;
        return 1;
    }
    rc = io_result(c, r, errno, want);
    if (rc == -EAGAIN)
        return 0;
    if (rc == 0) /* a close before the handshake ended */
        return fail(c, -EPROTO, "connection closed during handshake");
    return rc;
}

ssize_t
tls_read(struct tls_conn *c, void *buf, size_t len, int *want)
{
    size_t got = 0, n;
    int r, rc;

    if (c->fail_rc != 0)
        return c->fail_rc;
    if (c->eof)
        return 0;
    while (got < len) {
        ERR_clear_error();
        errno = 0;
        r = SSL_read_ex(c->ssl, (char *)buf + got, len - got, &n);
        if (c->reneg)
            return fail(c, -EPROTO, "renegotiation refused");
        if (r == 1) {
            got += n;
            /* Nothing buffered: the socket has no more either, most
               likely, and level-triggered epoll tells if it does. */
            if (!SSL_has_pending(c->ssl))
                break;
            continue;
        }
        rc = io_result(c, r, errno, want);
        if (got > 0)
            break; /* the EOF or error is sticky: it comes next call */
        return rc;
    }
    return (ssize_t)got;
}

/*
 * Copies up to limit bytes from iov[i] + off into scratch. With
 * stop_at_large, stops before an iovec of a record or more once something
 * is packed: that one is encrypted in place next.
 */
static size_t
pack(uint8_t *scratch, size_t limit, bool stop_at_large,
     const struct iovec *iov, int iovcnt, int i, size_t off)
{
    size_t filled = 0;

    for (; i < iovcnt && filled < limit; i++, off = 0) {
        size_t left = iov[i].iov_len - off;
        size_t take = MIN(left, limit - filled);

        if (stop_at_large && left >= TLS_RECORD && filled > 0)
            break;
        memcpy(scratch + filled, (const uint8_t *)iov[i].iov_base + off,
               take);
        filled += take;
    }
    return filled;
}

/*
 * One SSL_write of at most a record: with partial writes OpenSSL writes
 * one record per call anyway. A retry after WANT_* offers exactly the
 * length of the blocked call: more would let OpenSSL start another record
 * and report nothing until both are out (SSL_R_BAD_LENGTH on the next
 * shorter retry); less is SSL_R_BAD_WRITE_RETRY. Returns bytes taken or
 * the io_result.
 */
static ssize_t
write_record(struct tls_conn *c, const struct iovec *iov, int iovcnt, int i,
             size_t off, int *want)
{
    uint8_t scratch[TLS_SCRATCH];
    bool retry = c->wlen != 0;
    size_t left = iov[i].iov_len - off, len = retry ? c->wlen : TLS_RECORD;
    const void *p = (const uint8_t *)iov[i].iov_base + off;
    size_t n;
    int r, rc;

    if (left < len) {
        n = pack(scratch, len, !retry, iov, iovcnt, i, off);
        if (retry && n < len)
            return fail(c, -EINVAL, "write retry with fewer bytes");
        len = n;
        p = scratch;
    }
    ERR_clear_error();
    errno = 0;
    r = SSL_write_ex(c->ssl, p, len, &n);
    if (r == 1) {
        c->wlen = 0;
        return (ssize_t)n;
    }
    c->wlen = len;
    rc = io_result(c, r, errno, want);
    return rc == 0 ? fail(c, -EPIPE, "peer closed") : rc;
}

ssize_t
tls_writev(struct tls_conn *c, const struct iovec *iov, int iovcnt,
           int *want)
{
    size_t taken = 0, off = 0;
    int i = 0;

    if (c->fail_rc != 0)
        return c->fail_rc;
    for (;;) {
        ssize_t n;

        while (i < iovcnt && off == iov[i].iov_len) {
            i++;
            off = 0;
        }
        if (i == iovcnt)
            return (ssize_t)taken;
        n = write_record(c, iov, iovcnt, i, off, want);
        if (n < 0) /* an error is sticky: it comes with the next call */
            return taken > 0 ? (ssize_t)taken : n;
        taken += (size_t)n;
        while (n > 0) {
            size_t step = MIN((size_t)n, iov[i].iov_len - off);

            off += step;
            n -= (ssize_t)step;
            if (n > 0) {
                i++;
                off = 0;
            }
        }
    }
}

void
tls_shutdown(struct tls_conn *c)
{
    if (c->shut || c->ssl_fatal || !c->done)
        return;
    c->shut = true;
    ERR_clear_error();
    (void)SSL_shutdown(c->ssl);
    ERR_clear_error();
}

bool
tls_session_reused(const struct tls_conn *c)
{
    return SSL_session_reused(c->ssl) == 1;
}

const char *
tls_conn_error(const struct tls_conn *c)
{
    if (c->sys_errno != 0)
        return strerror(c->sys_errno);
    return c->reason != NULL ? c->reason : "";
}

bool
tls_conn_is_plain_http(const struct tls_conn *c)
{
    return c->plain_http;
}

const char *
tls_conn_version(const struct tls_conn *c)
{
    return SSL_get_version(c->ssl);
}

size_t
tls_pending(const struct tls_conn *c)
{
    int n = SSL_pending(c->ssl);

    if (n > 0)
        return (size_t)n;
    return SSL_has_pending(c->ssl) ? 1 : 0;
}

int
tls_check_listener(const struct listener_cfg *l, char *err, size_t errlen)
{
    if (tls_check_files(l->tls_certificate, l->tls_key, err, errlen) != 0)
        return -1;
    for (size_t k = 0; l->tls_sni_certificates != NULL &&
                       l->tls_sni_certificates[k] != NULL; k++)
        if (tls_check_files(l->tls_sni_certificates[k], l->tls_sni_keys[k],
                            err, errlen) != 0)
            return -1;
    return 0;
}
