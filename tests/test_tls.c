/*
 * test_tls.c: unit tests for worker/tls.c. main() makes a root CA, an
 * intermediate CA and leaf certificates (localhost; other.test with
 * *.wild.test; a.wild.test; a CN-only one; one with no name) with the
 * openssl command line in a temporary directory, plus broken files. Each
 * test then drives a server tls_conn against an OpenSSL client in this
 * process over a non-blocking AF_UNIX socketpair, stepping both sides in
 * bounded loops: versions, ALPN, SNI, refusals, data both ways through
 * many iovecs and a slow reader, EAGAIN, close_notify, EOF, resumption
 * across contexts that share ticket keys, renegotiation, KeyUpdate, and
 * the file checks sockd -t reports.
 */
#include "tls.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common.h"
#include "testutil.h"

#define STEPS 20000         /* bound on any stepping loop */
#define MAX_IOV 64          /* as sendq.c gathers */
#define NOBODY 65534

static char dir[64];        /* made in main, inherited by every test */
static SSL_SESSION *last_session; /* the client's newest ticket */

/* DIR/name in one of a few rotating buffers. */
static const char *
path(const char *name)
{
    static char bufs[8][256];
    static unsigned k;
    char *b = bufs[k++ % 8];

    snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
    return b;
}

static struct tls_ctx *
server_ctx(const struct tls_ticket_keys *keys)
{
    char err[512] = "";
    struct tls_ctx *t = tls_ctx_new(path("srv-chain.pem"), path("srv.key"),
                                    keys, err, sizeof(err));

    ck_assert_msg(t != NULL, "tls_ctx_new: %s", err);
    return t;
}

static int
on_new_session(SSL *s, SSL_SESSION *sess)
{
    (void)s;
    SSL_SESSION_free(last_session);
    last_session = sess;
    return 1; /* the reference is ours */
}

static SSL_CTX *
client_ctx(int min, int max)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(SSL_CTX_set_min_proto_version(c, min), 1);
    ck_assert_int_eq(SSL_CTX_set_max_proto_version(c, max), 1);
    if (max < TLS1_2_VERSION) {
        /* Let the client offer what the system policy forbids, so that
           it is our server that refuses. */
        SSL_CTX_set_security_level(c, 0);
        ck_assert_int_eq(SSL_CTX_set_cipher_list(c, "DEFAULT:@SECLEVEL=0"),
                         1);
    }
    ck_assert_int_eq(SSL_CTX_load_verify_locations(c, path("ca.crt"), NULL),
                     1);
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT |
                                   SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c, on_new_session);
    return c;
}

struct pair {
    int sfd, cfd;
    struct tls_conn *s;
    SSL *c;
    int srv_rc;     /* tls_handshake: 0 running, 1 done, < 0 failed */
    bool cli_done, cli_failed;
};

static void
pair_open(struct pair *p, struct tls_ctx *t, SSL_CTX *cctx, const char *sni)
{
    int sv[2];

    memset(p, 0, sizeof(*p));
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
                                SOCK_CLOEXEC, 0, sv), 0);
    p->sfd = sv[0];
    p->cfd = sv[1];
    p->s = tls_conn_new(t, p->sfd);
    ck_assert_ptr_nonnull(p->s);
    p->c = SSL_new(cctx);
    ck_assert_ptr_nonnull(p->c);
    ck_assert_int_eq(SSL_set_fd(p->c, p->cfd), 1);
    SSL_set_connect_state(p->c);
    if (sni != NULL)
        ck_assert_int_eq(SSL_set_tlsext_host_name(p->c, sni), 1);
}

static void
pair_close(struct pair *p)
{
    tls_conn_free(p->s);
    SSL_free(p->c);
    close(p->sfd);
    if (p->cfd >= 0)
        close(p->cfd);
}

static bool
client_step_failed(SSL *c, int r)
{
    int e = SSL_get_error(c, r);

    ERR_clear_error();
    return e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;
}

/* Steps both ends; true once both finished, false when one failed. */
static bool
pair_handshake(struct pair *p)
{
    for (int k = 0; k < STEPS; k++) {
        int want = 0, r;

        if (p->srv_rc == 0)
            p->srv_rc = tls_handshake(p->s, &want);
        if (p->srv_rc == 0 && want != TLS_WANT_READ &&
            want != TLS_WANT_WRITE)
            return false;
        if (!p->cli_done && !p->cli_failed) {
            ERR_clear_error();
            r = SSL_do_handshake(p->c);
            if (r == 1)
                p->cli_done = true;
            else
                p->cli_failed = client_step_failed(p->c, r);
        }
        if (p->srv_rc < 0 || (p->srv_rc == 1 && p->cli_failed))
            return false;
        if (p->srv_rc == 1 && p->cli_done)
            return true;
    }
    return false;
}

/* Server sends len bytes (small: the socket takes them), client reads. */
static void
server_to_client(struct pair *p, const void *data, size_t len)
{
    struct iovec iov = { (void *)data, len };
    uint8_t buf[256];
    size_t got = 0, n;
    int want;

    ck_assert_uint_le(len, sizeof(buf));
    ck_assert_int_eq(tls_writev(p->s, &iov, 1, &want), (ssize_t)len);
    for (int k = 0; k < STEPS && got < len; k++) {
        ERR_clear_error();
        if (SSL_read_ex(p->c, buf + got, len - got, &n) == 1)
            got += n;
        else
            ck_assert(!client_step_failed(p->c, 0));
    }
    ck_assert_uint_eq(got, len);
    ck_assert_mem_eq(buf, data, len);
}

static void
client_write_all(struct pair *p, const void *data, size_t len)
{
    size_t n;

    ERR_clear_error();
    ck_assert_int_eq(SSL_write_ex(p->c, data, len, &n), 1);
    ck_assert_uint_eq(n, len);
}

static void
fill_random(uint8_t *p, size_t len, uint64_t seed)
{
    uint64_t st = seed;

    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(test_rand(&st) >> 56);
}

static void
peer_cn(SSL *c, char *out, size_t len)
{
    X509 *x = SSL_get1_peer_certificate(c);

    ck_assert_ptr_nonnull(x);
    ck_assert_int_gt(X509_NAME_get_text_by_NID(X509_get_subject_name(x),
                                               NID_commonName, out,
                                               (int)len), 0);
    X509_free(x);
}

static int
version_of(int i)
{
    return i % 2 == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

static const char *
version_name(int v)
{
    return v == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2";
}

/* ---- Handshakes --------------------------------------------------------- */

/* _i: 0 TLS 1.3 (client max), 1 TLS 1.2. */
START_TEST(test_handshake_versions)
{
    static const unsigned char alpn[] = "\x08http/1.1";
    int v = version_of(_i);
    struct tls_ctx *t = server_ctx(NULL);
    SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, v);
    const unsigned char *sel;
    unsigned int sel_len;
    struct pair p;

    pair_open(&p, t, cctx, "localhost");
    ck_assert_int_eq(SSL_set_alpn_protos(p.c, alpn, sizeof(alpn) - 1), 0);
    ck_assert_int_eq(SSL_set1_host(p.c, "localhost"), 1);
    ck_assert(pair_handshake(&p));
    ck_assert_str_eq(SSL_get_version(p.c), version_name(v));
    ck_assert_str_eq(tls_conn_version(p.s), version_name(v));
    SSL_get0_alpn_selected(p.c, &sel, &sel_len);
    ck_assert_uint_eq(sel_len, 8);
    ck_assert_mem_eq(sel, "http/1.1", 8);
    /* The intermediate came from the chain file: the client trusts only
       the root. */
    ck_assert_int_eq(SSL_get_verify_result(p.c), X509_V_OK);
    ck_assert(!tls_session_reused(p.s));
    ck_assert_str_eq(tls_conn_error(p.s), "");
    ck_assert(!tls_conn_is_plain_http(p.s));
    ck_assert_int_eq(tls_handshake(p.s, &(int){ 0 }), 1);
    server_to_client(&p, "hello", 5);
    pair_close(&p);
    SSL_CTX_free(cctx);
    tls_ctx_free(t);
}
END_TEST

static const struct {
    const char *protos; /* wire form; NULL: no ALPN */
    size_t len;
    bool ok;
} alpn_cases[] = {
    { NULL, 0, true },
    { "\x08http/1.1", 9, true },
    { "\x02h2\x08http/1.1", 12, true },
    { "\x08http/1.0\x08http/1.1\x02h2", 21, true },
    { "\x02h2", 3, false },
    { "\x08http/1.0", 9, false },
};

START_TEST(test_alpn)
{
    int v = version_of(_i);
    unsigned c = (unsigned)_i / 2;
    struct tls_ctx *t = server_ctx(NULL);
    SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, v);
    const unsigned char *sel;
    unsigned int sel_len;
    struct pair p;

    pair_open(&p, t, cctx, NULL);
    if (alpn_cases[c].protos != NULL)
        ck_assert_int_eq(SSL_set_alpn_protos(p.c,
                         (const unsigned char *)alpn_cases[c].protos,
                         (unsigned)alpn_cases[c].len), 0);
    ck_assert_int_eq(pair_handshake(&p), alpn_cases[c].ok);
    if (alpn_cases[c].ok) {
        SSL_get0_alpn_selected(p.c, &sel, &sel_len);
        if (alpn_cases[c].protos == NULL) {
            ck_assert_uint_eq(sel_len, 0);
        } else {
            ck_assert_uint_eq(sel_len, 8);
            ck_assert_mem_eq(sel, "http/1.1", 8);
        }
    } else {
        ck_assert_int_eq(p.srv_rc, -EPROTO);
        ck_assert_str_eq(tls_conn_error(p.s), "no application protocol");
        /* Sticky. */
        ck_assert_int_eq(tls_handshake(p.s, &(int){ 0 }), -EPROTO);
    }
    pair_close(&p);
    SSL_CTX_free(cctx);
    tls_ctx_free(t);
}
END_TEST

static const struct {
    const char *sni;
    const char *cn; /* of the certificate served */
} sni_cases[] = {
    { NULL, "localhost" },
    { "localhost", "localhost" },
    { "other.test", "other.test" },
    { "OTHER.Test", "other.test" },
    { "b.wild.test", "other.test" },      /* *.wild.test */
    { "a.wild.test", "a.wild.test" },     /* exact beats the wildcard */
    { "x.y.wild.test", "localhost" },     /* a wildcard is one label */
    { "wild.test", "localhost" },
    { "cnonly.test", "cnonly.test" },     /* CN when there is no SAN */
    { "unknown.test", "localhost" },
};

START_TEST(test_sni)
{
    static const unsigned char alpn[] = "\x08http/1.1";
    int v = version_of(_i);
    unsigned c = (unsigned)_i / 2;
    struct tls_ctx *t = server_ctx(NULL);
    SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, v);
    const unsigned char *sel;
    unsigned int sel_len;
    char err[512] = "", cn[128];
    struct pair p;

    /* The wildcard certificate goes first: exact names still win. */
    ck_assert_msg(tls_ctx_add_sni(t, path("oth-chain.pem"), path("oth.key"),
                                  err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(tls_ctx_add_sni(t, path("exa-chain.pem"), path("exa.key"),
                                  err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(tls_ctx_add_sni(t, path("cn-chain.pem"), path("cn.key"),
                                  err, sizeof(err)) == 0, "%s", err);
    pair_open(&p, t, cctx, sni_cases[c].sni);
    ck_assert_int_eq(SSL_set_alpn_protos(p.c, alpn, sizeof(alpn) - 1), 0);
    ck_assert(pair_handshake(&p));
    peer_cn(p.c, cn, sizeof(cn));
    ck_assert_str_eq(cn, sni_cases[c].cn);
    ck_assert_int_eq(SSL_get_verify_result(p.c), X509_V_OK);
    /* ALPN still answered by the context SNI switched to. */
    SSL_get0_alpn_selected(p.c, &sel, &sel_len);
    ck_assert_uint_eq(sel_len, 8);
    server_to_client(&p, "sni", 3);
    pair_close(&p);
    SSL_CTX_free(cctx);
    tls_ctx_free(t);
}
END_TEST

/* _i: 0 TLS 1.0, 1 TLS 1.1. */
START_TEST(test_old_versions_refused)
{
    int v = _i == 0 ? TLS1_VERSION : TLS1_1_VERSION;
    struct tls_ctx *t = server_ctx(NULL);
    SSL_CTX *cctx = client_ctx(v, v);
    struct pair p;

    pair_open(&p, t, cctx, NULL);
    ck_assert(!pair_handshake(&p));
    ck_assert_int_eq(p.srv_rc, -EPROTO);
    ck_assert_str_eq(tls_conn_error(p.s), "unsupported protocol");
    ck_assert(!tls_conn_is_plain_http(p.s));
    pair_close(&p);
    SSL_CTX_free(cctx);
    tls_ctx_free(t);
}
END_TEST

/* Returns tls_handshake's result after the raw bytes arrived. */
static int
handshake_raw(struct tls_conn *s, int cfd, const char *raw)
{
    int rc = 0, want = 0;

    ck_assert_int_eq(write(cfd, raw, strlen(raw)), (ssize_t)strlen(raw));
    for (int k = 0; k < STEPS && rc == 0; k++)
        rc = tls_handshake(s, &want);
    return rc;
}

START_TEST(test_plain_http_refused)
{
    struct tls_ctx *t = server_ctx(NULL);
    SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
    struct pair p;

    pair_open(&p, t, cctx, NULL);
    ck_assert_int_eq(handshake_raw(p.s, p.cfd, "GET / HTTP/1.1\r\n\r\n"),
                     -EPROTO);
    ck_assert(tls_conn_is_plain_http(p.s));
    ck_assert_str_eq(tls_conn_error(p.s), "http request");
    pair_close(&p);

    pair_open(&p, t, cctx, NULL);
    ck_assert_int_eq(handshake_raw(p.s, p.cfd, "hello there, TLS\r\n"),
                     -EPROTO);
    ck_assert(!tls_conn_is_plain_http(p.s));
    ck_assert_str_ne(tls_conn_error(p.s), "");
    pair_close(&p);
    SSL_CTX_free(cctx);
    tls_ctx_free(t);
}
END_TEST

START_TEST(test_handshake_eof)
{
    struct tls_ctx *t = server_ctx(NULL);
    SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
    struct pair p;
    int want = 0;

    pair_open(&p, t, cctx, NULL);
    ck_assert_int_eq(tls_handshake(p.s, &want), 0);
    ck_assert_int_eq(want, TLS_WANT_READ);
    close(p.cfd);
    p.cfd = -1;
    ck_assert_int_eq(tls_handshake(p.s, &want), -EPROTO);
    ck_assert_str_eq(tls_conn_error(p.s),
                     "connection closed during handshake");
    tls_shutdown(p.s); /* nothing to do, and no crash */
    pair_close(&p);
    SSL_CTX_free(cctx);
    tls_ctx_free(t);
}
END_TEST

/* ---- Data --------------------------------------------------------------- */

/*
 * A model of a send queue: data[0, avail) appended so far, cut into
 * segments at bounds[], the tail segment growing as avail does (as
 * sendq packs small frames into its last chunk).
 */
struct model_q {
    const uint8_t *data;
    size_t total, avail, sent;
    size_t *bounds;   /* segment ends, ascending; the last is total */
    size_t nb, seg;   /* seg: the segment holding data[sent] */
};

static size_t
random_segment(uint64_t *st)
{
    uint64_t r = test_rand(st) % 10;

    if (r < 5)
        return 1 + test_rand(st) % 100;
    if (r < 8)
        return 100 + test_rand(st) % 4000;
    return 4000 + test_rand(st) % 60000;
}

static void
model_init(struct model_q *m, const uint8_t *data, size_t total,
           uint64_t *st)
{
    size_t pos = 0;

    memset(m, 0, sizeof(*m));
    m->data = data;
    m->total = total;
    m->bounds = malloc((total + 1) * sizeof(size_t));
    ck_assert_ptr_nonnull(m->bounds);
    while (pos < total) {
        pos += random_segment(st);
        if (pos > total)
            pos = total;
        m->bounds[m->nb++] = pos;
    }
}

static int
model_iov(const struct model_q *m, struct iovec *iov)
{
    size_t pos = m->sent, k = m->seg;
    int n = 0;

    while (n < MAX_IOV && pos < m->avail) {
        size_t end = MIN(m->bounds[k], m->avail);

        iov[n].iov_base = (void *)(m->data + pos);
        iov[n].iov_len = end - pos;
        n++;
        pos = end;
        if (pos == m->bounds[k])
            k++;
    }
    return n;
}

static void
model_take(struct model_q *m, size_t n)
{
    m->sent += n;
    while (m->seg < m->nb && m->bounds[m->seg] <= m->sent)
        m->seg++;
}

static const size_t xfer_sizes[] = {
    1, 2, 100, 16383, 16384, 16385, 65543, 1024 * 1024 + 3, 4 * 1024 * 1024,
};

/*
 * Server to client through tls_writev, with a small send buffer and a
 * client reading 1..16 KiB per step: WANT_WRITE paths and write retries
 * while the queue's tail grows. _i picks the size and the version.
 */
START_TEST(test_writev_slow_reader)
{
    size_t total = xfer_sizes[_i / 2];
    int v = version_of(_i);
    struct tls_ctx *t = server_ctx(NULL);
    SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, v);
    uint8_t *data = malloc(total), *buf = malloc(16384);
    uint64_t st = 0x5eed0000 + (uint64_t)_i;
    struct iovec iov[MAX_IOV];
    struct model_q m;
    size_t got = 0, over = 0, bad_at = SIZE_MAX;
    unsigned eagain_w = 0, errors = 0, steps = 0;
    ssize_t last_err = 0;
    int sndbuf = 4096;
    struct pair p;

    ck_assert(data != NULL && buf != NULL);
    fill_random(data, total, st);
    model_init(&m, data, total, &st);
    pair_open(&p, t, cctx, NULL);
    ck_assert(pair_handshake(&p));
    ck_assert_int_eq(setsockopt(p.sfd, SOL_SOCKET, SO_SNDBUF, &sndbuf,
                                sizeof(sndbuf)), 0);
    for (; got < total && steps < 50 * STEPS && errors == 0; steps++) {
        size_t n, grow = 1 + test_rand(&st) % 65536;
        int want = 0;

        m.avail = MIN(total, m.avail + grow);
        if (m.sent < m.avail) {
            int cnt = model_iov(&m, iov);
            size_t offered = 0;
            ssize_t w;

            for (int k = 0; k < cnt; k++)
                offered += iov[k].iov_len;
            w = tls_writev(p.s, iov, cnt, &want);
            if (w > 0 && (size_t)w <= offered)
                model_take(&m, (size_t)w);
            else if (w > 0)
                over++;
            else if (w == -EAGAIN && want == TLS_WANT_WRITE)
                eagain_w++;
            else
                last_err = w, errors++;
        }
        ERR_clear_error();
        if (SSL_read_ex(p.c, buf, 1 + test_rand(&st) % 16384, &n) == 1) {
            if (bad_at == SIZE_MAX && memcmp(buf, data + got, n) != 0)
                bad_at = got;
            got += n;
        } else if (client_step_failed(p.c, 0)) {
            errors++;
        }
    }
    ck_assert_msg(errors == 0, "tls_writev error %zd (%s)", last_err,
                  tls_conn_error(p.s));
    ck_assert_uint_eq(over, 0);
    ck_assert_uint_eq(got, total);
    ck_assert_uint_eq(m.sent, total);
    ck_assert_msg(bad_at == SIZE_MAX, "bytes differ from offset %zu", bad_at);
    if (total >= 1024 * 1024)
        ck_assert_uint_gt(eagain_w, 0);
    pair_close(&p);
    free(m.bounds);
    free(buf);
    free(data);
    SSL_CTX_free(cctx);
    tls_ctx_free(t);
}
END_TEST

/* Client to server: tls_read with random buffer sizes. */
START_TEST(test_read_sizes)
{
    size_t total = xfer_sizes[_i / 2];
    int v = version_of(_i);
    struct tls_ctx *t = server_ctx(NULL);
    SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, v);
    uint8_t *data = malloc(total), *buf = malloc(65536);
    uint64_t st = 0xc0ffee00 + (uint64_t)_i;
    size_t sent = 0, got = 0, bad_at = SIZE_MAX, retry_len = 0;
    unsigned errors = 0;
    int want = 0;
    struct pair p;

    ck_assert(data != NULL && buf != NULL);
    fill_random(data, total, st);
    pair_open(&p, t, cctx, NULL);
    ck_assert(pair_handshake(&p));
    for (unsigned k = 0; got < total && k < 50 * STEPS && errors == 0; k++) {
        size_t n, chunk = 1 + test_rand(&st) % 40000;
        ssize_t r;

        /* A blocked SSL_write is retried with the same length. */
        if (sent < total) {
            if (retry_len != 0)
                chunk = retry_len;
            chunk = MIN(total - sent, chunk);
            ERR_clear_error();
            if (SSL_write_ex(p.c, data + sent, chunk, &n) == 1) {
                sent += n;
                retry_len = 0;
            } else if (client_step_failed(p.c, 0)) {
                errors++;
            } else {
                retry_len = chunk;
            }
        }
        r = tls_read(p.s, buf, 1 + test_rand(&st) % 65536, &want);
        if (r > 0) {
            if (bad_at == SIZE_MAX &&
                memcmp(buf, data + got, (size_t)r) != 0)
                bad_at = got;
            got += (size_t)r;
        } else if (r != -EAGAIN || want != TLS_WANT_READ) {
            errors++;
        }
    }
    ck_assert_uint_eq(errors, 0);
    ck_assert_uint_eq(got, total);
    ck_assert_msg(bad_at == SIZE_MAX, "bytes differ from offset %zu", bad_at);
    ck_assert_int_eq(tls_read(p.s, buf, 65536, &want), -EAGAIN);
    ck_assert_int_eq(want, TLS_WANT_READ);
    pair_close(&p);
    free(buf);
    free(data);
    SSL_CTX_free(cctx);
    tls_ctx_free(t);
}
END_TEST

START_TEST(test_read_eagain_and_pending)
{
    struct tls_ctx *t = server_ctx(NULL);
    SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, version_of(_i));
    uint8_t data[10000], buf[20000];
    struct pair p;
    int want = 0;

    fill_random(data, sizeof(data), 7);
    pair_open(&p, t, cctx, NULL);
    ck_assert(pair_handshake(&p));
    ck_assert_int_eq(tls_read(p.s, buf, sizeof(buf), &want), -EAGAIN);
    ck_assert_int_eq(want, TLS_WANT_READ);
    ck_assert_uint_eq(tls_pending(p.s), 0);
    client_write_all(&p, data, sizeof(data)); /* one record */
    want = 0;
    ck_assert_int_eq(tls_read(p.s, buf, 100, &want), 100);
    ck_assert_mem_eq(buf, data, 100);
    /* The rest of the record waits inside OpenSSL, not in the fd. */
    ck_assert_uint_eq(tls_pending(p.s), sizeof(data) - 100);
    ck_assert_int_eq(tls_read(p.s, buf, sizeof(buf), &want),
                     (ssize_t)sizeof(data) - 100);
    ck_assert_mem_eq(buf, data + 100, sizeof(data) - 100);
    ck_assert_uint_eq(tls_pending(p.s), 0);
    ck_assert_int_eq(tls_read(p.s, buf, sizeof(buf), &want), -EAGAIN);
    ck_assert_int_eq(want, TLS_WANT_READ);
    /* Several records in one call. */
    client_write_all(&p, data, 3000);
    client_write_all(&p, data + 3000, 4000);
    client_write_all(&p, data + 7000, 3000);
    ck_assert_int_eq(tls_read(p.s, buf, sizeof(buf), &want),
                     (ssize_t)sizeof(data));
    ck_assert_mem_eq(buf, data, sizeof(data));
    pair_close(&p);
    SSL_CTX_free(cctx);
    tls_ctx_free(t);
}
END_TEST

/* Packing: many tiny iovecs leave in one record, iovcnt 0 takes 0. */
START_TEST(test_writev_packs_small_iovecs)
{
    struct tls_ctx *t = server_ctx(NULL);
    SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
    struct iovec iov[MAX_IOV];
    uint8_t data[MAX_IOV * 10], buf[sizeof(data)];
    size_t got = 0, n;
    int want = 0, records = 0;
    struct pair p;

    fill_random(data, sizeof(data), 3);
    for (int k = 0; k < MAX_IOV; k++) {
        iov[k].iov_base = data + k * 10;
        iov[k].iov_len = k % 7 == 3 ? 0 : 10;
    }
    pair_open(&p, t, cctx, NULL);
    ck_assert(pair_handshake(&p));
    server_to_client(&p, "x", 1); /* past the TLS 1.3 tickets */
    ck_assert_int_eq(tls_writev(p.s, iov, 0, &want), 0);
    ck_assert_int_eq(tls_writev(p.s, iov, MAX_IOV, &want),
                     (ssize_t)(MAX_IOV - 9) * 10);
    for (int k = 0; k < STEPS && got < (MAX_IOV - 9) * 10; k++) {
        ERR_clear_error();
        if (SSL_read_ex(p.c, buf + got, sizeof(buf) - got, &n) == 1) {
            got += n;
            records++; /* SSL_read returns one record at a time */
        }
    }
    ck_assert_uint_eq(got, (MAX_IOV - 9) * 10);
    ck_assert_int_eq(records, 1);
    for (int k = 0, off = 0; k < MAX_IOV; k++) {
        ck_assert_mem_eq(buf + off, iov[k].iov_base, iov[k].iov_len);
        off += (int)iov[k].iov_len;
    }
    pair_close(&p);
    SSL_CTX_free(cctx);
    tls_ctx_free(t);
}
END_TEST

/* ---- Closing ------------------------------------------------------------ */

START_TEST(test_close_notify)
{
    struct tls_ctx *t = server_ctx(NULL);
    SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, version_of(_i));
    uint8_t buf[64];
    struct pair p;
    size_t n;
    int want = 0;

    pair_open(&p, t, cctx, NULL);
    ck_assert(pair_handshake(&p));
    client_write_all(&p, "abc", 3);
    ck_assert_int_eq(SSL_shutdown(p.c), 0); /* sent; the peer's pending */
    ck_assert_int_eq(tls_read(p.s, buf, sizeof(buf), &want), 3);
    ck_assert_mem_eq(buf, "abc", 3);
    ck_assert_int_eq(tls_read(p.s, buf, sizeof(buf), &want), 0);
    ck_assert_int_eq(tls_read(p.s, buf, sizeof(buf), &want), 0);
    tls_shutdown(p.s);
    tls_shutdown(p.s); /* once */
    ERR_clear_error();
    ck_assert_int_eq(SSL_read_ex(p.c, buf, sizeof(buf), &n), 0);
    ck_assert_int_eq(SSL_get_error(p.c, 0), SSL_ERROR_ZERO_RETURN);
    pair_close(&p);
    SSL_CTX_free(cctx);
    tls_ctx_free(t);
}
END_TEST

START_TEST(test_server_close_notify)
{
    struct tls_ctx *t = server_ctx(NULL);
    SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, version_of(_i));
    uint8_t buf[64];
    struct pair p;
    size_t n;

    pair_open(&p, t, cctx, NULL);
    ck_assert(pair_handshake(&p));
    server_to_client(&p, "bye", 3);
    tls_shutdown(p.s);
    ERR_clear_error();
    ck_assert_int_eq(SSL_read_ex(p.c, buf, sizeof(buf), &n), 0);
    ck_assert_int_eq(SSL_get_error(p.c, 0), SSL_ERROR_ZERO_RETURN);
    pair_close(&p);
    SSL_CTX_free(cctx);
    tls_ctx_free(t);
}
END_TEST

START_TEST(test_eof_without_close_notify)
{
    struct tls_ctx *t = server_ctx(NULL);
    SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, version_of(_i));
    uint8_t buf[64];
    struct pair p;
    int want = 0;

    pair_open(&p, t, cctx, NULL);
    ck_assert(pair_handshake(&p));
    server_to_client(&p, "x", 1); /* nothing left unread at the client */
    client_write_all(&p, "last", 4);
    close(p.cfd);
    p.cfd = -1;
    ck_assert_int_eq(tls_read(p.s, buf, sizeof(buf), &want), 4);
    ck_assert_int_eq(tls_read(p.s, buf, sizeof(buf), &want), 0);
    ck_assert_int_eq(tls_read(p.s, buf, sizeof(buf), &want), 0);
    tls_shutdown(p.s); /* to a closed peer: EPIPE swallowed */
    pair_close(&p);
    SSL_CTX_free(cctx);
    tls_ctx_free(t);
}
END_TEST

/* A peer closing with our bytes unread resets the connection. */
START_TEST(test_reset)
{
    struct tls_ctx *t = server_ctx(NULL);
    SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
    struct iovec iov = { "unread", 6 };
    uint8_t buf[64];
    struct pair p;
    int want = 0;

    pair_open(&p, t, cctx, NULL);
    ck_assert(pair_handshake(&p));
    ck_assert_int_eq(tls_writev(p.s, &iov, 1, &want), 6);
    client_write_all(&p, "last", 4);
    close(p.cfd);
    p.cfd = -1;
    ck_assert_int_eq(tls_read(p.s, buf, sizeof(buf), &want), 4);
    ck_assert_int_eq(tls_read(p.s, buf, sizeof(buf), &want), -ECONNRESET);
    ck_assert_str_eq(tls_conn_error(p.s), strerror(ECONNRESET));
    ck_assert_int_eq(tls_writev(p.s, &iov, 1, &want), -ECONNRESET);
    tls_shutdown(p.s); /* after a socket error: nothing */
    pair_close(&p);
    SSL_CTX_free(cctx);
    tls_ctx_free(t);
}
END_TEST

/* ---- Resumption --------------------------------------------------------- */

/*
 * A full connection to t offering a copy of sess (if not NULL); returns
 * whether the server resumed. Both sides must agree. Leaves the newest
 * ticket in last_session.
 */
static bool
connect_sni(struct tls_ctx *t, SSL_CTX *cctx, SSL_SESSION *sess,
            const char *sni)
{
    /* A TLS 1.3 client uses a session once: offer a copy. */
    SSL_SESSION *copy = sess != NULL ? SSL_SESSION_dup(sess) : NULL;
    struct pair p;
    bool reused;

    pair_open(&p, t, cctx, sni);
    if (sess != NULL)
        ck_assert_int_eq(SSL_set_session(p.c, copy), 1);
    SSL_SESSION_free(copy);
    ck_assert(pair_handshake(&p));
    /* TLS 1.3 tickets come after the handshake: read past them. */
    server_to_client(&p, "t", 1);
    reused = tls_session_reused(p.s);
    ck_assert_int_eq(SSL_session_reused(p.c), reused);
    /* A client that closes without close_notify marks its session
       unresumable. */
    ck_assert_int_eq(SSL_shutdown(p.c), 0);
    pair_close(&p);
    return reused;
}

static bool
connect_once(struct tls_ctx *t, SSL_CTX *cctx, SSL_SESSION *sess)
{
    return connect_sni(t, cctx, sess, NULL);
}

/* _i: TLS 1.3, TLS 1.2. */
START_TEST(test_resumption_across_workers)
{
    struct tls_ticket_keys k1, k2;
    struct tls_ctx *a, *b, *c, *d, *solo1, *solo2;
    SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, version_of(_i));
    SSL_SESSION *sess;
    char err[512];

    ck_assert_int_eq(tls_ticket_keys_generate(&k1), 0);
    ck_assert_int_eq(tls_ticket_keys_generate(&k2), 0);
    a = server_ctx(&k1);   /* worker A */
    b = server_ctx(&k1);   /* worker B, same generation */
    c = server_ctx(&k2);   /* other keys */
    d = server_ctx(&k2);   /* rotated: k2 current, k1 still decrypts */
    ck_assert_int_eq(tls_ctx_add_ticket_keys(d, &k1), 0);
    solo1 = server_ctx(NULL);
    solo2 = server_ctx(NULL);

    SSL_SESSION_free(last_session); /* from earlier tests without fork */
    last_session = NULL;
    ck_assert(!connect_once(a, cctx, NULL));
    ck_assert_ptr_nonnull(last_session);
    sess = last_session;
    last_session = NULL;
    ck_assert(connect_once(b, cctx, sess));
    ck_assert(connect_once(a, cctx, sess));
    ck_assert(!connect_once(c, cctx, sess));
    ck_assert(connect_once(d, cctx, sess));
    ck_assert_ptr_nonnull(last_session); /* a fresh ticket */
    SSL_SESSION_free(sess);

    /* NULL keys: private to their context. */
    SSL_SESSION_free(last_session);
    last_session = NULL;
    ck_assert(!connect_once(solo1, cctx, NULL));
    sess = last_session;
    last_session = NULL;
    ck_assert(connect_once(solo1, cctx, sess));
    ck_assert(!connect_once(solo2, cctx, sess));
    SSL_SESSION_free(sess);

    /* Through an SNI certificate: its context uses the same keys. */
    for (int i = 0; i < 2; i++)
        ck_assert(tls_ctx_add_sni(i == 0 ? a : b, path("oth-chain.pem"),
                                  path("oth.key"), err, sizeof(err)) == 0);
    SSL_SESSION_free(last_session);
    last_session = NULL;
    ck_assert(!connect_sni(a, cctx, NULL, "other.test"));
    sess = last_session;
    last_session = NULL;
    ck_assert(connect_sni(b, cctx, sess, "other.test"));
    SSL_SESSION_free(sess);
    SSL_SESSION_free(last_session);
    last_session = NULL;

    tls_ctx_free(a);
    tls_ctx_free(b);
    tls_ctx_free(c);
    tls_ctx_free(d);
    tls_ctx_free(solo1);
    tls_ctx_free(solo2);
    SSL_CTX_free(cctx);
}
END_TEST

START_TEST(test_ticket_keys)
{
    struct tls_ticket_keys k[TLS_TICKET_KEYS_MAX + 1];
    struct tls_ctx *t;

    for (int i = 0; i <= TLS_TICKET_KEYS_MAX; i++)
        ck_assert_int_eq(tls_ticket_keys_generate(&k[i]), 0);
    ck_assert_mem_ne(k[0].name, k[1].name, sizeof(k[0].name));
    ck_assert_mem_ne(k[0].aes_key, k[1].aes_key, sizeof(k[0].aes_key));
    ck_assert_mem_ne(k[0].hmac_key, k[1].hmac_key, sizeof(k[0].hmac_key));
    t = server_ctx(&k[0]);
    for (int i = 1; i < TLS_TICKET_KEYS_MAX; i++)
        ck_assert_int_eq(tls_ctx_add_ticket_keys(t, &k[i]), 0);
    ck_assert_int_eq(tls_ctx_add_ticket_keys(t, &k[TLS_TICKET_KEYS_MAX]),
                     -ENOSPC);
    tls_ctx_free(t);
    tls_ctx_free(NULL);
    tls_conn_free(NULL);
}
END_TEST

/* ---- Renegotiation and KeyUpdate ---------------------------------------- */

START_TEST(test_renegotiation_refused)
{
    struct tls_ctx *t = server_ctx(NULL);
    SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
    uint8_t buf[64];
    struct pair p;
    ssize_t r = -EAGAIN;
    int want = 0;

    pair_open(&p, t, cctx, NULL);
    ck_assert(pair_handshake(&p));
    server_to_client(&p, "hi", 2);
    ck_assert_int_eq(SSL_renegotiate(p.c), 1);
    for (int k = 0; k < STEPS && r == -EAGAIN; k++) {
        ERR_clear_error();
        (void)SSL_do_handshake(p.c);
        ERR_clear_error();
        r = tls_read(p.s, buf, sizeof(buf), &want);
    }
    ck_assert_int_eq(r, -EPROTO);
    ck_assert_str_eq(tls_conn_error(p.s), "renegotiation refused");
    ck_assert_int_eq(tls_read(p.s, buf, sizeof(buf), &want), -EPROTO);
    ck_assert_int_eq(tls_writev(p.s, &(struct iovec){ buf, 1 }, 1, &want),
                     -EPROTO);
    pair_close(&p);
    SSL_CTX_free(cctx);
    tls_ctx_free(t);
}
END_TEST

/* A TLS 1.3 KeyUpdate asking for ours is no renegotiation. */
START_TEST(test_key_update)
{
    struct tls_ctx *t = server_ctx(NULL);
    SSL_CTX *cctx = client_ctx(TLS1_3_VERSION, TLS1_3_VERSION);
    uint8_t buf[64];
    struct pair p;
    ssize_t r = -EAGAIN;
    int want = 0;

    pair_open(&p, t, cctx, NULL);
    ck_assert(pair_handshake(&p));
    server_to_client(&p, "hi", 2);
    ck_assert_int_eq(SSL_key_update(p.c, SSL_KEY_UPDATE_REQUESTED), 1);
    client_write_all(&p, "ping", 4);
    for (int k = 0; k < STEPS && r == -EAGAIN; k++)
        r = tls_read(p.s, buf, sizeof(buf), &want);
    ck_assert_int_eq(r, 4);
    ck_assert_mem_eq(buf, "ping", 4);
    server_to_client(&p, "pong", 4);
    client_write_all(&p, "again", 5);
    ck_assert_int_eq(tls_read(p.s, buf, sizeof(buf), &want), 5);
    pair_close(&p);
    SSL_CTX_free(cctx);
    tls_ctx_free(t);
}
END_TEST

/* ---- Files (sockd -t) --------------------------------------------------- */

static void
check_exact(const char *cert, const char *key, const char *want)
{
    char err[1024] = "", err2[1024] = "";
    struct tls_ctx *t;

    ck_assert_int_eq(tls_check_files(cert, key, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, want);
    t = tls_ctx_new(cert, key, NULL, err2, sizeof(err2));
    ck_assert_ptr_null(t);
    ck_assert_str_eq(err2, want);
}

/* Checks that the error starts with prefix and carries some reason. */
static void
check_prefix(const char *cert, const char *key, const char *prefix)
{
    char err[1024] = "";

    ck_assert_int_eq(tls_check_files(cert, key, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0 &&
                  strlen(err) > strlen(prefix) + 2,
                  "\"%s\" lacks \"%s\" and a reason", err, prefix);
}

START_TEST(test_check_files_ok)
{
    char err[512] = "untouched";

    ck_assert_int_eq(tls_check_files(path("srv-chain.pem"), path("srv.key"),
                                     err, sizeof(err)), 0);
    ck_assert_str_eq(err, "untouched");
    ck_assert_int_eq(tls_check_files(path("oth-chain.pem"), path("oth.key"),
                                     err, sizeof(err)), 0);
    /* A leaf alone (no chain) is fine too. */
    ck_assert_int_eq(tls_check_files(path("srv.crt"), path("srv.key"),
                                     err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_check_missing)
{
    char want[512];

    snprintf(want, sizeof(want), "%s: No such file or directory",
             path("missing.pem"));
    check_exact(path("missing.pem"), path("srv.key"), want);
    snprintf(want, sizeof(want), "%s: No such file or directory",
             path("missing.key"));
    check_exact(path("srv-chain.pem"), path("missing.key"), want);
    snprintf(want, sizeof(want), "%s: Is a directory", dir);
    check_exact(dir, path("srv.key"), want);
    check_exact("/dev/null/x", path("srv.key"),
                "/dev/null/x: Not a directory");
}
END_TEST

START_TEST(test_check_garbage)
{
    char want[512];

    snprintf(want, sizeof(want), "%s: bad certificate: no start line",
             path("garbage.pem"));
    check_exact(path("garbage.pem"), path("srv.key"), want);
    snprintf(want, sizeof(want), "%s: bad certificate: no start line",
             path("empty.pem"));
    check_exact(path("empty.pem"), path("srv.key"), want);
    snprintf(want, sizeof(want), "%s: bad certificate: ", path("badb64.pem"));
    check_prefix(path("badb64.pem"), path("srv.key"), want);
    snprintf(want, sizeof(want), "%s: bad chain certificate: ",
             path("chainbad.pem"));
    check_prefix(path("chainbad.pem"), path("srv.key"), want);
    snprintf(want, sizeof(want), "%s: bad private key: ", path("garbage.pem"));
    check_prefix(path("srv-chain.pem"), path("garbage.pem"), want);
    /* A certificate where the key should be. */
    snprintf(want, sizeof(want), "%s: bad private key: ", path("srv.crt"));
    check_prefix(path("srv-chain.pem"), path("srv.crt"), want);
    /* Encrypted: an error, never a passphrase prompt. */
    snprintf(want, sizeof(want), "%s: bad private key: ", path("enc.key"));
    check_prefix(path("srv-chain.pem"), path("enc.key"), want);
    check_exact("/dev/null", path("srv.key"),
                "/dev/null: not a regular file");
}
END_TEST

START_TEST(test_check_key_mismatch)
{
    char want[1024];

    snprintf(want, sizeof(want), "%s: does not match the certificate in %s: "
             "key values mismatch", path("oth.key"), path("srv-chain.pem"));
    check_exact(path("srv-chain.pem"), path("oth.key"), want);
}
END_TEST

/*
 * chmod 000. Root reads anything, so as root this child (Check forks one
 * per test) becomes nobody first; without fork mode or CAP_SETUID it is
 * skipped, and says so.
 */
START_TEST(test_check_unreadable)
{
    const char *fork_env = getenv("CK_FORK");
    char want[512];

    if (geteuid() == 0) {
        if ((fork_env != NULL && strcmp(fork_env, "no") == 0) ||
            setgid(NOBODY) != 0 || setuid(NOBODY) != 0) {
            fprintf(stderr, "test_tls: test_check_unreadable SKIPPED: "
                    "running as root and cannot become uid %d\n", NOBODY);
            return;
        }
    }
    snprintf(want, sizeof(want), "%s: Permission denied",
             path("unreadable.key"));
    check_exact(path("srv-chain.pem"), path("unreadable.key"), want);
    snprintf(want, sizeof(want), "%s: Permission denied",
             path("unreadable.pem"));
    check_exact(path("unreadable.pem"), path("srv.key"), want);
}
END_TEST

START_TEST(test_sni_errors)
{
    struct tls_ctx *t = server_ctx(NULL);
    char err[1024] = "", want[1024];

    snprintf(want, sizeof(want), "%s: no DNS subjectAltName or CN to "
             "select it by SNI", path("noname-chain.pem"));
    ck_assert_int_eq(tls_ctx_add_sni(t, path("noname-chain.pem"),
                                     path("noname.key"), err, sizeof(err)),
                     -EINVAL);
    ck_assert_str_eq(err, want);
    snprintf(want, sizeof(want), "%s: No such file or directory",
             path("missing.pem"));
    ck_assert_int_eq(tls_ctx_add_sni(t, path("missing.pem"), path("oth.key"),
                                     err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, want);
    snprintf(want, sizeof(want), "%s: does not match the certificate in %s: "
             "key values mismatch", path("srv.key"), path("oth-chain.pem"));
    ck_assert_int_eq(tls_ctx_add_sni(t, path("oth-chain.pem"),
                                     path("srv.key"), err, sizeof(err)),
                     -EINVAL);
    ck_assert_str_eq(err, want);
    /* The context still works after failed additions. */
    ck_assert_int_eq(tls_ctx_add_sni(t, path("oth-chain.pem"),
                                     path("oth.key"), err, sizeof(err)), 0);
    tls_ctx_free(t);
}
END_TEST

/* ---- Fixture: certificates made once, before any test forks ------------ */

static const char make_certs[] =
    "set -e\n"
    "cd \"$1\"\n"
    "cat > ext.cnf <<'EOF'\n"
    "[ca]\n"
    "basicConstraints = critical, CA:TRUE\n"
    "keyUsage = critical, keyCertSign, cRLSign\n"
    "[srv]\n"
    "subjectAltName = DNS:localhost\n"
    "[oth]\n"
    "subjectAltName = DNS:other.test, DNS:*.wild.test\n"
    "[exa]\n"
    "subjectAltName = DNS:a.wild.test\n"
    "[leaf]\n"
    "basicConstraints = CA:FALSE\n"
    "EOF\n"
    "key() { openssl genpkey -algorithm EC "
    "-pkeyopt ec_paramgen_curve:P-256 -out $1.key; }\n"
    "key ca\n"
    "openssl req -new -x509 -key ca.key -subj /CN=sock-test-root -days 2 "
    "-config ext.cnf -extensions ca -out ca.crt\n"
    "key int\n"
    "openssl req -new -key int.key -subj /CN=sock-test-int -out int.csr\n"
    "openssl x509 -req -in int.csr -CA ca.crt -CAkey ca.key "
    "-CAcreateserial -days 2 -extfile ext.cnf -extensions ca -out int.crt\n"
    "leaf() {\n"
    "  key $1\n"
    "  openssl req -new -key $1.key -subj \"$2\" -out $1.csr\n"
    "  openssl x509 -req -in $1.csr -CA int.crt -CAkey int.key "
    "-CAcreateserial -days 2 -extfile ext.cnf -extensions $3 -out $1.crt\n"
    "  cat $1.crt int.crt > $1-chain.pem\n"
    "}\n"
    "leaf srv /CN=localhost srv\n"
    "leaf oth /CN=other.test oth\n"
    "leaf exa /CN=a.wild.test exa\n"
    "leaf cn /CN=cnonly.test leaf\n"
    "leaf noname '/O=sock test' leaf\n"
    "printf 'hello, I am not a certificate\\n' > garbage.pem\n"
    ": > empty.pem\n"
    "printf -- '-----BEGIN CERTIFICATE-----\\nAAAA!!!!\\n"
    "-----END CERTIFICATE-----\\n' > badb64.pem\n"
    "cat srv.crt badb64.pem > chainbad.pem\n"
    "openssl pkey -in srv.key -aes256 -passout pass:secret -out enc.key\n"
    "cp srv.key unreadable.key\n"
    "cp srv-chain.pem unreadable.pem\n"
    "chmod 644 *.key\n"
    "chmod 000 unreadable.key unreadable.pem\n"
    "chmod 711 .\n";

static void
certs_make(void)
{
    char cmd[256];
    FILE *f;

    snprintf(dir, sizeof(dir), "/tmp/test_tls.XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(cmd, sizeof(cmd), "sh -s '%s' >/dev/null 2>%s/make.log", dir,
             dir);
    f = popen(cmd, "w");
    if (f == NULL || fputs(make_certs, f) < 0 || pclose(f) != 0) {
        fprintf(stderr, "test_tls: making certificates with openssl(1) "
                "failed; see %s/make.log\n", dir);
        exit(1);
    }
}

static void
certs_remove(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "test_tls: could not remove %s\n", dir);
}

static Suite *
tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *hs = tcase_create("handshake");
    TCase *data = tcase_create("data");
    TCase *sess = tcase_create("session");
    TCase *files = tcase_create("files");

    tcase_add_loop_test(hs, test_handshake_versions, 0, 2);
    tcase_add_loop_test(hs, test_alpn, 0, 2 * (int)ARRAY_SIZE(alpn_cases));
    tcase_add_loop_test(hs, test_sni, 0, 2 * (int)ARRAY_SIZE(sni_cases));
    tcase_add_loop_test(hs, test_old_versions_refused, 0, 2);
    tcase_add_test(hs, test_plain_http_refused);
    tcase_add_test(hs, test_handshake_eof);
    tcase_add_test(hs, test_sni_errors);
    suite_add_tcase(s, hs);

    tcase_add_loop_test(data, test_writev_slow_reader, 0,
                        2 * (int)ARRAY_SIZE(xfer_sizes));
    tcase_add_loop_test(data, test_read_sizes, 0,
                        2 * (int)ARRAY_SIZE(xfer_sizes));
    tcase_add_loop_test(data, test_read_eagain_and_pending, 0, 2);
    tcase_add_test(data, test_writev_packs_small_iovecs);
    tcase_add_loop_test(data, test_close_notify, 0, 2);
    tcase_add_loop_test(data, test_server_close_notify, 0, 2);
    tcase_add_loop_test(data, test_eof_without_close_notify, 0, 2);
    tcase_add_test(data, test_reset);
    tcase_add_test(data, test_renegotiation_refused);
    tcase_add_test(data, test_key_update);
    tcase_set_timeout(data, 60);
    suite_add_tcase(s, data);

    tcase_add_loop_test(sess, test_resumption_across_workers, 0, 2);
    tcase_add_test(sess, test_ticket_keys);
    suite_add_tcase(s, sess);

    tcase_add_test(files, test_check_files_ok);
    tcase_add_test(files, test_check_missing);
    tcase_add_test(files, test_check_garbage);
    tcase_add_test(files, test_check_key_mismatch);
    tcase_add_test(files, test_check_unreadable);
    suite_add_tcase(s, files);
    return s;
}

int
main(void)
{
    SRunner *sr;
    int failed;

    /* A write to a closed socketpair must be an error, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    certs_make();
    sr = srunner_create(tls_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    SSL_SESSION_free(last_session);
    certs_remove();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
