/*
 * fuzz_deflate.c: libFuzzer harness for worker/ws_deflate.c. The input is
 * a flags byte, Sec-WebSocket-Extensions text up to the first NUL (lines
 * split at '\n' become separate headers), then a compressed payload. Checks
 * contracts, not just "no crash": negotiation answers are well formed and
 * stable when offered back, exact-size buffers are refused; inflation gives
 * the same result whole and split, respects max_out, and what it produced
 * survives a compress/inflate round trip.
 * Built by CMake with -DSOCK_FUZZ=ON (clang), as tools/fuzz does.
 */
#include "ws_deflate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define MAX_LINES 3
#define MAX_OUT (256 * 1024)

static struct route_opts
route_from(uint8_t f)
{
    static const int sbits[4] = { 15, 9, 10, 12 };
    static const int cbits[4] = { 15, 8, 10, 13 };
    struct route_opts o = {
        .compress = (f & 0x80) == 0,
        .compress_level = 1,
        .compress_mem_level = 8,
        .server_max_window_bits = sbits[f & 3],
        .client_max_window_bits = cbits[(f >> 2) & 3],
        .server_no_context_takeover = f & 0x10,
        .client_no_context_takeover = f & 0x20,
    };

    return o;
}

static int
negotiate(char *const *vals, size_t n, const struct route_opts *o,
          struct ws_deflate_params *p, char *resp, size_t size)
{
    struct ws_header h[MAX_LINES];
    struct sock_request r;

    memset(&r, 0, sizeof(r));
    for (size_t i = 0; i < n; i++)
        h[i] = (struct ws_header){ "Sec-WebSocket-Extensions", vals[i] };
    r.headers = h;
    r.n_headers = n;
    return ws_deflate_negotiate(&r, o, p, resp, size);
}

static void
check_params(const struct ws_deflate_params *p)
{
    CHECK(p->server_max_window_bits >= 9 && p->server_max_window_bits <= 15);
    CHECK(p->client_max_window_bits >= 8 && p->client_max_window_bits <= 15);
}

/* Negotiates over the header text; returns 1 with *p set, else 0. */
static int
check_negotiate(const char *text, size_t len, uint8_t flags,
                struct ws_deflate_params *p)
{
    struct route_opts o = route_from(flags);
    char *vals[MAX_LINES], *copy = malloc(len + 1);
    char resp[WS_DEFLATE_RESP_MAX], again[WS_DEFLATE_RESP_MAX];
    struct ws_deflate_params q;
    size_t n = 0, rlen;
    int rc;

    if (copy == NULL)
        return 0;
    memcpy(copy, text, len);
    copy[len] = '\0';
    vals[n++] = copy;
    for (char *s = copy; *s != '\0' && n < MAX_LINES; s++) {
        if (*s == '\n') {
            *s = '\0';
            vals[n++] = s + 1;
        }
    }
    rc = negotiate(vals, n, &o, p, resp, sizeof(resp));
    CHECK(rc == 0 || rc == 1);
    CHECK(o.compress || rc == 0);
    if (rc == 1) {
        char *one[1] = { again };

        check_params(p);
        rlen = strlen(resp);
        CHECK(strncmp(resp, "permessage-deflate", 18) == 0);
        CHECK(negotiate(vals, n, &o, &q, resp, rlen) == -ENOSPC);
        CHECK(negotiate(vals, n, &o, &q, resp, rlen + 1) == 1);
        /* Our answer, offered back, is taken and answered the same. */
        memcpy(again, resp, rlen + 1);
        CHECK(negotiate(one, 1, &o, &q, resp, sizeof(resp)) == 1);
        CHECK(strcmp(resp, again) == 0);
        CHECK(q.server_no_context_takeover == p->server_no_context_takeover);
        CHECK(q.client_no_context_takeover == p->client_no_context_takeover);
        CHECK(q.server_max_window_bits == p->server_max_window_bits);
        CHECK(q.client_max_window_bits == p->client_max_window_bits);
    }
    free(copy);
    return rc;
}

/* Inflates in up to two pieces; returns the code, out holds the bytes. */
static int
inflate_pieces(const struct ws_deflate_params *p, const uint8_t *in,
               size_t len, size_t cut, uint32_t ratio, struct ws_dbuf *out)
{
    struct ws_deflate *d = ws_deflate_new(p, 1, 8);
    int rc;

    if (d == NULL)
        return -ENOMEM;
    rc = ws_deflate_inflate(d, in, cut, false, out, MAX_OUT, ratio);
    if (rc == 0)
        rc = ws_deflate_inflate(d, in + cut, len - cut, true, out, MAX_OUT,
                                ratio);
    CHECK(rc == 0 || rc == -EBADMSG || rc == -EMSGSIZE || rc == -ENOMEM);
    CHECK(out->len <= (size_t)MAX_OUT + 1 && out->cap <= (size_t)MAX_OUT + 1);
    CHECK(rc == -EMSGSIZE || out->len <= MAX_OUT);
    /* Errors stick. */
    if (rc != 0)
        CHECK(ws_deflate_inflate(d, in, len, true, out, MAX_OUT, 0) == rc);
    ws_deflate_free(d);
    return rc;
}

/* What inflated, compressed again by the peer, inflates to the same. */
static void
check_round_trip(const struct ws_deflate_params *p, const struct ws_dbuf *m)
{
    struct ws_deflate_params q = {
        .server_no_context_takeover = p->client_no_context_takeover,
        .client_no_context_takeover = p->server_no_context_takeover,
        .server_max_window_bits = p->client_max_window_bits,
        .client_max_window_bits = p->server_max_window_bits,
    };
    struct ws_deflate *tx = ws_deflate_new(&q, 6, 8);
    struct ws_deflate *rx = ws_deflate_new(p, 1, 8);
    struct ws_dbuf wire = { 0 }, back = { 0 };

    if (tx == NULL || rx == NULL)
        goto out;
    for (int i = 0; i < 2; i++) {
        wire.len = back.len = 0;
        if (ws_deflate_compress(tx, m->p, m->len, &wire) != 0)
            goto out;
        CHECK(ws_deflate_inflate(rx, wire.p, wire.len, true, &back,
                                 MAX_OUT, 0) == 0);
        CHECK(back.len == m->len);
        CHECK(m->len == 0 || memcmp(back.p, m->p, m->len) == 0);
    }
out:
    free(wire.p);
    free(back.p);
    ws_deflate_free(tx);
    ws_deflate_free(rx);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ws_deflate_params p = {
        .server_max_window_bits = 15,
        .client_max_window_bits = 15,
    };
    struct ws_dbuf whole = { 0 }, split = { 0 }, ratio = { 0 };
    const uint8_t *nul;
    size_t hlen, plen, cut;
    const uint8_t *payload;
    uint8_t flags;
    int rc_whole, rc_split;

    if (size < 2)
        return 0;
    flags = data[0];
    data++;
    size--;
    nul = memchr(data, '\0', size);
    hlen = nul != NULL ? (size_t)(nul - data) : size;
    check_negotiate((const char *)data, hlen, flags, &p);
    if (nul == NULL)
        return 0;
    payload = nul + 1;
    plen = size - hlen - 1;
    cut = plen > 0 ? (size_t)flags * 7 % (plen + 1) : 0;

    /* Ratio 0: the result cannot depend on where pieces are cut. */
    rc_whole = inflate_pieces(&p, payload, plen, plen, 0, &whole);
    rc_split = inflate_pieces(&p, payload, plen, cut, 0, &split);
    if (rc_whole != -ENOMEM && rc_split != -ENOMEM) {
        CHECK(rc_whole == rc_split);
        if (rc_whole == 0) {
            CHECK(whole.len == split.len);
            CHECK(whole.len == 0 || memcmp(whole.p, split.p, whole.len) == 0);
        }
    }
    /* With a ratio only more can fail, and what passes is the same. */
    if (inflate_pieces(&p, payload, plen, cut, 25, &ratio) == 0 &&
        rc_whole != -ENOMEM) {
        CHECK(rc_whole == 0 && ratio.len == whole.len);
    }
    if (rc_whole == 0)
        check_round_trip(&p, &whole);
    free(whole.p);
    free(split.p);
    free(ratio.p);
    return 0;
}
