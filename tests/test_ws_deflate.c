/*
 * test_ws_deflate.c: unit tests for worker/ws_deflate.c: a negotiation
 * table with exact answers, the RFC 7692 §7.2.3 byte examples both ways,
 * round trips with and without context takeover, every split of a message,
 * the window-8 mapping checked against a window-8 inflater, limits (bombs
 * stopped early, exact max_out and ratio edges), corrupt input, and the
 * counted zlib memory.
 */
#include "ws_deflate.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "common.h"
#include "testutil.h"

#define KiB 1024u
#define MiB (1024u * 1024u)
#define PMD "permessage-deflate"

static const struct ws_deflate_params defaults = {
    .server_max_window_bits = 15,
    .client_max_window_bits = 15,
};

/* ---- Helpers ------------------------------------------------------------- */

static void
dbuf_free(struct ws_dbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Words and JSON-ish punctuation: compresses like chat traffic. */
static void
make_text(uint8_t *p, size_t n, uint64_t seed)
{
    static const char *const words[] = {
        "the ", "quick ", "socket ", "frame ", "deflate ", "window ",
        "message ", "server ", "client ", "context ", "{\"id\":", "42,",
        "\"price\":", "1.25}", "\n", "takeover ", "zlib ", "broadcast ",
    };
    uint64_t s = seed | 1;
    size_t i = 0;

    while (i < n) {
        const char *w = words[test_rand(&s) % (sizeof(words) /
                                                sizeof(words[0]))];

        for (; *w != '\0' && i < n; w++)
            p[i++] = (uint8_t)*w;
    }
}

static void
make_random(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t s = seed | 1;

    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(test_rand(&s) >> 56);
}

/* What the receiver adds back (§7.2.2), for plain zlib inflaters. */
static int
dbuf_append_tail(struct ws_dbuf *b)
{
    uint8_t *q = realloc(b->p, b->len + 4);

    if (q == NULL)
        return -ENOMEM;
    memcpy(q + b->len, "\x00\x00\xff\xff", 4);
    b->p = q;
    b->len += 4;
    b->cap = b->len;
    return 0;
}

/* The other side's view of p: its server is our client and back. */
static struct ws_deflate_params
mirror(const struct ws_deflate_params *p)
{
    struct ws_deflate_params q = {
        .server_no_context_takeover = p->client_no_context_takeover,
        .client_no_context_takeover = p->server_no_context_takeover,
        .server_max_window_bits = p->client_max_window_bits,
        .client_max_window_bits = p->server_max_window_bits,
    };

    return q;
}

/* Compresses with d; the bytes must equal want. */
static void
assert_compress(struct ws_deflate *d, const char *msg, const uint8_t *want,
                size_t wlen)
{
    struct ws_dbuf out = { 0 };

    ck_assert_int_eq(ws_deflate_compress(d, (const uint8_t *)msg, strlen(msg),
                                         &out), 0);
    ck_assert_uint_eq(out.len, wlen);
    ck_assert_mem_eq(out.p, want, wlen);
    dbuf_free(&out);
}

/* Inflates one whole message with generous limits; must give want. */
static void
assert_inflate(struct ws_deflate *d, const uint8_t *in, size_t len,
               const char *want)
{
    struct ws_dbuf out = { 0 };

    ck_assert_int_eq(ws_deflate_inflate(d, guard_copy(in, len), len, true,
                                        &out, 1 * MiB, 25), 0);
    ck_assert_uint_eq(out.len, strlen(want));
    if (out.len > 0)
        ck_assert_mem_eq(out.p, want, out.len);
    dbuf_free(&out);
}

/* ---- Negotiation --------------------------------------------------------- */

enum route_kind {
    R_DEFAULT, R_OFF, R_FORCE_SNCT, R_ASK_CNCT, R_SERVER10, R_CLIENT10,
    R_ALL,
};

static struct route_opts
route(enum route_kind k)
{
    struct route_opts o = {
        .compress = true,
        .compress_level = 1,
        .compress_mem_level = 8,
        .server_max_window_bits = 15,
        .client_max_window_bits = 15,
        .compress_threshold = 64,
        .max_inflate_ratio = 25,
    };

    switch (k) {
    case R_DEFAULT:
        break;
    case R_OFF:
        o.compress = false;
        break;
    case R_FORCE_SNCT:
        o.server_no_context_takeover = true;
        break;
    case R_ASK_CNCT:
        o.client_no_context_takeover = true;
        break;
    case R_SERVER10:
        o.server_max_window_bits = 10;
        break;
    case R_CLIENT10:
        o.client_max_window_bits = 10;
        break;
    case R_ALL:
        o.server_no_context_takeover = true;
        o.client_no_context_takeover = true;
        o.server_max_window_bits = 9;   /* config maps 8 to 9 */
        o.client_max_window_bits = 8;
        break;
    }
    return o;
}

/*
 * Negotiates over a request with the given Sec-WebSocket-Extensions values
 * (NULL-terminated, at most 3), between decoy headers. A lone value sits
 * at a guard page so reading past its NUL faults.
 */
static int
negotiate(const char *const *vals, enum route_kind k,
          struct ws_deflate_params *p, char *resp, size_t size)
{
    struct ws_header h[8];
    struct sock_request r;
    struct route_opts o = route(k);
    size_t n = 0, nvals = 0;

    while (nvals < 3 && vals[nvals] != NULL)
        nvals++;
    memset(&r, 0, sizeof(r));
    h[n++] = (struct ws_header){ "Host", "a.example" };
    h[n++] = (struct ws_header){ "X-Extensions", PMD };
    for (size_t i = 0; i < nvals; i++) {
        const char *v = vals[i];

        if (nvals == 1)
            v = (const char *)guard_copy(v, strlen(v) + 1);
        /* Header names match case-insensitively. */
        h[n++] = (struct ws_header){ i % 2 ? "sec-websocket-extensions" :
                                     "Sec-WebSocket-Extensions", v };
        h[n++] = (struct ws_header){ "Sec-WebSocket-Protocol", PMD };
    }
    r.headers = h;
    r.n_headers = n;
    return ws_deflate_negotiate(&r, &o, p, resp, size);
}

static const struct neg_case {
    const char *hdr[4];
    enum route_kind route;
    int rc;
    const char *resp;
    int s_bits, c_bits;
    bool snct, cnct;
} neg_cases[] = {
    /* Plain offers; what browsers send. */
    { { PMD }, R_DEFAULT, 1, PMD, 15, 15, false, false },
    { { PMD "; client_max_window_bits" }, R_DEFAULT, 1, PMD, 15, 15, 0, 0 },
    /* Each parameter. */
    { { PMD "; client_max_window_bits=10" }, R_DEFAULT, 1,
      PMD "; client_max_window_bits=10", 15, 10, 0, 0 },
    { { PMD "; client_max_window_bits=8" }, R_DEFAULT, 1,
      PMD "; client_max_window_bits=8", 15, 8, 0, 0 },
    { { PMD "; client_max_window_bits=15" }, R_DEFAULT, 1,
      PMD "; client_max_window_bits=15", 15, 15, 0, 0 },
    { { PMD "; server_max_window_bits=10" }, R_DEFAULT, 1,
      PMD "; server_max_window_bits=10", 10, 15, 0, 0 },
    /* 8 is answered 8 and deflated with 9 (see ws_deflate.h). */
    { { PMD "; server_max_window_bits=8" }, R_DEFAULT, 1,
      PMD "; server_max_window_bits=8", 9, 15, 0, 0 },
    { { PMD "; server_max_window_bits=9" }, R_DEFAULT, 1,
      PMD "; server_max_window_bits=9", 9, 15, 0, 0 },
    { { PMD "; server_max_window_bits=15" }, R_DEFAULT, 1,
      PMD "; server_max_window_bits=15", 15, 15, 0, 0 },
    { { PMD "; server_no_context_takeover" }, R_DEFAULT, 1,
      PMD "; server_no_context_takeover", 15, 15, true, false },
    { { PMD "; client_no_context_takeover" }, R_DEFAULT, 1,
      PMD "; client_no_context_takeover", 15, 15, false, true },
    /* Out of range, malformed values. */
    { { PMD "; server_max_window_bits=7" }, R_DEFAULT, 0, NULL, 0, 0, 0, 0 },
    { { PMD "; server_max_window_bits=16" }, R_DEFAULT, 0, NULL, 0, 0, 0, 0 },
    { { PMD "; server_max_window_bits=abc" }, R_DEFAULT, 0, NULL, 0, 0, 0,
      0 },
    { { PMD "; server_max_window_bits=010" }, R_DEFAULT, 0, NULL, 0, 0, 0,
      0 },
    { { PMD "; server_max_window_bits=+9" }, R_DEFAULT, 0, NULL, 0, 0, 0, 0 },
    { { PMD "; server_max_window_bits" }, R_DEFAULT, 0, NULL, 0, 0, 0, 0 },
    { { PMD "; client_max_window_bits=7" }, R_DEFAULT, 0, NULL, 0, 0, 0, 0 },
    { { PMD "; client_max_window_bits=16" }, R_DEFAULT, 0, NULL, 0, 0, 0, 0 },
    { { PMD "; client_max_window_bits=" }, R_DEFAULT, 0, NULL, 0, 0, 0, 0 },
    { { PMD "; client_max_window_bits=\"\"" }, R_DEFAULT, 0, NULL, 0, 0, 0,
      0 },
    { { PMD "; server_no_context_takeover=true" }, R_DEFAULT, 0, NULL, 0, 0,
      0, 0 },
    { { PMD "; client_no_context_takeover=\"\"" }, R_DEFAULT, 0, NULL, 0, 0,
      0, 0 },
    /* RFC 6455 §9.1: a quoted-string value counts once unescaped. */
    { { PMD "; server_max_window_bits=\"10\"" }, R_DEFAULT, 1,
      PMD "; server_max_window_bits=10", 10, 15, 0, 0 },
    { { PMD "; client_max_window_bits=\"1\\2\"" }, R_DEFAULT, 1,
      PMD "; client_max_window_bits=12", 15, 12, 0, 0 },
    { { PMD "; server_max_window_bits=\"10" }, R_DEFAULT, 0, NULL, 0, 0, 0,
      0 },
    /* Repeated parameters decline the offer; the next one is taken. */
    { { PMD "; server_no_context_takeover; server_no_context_takeover" },
      R_DEFAULT, 0, NULL, 0, 0, 0, 0 },
    { { PMD "; client_max_window_bits; client_max_window_bits=10" },
      R_DEFAULT, 0, NULL, 0, 0, 0, 0 },
    { { PMD "; server_max_window_bits=10; server_max_window_bits=10" },
      R_DEFAULT, 0, NULL, 0, 0, 0, 0 },
    { { PMD "; client_no_context_takeover; client_no_context_takeover, "
        PMD "; client_max_window_bits=12" }, R_DEFAULT, 1,
      PMD "; client_max_window_bits=12", 15, 12, 0, 0 },
    /* Unknown parameters decline, too. */
    { { PMD "; foo" }, R_DEFAULT, 0, NULL, 0, 0, 0, 0 },
    { { PMD "; server_max_window_bits=10; x" }, R_DEFAULT, 0, NULL, 0, 0, 0,
      0 },
    { { PMD "; foo=1, " PMD }, R_DEFAULT, 1, PMD, 15, 15, 0, 0 },
    /* Other extensions, several offers and header lines. */
    { { "x-webkit-deflate-frame, " PMD "; server_max_window_bits=12" },
      R_DEFAULT, 1, PMD "; server_max_window_bits=12", 12, 15, 0, 0 },
    { { "foo", PMD "; client_no_context_takeover" }, R_DEFAULT, 1,
      PMD "; client_no_context_takeover", 15, 15, 0, true },
    { { PMD "; server_max_window_bits=20", "foo, bar",
        PMD "; server_no_context_takeover" }, R_DEFAULT, 1,
      PMD "; server_no_context_takeover", 15, 15, true, 0 },
    { { PMD "; server_no_context_takeover", PMD }, R_DEFAULT, 1,
      PMD "; server_no_context_takeover", 15, 15, true, 0 },
    /* Case, whitespace, empty list elements. */
    { { "PerMessage-Deflate; Server_No_Context_Takeover" }, R_DEFAULT, 1,
      PMD "; server_no_context_takeover", 15, 15, true, 0 },
    { { PMD " ;  client_max_window_bits = 12 ;\tserver_max_window_bits=11 " },
      R_DEFAULT, 1,
      PMD "; server_max_window_bits=11; client_max_window_bits=12", 11, 12,
      0, 0 },
    { { ", , " PMD " ," }, R_DEFAULT, 1, PMD, 15, 15, 0, 0 },
    /* Commas and semicolons inside quoted strings split nothing. */
    { { "foo; bar=\"a,b;c\", " PMD }, R_DEFAULT, 1, PMD, 15, 15, 0, 0 },
    { { "foo; bar=\"a, " PMD "\"" }, R_DEFAULT, 0, NULL, 0, 0, 0, 0 },
    /* Syntax errors spoil their own offer only. */
    { { PMD "; =12, " PMD "; client_no_context_takeover" }, R_DEFAULT, 1,
      PMD "; client_no_context_takeover", 15, 15, 0, true },
    { { PMD " x, " PMD "; client_max_window_bits" }, R_DEFAULT, 1, PMD, 15,
      15, 0, 0 },
    { { PMD ";" }, R_DEFAULT, 0, NULL, 0, 0, 0, 0 },
    { { "permessage-deflatex" }, R_DEFAULT, 0, NULL, 0, 0, 0, 0 },
    { { "" }, R_DEFAULT, 0, NULL, 0, 0, 0, 0 },
    { { NULL }, R_DEFAULT, 0, NULL, 0, 0, 0, 0 },
    /* Everything at once, echoed. */
    { { PMD "; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=15; client_max_window_bits=15" }, R_DEFAULT,
      1, PMD "; server_no_context_takeover; client_no_context_takeover; "
      "server_max_window_bits=15; client_max_window_bits=15", 15, 15, true,
      true },
    /* Route options. */
    { { PMD }, R_OFF, 0, NULL, 0, 0, 0, 0 },
    { { PMD "; server_no_context_takeover" }, R_OFF, 0, NULL, 0, 0, 0, 0 },
    { { PMD }, R_FORCE_SNCT, 1, PMD "; server_no_context_takeover", 15, 15,
      true, 0 },
    { { PMD }, R_ASK_CNCT, 1, PMD "; client_no_context_takeover", 15, 15, 0,
      true },
    { { PMD }, R_SERVER10, 1, PMD "; server_max_window_bits=10", 10, 15, 0,
      0 },
    { { PMD "; server_max_window_bits=12" }, R_SERVER10, 1,
      PMD "; server_max_window_bits=10", 10, 15, 0, 0 },
    { { PMD "; server_max_window_bits=8" }, R_SERVER10, 1,
      PMD "; server_max_window_bits=8", 9, 15, 0, 0 },
    /* Without the parameter in the offer the client may use 15. */
    { { PMD }, R_CLIENT10, 1, PMD, 15, 15, 0, 0 },
    { { PMD "; client_max_window_bits" }, R_CLIENT10, 1,
      PMD "; client_max_window_bits=10", 15, 10, 0, 0 },
    { { PMD "; client_max_window_bits=12" }, R_CLIENT10, 1,
      PMD "; client_max_window_bits=10", 15, 10, 0, 0 },
    { { PMD "; client_max_window_bits=9" }, R_CLIENT10, 1,
      PMD "; client_max_window_bits=9", 15, 9, 0, 0 },
    { { PMD "; client_max_window_bits" }, R_ALL, 1,
      PMD "; server_no_context_takeover; client_no_context_takeover; "
      "server_max_window_bits=9; client_max_window_bits=8", 9, 8, true,
      true },
    { { PMD }, R_ALL, 1,
      PMD "; server_no_context_takeover; client_no_context_takeover; "
      "server_max_window_bits=9", 9, 15, true, true },
};

START_TEST(test_negotiate_table)
{
    const struct neg_case *t = &neg_cases[_i];
    struct ws_deflate_params p;
    char resp[WS_DEFLATE_RESP_MAX];
    int rc;

    memset(&p, 0x55, sizeof(p));
    memset(resp, 'x', sizeof(resp));
    rc = negotiate(t->hdr, t->route, &p, resp, sizeof(resp));
    ck_assert_msg(rc == t->rc, "case %d \"%s\": rc %d, want %d", _i,
                  t->hdr[0] ? t->hdr[0] : "(none)", rc, t->rc);
    if (rc != 1)
        return;
    ck_assert_str_eq(resp, t->resp);
    ck_assert_int_eq(p.server_max_window_bits, t->s_bits);
    ck_assert_int_eq(p.client_max_window_bits, t->c_bits);
    ck_assert(p.server_no_context_takeover == t->snct);
    ck_assert(p.client_no_context_takeover == t->cnct);
    /* Our answer, offered back, is accepted with the same answer. */
    {
        const char *again[] = { t->resp, NULL };
        char resp2[WS_DEFLATE_RESP_MAX];
        struct ws_deflate_params p2;

        ck_assert_int_eq(negotiate(again, t->route, &p2, resp2,
                                   sizeof(resp2)), 1);
        ck_assert_str_eq(resp2, t->resp);
    }
}
END_TEST

START_TEST(test_negotiate_enospc)
{
    static const char *const all[] = {
        PMD "; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=10; client_max_window_bits=10", NULL
    };
    struct ws_deflate_params p;
    char resp[WS_DEFLATE_RESP_MAX];
    size_t want = strlen(all[0]);

    /* The longest answer there is fits WS_DEFLATE_RESP_MAX. */
    ck_assert_int_eq(negotiate(all, R_DEFAULT, &p, resp, sizeof(resp)), 1);
    ck_assert_str_eq(resp, all[0]);
    ck_assert_uint_lt(want, WS_DEFLATE_RESP_MAX);
    ck_assert_int_eq(negotiate(all, R_DEFAULT, &p, resp, want), -ENOSPC);
    ck_assert_int_eq(negotiate(all, R_DEFAULT, &p, NULL, 0), -ENOSPC);
    ck_assert_int_eq(negotiate(all, R_DEFAULT, &p, resp, want + 1), 1);
    ck_assert_str_eq(resp, all[0]);
}
END_TEST

/* Through ws_request_parse: two header lines, the first offer refused. */
START_TEST(test_negotiate_parsed_request)
{
    static const char head[] =
        "GET /chat HTTP/1.1\r\n"
        "Host: a.example\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; "
        "server_max_window_bits=7\r\n"
        "Upgrade: websocket\r\n"
        "sec-websocket-extensions: permessage-deflate; "
        "client_max_window_bits, permessage-deflate\r\n"
        "\r\n";
    struct sock_request r;
    struct route_opts o = route(R_CLIENT10);
    struct ws_deflate_params p;
    char resp[WS_DEFLATE_RESP_MAX];

    memset(&r, 0, sizeof(r));
    ck_assert_int_eq(ws_request_parse(&r, (const uint8_t *)head,
                                      strlen(head), 64), 0);
    ck_assert_int_eq(ws_deflate_negotiate(&r, &o, &p, resp, sizeof(resp)),
                     1);
    ck_assert_str_eq(resp, PMD "; client_max_window_bits=10");
    ck_assert_int_eq(p.client_max_window_bits, 10);
    ws_request_destroy(&r);
}
END_TEST

/* ---- RFC 7692 §7.2.3 examples -------------------------------------------- */

static const uint8_t hello_deflated[] = {
    0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00
};
static const uint8_t hello_again[] = { 0xf2, 0x00, 0x11, 0x00, 0x00 };
static const uint8_t hello_stored[] = {
    0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00
};
static const uint8_t hello_bfinal[] = {
    0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00
};
static const uint8_t hello_two_blocks[] = {
    0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07,
    0x00
};
static const uint8_t empty_deflated[] = { 0x00 };

/* §7.2.3.1 at every level that compresses, §7.2.3.3 at level 0. */
START_TEST(test_rfc_hello_compress)
{
    static const int levels[] = { -1, 1, 2, 6, 9 };

    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        struct ws_deflate *d = ws_deflate_new(&defaults, levels[i], 8);

        assert_compress(d, "Hello", hello_deflated, sizeof(hello_deflated));
        ws_deflate_free(d);
    }
    {
        struct ws_deflate *d = ws_deflate_new(&defaults, 0, 8);

        assert_compress(d, "Hello", hello_stored, sizeof(hello_stored));
        ws_deflate_free(d);
    }
}
END_TEST

/* §7.2.3.2: context takeover shares the window; without, bytes repeat. */
START_TEST(test_rfc_sharing_window)
{
    struct ws_deflate_params nct = defaults;
    struct ws_deflate *d = ws_deflate_new(&defaults, 1, 8);

    assert_compress(d, "Hello", hello_deflated, sizeof(hello_deflated));
    assert_compress(d, "Hello", hello_again, sizeof(hello_again));
    ws_deflate_free(d);

    nct.server_no_context_takeover = true;
    d = ws_deflate_new(&nct, 1, 8);
    for (int i = 0; i < 3; i++)
        assert_compress(d, "Hello", hello_deflated, sizeof(hello_deflated));
    ws_deflate_free(d);
}
END_TEST

/* §7.2.3.6, also between messages sharing a window. */
START_TEST(test_rfc_empty_message)
{
    struct ws_deflate *d = ws_deflate_new(&defaults, 1, 8);
    struct ws_deflate *peer = ws_deflate_new(&defaults, 1, 8);

    assert_compress(d, "", empty_deflated, 1);
    ck_assert_uint_eq(ws_deflate_memory(d), 0);  /* no zlib for that */
    assert_compress(d, "Hello", hello_deflated, sizeof(hello_deflated));
    assert_compress(d, "", empty_deflated, 1);
    assert_compress(d, "", empty_deflated, 1);
    assert_compress(d, "Hello", hello_again, sizeof(hello_again));

    assert_inflate(peer, empty_deflated, 1, "");
    assert_inflate(peer, hello_deflated, sizeof(hello_deflated), "Hello");
    assert_inflate(peer, empty_deflated, 1, "");
    assert_inflate(peer, hello_again, sizeof(hello_again), "Hello");
    /* A zero-byte payload is taken as the empty message too. */
    assert_inflate(peer, NULL, 0, "");
    assert_inflate(peer, hello_again, sizeof(hello_again), "Hello");
    ws_deflate_free(d);
    ws_deflate_free(peer);
}
END_TEST

START_TEST(test_rfc_inflate_examples)
{
    struct ws_deflate *d = ws_deflate_new(&defaults, 1, 8);

    assert_inflate(d, hello_deflated, sizeof(hello_deflated), "Hello");
    assert_inflate(d, hello_again, sizeof(hello_again), "Hello");
    assert_inflate(d, hello_stored, sizeof(hello_stored), "Hello");
    assert_inflate(d, hello_two_blocks, sizeof(hello_two_blocks), "Hello");
    /*
     * §7.2.3.4: after a BFINAL block the next messages must still inflate
     * (an inflater left "finished" would turn them all into "").
     */
    assert_inflate(d, hello_bfinal, sizeof(hello_bfinal), "Hello");
    assert_inflate(d, hello_deflated, sizeof(hello_deflated), "Hello");
    assert_inflate(d, hello_bfinal, sizeof(hello_bfinal), "Hello");
    assert_inflate(d, hello_again, sizeof(hello_again), "Hello");
    ws_deflate_free(d);
}
END_TEST

/* A raw stream: dict (may be NULL) then msg, flushed with flush. */
static size_t
raw_deflate(const char *dict, const char *msg, int flush, uint8_t *out,
            size_t cap)
{
    z_stream z;
    size_t n;

    memset(&z, 0, sizeof(z));
    ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, -15, 8,
                                  Z_DEFAULT_STRATEGY), Z_OK);
    if (dict != NULL)
        ck_assert_int_eq(deflateSetDictionary(&z, (const Bytef *)dict,
                                              (uInt)strlen(dict)), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)msg;
    z.avail_in = (uInt)strlen(msg);
    z.next_out = out;
    z.avail_out = (uInt)cap;
    ck_assert_int_ne(deflate(&z, flush), Z_STREAM_ERROR);
    ck_assert_uint_eq(z.avail_in, 0);
    n = cap - z.avail_out;
    deflateEnd(&z);
    if (flush == Z_SYNC_FLUSH) {
        ck_assert_mem_eq(out + n - 4, "\x00\x00\xff\xff", 4);
        n -= 4;
    }
    return n;
}

/*
 * BFINAL flushes from a sender that keeps its window by restarting with a
 * dictionary: the window survives the stream's end, within a message and
 * across messages, and a payload ending exactly at BFINAL needs no tail.
 */
START_TEST(test_bfinal_keeps_window)
{
    const char *text = "context takeover context takeover context takeover";
    struct ws_deflate *d = ws_deflate_new(&defaults, 1, 8);
    uint8_t m1[128], m2[256];
    size_t n1, n2;

    n1 = raw_deflate(NULL, text, Z_FINISH, m1, sizeof(m1));
    assert_inflate(d, m1, n1, text);
    n2 = raw_deflate(text, text, Z_SYNC_FLUSH, m2, sizeof(m2));
    ck_assert_uint_lt(n2, 12);  /* all back-references */
    assert_inflate(d, m2, n2, text);

    /* "Hello" then " world" in a second stream, in one message. */
    n1 = raw_deflate(NULL, "Hello", Z_FINISH, m1, sizeof(m1));
    n2 = raw_deflate("Hello", " world Hello", Z_SYNC_FLUSH, m1 + n1,
                     sizeof(m1) - n1);
    assert_inflate(d, m1, n1 + n2, "Hello world Hello");
    assert_inflate(d, hello_deflated, sizeof(hello_deflated), "Hello");
    ws_deflate_free(d);
}
END_TEST

/* ---- Round trips --------------------------------------------------------- */

/*
 * Ten messages each way between a server state and a client state built
 * from the same agreement, the client's inflation in random pieces. Returns
 * the server's compressed sizes of the first two messages.
 */
static void
round_trip(const struct ws_deflate_params *p, const uint8_t *msg,
           size_t len, size_t sizes[2])
{
    struct ws_deflate_params q = mirror(p);
    struct ws_deflate *srv = ws_deflate_new(p, 1, 8);
    struct ws_deflate *cli = ws_deflate_new(&q, 6, 8);
    struct ws_dbuf wire = { 0 }, out = { 0 };
    uint64_t seed = len + 7;

    ck_assert_ptr_nonnull(srv);
    ck_assert_ptr_nonnull(cli);
    for (int m = 0; m < 10; m++) {
        size_t off = 0;

        wire.len = out.len = 0;
        ck_assert_int_eq(ws_deflate_compress(srv, msg, len, &wire), 0);
        if (m < 2)
            sizes[m] = wire.len;
        /* Pieces of 0..4 KiB, the last with fin. */
        do {
            size_t piece = (size_t)(test_rand(&seed) % (4 * KiB + 1));
            bool fin;

            piece = MIN(piece, wire.len - off);
            fin = off + piece == wire.len;
            ck_assert_int_eq(ws_deflate_inflate(cli, wire.p + off, piece,
                                                fin, &out, 2 * MiB, 25), 0);
            off += piece;
            if (fin)
                break;
        } while (1);
        ck_assert_uint_eq(out.len, len);
        if (len > 0)
            ck_assert_mem_eq(out.p, msg, len);

        /* And back, in one piece. */
        wire.len = out.len = 0;
        ck_assert_int_eq(ws_deflate_compress(cli, msg, len, &wire), 0);
        ck_assert_int_eq(ws_deflate_inflate(srv, wire.p, wire.len, true,
                                            &out, 2 * MiB, 25), 0);
        ck_assert_uint_eq(out.len, len);
        if (len > 0)
            ck_assert_mem_eq(out.p, msg, len);
    }
    dbuf_free(&wire);
    dbuf_free(&out);
    ws_deflate_free(srv);
    ws_deflate_free(cli);
}

START_TEST(test_round_trip)
{
    static const size_t lens[] = { 0, 1, 63, 64, 1000, 1 * MiB };
    /* _i: bit 0 server_nct, bit 1 client_nct, bit 2 random data. */
    struct ws_deflate_params p = defaults;
    bool random = _i & 4;
    uint8_t *msg = malloc(1 * MiB);

    p.server_no_context_takeover = _i & 1;
    p.client_no_context_takeover = _i & 2;
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t sizes[2];

        if (random)
            make_random(msg, lens[i], lens[i]);
        else
            make_text(msg, lens[i], lens[i]);
        round_trip(&p, msg, lens[i], sizes);
        if (p.server_no_context_takeover || lens[i] < 63)
            ck_assert_uint_eq(sizes[1], sizes[0]);
        else if (lens[i] > 1000)   /* the window holds its last 32 KiB */
            ck_assert_uint_le(sizes[1], sizes[0]);
        else    /* the second message refers to the first */
            ck_assert_msg(sizes[1] < sizes[0] / 4,
                          "len %zu: %zu then %zu", lens[i], sizes[0],
                          sizes[1]);
        if (lens[i] == 0)
            ck_assert_uint_eq(sizes[0], 1);
    }
    free(msg);
}
END_TEST

/* Different messages with context takeover keep decoding, both levels. */
START_TEST(test_round_trip_varied)
{
    struct ws_deflate *srv = ws_deflate_new(&defaults, 9, 9);
    struct ws_deflate *cli = ws_deflate_new(&defaults, 1, 1);
    struct ws_dbuf wire = { 0 }, out = { 0 };
    uint8_t msg[5000];
    uint64_t seed = 99;
    size_t total_in = 0, total_wire = 0;

    for (int m = 0; m < 200; m++) {
        size_t len = (size_t)(test_rand(&seed) % sizeof(msg));

        make_text(msg, len, (uint64_t)m % 17);
        wire.len = out.len = 0;
        ck_assert_int_eq(ws_deflate_compress(srv, msg, len, &wire), 0);
        ck_assert_int_eq(ws_deflate_inflate(cli, wire.p, wire.len, true,
                                            &out, sizeof(msg), 25), 0);
        ck_assert_uint_eq(out.len, len);
        ck_assert(len == 0 || memcmp(out.p, msg, len) == 0);
        total_in += len;
        total_wire += wire.len;
    }
    ck_assert_uint_lt(total_wire, total_in / 4);
    dbuf_free(&wire);
    dbuf_free(&out);
    ws_deflate_free(srv);
    ws_deflate_free(cli);
}
END_TEST

/* ---- Splits -------------------------------------------------------------- */

/* Inflates wire as pieces cut at a and b (a <= b), each at a guard page. */
static void
inflate_split(const uint8_t *wire, size_t len, size_t a, size_t b,
              const uint8_t *want, size_t wlen)
{
    struct ws_deflate *d = ws_deflate_new(&defaults, 1, 8);
    struct ws_dbuf out = { 0 };

    ck_assert_int_eq(ws_deflate_inflate(d, guard_copy(wire, a), a, false,
                                        &out, 1 * MiB, 25), 0);
    ck_assert_int_eq(ws_deflate_inflate(d, guard_copy(wire + a, b - a),
                                        b - a, false, &out, 1 * MiB, 25), 0);
    ck_assert_int_eq(ws_deflate_inflate(d, guard_copy(wire + b, len - b),
                                        len - b, true, &out, 1 * MiB, 25), 0);
    ck_assert_uint_eq(out.len, wlen);
    ck_assert_mem_eq(out.p, want, wlen);
    dbuf_free(&out);
    ws_deflate_free(d);
}

START_TEST(test_inflate_every_split)
{
    static const struct {
        const uint8_t *p;
        size_t len;
    } small[] = {
        { hello_deflated, sizeof(hello_deflated) },
        { hello_stored, sizeof(hello_stored) },
        { hello_bfinal, sizeof(hello_bfinal) },
        { hello_two_blocks, sizeof(hello_two_blocks) },
    };
    struct ws_deflate_params nct = defaults;
    struct ws_deflate *d;
    struct ws_dbuf wire = { 0 };
    uint8_t msg[3000];

    /* Every pair of cuts of the RFC examples. */
    for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++) {
        for (size_t a = 0; a <= small[i].len; a++)
            for (size_t b = a; b <= small[i].len; b++)
                inflate_split(small[i].p, small[i].len, a, b,
                              (const uint8_t *)"Hello", 5);
    }
    /* Every single cut of a longer message (several blocks at level 9). */
    nct.server_no_context_takeover = true;
    d = ws_deflate_new(&nct, 9, 8);
    make_text(msg, sizeof(msg), 3);
    ck_assert_int_eq(ws_deflate_compress(d, msg, sizeof(msg), &wire), 0);
    for (size_t a = 0; a <= wire.len; a++)
        inflate_split(wire.p, wire.len, a, a, msg, sizeof(msg));
    /* Byte by byte, then fin alone. */
    {
        struct ws_deflate *r = ws_deflate_new(&defaults, 1, 8);
        struct ws_dbuf out = { 0 };

        for (size_t i = 0; i < wire.len; i++)
            ck_assert_int_eq(ws_deflate_inflate(r, guard_copy(wire.p + i, 1),
                                                1, false, &out, 1 * MiB, 25),
                             0);
        ck_assert_int_eq(ws_deflate_inflate(r, NULL, 0, true, &out, 1 * MiB,
                                            25), 0);
        ck_assert_uint_eq(out.len, sizeof(msg));
        ck_assert_mem_eq(out.p, msg, sizeof(msg));
        dbuf_free(&out);
        ws_deflate_free(r);
    }
    dbuf_free(&wire);
    ws_deflate_free(d);
}
END_TEST

/* ---- Windows ------------------------------------------------------------- */

/* Messages whose repeats sit 300 bytes back: beyond a 256-byte window. */
static void
make_period300(uint8_t *p, size_t n, uint64_t seed)
{
    uint8_t block[300];

    make_random(block, sizeof(block), seed);
    for (size_t i = 0; i < n; i++)
        p[i] = block[i % sizeof(block)];
}

/*
 * Deflates messages with d and inflates them with plain zlib at window 8,
 * as a client that asked for server_max_window_bits=8 would. Returns the
 * first zlib error, or Z_OK.
 */
static int
inflate_with_window8(struct ws_deflate *d, int messages)
{
    z_stream z;
    struct ws_dbuf wire = { 0 };
    uint8_t msg[2000], out[2100];
    int rc = Z_OK;

    memset(&z, 0, sizeof(z));
    ck_assert_int_eq(inflateInit2(&z, -8), Z_OK);
    for (int m = 0; m < messages && rc == Z_OK; m++) {
        size_t len = 100 + (size_t)m * 37 % 1900;

        make_period300(msg, len, 5);   /* same block: refers across */
        wire.len = 0;
        ck_assert_int_eq(ws_deflate_compress(d, msg, len, &wire), 0);
        ck_assert_int_eq(dbuf_append_tail(&wire), 0);
        z.next_in = wire.p;
        z.avail_in = (uInt)wire.len;
        z.next_out = out;
        /*
         * zlib checks a distance against its window only when it reaches
         * before this call's output, so one byte per call makes the
         * 256-byte window exact.
         */
        do {
            z.avail_out = 1;
            rc = inflate(&z, Z_SYNC_FLUSH);
        } while (rc == Z_OK && (z.avail_in > 0 || z.avail_out == 0) &&
                 z.next_out < out + sizeof(out));
        if (rc == Z_OK || rc == Z_BUF_ERROR) {
            rc = Z_OK;
            ck_assert_uint_eq((size_t)(z.next_out - out), len);
            ck_assert_mem_eq(out, msg, len);
        }
    }
    inflateEnd(&z);
    dbuf_free(&wire);
    return rc;
}

/*
 * server_max_window_bits=8 is deflated with zlib's 9, whose matches reach
 * back at most 250 bytes: a window-8 inflater follows across messages at
 * every level. Window 10 on the same data breaks it, so the check bites.
 */
START_TEST(test_window8_offer)
{
    struct ws_deflate_params p;
    char resp[WS_DEFLATE_RESP_MAX];
    const char *offer[] = { PMD "; server_max_window_bits=8", NULL };

    ck_assert_int_eq(negotiate(offer, R_DEFAULT, &p, resp, sizeof(resp)), 1);
    ck_assert_int_eq(p.server_max_window_bits, 9);
    for (int level = 1; level <= 9; level++) {
        struct ws_deflate *d = ws_deflate_new(&p, level, 8);

        ck_assert_int_eq(inflate_with_window8(d, 60), Z_OK);
        ws_deflate_free(d);
    }
    p.server_max_window_bits = 10;
    {
        struct ws_deflate *d = ws_deflate_new(&p, 6, 8);

        ck_assert_int_eq(inflate_with_window8(d, 60), Z_DATA_ERROR);
        ws_deflate_free(d);
    }
}
END_TEST

/*
 * We inflate with the client's agreed window: 8 works for a zlib client
 * (which deflates with 9); a client that breaks its promise and refers
 * further back than its window across messages is refused.
 */
START_TEST(test_client_window_enforced)
{
    struct ws_deflate_params p = defaults, q;
    struct ws_deflate *srv, *cli;
    struct ws_dbuf wire = { 0 }, out = { 0 };
    uint8_t msg[1500];

    p.client_max_window_bits = 8;
    q = mirror(&p);
    srv = ws_deflate_new(&p, 1, 8);
    cli = ws_deflate_new(&q, 6, 8);   /* deflates with 9 */
    for (int m = 0; m < 30; m++) {
        make_period300(msg, sizeof(msg), 1);
        wire.len = out.len = 0;
        ck_assert_int_eq(ws_deflate_compress(cli, msg, sizeof(msg), &wire),
                         0);
        ck_assert_int_eq(ws_deflate_inflate(srv, wire.p, wire.len, true,
                                            &out, 1 * MiB, 0), 0);
        ck_assert_uint_eq(out.len, sizeof(msg));
        ck_assert_mem_eq(out.p, msg, sizeof(msg));
    }
    ws_deflate_free(srv);
    ws_deflate_free(cli);

    /* A client that promised 9 but deflates with 15. */
    p.client_max_window_bits = 9;
    q = mirror(&p);
    q.server_max_window_bits = 15;
    srv = ws_deflate_new(&p, 1, 8);
    cli = ws_deflate_new(&q, 6, 8);
    make_random(msg, 600, 2);
    wire.len = out.len = 0;
    ck_assert_int_eq(ws_deflate_compress(cli, msg, 600, &wire), 0);
    ck_assert_int_eq(ws_deflate_inflate(srv, wire.p, wire.len, true, &out,
                                        1 * MiB, 0), 0);
    wire.len = out.len = 0;
    ck_assert_int_eq(ws_deflate_compress(cli, msg, 600, &wire), 0);
    ck_assert_uint_lt(wire.len, 20);    /* one reference 600 bytes back */
    ck_assert_int_eq(ws_deflate_inflate(srv, wire.p, wire.len, true, &out,
                                        1 * MiB, 0), -EBADMSG);
    dbuf_free(&wire);
    dbuf_free(&out);
    ws_deflate_free(srv);
    ws_deflate_free(cli);
}
END_TEST

/*
 * Under client_no_context_takeover each message starts from an empty
 * window: a client that refers back anyway (§7.2.3.2's second "Hello") is
 * refused, while one that keeps its promise is followed.
 */
START_TEST(test_client_no_context_takeover)
{
    struct ws_deflate_params p = defaults;
    struct ws_deflate *d;
    struct ws_dbuf out = { 0 };

    p.client_no_context_takeover = true;
    d = ws_deflate_new(&p, 1, 8);
    for (int i = 0; i < 3; i++)
        assert_inflate(d, hello_deflated, sizeof(hello_deflated), "Hello");
    ck_assert_int_eq(ws_deflate_inflate(d, hello_again, sizeof(hello_again),
                                        true, &out, 1 * MiB, 25), -EBADMSG);
    ws_deflate_free(d);
    dbuf_free(&out);
}
END_TEST

/* Forward: the bomb builder is with the limit tests below. */
static void build_bomb(struct ws_dbuf *b, size_t mib);

/* hello_deflated in two calls, split at `at`, under client no context
   takeover: a stream of d's own during the message, none after. */
static void
assert_split_hello(struct ws_deflate *d, size_t at, struct ws_dbuf *out)
{
    out->len = 0;
    ck_assert_int_eq(ws_deflate_inflate(d, hello_deflated, at, false, out,
                                        1 * MiB, 25), 0);
    ck_assert_uint_gt(ws_deflate_memory(d), 0);
    ck_assert_int_eq(ws_deflate_inflate(d, hello_deflated + at,
                                        sizeof(hello_deflated) - at, true,
                                        out, 1 * MiB, 25), 0);
    ck_assert_uint_eq(out->len, 5);
    ck_assert_mem_eq(out->p, "Hello", 5);
    ck_assert_uint_eq(ws_deflate_memory(d), 0);
}

/*
 * Without client context a whole message borrows the process's inflate
 * stream: no stream of the connection's own stays behind, a bomb on one
 * connection leaves the shared stream clean for the next, and a message
 * split over calls gets a stream of its own for as long as it lasts.
 */
START_TEST(test_inflate_borrowed)
{
    struct ws_deflate_params p = defaults;
    struct ws_deflate *a, *b;
    struct ws_dbuf bomb = { 0 }, out = { 0 };

    p.client_no_context_takeover = true;
    a = ws_deflate_new(&p, 1, 8);
    b = ws_deflate_new(&p, 1, 8);
    for (int i = 0; i < 3; i++) {
        assert_inflate(a, hello_deflated, sizeof(hello_deflated), "Hello");
        assert_inflate(b, hello_deflated, sizeof(hello_deflated), "Hello");
        ck_assert_uint_eq(ws_deflate_memory(a), 0);
        ck_assert_uint_eq(ws_deflate_memory(b), 0);
    }
    build_bomb(&bomb, 16);
    ck_assert_int_eq(ws_deflate_inflate(a, bomb.p, bomb.len, true, &out,
                                        1 * MiB, 25), -EMSGSIZE);
    ck_assert_uint_le(out.len, 1 * MiB + 16 * KiB + 1);
    /* The stream the bomb used was reset for b; a's error is sticky. */
    assert_inflate(b, hello_deflated, sizeof(hello_deflated), "Hello");
    out.len = 0;
    ck_assert_int_eq(ws_deflate_inflate(a, hello_deflated,
                                        sizeof(hello_deflated), true, &out,
                                        1 * MiB, 25), -EMSGSIZE);
    /* Split over two calls: b's own stream while the message lasts, given
       back at its end (nothing carries over; max_deflate_memory); then a
       whole one, and a split one again on a fresh stream. */
    assert_split_hello(b, 3, &out);
    assert_inflate(b, hello_deflated, sizeof(hello_deflated), "Hello");
    assert_split_hello(b, 5, &out);
    ws_deflate_free(a);
    ws_deflate_free(b);
    dbuf_free(&bomb);
    dbuf_free(&out);
}
END_TEST

/* ---- Limits -------------------------------------------------------------- */

/* n zero bytes deflated: about 1/1000 of n. */
static void
build_zeros(struct ws_dbuf *b, uint64_t n)
{
    static const uint8_t zeros[64 * 1024];
    z_stream z;

    memset(&z, 0, sizeof(z));
    memset(b, 0, sizeof(*b));
    /* Z_RLE: the same 258-byte matches as level 9, 10 times faster. */
    ck_assert_int_eq(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_RLE), Z_OK);
    b->cap = (size_t)(n / 500 + 4096);
    b->p = malloc(b->cap);
    ck_assert_ptr_nonnull(b->p);
    z.next_out = b->p;
    z.avail_out = (uInt)b->cap;
    while (n > 0) {
        size_t piece = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);

        n -= piece;
        z.next_in = (Bytef *)(uintptr_t)zeros;
        z.avail_in = (uInt)piece;
        ck_assert_int_eq(deflate(&z, n == 0 ? Z_SYNC_FLUSH : Z_NO_FLUSH),
                         Z_OK);
        ck_assert_uint_eq(z.avail_in, 0);
        ck_assert_uint_gt(z.avail_out, 0);
    }
    b->len = b->cap - z.avail_out - 4;   /* without 00 00 ff ff */
    deflateEnd(&z);
}

/*
 * mib MiB of zeros, sync-flushed per MiB. Once the window is all zeros
 * every further MiB deflates to the same bytes (checked), so they are
 * copied rather than deflated: building 1 GiB takes milliseconds.
 */
static void
build_bomb(struct ws_dbuf *b, size_t mib)
{
    uint8_t *zeros = calloc(1, MiB), *chunk[3];
    size_t clen[3];
    z_stream z;

    ck_assert(mib >= 3);
    memset(&z, 0, sizeof(z));
    ck_assert_int_eq(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_RLE), Z_OK);
    for (int i = 0; i < 3; i++) {
        chunk[i] = malloc(4 * KiB);
        z.next_in = zeros;
        z.avail_in = MiB;
        z.next_out = chunk[i];
        z.avail_out = 4 * KiB;
        ck_assert_int_eq(deflate(&z, Z_SYNC_FLUSH), Z_OK);
        ck_assert_uint_eq(z.avail_in, 0);
        ck_assert_uint_gt(z.avail_out, 0);
        clen[i] = 4 * KiB - z.avail_out;
    }
    ck_assert_uint_eq(clen[1], clen[2]);
    ck_assert_mem_eq(chunk[1], chunk[2], clen[1]);
    b->cap = clen[0] + (mib - 1) * clen[1];
    b->p = malloc(b->cap);
    ck_assert_ptr_nonnull(b->p);
    memcpy(b->p, chunk[0], clen[0]);
    b->len = clen[0];
    for (size_t i = 1; i < mib; i++) {
        memcpy(b->p + b->len, chunk[1], clen[1]);
        b->len += clen[1];
    }
    b->len -= 4;   /* the last 00 00 ff ff */
    deflateEnd(&z);
    for (int i = 0; i < 3; i++)
        free(chunk[i]);
    free(zeros);
}

/*
 * 1 GiB of zeros (deflate's best ratio is about 1032:1, so the smallest
 * such bomb is about 1 MiB) stops at the first byte over each limit, with
 * out never larger than the limit plus a step, long before 1 GiB.
 */
START_TEST(test_bomb)
{
    struct ws_dbuf bomb, out = { 0 };
    struct ws_deflate *d;
    double t0, t_build, t_cut;

    t0 = now_s();
    build_bomb(&bomb, 1024);
    t_build = now_s() - t0;
    ck_assert_uint_lt(bomb.len, 1100 * KiB);

    /* max_out 8 MiB, no ratio, one piece. */
    d = ws_deflate_new(&defaults, 1, 8);
    t0 = now_s();
    ck_assert_int_eq(ws_deflate_inflate(d, bomb.p, bomb.len, true, &out,
                                        8 * MiB, 0), -EMSGSIZE);
    t_cut = now_s() - t0;
    ck_assert_uint_eq(out.len, 8 * MiB + 1);
    ck_assert_uint_le(out.cap, 8 * MiB + 64 * KiB);
    /* Sticky: the stream is unusable now. */
    ck_assert_int_eq(ws_deflate_inflate(d, hello_deflated,
                                        sizeof(hello_deflated), true, &out,
                                        8 * MiB, 0), -EMSGSIZE);
    ws_deflate_free(d);
    dbuf_free(&out);
    printf("bomb: %zu bytes, built in %.2f s; cut at 8 MiB in %.4f s\n",
           bomb.len, t_build, t_cut);
    /* 8 MiB of 1 GiB: far under the time to inflate it all. */
    ck_assert(t_cut < 0.5);

    /* Ratio 25 over 4 KiB pieces: cut one byte past the larger of the
       floor and 25 * 4096. */
    d = ws_deflate_new(&defaults, 1, 8);
    {
        size_t off = 0;
        int rc;

        do {
            rc = ws_deflate_inflate(d, bomb.p + off, 4096, false, &out,
                                    UINT64_MAX, 25);
            off += 4096;
        } while (rc == 0);
        ck_assert_int_eq(rc, -EMSGSIZE);
        ck_assert_uint_eq(off, 4096);
        ck_assert_uint_eq(out.len, MAX(WS_DEFLATE_RATIO_FLOOR, 25 * 4096) + 1);
        /* The buffer grows by doubling: bounded by twice the cut. */
        ck_assert_uint_le(out.cap,
                          2 * MAX(WS_DEFLATE_RATIO_FLOOR, 25 * 4096));
    }
    ws_deflate_free(d);
    dbuf_free(&out);
    dbuf_free(&bomb);
}
END_TEST

/* Exact edges of max_out and of the ratio's 64 KiB floor. */
START_TEST(test_limits_exact)
{
    struct ws_dbuf z64, z64p1, out = { 0 };
    struct ws_deflate *d = ws_deflate_new(&defaults, 1, 8);

    build_zeros(&z64, WS_DEFLATE_RATIO_FLOOR);
    build_zeros(&z64p1, WS_DEFLATE_RATIO_FLOOR + 1);
    ck_assert_uint_lt(z64p1.len * 25, WS_DEFLATE_RATIO_FLOOR);

    /* max_out: exactly fits; one less is too small. */
    ck_assert_int_eq(ws_deflate_inflate(d, z64.p, z64.len, true, &out,
                                        WS_DEFLATE_RATIO_FLOOR, 0), 0);
    ck_assert_uint_eq(out.len, WS_DEFLATE_RATIO_FLOOR);
    ck_assert_uint_eq(out.cap, WS_DEFLATE_RATIO_FLOOR + 1);
    out.len = 0;
    ck_assert_int_eq(ws_deflate_inflate(d, z64.p, z64.len, true, &out,
                                        WS_DEFLATE_RATIO_FLOOR - 1, 0),
                     -EMSGSIZE);
    ck_assert_uint_eq(out.len, WS_DEFLATE_RATIO_FLOOR);
    ws_deflate_free(d);

    /* Ratio: 64 KiB always passes, one byte more from so little does not. */
    d = ws_deflate_new(&defaults, 1, 8);
    out.len = 0;
    ck_assert_int_eq(ws_deflate_inflate(d, z64.p, z64.len, true, &out,
                                        UINT64_MAX, 25), 0);
    ck_assert_uint_eq(out.len, WS_DEFLATE_RATIO_FLOOR);
    out.len = 0;
    ck_assert_int_eq(ws_deflate_inflate(d, z64p1.p, z64p1.len, true, &out,
                                        UINT64_MAX, 25), -EMSGSIZE);
    ck_assert_uint_eq(out.len, WS_DEFLATE_RATIO_FLOOR + 1);
    ws_deflate_free(d);

    /* Ratio 0 is no ratio limit; a high ratio passes too. */
    d = ws_deflate_new(&defaults, 1, 8);
    out.len = 0;
    ck_assert_int_eq(ws_deflate_inflate(d, z64p1.p, z64p1.len, true, &out,
                                        UINT64_MAX, 0), 0);
    out.len = 0;
    ck_assert_int_eq(ws_deflate_inflate(d, z64p1.p, z64p1.len, true, &out,
                                        UINT64_MAX, 100000), 0);
    ck_assert_uint_eq(out.len, WS_DEFLATE_RATIO_FLOOR + 1);
    ws_deflate_free(d);
    dbuf_free(&out);
    dbuf_free(&z64);
    dbuf_free(&z64p1);
}
END_TEST

/* ---- Corrupt input ------------------------------------------------------- */

START_TEST(test_garbage)
{
    static const struct {
        const uint8_t *p;
        size_t len;
    } bad[] = {
        { (const uint8_t *)"\xff", 1 },                 /* BTYPE 11 */
        { (const uint8_t *)"\x06\x00", 2 },             /* BTYPE 11 */
        { (const uint8_t *)"\x00\x05\x00\x00\x00", 5 }, /* LEN != ~NLEN */
        { hello_deflated, 6 },               /* truncated: no block end */
        { hello_deflated + 1, 6 },           /* mid-stream start */
        { (const uint8_t *)"\x02\x00\x00", 3 }, /* dist before start */
    };
    struct ws_dbuf out = { 0 };
    uint8_t msg[1000];
    struct ws_dbuf wire = { 0 };
    struct ws_deflate *d;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        d = ws_deflate_new(&defaults, 1, 8);
        out.len = 0;
        ck_assert_msg(ws_deflate_inflate(d, guard_copy(bad[i].p, bad[i].len),
                                         bad[i].len, true, &out, 1 * MiB,
                                         25) == -EBADMSG, "case %zu", i);
        /* Sticky. */
        ck_assert_int_eq(ws_deflate_inflate(d, hello_deflated,
                                            sizeof(hello_deflated), true,
                                            &out, 1 * MiB, 25), -EBADMSG);
        ws_deflate_free(d);
    }

    /* A real message cut short at every length: never accepted whole. */
    d = ws_deflate_new(&defaults, 9, 8);
    make_text(msg, sizeof(msg), 11);
    ck_assert_int_eq(ws_deflate_compress(d, msg, sizeof(msg), &wire), 0);
    ws_deflate_free(d);
    for (size_t cut = 1; cut < wire.len; cut++) {
        int rc;

        d = ws_deflate_new(&defaults, 1, 8);
        out.len = 0;
        rc = ws_deflate_inflate(d, guard_copy(wire.p, cut), cut, true, &out,
                                1 * MiB, 25);
        ck_assert_msg(rc == -EBADMSG || (rc == 0 && out.len < sizeof(msg)),
                      "cut %zu: rc %d len %zu", cut, rc, out.len);
        ck_assert_msg(rc == -EBADMSG, "cut %zu of %zu accepted (%zu bytes)",
                      cut, wire.len, out.len);
        ws_deflate_free(d);
    }

    /* Random bytes: no crash, no over-read, only the documented codes. */
    {
        uint64_t seed = 5;

        for (int i = 0; i < 2000; i++) {
            size_t len = (size_t)(test_rand(&seed) % 64);
            uint8_t buf[64];
            int rc;

            make_random(buf, len, (uint64_t)i + 1);
            d = ws_deflate_new(&defaults, 1, 8);
            out.len = 0;
            rc = ws_deflate_inflate(d, guard_copy(buf, len), len, true, &out,
                                    64 * KiB, 25);
            ck_assert(rc == 0 || rc == -EBADMSG || rc == -EMSGSIZE);
            ws_deflate_free(d);
        }
    }
    dbuf_free(&out);
    dbuf_free(&wire);
}
END_TEST

/* ---- Memory -------------------------------------------------------------- */

static size_t
memory_after_compress(int bits, int mem_level, size_t *after_inflate)
{
    struct ws_deflate_params p = {
        .server_max_window_bits = bits,
        .client_max_window_bits = bits,
    };
    struct ws_deflate *d = ws_deflate_new(&p, 1, mem_level);
    struct ws_dbuf out = { 0 }, back = { 0 };
    uint8_t msg[1000];
    size_t m;

    ck_assert_uint_eq(ws_deflate_memory(d), 0);
    make_text(msg, sizeof(msg), 1);
    ck_assert_int_eq(ws_deflate_compress(d, msg, sizeof(msg), &out), 0);
    m = ws_deflate_memory(d);
    /* Our own output, inflated by ourselves (same window both ways). */
    ck_assert_int_eq(ws_deflate_inflate(d, out.p, out.len, true, &back,
                                        1 * MiB, 25), 0);
    ck_assert_uint_eq(back.len, sizeof(msg));
    *after_inflate = ws_deflate_memory(d);
    dbuf_free(&out);
    dbuf_free(&back);
    ws_deflate_free(d);
    return m;
}

START_TEST(test_memory)
{
    size_t big_in, small_in;
    size_t big = memory_after_compress(15, 8, &big_in);
    size_t small = memory_after_compress(9, 1, &small_in);

    printf("zlib memory: deflate w15/mem8 %zu B, +inflate w15 %zu B; "
           "deflate w9/mem1 %zu B, +inflate w9 %zu B\n",
           big, big_in, small, small_in);
    /* zlib's formulas: (1 << (w + 2)) + (1 << (m + 9)) plus state. */
    ck_assert_uint_ge(big, (1u << 17) + (1u << 17));
    ck_assert_uint_lt(small, big / 20);
    ck_assert_uint_gt(big_in, big + (1u << 15));
    ck_assert_uint_gt(small_in, small + (1u << 9));
}
END_TEST

START_TEST(test_memory_lazy_and_trim)
{
    struct ws_deflate_params p = defaults;
    struct ws_deflate *d, *peer;
    struct ws_dbuf wire = { 0 }, out = { 0 };

    d = ws_deflate_new(&defaults, 1, 8);
    ck_assert_uint_eq(ws_deflate_memory(d), 0);
    ws_deflate_trim(d);
    ws_deflate_free(d);
    ws_deflate_free(NULL);
    ws_deflate_shared_free(NULL);

    /* Both sides without context: trim drops everything, use remakes. */
    p.server_no_context_takeover = true;
    p.client_no_context_takeover = true;
    d = ws_deflate_new(&p, 1, 8);
    peer = ws_deflate_new(&p, 1, 8);
    for (int i = 0; i < 3; i++) {
        wire.len = out.len = 0;
        ck_assert_int_eq(ws_deflate_compress(d, (const uint8_t *)"Hello", 5,
                                             &wire), 0);
        ck_assert_uint_eq(wire.len, sizeof(hello_deflated));
        ck_assert_uint_gt(ws_deflate_memory(d), 0);
        ck_assert_int_eq(ws_deflate_inflate(d, wire.p, wire.len, true, &out,
                                            1 * MiB, 25), 0);
        ck_assert_uint_eq(out.len, 5);
        ws_deflate_trim(d);
        ck_assert_uint_eq(ws_deflate_memory(d), 0);
    }
    /* Half a message in: the inflater stays. */
    ck_assert_int_eq(ws_deflate_inflate(d, wire.p, 2, false, &out, 1 * MiB,
                                        25), 0);
    ws_deflate_trim(d);
    ck_assert_uint_gt(ws_deflate_memory(d), 0);
    ws_deflate_free(d);

    /* With context takeover trim keeps the streams. */
    d = ws_deflate_new(&defaults, 1, 8);
    wire.len = 0;
    ck_assert_int_eq(ws_deflate_compress(d, (const uint8_t *)"Hello", 5,
                                         &wire), 0);
    ws_deflate_trim(d);
    ck_assert_uint_gt(ws_deflate_memory(d), 0);
    ws_deflate_free(d);
    ws_deflate_free(peer);
    dbuf_free(&wire);
    dbuf_free(&out);
}
END_TEST

/* ---- Shared compressor and resets ---------------------------------------- */

START_TEST(test_shared)
{
    struct ws_deflate_params nct = defaults;
    struct ws_deflate_shared *s = ws_deflate_shared_new(1, 8, 15);
    struct ws_deflate *conn, *client;
    struct ws_dbuf a = { 0 }, b = { 0 }, out = { 0 };
    uint8_t msg[3000];

    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_null(ws_deflate_shared_new(1, 8, 7));
    ck_assert_ptr_null(ws_deflate_shared_new(1, 0, 15));
    ck_assert_ptr_null(ws_deflate_shared_new(10, 8, 15));
    nct.server_no_context_takeover = true;
    conn = ws_deflate_new(&nct, 1, 8);
    /* The client keeps its window; shared frames refer to nothing. */
    client = ws_deflate_new(&defaults, 1, 8);
    for (int m = 0; m < 20; m++) {
        size_t len = (size_t)m * 150;

        make_text(msg, len, (uint64_t)m % 3);
        a.len = b.len = out.len = 0;
        ck_assert_int_eq(ws_deflate_shared_compress(s, msg, len, &a), 0);
        ck_assert_int_eq(ws_deflate_compress(conn, msg, len, &b), 0);
        ck_assert_uint_eq(a.len, b.len);
        ck_assert_mem_eq(a.p, b.p, a.len);
        ck_assert_int_eq(ws_deflate_inflate(client, a.p, a.len, true, &out,
                                            1 * MiB, 25), 0);
        ck_assert_uint_eq(out.len, len);
        ck_assert(len == 0 || memcmp(out.p, msg, len) == 0);
    }
    a.len = 0;
    ck_assert_int_eq(ws_deflate_shared_compress(s, (const uint8_t *)"Hello",
                                                5, &a), 0);
    ck_assert_mem_eq(a.p, hello_deflated, sizeof(hello_deflated));
    ws_deflate_shared_free(s);
    /* Window 8 is taken as 9. */
    s = ws_deflate_shared_new(1, 1, 8);
    ck_assert_ptr_nonnull(s);
    ws_deflate_shared_free(s);
    ws_deflate_free(conn);
    ws_deflate_free(client);
    dbuf_free(&a);
    dbuf_free(&b);
    dbuf_free(&out);
}
END_TEST

/* A dropped compressed message, then tx_reset: the client still follows. */
START_TEST(test_tx_reset)
{
    struct ws_deflate *srv = ws_deflate_new(&defaults, 1, 8);
    struct ws_deflate *cli = ws_deflate_new(&defaults, 1, 8);
    struct ws_dbuf dropped = { 0 };

    assert_compress(srv, "Hello", hello_deflated, sizeof(hello_deflated));
    assert_inflate(cli, hello_deflated, sizeof(hello_deflated), "Hello");
    ck_assert_int_eq(ws_deflate_compress(srv, (const uint8_t *)"world", 5,
                                         &dropped), 0);
    ws_deflate_tx_reset(srv);
    assert_compress(srv, "Hello", hello_deflated, sizeof(hello_deflated));
    assert_inflate(cli, hello_deflated, sizeof(hello_deflated), "Hello");
    assert_compress(srv, "Hello", hello_again, sizeof(hello_again));
    assert_inflate(cli, hello_again, sizeof(hello_again), "Hello");
    ck_assert_ptr_null(ws_deflate_new(&defaults, 10, 8));
    ck_assert_ptr_null(ws_deflate_new(&defaults, 1, 10));
    dbuf_free(&dropped);
    ws_deflate_free(srv);
    ws_deflate_free(cli);
}
END_TEST

static Suite *
ws_deflate_suite(void)
{
    Suite *s = suite_create("ws_deflate");
    TCase *neg = tcase_create("negotiate");
    TCase *rfc = tcase_create("rfc");
    TCase *trip = tcase_create("round_trip");
    TCase *win = tcase_create("window");
    TCase *lim = tcase_create("limits");
    TCase *mem = tcase_create("memory");

    tcase_add_loop_test(neg, test_negotiate_table, 0,
                        (int)(sizeof(neg_cases) / sizeof(neg_cases[0])));
    tcase_add_test(neg, test_negotiate_enospc);
    tcase_add_test(neg, test_negotiate_parsed_request);
    suite_add_tcase(s, neg);

    tcase_add_test(rfc, test_rfc_hello_compress);
    tcase_add_test(rfc, test_rfc_sharing_window);
    tcase_add_test(rfc, test_rfc_empty_message);
    tcase_add_test(rfc, test_rfc_inflate_examples);
    tcase_add_test(rfc, test_bfinal_keeps_window);
    suite_add_tcase(s, rfc);

    tcase_add_loop_test(trip, test_round_trip, 0, 8);
    tcase_add_test(trip, test_round_trip_varied);
    tcase_add_test(trip, test_inflate_every_split);
    tcase_add_test(trip, test_shared);
    tcase_add_test(trip, test_tx_reset);
    tcase_set_timeout(trip, 120);
    suite_add_tcase(s, trip);

    tcase_add_test(win, test_window8_offer);
    tcase_add_test(win, test_client_window_enforced);
    tcase_add_test(win, test_client_no_context_takeover);
    tcase_add_test(win, test_inflate_borrowed);
    suite_add_tcase(s, win);

    tcase_add_test(lim, test_bomb);
    tcase_add_test(lim, test_limits_exact);
    tcase_add_test(lim, test_garbage);
    tcase_set_timeout(lim, 120);
    suite_add_tcase(s, lim);

    tcase_add_test(mem, test_memory);
    tcase_add_test(mem, test_memory_lazy_and_trim);
    suite_add_tcase(s, mem);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(ws_deflate_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
