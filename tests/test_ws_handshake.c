/*
 * test_ws_handshake.c: unit tests for worker/ws_handshake.c: head framing
 * at every split against a guard page, parsing and the RFC 6455 §4.2.1
 * checks (one case per failure, with its status), comma-list tokens, the
 * accept key, exact response bytes, the sock_request_* getters, and random
 * mutations of a valid request.
 */
#include "ws_handshake.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "testutil.h"

#define MAX_HEADERS 64

static const char valid_req[] =
    "GET /chat?room=a&x=1 HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

/* Parses a guard-page copy of head, so the parser cannot read past it. */
static int
parse(struct sock_request *r, const char *head, size_t max_headers)
{
    size_t len = strlen(head);

    memset(r, 0, sizeof(*r));
    return ws_request_parse(r, guard_copy(head, len), len, max_headers);
}

/* The status conn_upgrade.c would answer with: the parse's, else validate's. */
static int
status_of(const char *head)
{
    struct sock_request r;
    const char *why = NULL;
    int status = parse(&r, head, MAX_HEADERS);

    if (status == 0) {
        status = ws_request_validate(&r, &why);
        ck_assert(status == 0 ? why == NULL : why != NULL);
    }
    ws_request_destroy(&r);
    return status;
}

/* A request line followed by header lines (each ending in CRLF). */
static const char *
req(const char *line, const char *headers)
{
    static char buf[8192];

    snprintf(buf, sizeof(buf), "%s\r\n%s\r\n", line, headers);
    return buf;
}

#define H_HOST "Host: a.example\r\n"
#define H_UPG "Upgrade: websocket\r\n"
#define H_CONN "Connection: Upgrade\r\n"
#define H_KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define H_VER "Sec-WebSocket-Version: 13\r\n"
#define H_ALL H_HOST H_UPG H_CONN H_KEY H_VER

/* ---- Accept key --------------------------------------------------------- */

START_TEST(test_accept_key_rfc)
{
    char out[29];

    /* RFC 6455 §1.3. */
    memset(out, 'x', sizeof(out));
    ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out);
    ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", out);
    ck_assert_str_eq(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}
END_TEST

/* ---- Head framing -------------------------------------------------------- */

START_TEST(test_head_len_every_split)
{
    size_t len = strlen(valid_req);

    for (size_t cut = 0; cut <= len; cut++) {
        const uint8_t *p = guard_copy(valid_req, cut);

        ck_assert_int_eq(ws_head_len(p, cut, 8192),
                         cut < len ? 0 : (ssize_t)len);
        /* A limit of exactly the head's length still finds it. */
        ck_assert_int_eq(ws_head_len(p, cut, len),
                         cut < len ? 0 : (ssize_t)len);
    }
}
END_TEST

START_TEST(test_head_len_with_trailing_bytes)
{
    char buf[1024];
    size_t head = strlen(valid_req);

    snprintf(buf, sizeof(buf), "%s%s", valid_req, "\x81\x85""abcd\r\n\r\n");
    ck_assert_int_eq(ws_head_len(guard_copy(buf, strlen(buf)), strlen(buf),
                                 8192), (ssize_t)head);
}
END_TEST

START_TEST(test_head_len_limit)
{
    size_t len = strlen(valid_req);

    /* One byte short of the head: -E2BIG once max bytes are in. */
    for (size_t cut = 0; cut <= len; cut++)
        ck_assert_int_eq(ws_head_len(guard_copy(valid_req, cut), cut,
                                     len - 1),
                         cut < len - 1 ? 0 : -E2BIG);
    ck_assert_int_eq(ws_head_len(guard_copy("", 0), 0, 0), -E2BIG);
    ck_assert_int_eq(ws_head_len(guard_copy("\r\n\r\n", 4), 4, 3), -E2BIG);
    ck_assert_int_eq(ws_head_len(guard_copy("\r\n\r\n", 4), 4, 4), 4);
}
END_TEST

START_TEST(test_head_len_crlf_only)
{
    static const char lf[] = "GET / HTTP/1.1\nHost: a\n\n";
    static const char mixed[] = "GET / HTTP/1.1\r\nHost: a\n\r\n";
    static const char partial[] = "GET / HTTP/1.1\r\n\r";

    ck_assert_int_eq(ws_head_len(guard_copy(lf, strlen(lf)), strlen(lf),
                                 100), 0);
    ck_assert_int_eq(ws_head_len(guard_copy(lf, strlen(lf)), strlen(lf),
                                 strlen(lf)), -E2BIG);
    ck_assert_int_eq(ws_head_len(guard_copy(mixed, strlen(mixed)),
                                 strlen(mixed), 100), 0);
    ck_assert_int_eq(ws_head_len(guard_copy(partial, strlen(partial)),
                                 strlen(partial), 100), 0);
}
END_TEST

/* ---- Unfinished heads ---------------------------------------------------- */

static int
prefix_status(const char *p, size_t len)
{
    return ws_head_check_prefix(guard_copy(p, len), len, MAX_HEADERS);
}

/* Every cut of heads the parser accepts is worth waiting for. */
START_TEST(test_prefix_every_split_valid)
{
    static const char *const heads[] = {
        valid_req,
        "\r\nGET /after-empty-line HTTP/1.1\r\n" H_ALL "\r\n",
        "GET http://a.example/p?q=1 HTTP/1.1\r\n" H_ALL "\r\n",
        "GET /plain HTTP/1.0\r\nHost: a\r\n\r\n",
        "HEAD /static/x.html HTTP/1.1\r\nHost: a\r\nX-Empty:\r\n"
        "X-Tab:\tv\t\r\n\r\n",
        "M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n",
    };

    for (size_t i = 0; i < ARRAY_SIZE(heads); i++) {
        size_t len = strlen(heads[i]);
        struct sock_request r;

        memset(&r, 0, sizeof(r));
        ck_assert_int_eq(ws_request_parse(&r, guard_copy(heads[i], len), len,
                                          MAX_HEADERS), 0);
        ws_request_destroy(&r);
        for (size_t cut = 0; cut < len; cut++)
            ck_assert_msg(prefix_status(heads[i], cut) == 0,
                          "head %zu cut %zu: %d", i, cut,
                          prefix_status(heads[i], cut));
    }
}
END_TEST

/* What no HTTP/1.1 request begins with is refused at once. */
START_TEST(test_prefix_garbage)
{
    static const struct {
        const char *p;
        size_t len; /* 0: strlen */
        int status;
    } cases[] = {
        { "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11, 400 },
        { "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", 0, 400 },
        { "PRI * HTTP/2.0\r\n", 0, 400 },
        { "get /echo HTTP/1.1\r\n", 0, 400 },
        { "GET /echo HTTP/1.1\nHost: a", 0, 400 },
        { "\n", 0, 400 },
        { "GET /echo HTTP/1.1\r\nHost: a\rX", 0, 400 },
        { "GET /echo HTTP/1.1\r\nHo st: a\r\n", 0, 400 },
        { "GET /\x01 HTTP/1.1", 0, 400 },
        { "GET / HTTP/1.1x", 0, 400 },
        { "GET / FTP/1.1\r\n", 0, 400 },
        { "\0GET", 4, 400 },
        { "GET /echo HTTP/2.0\r\nHost: a\r\n", 0, 505 },
        { "GET /echo\r\nHost: a\r\n", 0, 505 },
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].p);

        ck_assert_msg(prefix_status(cases[i].p, len) == cases[i].status,
                      "case %zu: %d", i, prefix_status(cases[i].p, len));
    }
    /* Not yet: a request line is not over until its CRLF. */
    ck_assert_int_eq(prefix_status("GET /echo HTTP/2.0", 18), 0);
    ck_assert_int_eq(prefix_status("GET /echo HTTP/1.1\r", 19), 0);
    ck_assert_int_eq(prefix_status("", 0), 0);
}
END_TEST

START_TEST(test_prefix_max_headers)
{
    char buf[4096];
    size_t len;

    len = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nA: 1\r\n"
                           "B: 2\r\nC");
    ck_assert_int_eq(ws_head_check_prefix(guard_copy(buf, len), len, 3), 0);
    ck_assert_int_eq(ws_head_check_prefix(guard_copy(buf, len), len, 2), 431);
}
END_TEST

/*
 * Random changes to a valid request: a prefix refused means the whole
 * head is refused too, and a head the parser takes has no refused
 * prefix, so a request gets one answer however it is split.
 */
START_TEST(test_prefix_agrees_with_parse)
{
    static const char alphabet[] = "\r\n :,=?&#/\t\x00\x7f\xff"
                                   "Aa0GETHTPwebsocketupgrade";
    uint64_t seed = 0x9a27f00d;
    char buf[sizeof(valid_req) + 8];
    size_t len = strlen(valid_req);

    for (int i = 0; i < 800; i++) {
        struct sock_request r;
        ssize_t head;
        int n = 1 + (int)(test_rand(&seed) % 3), status;

        memcpy(buf, valid_req, len);
        for (int j = 0; j < n; j++)
            buf[test_rand(&seed) % len] =
                alphabet[test_rand(&seed) % (sizeof(alphabet) - 1)];
        head = ws_head_len(guard_copy(buf, len), len, len);
        if (head <= 0)
            continue;
        memset(&r, 0, sizeof(r));
        status = ws_request_parse(&r, guard_copy(buf, (size_t)head),
                                  (size_t)head, MAX_HEADERS);
        ws_request_destroy(&r);
        for (size_t cut = 0; cut < (size_t)head; cut++) {
            int early = prefix_status(buf, cut);

            ck_assert_msg(early == 0 || early == 400 || early == 431 ||
                          early == 505, "iteration %d cut %zu: %d", i, cut,
                          early);
            ck_assert_msg(status != 0 || early == 0, "iteration %d cut %zu: "
                          "prefix refused with %d, head accepted", i, cut,
                          early);
            ck_assert_msg(early == 0 || status != 0, "iteration %d",  i);
        }
    }
}
END_TEST

/* ---- Parsing ------------------------------------------------------------ */

START_TEST(test_parse_valid)
{
    struct sock_request r;
    const char *why = "unset", *name, *value;

    ck_assert_int_eq(parse(&r, valid_req, MAX_HEADERS), 0);
    ck_assert_int_eq(ws_request_validate(&r, &why), 0);
    ck_assert_ptr_null(why);
    ck_assert_str_eq(r.method, "GET");
    ck_assert_str_eq(r.path, "/chat");
    ck_assert_str_eq(r.query, "room=a&x=1");
    ck_assert_uint_eq(r.http_major, 1);
    ck_assert_uint_eq(r.http_minor, 1);
    ck_assert(r.upgrade);
    ck_assert_uint_eq(r.n_headers, 7);
    ck_assert_str_eq(r.headers[0].name, "Host");
    ck_assert_str_eq(r.headers[0].value, "server.example.com");
    ck_assert_str_eq(r.headers[5].name, "Sec-WebSocket-Protocol");
    ck_assert_str_eq(r.headers[5].value, "chat, superchat");
    ck_assert_str_eq(r.headers[6].value, "13");
    ck_assert_str_eq(ws_request_header(&r, "sec-websocket-key"),
                     "dGhlIHNhbXBsZSBub25jZQ==");
    ck_assert_str_eq(ws_request_header(&r, "ORIGIN"), "http://example.com");
    ck_assert_ptr_null(ws_request_header(&r, "Cookie"));
    /* Every string lives in the one storage block. */
    for (size_t i = 0; i < r.n_headers; i++) {
        ck_assert(r.headers[i].name >= r.storage &&
                  r.headers[i].value < r.storage + r.storage_len);
    }

    /* The getters the hook sees. */
    ck_assert_str_eq(sock_request_method(&r), "GET");
    ck_assert_str_eq(sock_request_path(&r), "/chat");
    ck_assert_str_eq(sock_request_query(&r), "room=a&x=1");
    ck_assert_str_eq(sock_request_header(&r, "host"), "server.example.com");
    ck_assert_uint_eq(sock_request_header_count(&r), 7);
    ck_assert(sock_request_header_at(&r, 1, &name, &value));
    ck_assert_str_eq(name, "Upgrade");
    ck_assert_str_eq(value, "websocket");
    ck_assert(!sock_request_header_at(&r, 7, &name, &value));
    ck_assert_str_eq(sock_request_peer(&r), "");
    ck_assert(!sock_request_tls(&r));
    r.peer = "127.0.0.1:5000";
    r.tls = true;
    ck_assert_str_eq(sock_request_peer(&r), "127.0.0.1:5000");
    ck_assert(sock_request_tls(&r));

    ws_request_destroy(&r);
    ck_assert_ptr_null(r.storage);
    ck_assert_ptr_null(r.headers);
    ws_request_destroy(&r);
    ws_request_destroy(NULL);
}
END_TEST

START_TEST(test_parse_keeps_peer)
{
    struct sock_request r;
    size_t len = strlen(valid_req);

    /* The caller may fill peer and tls before the parse. */
    memset(&r, 0, sizeof(r));
    r.peer = "[::1]:80";
    r.tls = true;
    ck_assert_int_eq(ws_request_parse(&r, guard_copy(valid_req, len), len,
                                      MAX_HEADERS), 0);
    ck_assert_str_eq(sock_request_peer(&r), "[::1]:80");
    ck_assert(sock_request_tls(&r));
    ws_request_destroy(&r);
}
END_TEST

START_TEST(test_parse_targets)
{
    struct sock_request r;

    ck_assert_int_eq(parse(&r, req("GET http://a.example/p/q?k=v#frag "
                                   "HTTP/1.1", H_ALL), MAX_HEADERS), 0);
    ck_assert_str_eq(r.path, "/p/q");
    ck_assert_str_eq(r.query, "k=v");
    ws_request_destroy(&r);

    ck_assert_int_eq(parse(&r, req("GET http://a.example HTTP/1.1", H_ALL),
                           MAX_HEADERS), 0);
    ck_assert_str_eq(r.path, "/");
    ck_assert_str_eq(r.query, "");
    ws_request_destroy(&r);

    ck_assert_int_eq(parse(&r, req("GET /x? HTTP/1.1", H_ALL),
                           MAX_HEADERS), 0);
    ck_assert_str_eq(r.path, "/x");
    ck_assert_str_eq(r.query, "");
    ws_request_destroy(&r);

    ck_assert_int_eq(parse(&r, req("GET /a%20b?q=%41 HTTP/1.1", H_ALL),
                           MAX_HEADERS), 0);
    ck_assert_str_eq(r.path, "/a%20b");
    ck_assert_str_eq(r.query, "q=%41");
    ws_request_destroy(&r);

    ck_assert_int_eq(parse(&r, req("GET a.example:80 HTTP/1.1", H_ALL),
                           MAX_HEADERS), 400);
    ws_request_destroy(&r);
}
END_TEST

START_TEST(test_parse_values)
{
    struct sock_request r;

    ck_assert_int_eq(parse(&r, req("GET / HTTP/1.1",
                                   "X-A:   padded \t \r\n"
                                   "X-Empty:\r\n"
                                   "X-Spaces:    \r\n"
                                   "x-a: second\r\n"), MAX_HEADERS), 0);
    ck_assert_uint_eq(r.n_headers, 4);
    ck_assert_str_eq(r.headers[0].name, "X-A");
    ck_assert_str_eq(r.headers[0].value, "padded");
    ck_assert_str_eq(r.headers[1].value, "");
    ck_assert_str_eq(r.headers[2].value, "");
    ck_assert_str_eq(r.headers[3].name, "x-a");
    ck_assert_str_eq(ws_request_header(&r, "X-A"), "padded");
    ck_assert(!r.upgrade);
    ws_request_destroy(&r);

    ck_assert_int_eq(parse(&r, "GET / HTTP/1.1\r\n\r\n", 0), 0);
    ck_assert_uint_eq(r.n_headers, 0);
    ck_assert_uint_eq(sock_request_header_count(&r), 0);
    ws_request_destroy(&r);
}
END_TEST

START_TEST(test_parse_max_headers)
{
    static char buf[8192];
    struct sock_request r;
    size_t off;

    off = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n%s", H_ALL);
    for (int i = 5; i < 64; i++)
        off += (size_t)snprintf(buf + off, sizeof(buf) - off,
                                "X-H%d: %d\r\n", i, i);
    snprintf(buf + off, sizeof(buf) - off, "\r\n");
    ck_assert_int_eq(status_of(buf), 0);
    ck_assert_int_eq(parse(&r, buf, 64), 0);
    ck_assert_uint_eq(r.n_headers, 64);
    ws_request_destroy(&r);

    snprintf(buf + off, sizeof(buf) - off, "X-H64: 64\r\n\r\n");
    ck_assert_int_eq(status_of(buf), 431);
    ck_assert_int_eq(parse(&r, buf, 65), 0);
    ws_request_destroy(&r);
    ck_assert_int_eq(parse(&r, "GET / HTTP/1.1\r\nA: b\r\n\r\n", 0), 431);
    ws_request_destroy(&r);
}
END_TEST

/* ---- Validation --------------------------------------------------------- */

struct status_case {
    const char *line;
    const char *headers;
    int status;
};

START_TEST(test_validate_cases)
{
    static const struct status_case cases[] = {
        { "GET /chat HTTP/1.1", H_ALL, 0 },
        /* Lists and any case. */
        { "GET / HTTP/1.1", H_HOST H_KEY H_VER
          "Connection: keep-alive, Upgrade\r\nupgrade: WebSocket\r\n", 0 },
        { "GET / HTTP/1.1", H_HOST H_KEY H_VER H_UPG
          "Connection: keep-alive\r\nconnection: UPGRADE\r\n", 0 },
        { "GET / HTTP/1.1", H_HOST H_KEY H_VER H_CONN
          "Upgrade: h2c,\twebsocket \r\n", 0 },
        { "GET / HTTP/1.1", H_ALL "Content-Length: 0\r\n", 0 },
        { "GET / HTTP/1.2", H_ALL, 0 },
        /* Method and version. */
        { "POST / HTTP/1.1", H_ALL, 400 },
        { "HEAD / HTTP/1.1", H_ALL, 400 },
        { "GET / HTTP/1.0", H_ALL, 400 },
        { "GET / HTTP/2.0", H_ALL, 505 },
        { "GET / HTTP/0.9", H_ALL, 505 },
        /* Host. */
        { "GET / HTTP/1.1", H_UPG H_CONN H_KEY H_VER, 400 },
        { "GET / HTTP/1.1", H_ALL "Host: b.example\r\n", 400 },
        /* A plain GET, or half an upgrade. */
        { "GET / HTTP/1.1", H_HOST, 426 },
        { "GET / HTTP/1.1", H_HOST H_CONN H_KEY H_VER, 426 },
        { "GET / HTTP/1.1", H_HOST H_UPG H_KEY H_VER, 426 },
        { "GET / HTTP/1.1", H_HOST H_KEY H_VER H_CONN
          "Upgrade: websockets\r\n", 426 },
        { "GET / HTTP/1.1", H_HOST H_KEY H_VER H_UPG
          "Connection: upgraded\r\n", 426 },
        { "GET / HTTP/1.1", H_HOST H_KEY H_VER H_UPG
          "Connection: keep-alive\r\n", 426 },
        /* The key. */
        { "GET / HTTP/1.1", H_HOST H_UPG H_CONN H_VER, 400 },
        { "GET / HTTP/1.1", H_ALL H_KEY, 400 },
        { "GET / HTTP/1.1", H_HOST H_UPG H_CONN H_VER
          "Sec-WebSocket-Key: AAECAwQFBgcICQoLDA0O\r\n", 400 }, /* 15 */
        { "GET / HTTP/1.1", H_HOST H_UPG H_CONN H_VER
          "Sec-WebSocket-Key: AAECAwQFBgcICQoLDA0ODxA=\r\n", 400 }, /* 17 */
        { "GET / HTTP/1.1", H_HOST H_UPG H_CONN H_VER
          "Sec-WebSocket-Key: AAECAwQFBgcICQoLDA0ODw\r\n", 400 }, /* no == */
        { "GET / HTTP/1.1", H_HOST H_UPG H_CONN H_VER
          "Sec-WebSocket-Key: AAECAwQFBgcICQoLDA0O*w==\r\n", 400 },
        { "GET / HTTP/1.1", H_HOST H_UPG H_CONN H_VER
          "Sec-WebSocket-Key: AAECAwQFBgcICQoLDA0O-w==\r\n", 400 },
        { "GET / HTTP/1.1", H_HOST H_UPG H_CONN H_VER
          "Sec-WebSocket-Key: AAECAwQFBgcICQoLDA0ODw=A\r\n", 400 },
        { "GET / HTTP/1.1", H_HOST H_UPG H_CONN H_VER
          "Sec-WebSocket-Key: AAECAwQF BgcICQoLDA0ODw=\r\n", 400 },
        { "GET / HTTP/1.1", H_HOST H_UPG H_CONN H_VER
          "Sec-WebSocket-Key:\r\n", 400 },
        { "GET / HTTP/1.1", H_HOST H_UPG H_CONN H_VER
          "Sec-WebSocket-Key: AAECAwQFBgcICQoLDA0ODw==\r\n", 0 }, /* 16 */
        { "GET / HTTP/1.1", H_HOST H_UPG H_CONN H_VER
          "Sec-WebSocket-Key:  AAECAwQFBgcICQoLDA0ODw== \r\n", 0 },
        /* The version. */
        { "GET / HTTP/1.1", H_HOST H_UPG H_CONN H_KEY, 426 },
        { "GET / HTTP/1.1", H_HOST H_UPG H_CONN H_KEY
          "Sec-WebSocket-Version: 8\r\n", 426 },
        { "GET / HTTP/1.1", H_HOST H_UPG H_CONN H_KEY
          "Sec-WebSocket-Version: 13, 8\r\n", 426 },
        { "GET / HTTP/1.1", H_ALL H_VER, 426 },
        /* Order: the first failing check decides. */
        { "POST / HTTP/1.0", "", 400 },
        { "GET / HTTP/1.1", "", 400 },
        { "GET / HTTP/1.1", H_HOST H_UPG H_CONN
          "Sec-WebSocket-Version: 8\r\n", 400 },
        /* Bodies. */
        { "GET / HTTP/1.1", H_ALL "Content-Length: 5\r\n", 400 },
        { "GET / HTTP/1.1", H_ALL "Content-Length: 010\r\n", 400 },
        { "GET / HTTP/1.1", H_ALL "Transfer-Encoding: chunked\r\n", 400 },
        { "GET / HTTP/1.1", H_ALL "Transfer-Encoding: identity\r\n", 400 },
        { "GET / HTTP/1.1", H_ALL "Content-Length: 1\r\n"
          "Content-Length: 1\r\n", 400 },
        /* Malformed HTTP. */
        { "GET / HTTP/1.1", H_ALL "Bad Header: x\r\n", 400 },
        { "GET / HTTP/1.1", H_ALL ": x\r\n", 400 },
        { "GET / HTTP/1.1", H_ALL "X-A : x\r\n", 400 },
        { "GET / HTTP/1.1", H_ALL "Transfer-Encoding : chunked\r\n", 400 },
        { "GET / HTTP/1.1", H_ALL " X-A: x\r\n", 400 },
        { "GET / HTTP/1.1", H_ALL "X(A): x\r\n", 400 },
        { "GET / HTTP/1.1", H_ALL "X-!#$%&'*+-.^_`|~: x\r\n", 0 },
        { "GET / HTTP/1.1", H_ALL "NoColon\r\n", 400 },
        { "GET / HTTP/1.1", H_ALL "X-Fold: a\r\n b\r\n", 400 },
        { "GET / HTTP/1.1", H_ALL "X-Ctl: a\x01z\r\n", 400 },
        { "GET / HTTP/1.1", H_ALL "Content-Length: x\r\n", 400 },
        { "GET /a b HTTP/1.1", H_ALL, 400 },
        { "GET / HTTP/1.1 x", H_ALL, 400 },
        { "GET / FTP/1.1", H_ALL, 400 },
        { "BREW / HTTP/1.1", H_ALL, 400 },
        { "GET", H_ALL, 400 },
        { "", H_ALL, 400 },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = status_of(req(cases[i].line, cases[i].headers));

        ck_assert_msg(got == cases[i].status, "case %zu (%s): %d, not %d",
                      i, cases[i].line, got, cases[i].status);
    }
}
END_TEST

START_TEST(test_parse_not_one_head)
{
    static char buf[1024];

    /* Bytes past the head end, pipelined or a body: not a lone head. */
    snprintf(buf, sizeof(buf), "%sGET / HTTP/1.1\r\n", valid_req);
    ck_assert_int_eq(status_of(buf), 400);
    snprintf(buf, sizeof(buf), "%sxyz", valid_req);
    ck_assert_int_eq(status_of(buf), 400);
    /* Bare-LF head, then a second request ending in CRLF CRLF. */
    ck_assert_int_eq(status_of("GET / HTTP/1.1\nHost: a\nUpgrade: websocket"
                               "\nConnection: upgrade\n\n"
                               "GET / HTTP/1.1\r\n\r\n"), 400);
    ck_assert_int_eq(status_of("GET / HTTP/1.1\nHost: a\n\n"
                               "GET / HTTP/1.1\r\n\r\n"), 400);
    /* Not complete. */
    ck_assert_int_eq(status_of("GET / HTTP/1.1\r\n"), 400);
    ck_assert_int_eq(status_of("\r\n\r\n"), 400);
    ck_assert_int_eq(status_of(""), 400);
}
END_TEST

START_TEST(test_validate_reasons)
{
    struct sock_request r;
    const char *why = NULL;

    ck_assert_int_eq(parse(&r, req("GET / HTTP/1.1", H_HOST H_UPG H_CONN
                                   H_KEY "Sec-WebSocket-Version: 8\r\n"),
                           MAX_HEADERS), 0);
    ck_assert_int_eq(ws_request_validate(&r, &why), 426);
    ck_assert_str_eq(why, "Sec-WebSocket-Version is not 13");
    /* why may be NULL. */
    ck_assert_int_eq(ws_request_validate(&r, NULL), 426);
    ws_request_destroy(&r);

    ck_assert_int_eq(parse(&r, req("GET / HTTP/1.1", H_HOST H_UPG H_CONN
                                   H_VER), MAX_HEADERS), 0);
    ck_assert_int_eq(ws_request_validate(&r, &why), 400);
    ck_assert_str_eq(why, "no Sec-WebSocket-Key");
    ws_request_destroy(&r);
}
END_TEST

/* ---- Tokens ------------------------------------------------------------- */

START_TEST(test_has_token)
{
    struct sock_request r;

    ck_assert_int_eq(parse(&r, req("GET / HTTP/1.1",
                                   "Connection: keep-alive , Upgrade\r\n"
                                   "X-List: ,, a ,\t b\t,\r\n"
                                   "X-List: c\r\n"
                                   "X-Sub: upgrade2, xupgrade, up grade\r\n"
                                   "X-Empty:\r\n"
                                   "X-One: tok\r\n"), MAX_HEADERS), 0);
    ck_assert(ws_request_has_token(&r, "connection", "upgrade", true));
    ck_assert(!ws_request_has_token(&r, "connection", "upgrade", false));
    ck_assert(ws_request_has_token(&r, "Connection", "Upgrade", false));
    ck_assert(ws_request_has_token(&r, "CONNECTION", "KEEP-ALIVE", true));
    ck_assert(ws_request_has_token(&r, "x-list", "a", false));
    ck_assert(ws_request_has_token(&r, "x-list", "b", false));
    ck_assert(ws_request_has_token(&r, "x-list", "c", false));
    ck_assert(!ws_request_has_token(&r, "x-list", "", false));
    ck_assert(!ws_request_has_token(&r, "x-list", "a ,", false));
    ck_assert(!ws_request_has_token(&r, "x-sub", "upgrade", true));
    ck_assert(!ws_request_has_token(&r, "x-sub", "up", true));
    ck_assert(ws_request_has_token(&r, "x-sub", "up grade", true));
    ck_assert(!ws_request_has_token(&r, "x-empty", "", true));
    ck_assert(!ws_request_has_token(&r, "x-empty", "x", true));
    ck_assert(ws_request_has_token(&r, "x-one", "tok", true));
    ck_assert(!ws_request_has_token(&r, "x-one", "to", true));
    ck_assert(!ws_request_has_token(&r, "x-one", "toke", true));
    ck_assert(!ws_request_has_token(&r, "x-on", "tok", true));
    ck_assert(!ws_request_has_token(&r, "upgrade", "websocket", true));
    ws_request_destroy(&r);
}
END_TEST

/* ---- Responses ---------------------------------------------------------- */

/* len is read after got's call has filled it. */
static void
assert_bytes(char *got, const size_t *len, const char *want)
{
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(*len, strlen(want));
    ck_assert_mem_eq(got, want, *len);
    ck_assert_int_eq(got[*len], '\0');
    free(got);
}

START_TEST(test_response_101)
{
    size_t len = 0;

    assert_bytes(ws_response_101("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", NULL, NULL,
                                 NULL, &len), &len,
                 "HTTP/1.1 101 Switching Protocols\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                 "\r\n");
    assert_bytes(ws_response_101("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "chat",
                                 "permessage-deflate; "
                                 "server_no_context_takeover",
                                 "X-A: 1\r\nX-B: 2\r\n", &len), &len,
                 "HTTP/1.1 101 Switching Protocols\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                 "Sec-WebSocket-Protocol: chat\r\n"
                 "Sec-WebSocket-Extensions: permessage-deflate; "
                 "server_no_context_takeover\r\n"
                 "X-A: 1\r\nX-B: 2\r\n"
                 "\r\n");
    assert_bytes(ws_response_101("k", NULL, "permessage-deflate", NULL, &len),
                 &len,
                 "HTTP/1.1 101 Switching Protocols\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: k\r\n"
                 "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                 "\r\n");
    assert_bytes(ws_response_101("k", "chat", NULL, "X-A: 1\r\n", &len),
                 &len,
                 "HTTP/1.1 101 Switching Protocols\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: k\r\n"
                 "Sec-WebSocket-Protocol: chat\r\n"
                 "X-A: 1\r\n"
                 "\r\n");
}
END_TEST

START_TEST(test_response_error)
{
    size_t len = 0;

    assert_bytes(ws_response_error(426, NULL, &len), &len,
                 "HTTP/1.1 426 Upgrade Required\r\n"
                 "Connection: close\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: 17\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "\r\n"
                 "Upgrade Required\n");
    assert_bytes(ws_response_error(400, NULL, &len), &len,
                 "HTTP/1.1 400 Bad Request\r\n"
                 "Connection: close\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: 12\r\n"
                 "\r\n"
                 "Bad Request\n");
    assert_bytes(ws_response_error(405, NULL, &len), &len,
                 "HTTP/1.1 405 Method Not Allowed\r\n"
                 "Connection: close\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: 19\r\n"
                 "Allow: GET\r\n"
                 "\r\n"
                 "Method Not Allowed\n");
    assert_bytes(ws_response_error(403, "origin refused\n", &len), &len,
                 "HTTP/1.1 403 Forbidden\r\n"
                 "Connection: close\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: 15\r\n"
                 "\r\n"
                 "origin refused\n");
    assert_bytes(ws_response_error(503, "", &len), &len,
                 "HTTP/1.1 503 Service Unavailable\r\n"
                 "Connection: close\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: 0\r\n"
                 "\r\n");
    assert_bytes(ws_response_error(599, NULL, &len), &len,
                 "HTTP/1.1 599 Error\r\n"
                 "Connection: close\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: 6\r\n"
                 "\r\n"
                 "Error\n");
    /* Not three digits: a well-formed 500 instead. */
    assert_bytes(ws_response_error(-22, NULL, &len), &len,
                 "HTTP/1.1 500 Internal Server Error\r\n"
                 "Connection: close\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: 22\r\n"
                 "\r\n"
                 "Internal Server Error\n");
}
END_TEST

START_TEST(test_status_text)
{
    static const struct {
        int status;
        const char *text;
    } texts[] = {
        { 400, "Bad Request" },
        { 403, "Forbidden" },
        { 404, "Not Found" },
        { 405, "Method Not Allowed" },
        { 408, "Request Timeout" },
        { 413, "Payload Too Large" },
        { 426, "Upgrade Required" },
        { 431, "Request Header Fields Too Large" },
        { 500, "Internal Server Error" },
        { 503, "Service Unavailable" },
        { 505, "HTTP Version Not Supported" },
        { 0, "Error" },
        { 418, "Error" },
    };

    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        ck_assert_str_eq(ws_status_text(texts[i].status), texts[i].text);
}
END_TEST

/* ---- Query parameters --------------------------------------------------- */

START_TEST(test_query_param)
{
    struct sock_request r;
    char buf[8];

    ck_assert_int_eq(parse(&r, req("GET /q?room=lobby&flag&x=1&empty=&"
                                   "&a=b=c&room=second&long=12345678&"
                                   "%41=pct HTTP/1.1", H_ALL),
                           MAX_HEADERS), 0);
    ck_assert_int_eq(sock_request_query_param(&r, "room", buf, sizeof(buf)),
                     5);
    ck_assert_str_eq(buf, "lobby");
    ck_assert_int_eq(sock_request_query_param(&r, "flag", buf, sizeof(buf)),
                     0);
    ck_assert_str_eq(buf, "");
    ck_assert_int_eq(sock_request_query_param(&r, "x", buf, sizeof(buf)), 1);
    ck_assert_str_eq(buf, "1");
    ck_assert_int_eq(sock_request_query_param(&r, "empty", buf, sizeof(buf)),
                     0);
    ck_assert_str_eq(buf, "");
    ck_assert_int_eq(sock_request_query_param(&r, "a", buf, sizeof(buf)), 3);
    ck_assert_str_eq(buf, "b=c");
    /* Exact keys only, and no percent-decoding. */
    ck_assert_int_eq(sock_request_query_param(&r, "roo", buf, sizeof(buf)),
                     -1);
    ck_assert_int_eq(sock_request_query_param(&r, "rooms", buf, sizeof(buf)),
                     -1);
    ck_assert_int_eq(sock_request_query_param(&r, "Room", buf, sizeof(buf)),
                     -1);
    ck_assert_int_eq(sock_request_query_param(&r, "A", buf, sizeof(buf)),
                     -1);
    ck_assert_int_eq(sock_request_query_param(&r, "%41", buf, sizeof(buf)),
                     3);
    ck_assert_int_eq(sock_request_query_param(&r, "", buf, sizeof(buf)), -1);
    /* Too long: 8 bytes need 9; buf untouched. */
    strcpy(buf, "keep");
    ck_assert_int_eq(sock_request_query_param(&r, "long", buf, sizeof(buf)),
                     -ENOSPC);
    ck_assert_str_eq(buf, "keep");
    ck_assert_int_eq(sock_request_query_param(&r, "room", buf, 6), 5);
    ck_assert_int_eq(sock_request_query_param(&r, "room", buf, 5), -ENOSPC);
    ck_assert_int_eq(sock_request_query_param(&r, "flag", NULL, 0), -ENOSPC);
    ws_request_destroy(&r);

    ck_assert_int_eq(parse(&r, req("GET /q HTTP/1.1", H_ALL), MAX_HEADERS),
                     0);
    ck_assert_int_eq(sock_request_query_param(&r, "room", buf, sizeof(buf)),
                     -1);
    ws_request_destroy(&r);

    ck_assert_int_eq(parse(&r, req("GET /q?last HTTP/1.1", H_ALL),
                           MAX_HEADERS), 0);
    ck_assert_int_eq(sock_request_query_param(&r, "last", buf, sizeof(buf)),
                     0);
    ws_request_destroy(&r);
}
END_TEST

/* ---- Robustness ---------------------------------------------------------- */

/*
 * Random byte changes to a valid request: whatever comes out is a status
 * the connection layer knows, and ASan sees no bad access.
 */
START_TEST(test_mutations)
{
    static const char alphabet[] = "\r\n :,=?&#/\t\x00\x7f\xff"
                                   "Aa0GETHTPwebsocketupgrade";
    uint64_t seed = 0x5eed5eed;
    char buf[sizeof(valid_req) + 8];
    size_t len = strlen(valid_req);

    for (int i = 0; i < 20000; i++) {
        struct sock_request r;
        const uint8_t *p;
        ssize_t head;
        int n = 1 + (int)(test_rand(&seed) % 4), status;

        memcpy(buf, valid_req, len);
        for (int j = 0; j < n; j++)
            buf[test_rand(&seed) % len] =
                alphabet[test_rand(&seed) % (sizeof(alphabet) - 1)];
        p = guard_copy(buf, len);
        head = ws_head_len(p, len, len);
        if (head <= 0)
            continue;
        memset(&r, 0, sizeof(r));
        status = ws_request_parse(&r, p, (size_t)head, MAX_HEADERS);
        if (status == 0)
            status = ws_request_validate(&r, NULL);
        ws_request_destroy(&r);
        ck_assert_msg(status == 0 || status == 400 || status == 426 ||
                      status == 431 || status == 505,
                      "iteration %d: status %d", i, status);
    }
}
END_TEST

static Suite *
ws_handshake_suite(void)
{
    Suite *s = suite_create("ws_handshake");
    TCase *head = tcase_create("head");
    TCase *parsing = tcase_create("parse");
    TCase *validate = tcase_create("validate");
    TCase *response = tcase_create("response");
    TCase *getters = tcase_create("getters");

    tcase_add_test(head, test_accept_key_rfc);
    tcase_add_test(head, test_head_len_every_split);
    tcase_add_test(head, test_head_len_with_trailing_bytes);
    tcase_add_test(head, test_head_len_limit);
    tcase_add_test(head, test_head_len_crlf_only);
    tcase_add_test(head, test_prefix_every_split_valid);
    tcase_add_test(head, test_prefix_garbage);
    tcase_add_test(head, test_prefix_max_headers);
    tcase_add_test(head, test_prefix_agrees_with_parse);
    suite_add_tcase(s, head);

    tcase_add_test(parsing, test_parse_valid);
    tcase_add_test(parsing, test_parse_keeps_peer);
    tcase_add_test(parsing, test_parse_targets);
    tcase_add_test(parsing, test_parse_values);
    tcase_add_test(parsing, test_parse_max_headers);
    tcase_add_test(parsing, test_parse_not_one_head);
    tcase_add_test(parsing, test_mutations);
    suite_add_tcase(s, parsing);

    tcase_add_test(validate, test_validate_cases);
    tcase_add_test(validate, test_validate_reasons);
    tcase_add_test(validate, test_has_token);
    suite_add_tcase(s, validate);

    tcase_add_test(response, test_response_101);
    tcase_add_test(response, test_response_error);
    tcase_add_test(response, test_status_text);
    suite_add_tcase(s, response);

    tcase_add_test(getters, test_query_param);
    suite_add_tcase(s, getters);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(ws_handshake_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
